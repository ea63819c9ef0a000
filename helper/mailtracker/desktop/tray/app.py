"""``mailtracker tray``: the desktop daemon with an icon. It owns the daemon (folding,
pulling), the notifications, the watch on whether opens still arrive (``troubles``) and,
when it can, a tray icon showing new opens, or why none can arrive, and a menu of recent
tracked emails.

pystray's ``Icon.run`` owns the main thread; the daemon and the notifications
start from its setup hook, and stop before the icon does, so no fold ever
touches a dead icon. Without a tray (SSH, a headless session, no tray host, no
desktop extra) it still folds and notifies, and says why there is no icon.
One tray per home: a lock keeps a second one from starting. pystray and Pillow
are imported only when an icon is shown.
"""

import logging
import os
import threading
import time
import webbrowser
from typing import Callable, Optional, Tuple

from filelock import FileLock, Timeout

from mailtracker.core.errors import AlreadyRunningError, MailtrackerError
from mailtracker.core.paths import Home
from mailtracker.core.settings import Config
from mailtracker.core.tokens import short_id
from mailtracker.desktop.daemon import Daemon, tray_lock_path
from mailtracker.desktop.fold import FoldResult
from mailtracker.desktop.register import Register
from mailtracker.desktop.marks import Marks
from mailtracker.desktop.notifications import Delivery, Notice, Notifications, Notifier
from mailtracker.desktop.opener import open_in_system_program
from mailtracker.desktop.report import write_report
from mailtracker.desktop.tray.backend import IconThread, title_for, tray_unavailable_reason
from mailtracker.desktop.tray.icon import draw_icon
from mailtracker.desktop.tray.menu import APP_NAME, MenuEntry, View, build_view, trouble_explained, trouble_notice
from mailtracker.desktop.troubles import GRACE_S, NO_TROUBLES, TroubleWatch, Troubles

log = logging.getLogger(__name__)


class InstanceLock:
    """One daemon per home: a lock held while it runs (the OS drops it when the process dies)."""

    def __init__(self, home: Home):
        self.home = home
        self._lock = FileLock(str(tray_lock_path(home)), timeout=0)
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
                 deliver: Optional[Callable[[Notice], None]] = None, trouble_grace_s: float = GRACE_S):
        self.home = home
        self.config = config
        self.marks = Marks.load(home)
        self.notifier = Notifier(self.marks)
        self.daemon = Daemon(home, config, on_change=self._on_change)
        # Whether opens still arrive, read from what the leading daemon writes (this one or another).
        self.trouble_watch = TroubleWatch(home, config, on_change=self._on_troubles, grace_s=trouble_grace_s)
        self._told_troubles = NO_TROUBLES  # what the last trouble notification was about
        self.notifications: Optional[Notifications] = None
        self.icon = None
        self.reason = ""
        self.view = self._view(_rows(home))
        self._deliver = deliver
        self._marks_lock = threading.RLock()
        self._stop_requested = threading.Event()
        self._stopper: Optional[threading.Thread] = None
        self._docker: Optional[threading.Thread] = None
        self._stopped = False
        self._on_icon_thread: Optional[IconThread] = None
        self._shown: Tuple[int, bool, bool] = (-1, False, False)

    # -- the parts -------------------------------------------------------------

    def start(self) -> "Tray":
        deliver = self._deliver or Delivery(icon=self.icon)
        self.notifications = Notifications(self.notifier, deliver).start()
        self.daemon.start()
        self.trouble_watch.start()
        return self

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            self.trouble_watch.stop()
            self.daemon.stop()
        finally:
            if self.notifications is not None:
                self.notifications.stop()

    def __enter__(self) -> "Tray":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- the whole daemon --------------------------------------------------------

    def run(self) -> int:
        """Run until asked to stop (Quit, SIGTERM, Ctrl-C); a second one for a home refuses."""
        with InstanceLock(self.home):
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
        self.icon = pystray.Icon(APP_NAME, _draw(view), title_for(pystray.Icon, view.title),
                                 menu=pystray.Menu(self._menu_items))
        self._shown = _drawn(view)
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

    def _on_change(self, result: Optional[FoldResult]) -> None:
        self.refresh()

    def _on_troubles(self, troubles: Troubles) -> None:
        notice = trouble_notice(self._told_troubles, troubles, time.time())
        self._told_troubles = troubles
        # Paused: no notification at all, as for opens (the menu still says it).
        if notice is not None and self.notifications is not None and not self.marks.paused:
            self.notifications.tell(notice)
        self.refresh()

    def _view(self, rows) -> View:
        # The fold's problem as this daemon's watcher knows it, else as the folding one wrote it
        # (a tray that follows another process's daemon has no watcher of its own).
        troubles = self.trouble_watch.troubles
        return build_view(rows, self.marks, time.time(), problem=self.daemon.last_error or troubles.fold_problem,
                          troubles=troubles)

    def refresh(self) -> None:
        """Read the fold state (whoever folded it), notify, and update icon and menu."""
        rows = _rows(self.home)
        with self._marks_lock:
            if self.notifications is not None and self.notifications.observe(rows):
                self._save_marks()
            self.view = self._view(rows)
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
        if _drawn(view) != self._shown:
            icon.icon = _draw(view)
            self._shown = _drawn(view)
        title = title_for(type(icon), view.title)
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
        # At the email's row: the report lists it even when it is older than the newest it lists.
        path = write_report(self.home, picked=[tag_id])
        webbrowser.open(f"{path.as_uri()}#t-{short_id(tag_id)}")

    def _do_explain_trouble(self) -> None:
        # Chosen by the user: shown while paused too.
        notice = trouble_explained(self.trouble_watch.troubles)
        if notice is not None and self.notifications is not None:
            self.notifications.tell(notice)

    def _do_open_report(self) -> None:
        webbrowser.open(write_report(self.home).as_uri())

    def _do_open_register(self) -> None:
        open_in_system_program(str(self.home.register_path))

    def _do_mark_seen(self) -> None:
        with self._marks_lock:
            self.marks.mark_all_seen(self.view.rows)
            self._save_marks()
            self.view = self._view(self.view.rows)
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
            self.view = self._view(self.view.rows)
        log.info("tracking %s", "paused: new emails get no pixel" if paused else "resumed")
        self._show()

    def _do_quit(self) -> None:
        self.request_stop()


def _drawn(view: View) -> Tuple[int, bool, bool]:
    """What of a view the icon's picture shows (it is drawn again only when that changes)."""
    return view.unseen, view.paused, view.trouble


def _draw(view: View):
    return draw_icon(view.unseen, view.paused, trouble=view.trouble)


def _rows(home: Home):
    with Register.load(home) as register:
        return register.rows()
