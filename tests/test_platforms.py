"""Windows and macOS, run on Linux: the installers' and the daemon's branches for each
platform, chosen by handing them a ``Platform`` (desktop/platforms.py).

What is real here: every file is written to disk and read back, the macOS launcher is a
POSIX shell script and is run for real (with launchd's bare PATH), plists are parsed with
plistlib. What is not: the Windows registry (a fake registry, named so in the tests, records
the calls winreg would get), cmd.exe (none runs on Debian: wine's reimplementation is about
650 MB installed, and there is no Windows Python here for it to start; the batch file's text
and bytes are checked exactly instead, and CI's windows-latest job runs it under the real
cmd.exe), osascript and pystray's Windows backend (the command and the call are checked,
never shown).
"""

import json
import os
import plistlib
import stat
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from mailtracker.core.errors import InstallError, NotificationUnavailable
from mailtracker.core.paths import Home
from mailtracker.core.settings import init_home
from mailtracker.desktop.autostart import RUN_KEY, autostart_location, install_autostart, uninstall_autostart
from mailtracker.desktop.host import EXTENSION_ID, HOST_NAME
from mailtracker.desktop.install import (
    REGISTRY_KEY,
    check_host_chain,
    host_files,
    install_host,
    launcher_bytes,
    launcher_text,
    ping_launcher,
    uninstall_host,
)
from mailtracker.desktop.notifications import Delivery, Notice, osascript_command
from mailtracker.desktop.platforms import HKCU, NoRegistry, Platform, WindowsRegistry, platform_key

ZOE = "C:\\Users\\Zoë Ann"
WINDOWS_ENV = {"USERPROFILE": ZOE, "APPDATA": ZOE + "\\AppData\\Roaming",
               "LOCALAPPDATA": ZOE + "\\AppData\\Local"}
PYTHON_ORG = ZOE + "\\AppData\\Local\\Programs\\Python\\Python312\\python.exe"
# launchd starts a user's programs with this PATH (and Thunderbird passes it on).
LAUNCHD_PATH = "/usr/bin:/bin:/usr/sbin:/sbin"
POSIX_SHELL = pytest.mark.skipif(sys.platform == "win32", reason="runs a /bin/sh launcher")


class FakeRegistry:
    """A fake of the Windows registry: records what winreg would be asked to set."""

    def __init__(self):
        self.values = {}

    def set_value(self, root, key, name, value):
        self.values[(root, key, name)] = value

    def get_value(self, root, key, name):
        return self.values.get((root, key, name))

    def delete_value(self, root, key, name):
        return self.values.pop((root, key, name), None) is not None

    def delete_key(self, root, key):
        doomed = [entry for entry in self.values if entry[:2] == (root, key)]
        for entry in doomed:
            del self.values[entry]
        return bool(doomed)


def windows(user_home: Path, python: str = PYTHON_ORG, **changes) -> Platform:
    return Platform(key="win32", user_home=user_home, python=python, environ=dict(WINDOWS_ENV),
                    registry=FakeRegistry(), bat_encoding="cp850", **changes)


def macos(user_home: Path, python: str = sys.executable) -> Platform:
    return Platform(key="darwin", user_home=user_home, python=python, environ={})


def tree(root: Path) -> dict:
    """Every file under root with its bytes, and every folder."""
    return {str(path.relative_to(root)): path.read_bytes() if path.is_file() else None
            for path in sorted(root.rglob("*"))}


@pytest.fixture
def user_home(tmp_path) -> Path:
    """A user's home folder with a space and a non-ASCII letter in its name."""
    path = tmp_path / "Users" / "Zoë Ann"
    path.mkdir(parents=True)
    return path


# -- Windows: the launcher Thunderbird starts ---------------------------------------------

