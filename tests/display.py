"""A real desktop for the tray and notification tests, started once per session:
Xvfb with Debian's trayer as the tray host, a session D-Bus with dunst as the
notification service, and screenshots and clicks through the X protocol.

Without these programs the tests are skipped on a developer machine and fail in
CI (CI=true), where a skip would hide that nothing was tested.
"""

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from tests.tools import unavailable

START_TIMEOUT_S = 15.0
SCREEN = (480, 240)


def require(*programs: str) -> None:
    missing = [program for program in programs if shutil.which(program) is None]
    if missing:
        unavailable(f"needs {', '.join(missing)} (apt-get install xvfb trayer dunst dbus chromium)")


@dataclass
class XDisplay:
    """A running X server with a tray; ``env`` puts a program on it."""

    name: str

    @property
    def env(self) -> Dict[str, str]:
        env = {key: value for key, value in os.environ.items()
               if key not in ("DBUS_SESSION_BUS_ADDRESS", "WAYLAND_DISPLAY")}
        return {**env, "DISPLAY": self.name, "PYSTRAY_BACKEND": "xorg"}

    def connect(self):
        import Xlib.display

        return Xlib.display.Display(self.name)

    def screenshot(self, box=None):
        """The screen as the X server has it (a PIL image), or a part of it."""
        import Xlib.X
        from PIL import Image

        display = self.connect()
        try:
            root = display.screen().root
            geometry = root.get_geometry()
            raw = root.get_image(0, 0, geometry.width, geometry.height, Xlib.X.ZPixmap, 0xFFFFFFFF)
            image = Image.frombytes("RGB", (geometry.width, geometry.height), raw.data, "raw", "BGRX")
        finally:
            display.close()
        return image.crop(box) if box else image

    def tray_icons(self, wm_class: str) -> List[dict]:
        """Docked windows of that class: their title and box on the screen."""
        import Xlib.error
        import Xlib.X

        display = self.connect()
        found = []
        try:
            root = display.screen().root
            stack = [root]
            while stack:
                window = stack.pop()
                try:
                    tree = window.query_tree()
                    stack.extend(tree.children)
                    cls = window.get_wm_class()
                    if not cls or cls[1] != wm_class or tree.parent.id == root.id:
                        continue  # another program's, or not docked (a tray host reparents)
                    if window.get_attributes().map_state != Xlib.X.IsViewable:
                        continue
                    geometry = window.get_geometry()
                    origin = window.translate_coords(root, 0, 0)
                    title = window.get_wm_name() or ""
                except Xlib.error.XError:
                    continue  # the window went away while we looked
                x, y = -origin.x, -origin.y
                found.append({"title": title, "box": (x, y, x + geometry.width, y + geometry.height)})
        finally:
            display.close()
        return found

    def click(self, x: int, y: int) -> None:
        """A real left click at a screen position (XTEST, as a mouse would)."""
        import Xlib.X
        from Xlib.ext import xtest

        display = self.connect()
        try:
            display.screen().root.warp_pointer(x, y)
            display.sync()
            xtest.fake_input(display, Xlib.X.ButtonPress, 1)
            xtest.fake_input(display, Xlib.X.ButtonRelease, 1)
            display.sync()
        finally:
            display.close()


def _start_xvfb() -> (subprocess.Popen, str):
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", f"{SCREEN[0]}x{SCREEN[1]}x24",
         "-nolisten", "tcp", "-noreset"],
        pass_fds=[write_end], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_end)
    number = b""
    with os.fdopen(read_end, "rb") as reader:
        while not number.endswith(b"\n"):
            chunk = reader.read(1)
            if not chunk:
                raise AssertionError(f"Xvfb exited with {proc.wait()} before naming its display")
            number += chunk
    return proc, ":" + number.decode().strip()


def _tray_owned(display: XDisplay) -> bool:
    import Xlib.X

    connection = display.connect()
    try:
        atom = connection.intern_atom("_NET_SYSTEM_TRAY_S0")
        return connection.get_selection_owner(atom) != Xlib.X.NONE
    finally:
        connection.close()


