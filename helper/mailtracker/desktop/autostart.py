"""Starting the tray daemon at login: an XDG autostart entry on Linux, a
LaunchAgent on macOS, a Run key value on Windows.

Where each platform keeps it lives in one table, ``AUTOSTART``. The command
is this Python's absolute path, so it works from a venv or pipx.
"""

import plistlib
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import platformdirs

from mailtracker.desktop.install import platform_key

ENTRY_NAME = "mailtracker"
LAUNCH_AGENT_LABEL = "org.mailtracker.tray"
# Per platform: how the entry is kept and where.
AUTOSTART = {
    "linux": ("desktop-entry", "{xdg_config}/autostart/mailtracker.desktop"),
    "darwin": ("launch-agent", "~/Library/LaunchAgents/org.mailtracker.tray.plist"),
    "win32": ("run-key", r"HKEY_CURRENT_USER\Software\Microsoft\Windows\CurrentVersion\Run"),
}
# Characters that make the Desktop Entry spec's Exec key need an argument quoted.
_EXEC_RESERVED = set(" \t\n\"'\\><~|&;$*?#()`")


@dataclass(frozen=True)
class Autostart:
    """Where this platform's autostart entry lives: a file, or a registry value."""

    kind: str
    path: Optional[Path]
    registry_key: Optional[str]


def autostart_location(platform: Optional[str] = None) -> Autostart:
    platform = platform or platform_key()
    kind, where = AUTOSTART.get(platform, AUTOSTART["linux"])
    if kind == "run-key":
        return Autostart(kind, None, where)
    where = where.format(xdg_config=platformdirs.user_config_dir() if platform == "linux" else "")
    return Autostart(kind, Path(where).expanduser(), None)


def tray_command(home_override: Optional[str], platform: Optional[str] = None) -> List[str]:
    """The command that starts the daemon; on Windows without a console window."""
    python = Path(sys.executable)
    if (platform or platform_key()) == "win32" and python.with_name("pythonw.exe").exists():
        python = python.with_name("pythonw.exe")
    home_args = ["--home", home_override] if home_override else []
    return [str(python), "-m", "mailtracker", *home_args, "tray"]


def desktop_exec(argv: List[str]) -> str:
    """An Exec value as the Desktop Entry spec wants it: quoting, then string escapes."""
    words = []
    for arg in argv:
        if arg and not _EXEC_RESERVED.intersection(arg):
            words.append(arg)
        else:
            inner = "".join("\\" + ch if ch in '"`$\\' else ch for ch in arg)
            words.append(f'"{inner}"')
    line = " ".join(words).replace("%", "%%")
    return line.replace("\\", "\\\\")


def desktop_entry(argv: List[str]) -> str:
    return (
        "[Desktop Entry]\n"
        "Type=Application\n"
        "Name=mailtracker\n"
        "Comment=Tray icon for tracked emails: new opens, notifications, the report\n"
        f"Exec={desktop_exec(argv)}\n"
        "Icon=mail-read\n"
        "Terminal=false\n"
        "Categories=Network;Email;\n"
        "X-GNOME-Autostart-enabled=true\n"
    )


def launch_agent(argv: List[str]) -> bytes:
    log_path = str(Path("~/Library/Logs/mailtracker-tray.log").expanduser())
    return plistlib.dumps({
        "Label": LAUNCH_AGENT_LABEL,
        "ProgramArguments": argv,
        "RunAtLoad": True,
        "ProcessType": "Interactive",
        "StandardErrorPath": log_path,
    })


def install_autostart(home_override: Optional[str], platform: Optional[str] = None) -> List[str]:
    """Write this platform's autostart entry; returns what was done."""
    where = autostart_location(platform)
    argv = tray_command(home_override, platform)
    if where.kind == "run-key":
        _set_run_value(where.registry_key, subprocess.list2cmdline(argv))
        return [f"set {where.registry_key}\\{ENTRY_NAME}"]
    where.path.parent.mkdir(parents=True, exist_ok=True)
    if where.kind == "launch-agent":
        where.path.write_bytes(launch_agent(argv))
    else:
        where.path.write_text(desktop_entry(argv), encoding="utf-8")
    return [f"wrote {where.path}"]


def uninstall_autostart(platform: Optional[str] = None) -> List[str]:
    where = autostart_location(platform)
    if where.kind == "run-key":
        if _delete_run_value(where.registry_key):
            return [f"removed {where.registry_key}\\{ENTRY_NAME}"]
    elif where.path.exists():
        where.path.unlink()
        return [f"removed {where.path}"]
    return ["nothing to remove: mailtracker was not set to start at login"]


def _set_run_value(key: str, command: str) -> None:  # pragma: no cover - Windows only
    import winreg

    with winreg.CreateKey(winreg.HKEY_CURRENT_USER, key.split("\\", 1)[1]) as handle:
        winreg.SetValueEx(handle, ENTRY_NAME, 0, winreg.REG_SZ, command)


def _delete_run_value(key: str) -> bool:  # pragma: no cover - Windows only
    import winreg

    try:
        with winreg.OpenKey(winreg.HKEY_CURRENT_USER, key.split("\\", 1)[1], 0,
                            winreg.KEY_SET_VALUE) as handle:
            winreg.DeleteValue(handle, ENTRY_NAME)
    except FileNotFoundError:
        return False
    return True
