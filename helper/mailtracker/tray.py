"""The desktop daemon: the watcher folds the logs, a tray icon shows new opens
(a badge drawn with Pillow), its menu lists recent tracked emails, and a person's
open raises a notification.

pystray's ``Icon.run`` owns the main thread; the watcher and the notifications
start from its setup hook, and stop before the icon does, so no fold ever
touches a dead icon. Without a tray (SSH, a headless session, no tray host, no
desktop extra) the daemon still folds and notifies, and says why there is no
icon. One daemon per home: a lock keeps a second one from starting a second
watcher. pystray and Pillow are imported only when an icon is shown, so the
rest of this module works on a server install.

On X11 without PyGObject pystray falls back to its X backend, which has no
menu: a click opens the report, and ``IconThread`` works around that backend's
deadlock, deafness to clicks and occasionally dropped dock requests.
"""

import contextlib
import logging
import os
import queue
import subprocess
import threading
import time
import webbrowser
from dataclasses import dataclass
from typing import Callable, ContextManager, List, Mapping, Optional, Sequence, Tuple

from filelock import FileLock, Timeout

from mailtracker.config import Config, Home
from mailtracker.errors import AlreadyRunningError, MailtrackerError
from mailtracker.fold import FoldResult, load_state
from mailtracker.install import platform_key
from mailtracker.logs import ago
from mailtracker.marks import Marks
from mailtracker.notifications import Delivery, Notice, Notifications, Notifier
from mailtracker.register import display_name
from mailtracker.report import write_report
from mailtracker.tokens import short_id
from mailtracker.watcher import Watcher

log = logging.getLogger(__name__)

APP_NAME = "mailtracker"
RECENT_LIMIT = 8
ICON_SIZE = 64
TILE_COLOUR = (37, 99, 235)
PAUSED_COLOUR = (107, 114, 128)
BADGE_COLOUR = (220, 38, 38)
DOCK_ATTEMPTS = 5
DOCK_CHECK_S = 1.0
# How each platform opens a file in the program the user chose for its type.
OPENERS = {"linux": ["xdg-open"], "darwin": ["open"], "win32": None}


@dataclass(frozen=True)
class MenuEntry:
    """One line of the tray menu; ``action`` names what choosing it does."""

    text: str = ""
    action: Optional[Tuple[str, ...]] = None
    enabled: bool = True
    default: bool = False
    separator: bool = False


SEPARATOR = MenuEntry(separator=True)


@dataclass(frozen=True)
class View:
    """What the icon, its title and its menu show, from one fold state and the marks."""

    rows: Tuple[Mapping, ...]
    unseen: int
    paused: bool
    title: str
    entries: Tuple[MenuEntry, ...]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def recent_rows(rows: Sequence[Mapping], limit: int = RECENT_LIMIT) -> List[Mapping]:
    """The emails with the latest activity (last open, else sending) first."""
    live = [row for row in rows if row.get("status") != "unsent"]
    live.sort(key=lambda row: (row["last_open"] or row["created"], row["created"]), reverse=True)
    return live[:limit]


def describe_row(row: Mapping, unseen: int, now: float) -> str:
    """'Ann — Offer · 3 opens · last opened 2 h ago', marked when some are new."""
    text = f"{_clip(display_name(row), 24)} — {_clip(row.get('subject') or '(no subject)', 32)}"
    opens = int(row["opens"])
    if opens:
        text += f" · {_plural(opens, 'open')} · last opened {ago(row['last_open'], now)}"
    else:
        text += " · not opened yet"
    return f"● {text} ({unseen} new)" if unseen else text


