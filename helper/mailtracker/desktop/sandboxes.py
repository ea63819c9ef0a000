"""Thunderbirds in a sandbox on Linux (Ubuntu's snap, Flathub's Flatpak): finding them, and
what ``install-host`` and ``doctor`` must do so that they can reach the helper.

A Debian or Mozilla build reads ``~/.mozilla/native-messaging-hosts`` and starts the
launcher itself. A sandboxed one can do neither:

- The snap sees its own HOME (``~/snap/thunderbird/common``) and cannot start programs of
  the host, so its only way is the desktop's WebExtensions portal (xdg-desktop-portal),
  which reads the usual ``~/.mozilla`` manifest and starts the helper outside the snap
  after asking the user once. Without that portal it cannot work at all.
- The Flatpak has no portal for native messaging (xdg-desktop-portal has none: its PR 705
  was closed). It reads manifests in its own data folder (``~/.var/app/org.mozilla.Thunderbird``)
  and may start host programs only through ``flatpak-spawn --host``, which it is allowed
  only after ``flatpak override --talk-name=org.freedesktop.Flatpak`` (a workaround others
  report for Firefox; not tried with Thunderbird here).

Whether a Thunderbird in a sandbox then really starts the helper is not observed here
(no snap or Flatpak on the test machines): the checks say what they looked at.
"""

import json
import shlex
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

from mailtracker.desktop.host import HOST_NAME

FLATPAK_ID = "org.mozilla.Thunderbird"
# Overridable by the tests, which have no /snap.
SNAP_BINARY = Path("/snap/bin/thunderbird")
PORTAL_PREF = "widget.use-xdg-desktop-portal.native-messaging"
OTHER_BUILDS = ("Thunderbird from Debian's archive (sudo apt install thunderbird, on Debian) or "
                "Mozilla's own build (the archive from thunderbird.net)")
# The portal remembers the user's answer per host and app in its permission store (table
# "webextensions"); a "no", or an answer from an older install, keeps refusing until reset.
PORTAL_RESET = (f"flatpak permission-remove webextensions {HOST_NAME} snap.thunderbird (with the flatpak "
                "tool), or remove ~/.local/share/flatpak/db/webextensions and log in again; then "
                "Thunderbird asks once more")
FLATPAK_NO_PORTAL = ("a Flatpak Thunderbird has no portal for native messaging (xdg-desktop-portal has "
                     "none yet)")


@dataclass(frozen=True)
class Sandbox:
    """One sandboxed Thunderbird found on this machine, and what showed it."""

    kind: str  # "snap" or "flatpak"
    evidence: str

    @property
    def label(self) -> str:
        return {"snap": "snap Thunderbird", "flatpak": "Flatpak Thunderbird"}[self.kind]


def find_sandboxes(home_dir: Optional[Path] = None) -> List[Sandbox]:
    """The snap and Flatpak Thunderbirds installed here (for this user)."""
    home_dir = home_dir or Path.home()
    found = []
    snap_data = home_dir / "snap" / "thunderbird"
    if SNAP_BINARY.exists():
        found.append(Sandbox("snap", str(SNAP_BINARY)))
    elif snap_data.is_dir():
        found.append(Sandbox("snap", str(snap_data)))
    flatpak_data = flatpak_data_dir(home_dir)
    if _flatpak(["info", FLATPAK_ID]) is not None:
        found.append(Sandbox("flatpak", f"flatpak info {FLATPAK_ID}"))
    elif flatpak_data.is_dir():
        found.append(Sandbox("flatpak", str(flatpak_data)))
    return found


def flatpak_data_dir(home_dir: Optional[Path] = None) -> Path:
    return (home_dir or Path.home()) / ".var" / "app" / FLATPAK_ID


def flatpak_manifest(home_dir: Optional[Path] = None) -> Path:
    """Where the Flatpak reads host manifests: its persisted ~/.mozilla (*unverified here*)."""
    return flatpak_data_dir(home_dir) / ".mozilla" / "native-messaging-hosts" / f"{HOST_NAME}.json"


def flatpak_wrapper(home_dir: Optional[Path] = None) -> Path:
    """A launcher inside the sandbox's own folder that starts the real one outside it."""
    return flatpak_data_dir(home_dir) / "data" / "mailtracker" / HOST_NAME


