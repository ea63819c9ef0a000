"""The operating system the desktop side runs on, as one value the code is handed.

``Platform`` gathers what differs between Linux, macOS and Windows and what the
installers read from the machine: the user's home folder, the environment, the
interpreter that runs mailtracker, the Windows registry, the code page ``cmd``
reads a batch file in, how a command is run and how a file replaces another.
Code that branches on the platform takes a ``Platform`` (``Platform.current()`` by
default), so a test runs the Windows or macOS branch on Linux by handing it one:
every branch is exercised here even though only Linux runs for real.
"""

import locale
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional, Tuple

# Registry roots by name; the Windows registry's handles are looked up from these.
HKCU = "HKEY_CURRENT_USER"
HKLM = "HKEY_LOCAL_MACHINE"


def platform_key(name: Optional[str] = None) -> str:
    """"linux" (and the BSDs, which behave alike here), "darwin" or "win32"."""
    name = name or sys.platform
    return "linux" if name.startswith(("linux", "freebsd", "openbsd", "netbsd")) else name


class WindowsRegistry:  # pragma: no cover - only Windows has winreg
    """The real registry, through winreg (values are strings, REG_SZ)."""

    def set_value(self, root: str, key: str, name: str, value: str) -> None:
        import winreg

        with winreg.CreateKey(getattr(winreg, root), key) as handle:
            winreg.SetValueEx(handle, name, 0, winreg.REG_SZ, value)

    def get_value(self, root: str, key: str, name: str) -> Optional[str]:
        import winreg

        try:
            with winreg.OpenKey(getattr(winreg, root), key) as handle:
                return winreg.QueryValueEx(handle, name)[0]
        except FileNotFoundError:
            return None

    def delete_value(self, root: str, key: str, name: str) -> bool:
        import winreg

        try:
            with winreg.OpenKey(getattr(winreg, root), key, 0, winreg.KEY_SET_VALUE) as handle:
                winreg.DeleteValue(handle, name)
        except FileNotFoundError:
            return False
        return True

    def delete_key(self, root: str, key: str) -> bool:
        import winreg

        try:
            winreg.DeleteKey(getattr(winreg, root), key)
        except FileNotFoundError:
            return False
        return True


class NoRegistry:
    """Linux and macOS: there is no registry, and nothing may ask for one."""

    def _refuse(self, *args) -> None:
        raise RuntimeError("the Windows registry was asked for on another platform")

    set_value = get_value = delete_value = delete_key = _refuse


def _oem_encoding() -> str:
    """The OEM code page, in which cmd.exe reads a batch file (e.g. cp850, cp437)."""
    if sys.platform != "win32":
        return "cp437"
    import ctypes  # pragma: no cover - Windows only

    return f"cp{ctypes.windll.kernel32.GetOEMCP()}"  # pragma: no cover


@dataclass(frozen=True)
class Platform:
    """One operating system as the installers and the daemon see it."""

    key: str  # "linux", "darwin" or "win32"
    user_home: Path
    python: str
    environ: Mapping[str, str] = field(default_factory=dict)
    registry: object = field(default_factory=NoRegistry)
    # The code page cmd.exe reads .bat files in (Windows only).
    bat_encoding: str = "cp437"
    run: Callable = subprocess.run
    replace: Callable[[str, str], None] = os.replace

    @classmethod
    def current(cls) -> "Platform":
        key = platform_key()
        return cls(key=key, user_home=Path.home(), python=sys.executable, environ=dict(os.environ),
                   registry=WindowsRegistry() if key == "win32" else NoRegistry(),
                   bat_encoding=_oem_encoding() if key == "win32" else locale.getpreferredencoding(False))

    @property
    def is_windows(self) -> bool:
        return self.key == "win32"

    def windowless_python(self) -> str:
        """The interpreter that opens no console window: pythonw.exe beside python.exe on
        Windows (python.org, the Store's Python, venvs and pipx all have one), when it is there."""
        if self.is_windows:
            cut = max(self.python.rfind("\\"), self.python.rfind("/")) + 1
            pythonw = self.python[:cut] + "pythonw.exe"
            if os.path.exists(pythonw):
                return pythonw
        return self.python


# The environment variables a batch file may name instead of a folder spelled out: cmd
# expands them to the right text whatever the code page (a user name like Zoë).
BAT_FOLDER_VARIABLES: Tuple[str, ...] = ("LOCALAPPDATA", "APPDATA", "USERPROFILE")


def bat_argument(text: str, platform: Platform) -> str:
    """``text`` (a path or word) as one double-quoted argument of a batch file line.

    ``%`` is doubled (a batch file expands ``%NAME%``); the longest leading folder that one of
    ``BAT_FOLDER_VARIABLES`` names is written as that variable, so a non-ASCII user name reaches
    cmd intact; what remains must be in the OEM code page cmd reads the file in
    (``install.launcher_bytes`` checks)."""
    escaped = text.replace("%", "%%")
    prefixes = sorted(((platform.environ[name].rstrip("\\").replace("%", "%%"), name)
                       for name in BAT_FOLDER_VARIABLES if platform.environ.get(name)),
                      key=lambda item: -len(item[0]))
    for prefix, name in prefixes:
        if escaped.lower() == prefix.lower() or escaped.lower().startswith(prefix.lower() + "\\"):
            escaped = f"%{name}%" + escaped[len(prefix):]
            break
    # Backslashes before the closing quote are doubled: the program's own parsing of its command
    # line (the C runtime's rules) would otherwise read "D:\" as an escaped quote.
    trailing = escaped[len(escaped.rstrip("\\")):]
    return '"' + escaped + trailing + '"'