def build_view(rows: Sequence[Mapping], marks: Marks, now: float) -> View:
    unseen = sum(marks.unseen(row) for row in rows)
    recent = recent_rows(rows)
    if marks.paused:
        headline = "Tracking paused: new emails get no pixel"
    elif unseen:
        headline = f"{_plural(unseen, 'new open')}"
    else:
        headline = "No new opens"
    entries = [MenuEntry(headline, enabled=False), SEPARATOR]
    if not recent:
        entries.append(MenuEntry("No tracked emails yet", enabled=False))
    for row in recent:
        entries.append(MenuEntry(describe_row(row, marks.unseen(row), now), action=("show", row["id"])))
    entries += [
        SEPARATOR,
        MenuEntry("Mark all as seen", ("mark_seen",), enabled=bool(unseen)),
        MenuEntry("Resume tracking" if marks.paused else "Pause tracking",
                  ("resume",) if marks.paused else ("pause",)),
        MenuEntry("Open register in spreadsheet", ("open_register",)),
        MenuEntry("Open report", ("open_report",), default=True),
        SEPARATOR,
        MenuEntry("Quit mailtracker", ("quit",)),
    ]
    title = f"{APP_NAME}: {'paused' if marks.paused else headline.lower()}"
    opened = [row for row in recent if row["last_open"]]
    if opened:
        latest = opened[0]
        title += f"; {display_name(latest)} opened \"{latest.get('subject') or '(no subject)'}\" " \
                 f"{ago(latest['last_open'], now)}"
    return View(rows=tuple(rows), unseen=unseen, paused=marks.paused, title=_clip(title, 120),
                entries=tuple(entries))


