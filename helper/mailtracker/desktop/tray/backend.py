"""Whether a tray icon can be shown here, and the workarounds pystray 0.19's
X11 backend needs (a deadlock, deafness to clicks, dropped dock requests).
Only this module touches pystray's private attributes.
"""

import logging
import os
import queue
import threading
from typing import Callable

from mailtracker.desktop.platforms import platform_key

log = logging.getLogger(__name__)

DOCK_ATTEMPTS = 5


DOCK_CHECK_S = 1.0


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
    import Xlib.display
    import Xlib.X

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


def title_for(icon_class, title: str) -> str:
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
        import Xlib.display
        import Xlib.X

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
        import Xlib.protocol.event
        import Xlib.X

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