def _flatpak(args: List[str]) -> Optional[str]:
    """flatpak's output, or None when flatpak is missing or says no."""
    if shutil.which("flatpak") is None:
        return None
    try:
        proc = subprocess.run(["flatpak", *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def flatpak_may_spawn_on_host() -> Optional[bool]:
    """Whether the Flatpak may talk to org.freedesktop.Flatpak (flatpak-spawn --host); None: cannot ask."""
    shown = _flatpak(["info", "--show-permissions", FLATPAK_ID])
    if shown is None:
        return None
    overrides = _flatpak(["override", "--user", "--show", FLATPAK_ID]) or ""
    return any(line.strip().replace(" ", "") in ("org.freedesktop.Flatpak=talk", "org.freedesktop.Flatpak=own")
               for line in (shown + "\n" + overrides).splitlines())


def portal_has_webextensions() -> Optional[bool]:
    """Whether the desktop's portal offers org.freedesktop.portal.WebExtensions; None: cannot ask."""
    try:
        from jeepney import DBusAddress, MessageType, new_method_call
        from jeepney.io.blocking import open_dbus_connection
    except ImportError:
        return None
    address = DBusAddress("/org/freedesktop/portal/desktop", bus_name="org.freedesktop.portal.Desktop",
                          interface="org.freedesktop.DBus.Introspectable")
    try:
        with open_dbus_connection(bus="SESSION") as connection:
            reply = connection.send_and_get_reply(new_method_call(address, "Introspect"), timeout=5)
    except (KeyError, OSError, TimeoutError, ValueError):
        return None
    if reply.header.message_type is MessageType.error:
        return False
    return "org.freedesktop.portal.WebExtensions" in str(reply.body[0] if reply.body else "")


def install_into(sandbox: Sandbox, manifest: dict, launcher: Path, home_dir: Optional[Path] = None) -> List[str]:
    """Put the host where ``sandbox`` looks, where that can work; say what the user must do."""
    if sandbox.kind == "snap":
        return [f"found a {sandbox.label} ({sandbox.evidence}): it cannot start programs outside the snap, "
                "so it reaches the helper only through the desktop's WebExtensions portal, which reads the "
                "manifest just written and asks you once to allow mailtracker. Ubuntu's snap turns "
                f"{PORTAL_PREF} on since February 2025; if yours has it at 0, set it to 1 (Settings > "
                "General > Config Editor) and restart Thunderbird. If it never asks and the add-on says "
                f"the helper is missing, an old answer is stored: {PORTAL_RESET}. 'mailtracker doctor' "
                f"says whether this desktop has that portal; without it, use {OTHER_BUILDS}."]
    wrapper = flatpak_wrapper(home_dir)
    wrapper.parent.mkdir(parents=True, exist_ok=True)
    wrapper.write_text("#!/bin/sh\n# Started inside the Flatpak sandbox; the helper runs outside it.\n"
                       f"exec flatpak-spawn --host {shlex.quote(str(launcher))} \"$@\"\n", encoding="utf-8")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    target = flatpak_manifest(home_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({**manifest, "path": str(wrapper)}, indent=2) + "\n", encoding="utf-8")
    done = [f"found a {sandbox.label} ({sandbox.evidence}): {FLATPAK_NO_PORTAL}. What can work instead "
            f"(never tried here): wrote the host manifest {target} and the launcher {wrapper}, which "
            f"starts the helper outside the sandbox with flatpak-spawn. What surely works: {OTHER_BUILDS}"]
    if not flatpak_may_spawn_on_host():
        done.append(f"the {sandbox.label} may not start programs outside its sandbox yet; allow it once "
                    f"with: flatpak override --user --talk-name=org.freedesktop.Flatpak {FLATPAK_ID}")
    return done


def uninstall_from(home_dir: Optional[Path] = None) -> List[str]:
    done = []
    for path in (flatpak_manifest(home_dir), flatpak_wrapper(home_dir)):
        if path.exists():
            path.unlink()
            done.append(f"removed {path}")
    return done


@dataclass
class SandboxCheck:
    name: str
    ok: bool
    detail: str


def check_sandbox(sandbox: Sandbox, launcher: Path, home_dir: Optional[Path] = None,
                  portal: Callable[[], Optional[bool]] = portal_has_webextensions,
                  may_spawn: Callable[[], Optional[bool]] = flatpak_may_spawn_on_host) -> List[SandboxCheck]:
    """What ``doctor`` adds for a sandboxed Thunderbird: never 'ok' where it cannot work."""
    name = f"{sandbox.label} can reach the helper"
    if sandbox.kind == "snap":
        available = portal()
        if available:
            return [SandboxCheck(name, True, f"the desktop's WebExtensions portal is there ({sandbox.evidence}); "
                                 f"Thunderbird needs {PORTAL_PREF} = 1 in its Config Editor (the default "
                                 "in Ubuntu's snap), and asks you once to allow mailtracker; if it refused "
                                 f"once, it goes on refusing: {PORTAL_RESET}")]
        why = ("this desktop's portal (xdg-desktop-portal) has no WebExtensions portal"
               if available is False else "the desktop's portal could not be asked (no session D-Bus?)")
        return [SandboxCheck(name, False, f"{why}, and a snap cannot start the helper any other way "
                             f"({sandbox.evidence}). Use {OTHER_BUILDS}, or a desktop whose "
                             f"xdg-desktop-portal has the WebExtensions portal (then set {PORTAL_PREF} = 1)")]
    manifest = flatpak_manifest(home_dir)
    wrapper = flatpak_wrapper(home_dir)
    try:
        written = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        written = {}
    if written.get("path") != str(wrapper) or not wrapper.is_file() or \
            shlex.quote(str(launcher)) not in wrapper.read_text(encoding="utf-8"):
        return [SandboxCheck(name, False, f"no host manifest for it at {manifest} (or its launcher "
                             f"{wrapper} is missing or stale); run 'mailtracker install-host'")]
    allowed = may_spawn()
    if not allowed:
        how = f"flatpak override --user --talk-name=org.freedesktop.Flatpak {FLATPAK_ID}"
        why = "may not start programs outside its sandbox" if allowed is False else \
            "could not be asked whether it may start programs outside its sandbox"
        return [SandboxCheck(name, False, f"{FLATPAK_NO_PORTAL}, and it {why}; allow it once with: {how}, "
                             f"then restart Thunderbird (or use {OTHER_BUILDS})")]
    return [SandboxCheck(name, True, f"manifest {manifest}, launcher {wrapper} via flatpak-spawn --host")]