def test_windows_launcher_text_is_exact_and_names_the_user_folder_by_its_variable():
    """The .bat: @echo off, the absolute interpreter, -u, the home, the host, Thunderbird's
    arguments; CRLF line ends; the user's folder (a space, a non-ASCII letter) written as
    %LOCALAPPDATA% / %USERPROFILE%, which cmd expands whatever its code page; % doubled."""
    platform = windows(Path("/unused"))
    text = launcher_text(ZOE + "\\Documents\\mail 100%", platform)
    assert text == (
        "@echo off\r\n"
        "rem Started by Thunderbird for the mailtracker add-on.\r\n"
        '"%LOCALAPPDATA%\\Programs\\Python\\Python312\\python.exe" "-u" "-m" "mailtracker" '
        '"--home" "%USERPROFILE%\\Documents\\mail 100%%" "host" %*\r\n')
    assert launcher_bytes(ZOE + "\\Documents\\mail 100%", platform) == text.encode("ascii")


def test_windows_launcher_home_at_a_drive_root_keeps_its_closing_quote():
    """--home D:\\ : the backslash before the closing quote is doubled, or Python's command
    line parsing would read it as an escaped quote and swallow the rest of the line."""
    line = launcher_text("D:\\", windows(Path("/unused"))).splitlines()[2]
    assert '"--home" "D:\\\\" "host" %*' in line


def test_windows_launcher_for_the_store_python_and_pipx():
    """The Store's Python (WindowsApps) and a pipx venv: still the absolute interpreter,
    named under %LOCALAPPDATA%; no --home when none was given."""
    store = ZOE + "\\AppData\\Local\\Microsoft\\WindowsApps\\PythonSoftwareFoundation.Python.3.12_qbz5n2kfra8p0\\python.exe"
    assert launcher_text(None, windows(Path("/unused"), python=store)).splitlines()[2] == (
        '"%LOCALAPPDATA%\\Microsoft\\WindowsApps\\PythonSoftwareFoundation.Python.3.12_qbz5n2kfra8p0'
        '\\python.exe" "-u" "-m" "mailtracker" "host" %*')
    pipx = ZOE + "\\pipx\\venvs\\mailtracker\\Scripts\\python.exe"
    assert launcher_text(None, windows(Path("/unused"), python=pipx)).splitlines()[2].startswith(
        '"%USERPROFILE%\\pipx\\venvs\\mailtracker\\Scripts\\python.exe" "-u"')


def test_windows_launcher_outside_the_user_folder_is_written_in_the_oem_code_page():
    """A non-ASCII folder outside the user's is written in the code page cmd reads (cp850
    here); one that code page cannot spell is refused before anything is written."""
    assert b'"D:\\Zo\x89\\python.exe"' in launcher_bytes(None, windows(Path("/unused"), python="D:\\Zoë\\python.exe"))
    with pytest.raises(InstallError, match=r"'Пётр' in a batch file \(code page cp850\)") as refused:
        launcher_bytes(None, windows(Path("/unused"), python="D:\\Пётр\\python.exe"))
    assert refused.value.code == 52


def test_windows_install_host_with_a_fake_registry_and_uninstall_removes_exactly_it(user_home, tmp_path):
    """install-host on Windows (fake registry): the .bat and the manifest under the user's
    application data, HKCU\\Software\\Mozilla\\NativeMessagingHosts\\mailtracker.helper's default
    value = the manifest's full path; uninstall-host leaves the disk and registry as before."""
    platform = windows(user_home)
    home = Home.locate(str(user_home / "AppData" / "Local" / "mailtracker"))
    init_home(home)
    before = tree(tmp_path)
    done = install_host(home, None, platform=platform)
    files = host_files(home, platform=platform)
    assert files.launcher == home.data_dir / "mailtracker.helper.bat"
    assert files.manifest == home.data_dir / "mailtracker.helper.json"
    manifest = json.loads(files.manifest.read_text(encoding="utf-8"))
    assert manifest == {"name": HOST_NAME, "description": manifest["description"], "path": str(files.launcher),
                        "type": "stdio", "allowed_extensions": [EXTENSION_ID]}
    assert platform.registry.values == {
        (HKCU, "Software\\Mozilla\\NativeMessagingHosts\\mailtracker.helper", ""): str(files.manifest)}
    assert REGISTRY_KEY == "Software\\Mozilla\\NativeMessagingHosts\\mailtracker.helper"
    assert files.launcher.read_bytes() == launcher_bytes(None, platform)
    assert any("set the registry key HKEY_CURRENT_USER\\Software\\Mozilla" in line for line in done)
    # doctor's first link on Windows: the registry value names this manifest.
    first = check_host_chain(home, platform=platform)[0]
    assert first.name == "registry key names the manifest" and first.ok
    uninstall_host(home, platform=platform)
    assert tree(tmp_path) == before and platform.registry.values == {}
    (first,) = check_host_chain(home, platform=platform)
    assert not first.ok and "is missing; run 'mailtracker install-host'" in first.detail


