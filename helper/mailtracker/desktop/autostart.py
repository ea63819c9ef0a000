"""Starting the tray daemon at login: an XDG autostart entry on Linux, a
LaunchAgent on macOS, a Run key value on Windows.

Where each platform keeps it lives in one table, ``AUTOSTART``. The command
is this Python's absolute path, so it works from a venv or pipx. Every function
takes the ``Platform`` it runs for (``desktop.platforms``), so the tests write and
read the macOS and Windows entries too.
"""

import plistlib
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from mailtracker.desktop.platforms import HKCU, Platform

ENTRY_NAME = "mailtracker"
LAUNCH_AGENT_LABEL = "org.mailtracker.tray"
RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"
# Per platform: how the entry is kept and where ("~" is the user's home, {xdg_config}
# $XDG_CONFIG_HOME or ~/.config).
AUTOSTART = {
    "linux": ("desktop-entry", "{xdg_config}/autostart/mailtracker.desktop"),
    "darwin": ("launch-agent", "~/Library/LaunchAgents/org.mailtracker.tray.plist"),
    "win32": ("run-key", rf"{HKCU}\{RUN_KEY}"),
}
# Characters that make the Desktop Entry spec's Exec key need an argument quoted.
_EXEC_RESERVED = set(" \t\n\"'\\><~|&;$*?#()`")


@dataclass(frozen=True)
class Autostart:
    """Where this platform's autostart entry lives: a file, or a registry value."""

    kind: str
    path: Optional[Path]
    registry_key: Optional[str]


def autostart_location(platform: Optional[Platform] = None) -> Autostart:
    platform = platform or Platform.current()
    kind, where = AUTOSTART.get(platform.key, AUTOSTART["linux"])
    if kind == "run-key":
        return Autostart(kind, None, where)
    xdg_config = platform.environ.get("XDG_CONFIG_HOME") or str(platform.user_home / ".config")
    where = where.format(xdg_config=xdg_config)
    path = platform.user_home / where[2:] if where.startswith("~/") else Path(where)
    return Autostart(kind, path, None)


def tray_command(home_override: Optional[str], platform: Optional[Platform] = None) -> List[str]:
    """The command that starts the daemon; on Windows without a console window (pythonw)."""
    platform = platform or Platform.current()
    home_args = ["--home", home_override] if home_override else []
    return [platform.windowless_python(), "-m", "mailtracker", *home_args, "tray"]


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


def launch_agent(argv: List[str], platform: Platform) -> bytes:
    log_path = str(platform.user_home / "Library" / "Logs" / "mailtracker-tray.log")
    return plistlib.dumps({
        "Label": LAUNCH_AGENT_LABEL,
        "ProgramArguments": argv,
        "RunAtLoad": True,
        "ProcessType": "Interactive",
        "StandardErrorPath": log_path,
    })


def install_autostart(home_override: Optional[str], platform: Optional[Platform] = None) -> List[str]:
    """Write this platform's autostart entry; returns what was done."""
    platform = platform or Platform.current()
    where = autostart_location(platform)
    argv = tray_command(home_override, platform)
    if where.kind == "run-key":
        platform.registry.set_value(HKCU, RUN_KEY, ENTRY_NAME, subprocess.list2cmdline(argv))
        return [f"set {where.registry_key}\\{ENTRY_NAME}"]
    where.path.parent.mkdir(parents=True, exist_ok=True)
    if where.kind == "launch-agent":
        where.path.write_bytes(launch_agent(argv, platform))
    else:
        where.path.write_text(desktop_entry(argv), encoding="utf-8")
    return [f"wrote {where.path}"]


def uninstall_autostart(platform: Optional[Platform] = None) -> List[str]:
    """Remove exactly what ``install_autostart`` wrote."""
    platform = platform or Platform.current()
    where = autostart_location(platform)
    if where.kind == "run-key":
        if platform.registry.delete_value(HKCU, RUN_KEY, ENTRY_NAME):
            return [f"removed {where.registry_key}\\{ENTRY_NAME}"]
    elif where.path.exists():
        where.path.unlink()
        return [f"removed {where.path}"]
    return ["nothing to remove: mailtracker was not set to start at login"]