def draw_icon(unseen: int, paused: bool, size: int = ICON_SIZE):
    """The icon: an envelope on a tile (grey when paused), a red badge with the new opens."""
    from PIL import Image, ImageDraw, ImageFont

    scale = size / 64
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    tile = PAUSED_COLOUR if paused else TILE_COLOUR
    draw.rounded_rectangle((0, 0, size - 1, size - 1), radius=int(12 * scale), fill=tile)
    box = tuple(int(v * scale) for v in (9, 18, 55, 48))
    draw.rectangle(box, fill=(255, 255, 255))
    draw.line((box[0], box[1], size // 2, int(36 * scale), box[2], box[1]), fill=tile,
              width=max(1, int(4 * scale)), joint="curve")
    if unseen:
        badge = tuple(int(v * scale) for v in (28, 0, 63, 35))
        draw.ellipse(badge, fill=BADGE_COLOUR, outline=(255, 255, 255), width=max(1, int(3 * scale)))
        text = str(unseen) if unseen < 10 else "9+"
        font = ImageFont.load_default(size=int((26 if unseen < 10 else 21) * scale))
        centre = ((badge[0] + badge[2]) / 2, (badge[1] + badge[3]) / 2 + scale)
        draw.text(centre, text, fill=(255, 255, 255), font=font, anchor="mm")
    return image


def tray_unavailable_reason() -> str:
    """Why no tray icon can be shown in this session, or '' when one can."""
    if platform_key() == "linux" and not os.environ.get("DISPLAY"):
        if os.environ.get("WAYLAND_DISPLAY"):
            return "this Wayland session has no X display for the tray ($DISPLAY is not set)"
        return "there is no graphical session ($DISPLAY is not set: SSH, a text console or a service)"
    try:
        import PIL  # noqa: F401
        import pystray
    except ImportError as exc:
        return f"the tray icon needs pystray and Pillow ({exc}): pip install 'mailtracker[desktop]'"
    except Exception as exc:  # pystray's X backend connects when imported
        return f"the tray backend cannot start: {exc}"
    if pystray.Icon.__module__.endswith("_xorg"):
        return _x_tray_missing()
    return ""


def _x_tray_missing() -> str:
    import Xlib.X
    import Xlib.display

    name = os.environ.get("DISPLAY", "")
    try:
        display = Xlib.display.Display(name)
    except Exception as exc:
        return f"cannot open the X display {name}: {exc}"
    try:
        selection = display.intern_atom(f"_NET_SYSTEM_TRAY_S{display.get_default_screen()}")
        if display.get_selection_owner(selection) == Xlib.X.NONE:
            return (f"no system tray on display {name}: no program holds the tray selection "
                    "(the desktop needs a panel with a notification area; on GNOME, the "
                    "AppIndicator extension and PyGObject)")
    finally:
        display.close()
    return ""


def _title_for(icon_class, title: str) -> str:
    # The X backend writes the title as a Latin-1 WM_NAME; other characters would raise.
    if icon_class.__module__.endswith("_xorg"):
        return title.encode("latin-1", "replace").decode("latin-1")
    return title


class IconThread:
    """Runs calls on the icon's own thread, where pystray wants them.

    Other backends marshal calls themselves. pystray 0.19's X backend sends them
    over the icon's X connection from the calling thread, which python-xlib's
    locking can deadlock: a call from the fold thread, or Quit, then hangs for
    ever (4 of 15 runs in a spike). Here other threads post over an X connection
    of their own, under a lock, and the icon's loop runs what was posted.
    """

    def __init__(self, icon):
        self._icon = icon
        self._calls: "queue.SimpleQueue[Callable[[], None]]" = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._display = None
        self.docked = threading.Event()
        if not type(icon).__module__.endswith("_xorg") or not hasattr(icon, "_message_handlers"):
            return
        import Xlib.X
        import Xlib.display

        self._display = Xlib.display.Display()
        self._atom = self._display.intern_atom("_MAILTRACKER_CALL")
        self._window = self._display.create_resource_object("window", icon._window.id)
        handlers = icon._message_handlers
        pystray_messages = handlers[Xlib.X.ClientMessage]

        def on_client_message(event):
            if event.client_type == self._atom:
                self._run_posted()
            else:
                pystray_messages(event)

        handlers[Xlib.X.ClientMessage] = on_client_message
        # pystray has a click handler but never asks X for clicks (pystray issue #151),
        # so a click did nothing; now a left click runs the menu's default entry.
        icon._window.change_attributes(
            event_mask=Xlib.X.ExposureMask | Xlib.X.StructureNotifyMask | Xlib.X.ButtonPressMask)

    def __call__(self, call: Callable[[], None]) -> None:
        if self._display is None:
            call()
            return
        import Xlib.X
        import Xlib.protocol.event

        self._calls.put(call)
        with self._lock:
            self._window.send_event(Xlib.protocol.event.ClientMessage(
                window=self._window, client_type=self._atom, data=(32, [0] * 5)),
                event_mask=Xlib.X.NoEventMask)
            self._display.flush()

    def keep_docked(self, stopping: threading.Event, attempts: int = DOCK_ATTEMPTS,
                    every_s: float = DOCK_CHECK_S) -> None:
        """Ask the tray again while it has not taken the icon: an X tray drops a dock
        request now and then (3 of 40 starts under trayer, with pystray alone)."""
        if self._display is None:
            return
        for attempt in range(attempts + 1):
            if stopping.wait(every_s) or self.docked.is_set():
                return
            self(lambda ask=attempt < attempts: self._check_docked(ask))
        if not stopping.is_set() and not self.docked.wait(every_s):
            log.warning("the system tray did not take the icon after %d requests; opens are still "
                        "folded and notified", attempts + 1)

    def _check_docked(self, ask_again: bool) -> None:
        window = self._icon._window
        if window.query_tree().parent.id != self._icon._display.screen().root.id:
            self.docked.set()
        elif ask_again:
            log.info("the system tray has not taken the icon yet; asking again")
            self._icon._show()

    def _run_posted(self) -> None:
        while True:
            try:
                call = self._calls.get_nowait()
            except queue.Empty:
                return
            try:
                call()
            except Exception:
                log.exception("a tray icon update failed")

    def close(self) -> None:
        if self._display is not None:
            with self._lock:
                self._display.close()


def open_in_system_program(path: str) -> None:
    """Open a file in the program the user chose for its type (a spreadsheet for CSV)."""
    command = OPENERS.get(platform_key(), OPENERS["linux"])
    if command is None:
        os.startfile(path)  # Windows
        return
    # Detached: the spreadsheet outlives the click, and nobody waits for it.
    subprocess.Popen(command + [path], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True)


class InstanceLock:
    """One daemon per home: a lock held while it runs (the OS drops it when the process dies)."""

    def __init__(self, home: Home):
        self.home = home
        self._lock = FileLock(str(home.state_dir / "tray.lock"), timeout=0)
        self._pid_path = home.state_dir / "tray.pid"

    def __enter__(self) -> "InstanceLock":
        self.home.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except Timeout:
            try:
                pid = self._pid_path.read_text(encoding="ascii").strip()
            except OSError:
                pid = "unknown"
            raise AlreadyRunningError(
                f"mailtracker tray is already running for {self.home.data_dir} (process {pid}); "
                "use its icon, or quit it from the icon's menu before starting another") from None
        self._pid_path.write_text(str(os.getpid()), encoding="ascii")
        return self

    def __exit__(self, *exc) -> None:
        self._pid_path.unlink(missing_ok=True)
        self._lock.release()


class Tray:
    """The daemon: owns the watcher, the notifications and (when it can) the tray icon.

    ``start`` / ``stop`` run the parts without an icon (as tests and the headless
    fallback do); ``run`` is the whole daemon and owns the calling (main) thread.
    """

    def __init__(self, home: Home, config: Config,
                 deliver: Optional[Callable[[Notice], None]] = None):
        self.home = home
        self.config = config
        self.marks = Marks.load(home)
        self.notifier = Notifier(self.marks)
        self.watcher = Watcher(home, config, on_fold=self._on_fold)
        self.notifications: Optional[Notifications] = None
        self.icon = None
        self.reason = ""
        self.view = build_view(load_state(home).register_rows(), self.marks, time.time())
        self._deliver = deliver
        self._marks_lock = threading.RLock()
        self._stop_requested = threading.Event()
        self._stopper: Optional[threading.Thread] = None
        self._docker: Optional[threading.Thread] = None
        self._stopped = False
        self._on_icon_thread: Optional[IconThread] = None
        self._shown: Tuple[int, bool] = (-1, False)

    # -- the parts -------------------------------------------------------------

    def start(self) -> "Tray":
        deliver = self._deliver or Delivery(icon=self.icon)
        self.notifications = Notifications(self.notifier, deliver).start()
        self.watcher.start()
        return self

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            self.watcher.stop()
        finally:
            if self.notifications is not None:
                self.notifications.stop()

    def __enter__(self) -> "Tray":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- the whole daemon --------------------------------------------------------

    def run(self, alongside: Callable[[], ContextManager] = contextlib.nullcontext) -> int:
        """Run until asked to stop (Quit, SIGTERM, Ctrl-C); a second one for a home refuses.

        ``alongside`` makes a part that runs as long as the daemon (e.g. the HTTP
        puller), started only once this process is the home's one daemon.
        """
        with InstanceLock(self.home), alongside():
            self.reason = tray_unavailable_reason()
            if self.reason:
                log.warning("no tray icon: %s. mailtracker keeps folding the logs into %s and "
                            "notifying of opens; Ctrl-C stops it.", self.reason, self.home.register_path)
                self._run_headless()
            else:
                self._run_icon()
        return 0

    def request_stop(self) -> None:
        """Safe from a signal handler or any thread."""
        self._stop_requested.set()

    def _run_headless(self) -> None:
        self.start()
        try:
            self._stop_requested.wait()
        finally:
            self.stop()

    def _run_icon(self) -> None:
        import pystray

        view = self.view
        self.icon = pystray.Icon(APP_NAME, draw_icon(view.unseen, view.paused),
                                 _title_for(pystray.Icon, view.title), menu=pystray.Menu(self._menu_items))
        self._shown = (view.unseen, view.paused)
        self._on_icon_thread = IconThread(self.icon)
        try:
            self.icon.run(setup=self._setup)
        finally:
            self._stop_requested.set()
            for thread in (self._stopper, self._docker):
                if thread is not None:
                    thread.join()
            self.stop()
            self._on_icon_thread.close()

    def _setup(self, icon) -> None:
        self._on_icon_thread(lambda: setattr(icon, "visible", True))
        log.info("tray icon shown; watching %s", self.home.hits_dir(self.config))
        self._stopper = threading.Thread(target=self._stop_when_asked, name="mailtracker-tray-stop",
                                         daemon=True)
        self._stopper.start()
        self._docker = threading.Thread(target=self._on_icon_thread.keep_docked,
                                        args=(self._stop_requested,), name="mailtracker-dock", daemon=True)
        self._docker.start()
        self.start()

    def _stop_when_asked(self) -> None:
        self._stop_requested.wait()
        # The parts first: a fold finishing now must not update an icon that is gone.
        self.stop()
        self._on_icon_thread(self.icon.stop)

    # -- keeping the view current ---------------------------------------------------

    def _on_fold(self, result: FoldResult) -> None:
        self.refresh()

    def refresh(self) -> None:
        """Read the fold state (whoever folded it), notify, and update icon and menu."""
        rows = load_state(self.home).register_rows()
        with self._marks_lock:
            if self.notifications is not None and self.notifications.observe(rows):
                self._save_marks()
            self.view = build_view(rows, self.marks, time.time())
        self._show()

    def _show(self) -> None:
        if self.icon is None or self._stop_requested.is_set():
            return
        view = self.view
        try:
            self._on_icon_thread(lambda: self._apply(view))
        except Exception:
            # A tray backend's failure must not stop the folding that called us.
            log.exception("could not update the tray icon")

    def _apply(self, view: View) -> None:
        icon = self.icon
        if (view.unseen, view.paused) != self._shown:
            icon.icon = draw_icon(view.unseen, view.paused)
            self._shown = (view.unseen, view.paused)
        title = _title_for(type(icon), view.title)
        if icon.title != title:
            icon.title = title
        icon.update_menu()
        log.debug("icon and menu updated: %s", view.title)

    def _save_marks(self) -> None:
        try:
            self.marks.save(self.home)
        except OSError as exc:
            log.warning("cannot save %s: %s; seen and paused will be forgotten at exit",
                        self.home.state_dir / "marks.json", exc)

    # -- the menu ------------------------------------------------------------------

    def _menu_items(self):
        import pystray

        for entry in self.view.entries:
            if entry.separator:
                yield pystray.Menu.SEPARATOR
            else:
                yield pystray.MenuItem(entry.text, self._action(entry), enabled=entry.enabled,
                                       default=entry.default)

    def _action(self, entry: MenuEntry):
        # pystray passes (icon, item) to a callable that takes exactly two arguments.
        return lambda icon, item: self.choose(entry)

    def choose(self, entry: MenuEntry) -> None:
        """Do what a menu entry says (called on the GUI thread)."""
        if not entry.action:
            return
        name, *args = entry.action
        try:
            getattr(self, f"_do_{name}")(*args)
        except (OSError, MailtrackerError, webbrowser.Error) as exc:
            log.error("%s failed: %s", entry.text, exc)

    def _do_show(self, tag_id: str) -> None:
        self._do_open_report(anchor=f"t-{short_id(tag_id)}")

    def _do_open_report(self, anchor: str = "") -> None:
        path = write_report(self.home)
        webbrowser.open(path.as_uri() + (f"#{anchor}" if anchor else ""))

    def _do_open_register(self) -> None:
        open_in_system_program(str(self.home.register_path))

    def _do_mark_seen(self) -> None:
        with self._marks_lock:
            self.marks.mark_all_seen(self.view.rows)
            self._save_marks()
            self.view = build_view(self.view.rows, self.marks, time.time())
        self._show()

    def _do_pause(self) -> None:
        self._set_paused(True)

    def _do_resume(self) -> None:
        self._set_paused(False)

    def _set_paused(self, paused: bool) -> None:
        with self._marks_lock:
            self.marks.paused = paused
            if paused and self.notifications is not None:
                self.notifications.drop_pending()
            self._save_marks()
            self.view = build_view(self.view.rows, self.marks, time.time())
        log.info("tracking %s", "paused: new emails get no pixel" if paused else "resumed")
        self._show()

    def _do_quit(self) -> None:
        self.request_stop()