def test_windows_doctor_names_a_registry_value_pointing_elsewhere_fake_registry(user_home):
    """(Fake registry.) A key left by another install, naming another manifest, is BROKEN with the fix."""
    platform = windows(user_home)
    home = Home.locate(str(user_home / "mt"))
    init_home(home)
    install_host(home, None, platform=platform)
    platform.registry.set_value(HKCU, REGISTRY_KEY, "", "D:\\old\\mailtracker.helper.json")
    (first,) = check_host_chain(home, platform=platform)
    assert not first.ok and "'D:\\\\old\\\\mailtracker.helper.json', not" in first.detail


# -- macOS: where Thunderbird looks, and a launcher that works with launchd's PATH ---------------

@POSIX_SHELL
def test_macos_install_host_writes_thunderbirds_folder_and_a_launcher_that_answers(user_home, tmp_path, home):
    """~/Library/Mozilla/NativeMessagingHosts (not Firefox's Application Support); the
    launcher names the interpreter by its absolute path, so with launchd's bare PATH it
    still starts the helper, which answers a real ping; uninstall removes exactly that."""
    platform = macos(user_home)
    before = tree(user_home)
    install_host(home, str(home.data_dir), platform=platform)
    files = host_files(home, platform=platform)
    assert files.manifest == user_home / "Library" / "Mozilla" / "NativeMessagingHosts" / "mailtracker.helper.json"
    assert not (user_home / "Library" / "Application Support").exists() and files.registry is None
    launcher = files.launcher.read_text(encoding="utf-8")
    assert launcher.startswith("#!/bin/sh\n") and f"exec {sys.executable} -u -m mailtracker" in launcher
    assert files.launcher.stat().st_mode & stat.S_IXUSR
    assert json.loads(files.manifest.read_text())["path"] == str(files.launcher)
    reply = ping_launcher(files.launcher, files.manifest, env={"PATH": LAUNCHD_PATH, "HOME": str(user_home)})
    assert reply.get("ok") is True, reply
    uninstall_host(home, platform=platform)
    assert {k: v for k, v in tree(user_home).items() if not k.startswith("Library")} == \
        {k: v for k, v in before.items() if not k.startswith("Library")}
    assert not files.manifest.exists() and not files.launcher.exists()


@POSIX_SHELL
def test_a_launcher_on_a_bare_path_would_fail_without_the_absolute_interpreter(user_home, home):
    """Why the absolute path matters: `python3` looked up on launchd's PATH is not this
    install's Python (here there is none with mailtracker on it), and the ping fails."""
    launcher = user_home / "by-name"
    launcher.write_text('#!/bin/sh\nexec python3 -u -m mailtracker host "$@"\n')
    launcher.chmod(0o755)
    reply = ping_launcher(launcher, user_home / "m.json", env={"PATH": LAUNCHD_PATH, "HOME": str(user_home)})
    assert reply.get("ok") is not True


# -- Linux: uninstall removes exactly what install wrote ------------------------------------

