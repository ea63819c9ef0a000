"""Autostart at login on Linux: a valid XDG entry whose command really starts the tray,
and removing it (macOS and Windows: tests/test_platforms.py)."""

import os
import signal
import subprocess
from pathlib import Path

from mailtracker.desktop.autostart import (
    autostart_location,
    desktop_exec,
    tray_command,
)
from tests.conftest import run_cli
from tests.display import require, started_within


def parse_exec(value: str):
    """The Desktop Entry spec's reading of an Exec value: string escapes, then quoting."""
    text, i = "", 0
    while i < len(value):  # string-level escapes of a desktop file value
        if value[i] == "\\" and i + 1 < len(value):
            text += {"s": " ", "n": "\n", "t": "\t", "r": "\r", "\\": "\\"}.get(value[i + 1], "\\" + value[i + 1])
            i += 2
        else:
            text += value[i]
            i += 1
    args, current, quoted, i = [], None, False, 0
    while i < len(text):
        ch = text[i]
        if quoted and ch == "\\":
            current += text[i + 1]
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
            current = current or ""
        elif ch == " " and not quoted:
            if current is not None:
                args.append(current)
            current = None
        else:
            current = (current or "") + ch
        i += 1
    if current is not None:
        args.append(current)
    return [arg.replace("%%", "%") for arg in args]


def test_exec_quoting_round_trips_awkward_paths():
    """Spaces, quotes, dollars, backslashes and percent signs survive the Exec value."""
    argv = ["/opt/my apps/py$thon", "-m", "mailtracker", "--home", 'C:\\a "b" `c` 100%', "tray"]
    assert parse_exec(desktop_exec(argv)) == argv
    assert desktop_exec(["/usr/bin/python3", "-m", "mailtracker", "tray"]) == "/usr/bin/python3 -m mailtracker tray"


def test_linux_entry_is_valid_and_its_command_starts_the_tray(home, tmp_path):
    """install-autostart writes ~/.config/autostart/mailtracker.desktop; desktop-file-validate accepts it;
    its Exec line, run, starts 'mailtracker tray' for this home."""
    require("desktop-file-validate")
    result = run_cli("install-autostart", home=home)
    path = autostart_location().path
    assert path == Path(os.environ["XDG_CONFIG_HOME"]) / "autostart" / "mailtracker.desktop"
    assert f"Wrote {path}" in result.stdout
    check = subprocess.run(["desktop-file-validate", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    entry = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    argv = parse_exec(entry["Exec"])
    assert argv == tray_command(str(home.data_dir))

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS")}
    log_path = tmp_path / "autostarted.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            started_within(proc, lambda: "no tray icon" in log_path.read_text(), 15, "the tray to start")
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            assert proc.wait(timeout=15) == 0
    assert str(home.register_path) in log_path.read_text()


def test_uninstall_removes_the_entry_and_says_so(home):
    """uninstall-autostart removes the entry; a second time it says there was nothing."""
    run_cli("install-autostart", home=home)
    assert "Removed" in run_cli("uninstall-autostart", home=home).stdout
    assert not autostart_location().path.exists()
    assert "Nothing to remove" in run_cli("uninstall-autostart", home=home).stdout

# The macOS LaunchAgent and the Windows Run value: tests/test_platforms.py.