def _stop(*procs: Optional[subprocess.Popen]) -> None:
    for proc in procs:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="session")
def x_display():
    """Xvfb with trayer docked at the bottom left, for the whole session."""
    require("Xvfb", "trayer")
    xvfb, name = _start_xvfb()
    display = XDisplay(name)
    trayer = None
    try:
        trayer = subprocess.Popen(
            ["trayer", "--edge", "bottom", "--align", "left", "--widthtype", "request",
             "--height", "32", "--SetDockType", "true", "--transparent", "false"],
            env=display.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: _tray_owned(display), timeout=START_TIMEOUT_S, what="trayer to own the tray")
        yield display
    finally:
        _stop(trayer, xvfb)


@dataclass
class NotificationService:
    """A session D-Bus with dunst answering org.freedesktop.Notifications."""

    address: str
    display: XDisplay

    @property
    def env(self) -> Dict[str, str]:
        return {**self.display.env, "DBUS_SESSION_BUS_ADDRESS": self.address}

    def dunstctl(self, *args: str) -> str:
        return subprocess.run(["dunstctl", *args], env=self.env, capture_output=True, text=True,
                              check=True, timeout=10).stdout

    def shown(self) -> int:
        """Notifications dunst has on screen, waiting, or in its history."""
        return sum(int(self.dunstctl("count", which).strip()) for which in ("displayed", "waiting", "history"))

    def history(self, since: int = 0) -> List[Dict[str, str]]:
        """What dunst showed after the first ``since`` notifications, oldest first
        (closes what is on screen, which moves it to the history)."""
        self.dunstctl("close-all")
        doc = json.loads(self.dunstctl("history"))
        items = [{key: value["data"] for key, value in item.items()} for item in doc["data"][0]]
        return list(reversed(items))[since:]


@pytest.fixture(scope="session")
def notification_service(x_display, tmp_path_factory):
    """dbus-daemon and dunst, for the whole session."""
    require("dbus-daemon", "dunst", "dunstctl")
    config_dir = tmp_path_factory.mktemp("dunst")
    bus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--nopidfile", "--print-address=1"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    dunst = None
    try:
        address = bus.stdout.readline().strip()
        assert address, "dbus-daemon printed no address"
        service = NotificationService(address, x_display)
        dunst = subprocess.Popen(["dunst", "-config", str(_dunstrc(config_dir))], env=service.env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        wait_for(lambda: _name_owned(address, "org.freedesktop.Notifications"), timeout=START_TIMEOUT_S,
                 what="dunst on the session bus")
        yield service
    finally:
        _stop(dunst, bus)
        bus.stdout.close()


def _name_owned(address: str, name: str) -> bool:
    """Whether a program holds a bus name; asking this never starts one (D-Bus activation)."""
    from jeepney import DBusAddress, new_method_call
    from jeepney.io.blocking import open_dbus_connection

    bus = DBusAddress("/org/freedesktop/DBus", bus_name="org.freedesktop.DBus", interface="org.freedesktop.DBus")
    with open_dbus_connection(bus=address) as connection:
        return connection.send_and_get_reply(new_method_call(bus, "NameHasOwner", "s", (name,)), timeout=5).body[0]


def _dunstrc(folder: Path) -> Path:
    path = folder / "dunstrc"
    # Top right, away from the tray at the bottom left; kept until the test closes it.
    path.write_text("[global]\n    origin = top-right\n    offset = 4x4\n    width = 260\n"
                    "[urgency_normal]\n    timeout = 0\n", encoding="utf-8")
    return path


def wait_for(predicate, timeout: float, what: str):
    # conftest imports this module; its wait_for is only there once conftest has run.
    from tests.conftest import wait_for as bounded_wait

    return bounded_wait(predicate, timeout=timeout, what=what)


def started_within(proc: subprocess.Popen, predicate, timeout: float, what: str):
    """wait_for that also fails at once when the process died."""
    def check():
        if proc.poll() is not None:
            raise AssertionError(f"{what}: the process exited with {proc.returncode}")
        return predicate()
    return wait_for(check, timeout=timeout, what=what)