@POSIX_SHELL
def test_linux_uninstall_host_leaves_the_disk_as_before(tmp_path, home):
    """install-host then uninstall-host on Linux (with a Flatpak layout too): the same files."""
    platform = replace(Platform.current(), key="linux", user_home=Path.home())
    (Path.home() / ".var" / "app" / "org.mozilla.Thunderbird").mkdir(parents=True)
    before = tree(Path.home()), tree(home.data_dir)
    install_host(home, None, platform=platform)
    assert host_files(home, platform=platform).manifest.exists()
    uninstall_host(home, platform=platform)
    after = tree(Path.home()), tree(home.data_dir)
    # Folders install-host created stay (empty); every file it wrote is gone.
    assert {k: v for k, v in after[0].items() if v is not None} == {k: v for k, v in before[0].items() if v is not None}
    assert after[1] == before[1]


# -- autostart ---------------------------------------------------------------------------

def test_windows_autostart_is_a_run_value_with_pythonw_fake_registry(tmp_path):
    """(Fake registry.) HKCU\\...\\Run\\mailtracker = the quoted pythonw.exe command (no console
    window); uninstall-autostart deletes that value and nothing else."""
    python_dir = tmp_path / "Python 3.12"
    python_dir.mkdir()
    (python_dir / "pythonw.exe").write_bytes(b"")
    platform = windows(tmp_path, python=str(python_dir / "python.exe"))
    platform.registry.set_value(HKCU, RUN_KEY, "OneDrive", "C:\\OneDrive.exe /background")
    assert install_autostart(ZOE + "\\mail", platform=platform) == [
        "set HKEY_CURRENT_USER\\Software\\Microsoft\\Windows\\CurrentVersion\\Run\\mailtracker"]
    command = platform.registry.values[(HKCU, RUN_KEY, "mailtracker")]
    assert command == subprocess.list2cmdline(
        [str(python_dir / "pythonw.exe"), "-m", "mailtracker", "--home", ZOE + "\\mail", "tray"])
    assert command.startswith('"') and '"C:\\Users\\Zoë Ann\\mail"' in command
    assert uninstall_autostart(platform=platform)[0].startswith("removed HKEY_CURRENT_USER")
    assert platform.registry.values == {(HKCU, RUN_KEY, "OneDrive"): "C:\\OneDrive.exe /background"}
    assert uninstall_autostart(platform=platform) == ["nothing to remove: mailtracker was not set to start at login"]


def test_macos_autostart_is_a_valid_launch_agent(user_home):
    """~/Library/LaunchAgents/org.mailtracker.tray.plist: a plist plistlib reads back, running
    the tray with the absolute interpreter at login, its errors to ~/Library/Logs."""
    platform = macos(user_home, python="/Library/Frameworks/Python.framework/Versions/3.12/bin/python3")
    install_autostart("/Users/zoë ann/mail", platform=platform)
    path = autostart_location(platform).path
    assert path == user_home / "Library" / "LaunchAgents" / "org.mailtracker.tray.plist"
    agent = plistlib.loads(path.read_bytes(), fmt=plistlib.FMT_XML)
    assert agent == {"Label": "org.mailtracker.tray", "RunAtLoad": True, "ProcessType": "Interactive",
                     "ProgramArguments": ["/Library/Frameworks/Python.framework/Versions/3.12/bin/python3", "-m",
                                          "mailtracker", "--home", "/Users/zoë ann/mail", "tray"],
                     "StandardErrorPath": str(user_home / "Library" / "Logs" / "mailtracker-tray.log")}
    assert path.read_bytes().startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE plist')
    assert uninstall_autostart(platform=platform) == [f"removed {path}"] and not path.exists()


# -- notifications -------------------------------------------------------------------------

NOTICE = Notice('-Ann "the boss" opened “Offer\\n”', "First open at 10:00.\nOpened twice", ("x",))


def test_macos_notification_runs_osascript_with_the_texts_as_arguments():
    """macOS: `osascript` shows it (pystray's macOS backend has none); the texts are
    arguments, not script source, so quotes, backslashes and a leading '-' stay text."""
    ran = []
    platform = replace(Platform.current(), key="darwin", run=lambda command, **kw: ran.append((command, kw)))
    Delivery(platform=platform)(NOTICE)
    assert ran == [(["osascript", "-e", "on run argv",
                     "-e", "display notification (item 3 of argv) with title (item 2 of argv)",
                     "-e", "end run", "mailtracker", NOTICE.title, NOTICE.body],
                    {"check": True, "capture_output": True, "timeout": 10})]
    assert osascript_command(NOTICE) == ran[0][0]


def test_macos_without_osascript_says_so_once():
    """osascript missing or failing: NotificationUnavailable naming it, once."""
    def missing(command, **kw):
        raise FileNotFoundError(2, "No such file or directory", command[0])

    delivery = Delivery(platform=replace(Platform.current(), key="darwin", run=missing))
    with pytest.raises(NotificationUnavailable, match="osascript.*opens are still counted"):
        delivery(NOTICE)
    delivery(NOTICE)  # the second time only in the debug log


class FakeWindowsIcon:
    """A fake of pystray's win32 Icon: records notify() calls."""

    HAS_NOTIFICATION = True

    def __init__(self):
        self.notified = []

    def notify(self, message, title=None):
        self.notified.append((message, title))


def test_windows_notification_goes_through_the_tray_icon_fake_icon(tmp_path):
    """Windows: pystray's own notification from the tray icon (a fake icon here), body then title."""
    icon = FakeWindowsIcon()
    Delivery(platform=windows(tmp_path), icon=icon)(NOTICE)
    assert icon.notified == [(NOTICE.body, NOTICE.title)]
    with pytest.raises(NotificationUnavailable, match="without the tray icon"):
        Delivery(platform=windows(tmp_path))(NOTICE)


def test_the_current_platform_is_this_machine():
    """Platform.current() is what the code uses when no test hands it one."""
    here = Platform.current()
    assert here.key == platform_key(sys.platform) and here.python == sys.executable
    assert here.user_home == Path.home() and dict(here.environ) == dict(os.environ)
    assert isinstance(here.registry, WindowsRegistry if sys.platform == "win32" else NoRegistry)


# -- on a real Windows (CI's windows-latest; never run here, Debian has no cmd.exe) -------------

@pytest.mark.skipif(sys.platform != "win32", reason="needs the real cmd.exe")
def test_on_real_windows_cmd_runs_the_launcher_from_a_non_ascii_folder(tmp_path, home):
    """The .bat for this Python, in a folder named with a space and 'ë' under %LOCALAPPDATA%,
    run by the real cmd.exe as Thunderbird starts it: the helper answers a ping in binary frames."""
    here = Platform.current()
    folder = tmp_path / "Zoë Ann"
    folder.mkdir()
    launcher = folder / "mailtracker.helper.bat"
    launcher.write_bytes(launcher_bytes(str(home.data_dir), here))
    reply = ping_launcher(launcher, folder / "mailtracker.helper.json")
    assert reply.get("ok") is True, reply


# -- the tray on pystray's Windows and macOS backends ------------------------------------------

def fake_backend_icon_class(module: str):
    """A fake pystray Icon class as pystray's win32 or darwin backend names it."""
    return type("Icon", (), {"__module__": module})


@pytest.mark.parametrize("backend", ["pystray._win32", "pystray._darwin"])
def test_the_x11_workarounds_stay_out_of_other_backends_fake_icon(backend):
    """(A fake icon class named like pystray's backend.) The X11 backend's workarounds are
    for X11 only: on Windows and macOS calls go straight to the icon (those backends marshal
    them themselves), nothing waits for a dock, and the title keeps every character."""
    from mailtracker.desktop.tray.backend import IconThread, title_for

    icon_class = fake_backend_icon_class(backend)
    on_icon = IconThread(icon_class())
    ran = []
    on_icon(lambda: ran.append("now"))
    assert ran == ["now"]
    on_icon.keep_docked(stopping=None)  # returns at once: no X tray to ask
    on_icon.close()
    title = "mailtracker — 3 new opens ✉ Zoë"
    assert title_for(icon_class, title) == title
    assert title_for(fake_backend_icon_class("pystray._xorg"), title) == "mailtracker ? 3 new opens ? Zoë"
