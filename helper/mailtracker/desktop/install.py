"""Installing the helper where Thunderbird looks for it: the native messaging
host manifest and a launcher, per platform, and checking that chain (doctor).

The per-platform locations live in one table, ``MANIFEST_DIRS``; on Windows a
registry value points at the manifest instead (``REGISTRY_KEY``), written through
the ``Platform``'s registry. A snap or Flatpak Thunderbird on Linux needs more,
which ``sandboxes`` knows. Every function takes the ``Platform`` it runs for
(``desktop.platforms``), so the tests run the Windows and macOS branches too.
"""

import json
import os
import shlex
import stat
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

from mailtracker.core.errors import InstallError, MailtrackerError
from mailtracker.core.paths import Home
from mailtracker.core.secret import read_secret
from mailtracker.core.settings import load_config
from mailtracker.desktop import sandboxes
from mailtracker.desktop.host import EXTENSION_ID, HOST_NAME, PROTOCOL_VERSION
from mailtracker.desktop.platforms import HKCU, HKLM, Platform, bat_argument

# Where Thunderbird reads native messaging host manifests, per platform and scope
# ("~" is the user's home). Thunderbird on Linux reads ~/.mozilla (not ~/.thunderbird);
# on macOS ~/Library/Mozilla (not Firefox's ~/Library/Application Support/Mozilla); on
# Windows the manifest may live anywhere and a registry key's default value points at it.
MANIFEST_DIRS = {
    ("linux", "user"): "~/.mozilla/native-messaging-hosts",
    ("linux", "system"): "/usr/lib/mozilla/native-messaging-hosts",
    ("darwin", "user"): "~/Library/Mozilla/NativeMessagingHosts",
    ("darwin", "system"): "/Library/Application Support/Mozilla/NativeMessagingHosts",
    ("win32", "user"): None,
    ("win32", "system"): None,
}
# Thunderbird has no key of its own: the toolkit reads Software\Mozilla for every application.
REGISTRY_KEY = rf"Software\Mozilla\NativeMessagingHosts\{HOST_NAME}"
REGISTRY_ROOTS = {"user": HKCU, "system": HKLM}


@dataclass
class HostFiles:
    manifest: Path
    launcher: Path
    registry: Optional[Tuple[str, str]]  # (root, key) whose default value names the manifest


def _in_home(where: str, platform: Platform) -> Path:
    return platform.user_home / where[2:] if where.startswith("~/") else Path(where)


def host_files(home: Home, system: bool = False, platform: Optional[Platform] = None) -> HostFiles:
    platform = platform or Platform.current()
    scope = "system" if system else "user"
    launcher_name = f"{HOST_NAME}.bat" if platform.is_windows else HOST_NAME
    if system:
        launcher_dir = Path(sys.prefix) / ("Scripts" if platform.is_windows else "bin")
    else:
        launcher_dir = home.data_dir  # on Windows by default %LOCALAPPDATA%\mailtracker
    manifest_dir = MANIFEST_DIRS.get((platform.key, scope))
    if manifest_dir is None:
        manifest = launcher_dir / f"{HOST_NAME}.json"
        registry = (REGISTRY_ROOTS[scope], REGISTRY_KEY) if platform.is_windows else None
    else:
        manifest = _in_home(manifest_dir, platform) / f"{HOST_NAME}.json"
        registry = None
    return HostFiles(manifest=manifest, launcher=launcher_dir / launcher_name, registry=registry)


def launcher_text(home_override: Optional[str], platform: Optional[Platform] = None) -> str:
    """A launcher that works from a venv, pipx or a python.org install: the absolute
    interpreter path (a host started by Thunderbird on macOS gets launchd's bare PATH;
    on Windows there may be no python on PATH at all)."""
    platform = platform or Platform.current()
    home_args = ["--home", home_override] if home_override else []
    if platform.is_windows:
        # -u: unbuffered (each frame leaves at once); the host puts stdin and stdout in
        # binary mode (host.binary_stdio). %* passes Thunderbird's two arguments on (the
        # manifest's path and the add-on's id, which the host checks).
        words = [bat_argument(arg, platform) for arg in [platform.python, "-u", "-m", "mailtracker",
                                                         *home_args, "host"]]
        return ("@echo off\r\n"
                "rem Started by Thunderbird for the mailtracker add-on.\r\n"
                f"{' '.join(words)} %*\r\n")
    command = " ".join(shlex.quote(arg) for arg in [platform.python, "-u", "-m", "mailtracker", *home_args, "host"])
    return f"#!/bin/sh\n# Started by Thunderbird for the mailtracker add-on.\nexec {command} \"$@\"\n"


def launcher_bytes(home_override: Optional[str], platform: Optional[Platform] = None) -> bytes:
    """The launcher as written: a batch file in the code page cmd reads it in, else UTF-8."""
    platform = platform or Platform.current()
    text = launcher_text(home_override, platform)
    if not platform.is_windows:
        return text.encode("utf-8")
    try:
        return text.encode(platform.bat_encoding)
    except UnicodeEncodeError as exc:
        raise InstallError(
            f"the launcher cannot name {exc.object[exc.start:exc.end]!r} in a batch file (code page "
            f"{platform.bat_encoding}): install Python, or pass --home, in a folder whose name has "
            "no such character (or inside your user folder, which the launcher names by "
            "%USERPROFILE%)") from None


def manifest_document(launcher: Path) -> dict:
    return {
        "name": HOST_NAME,
        "description": "mailtracker helper: mints tracking tags and reports opens",
        "path": str(launcher),
        "type": "stdio",
        "allowed_extensions": [EXTENSION_ID],
    }


def install_host(home: Home, home_override: Optional[str], system: bool = False,
                 platform: Optional[Platform] = None) -> List[str]:
    """Write the launcher and manifest (and registry key); returns what was done."""
    platform = platform or Platform.current()
    files = host_files(home, system, platform)
    launcher = launcher_bytes(home_override, platform)  # before writing anything: it may refuse
    done = []
    files.launcher.parent.mkdir(parents=True, exist_ok=True)
    files.launcher.write_bytes(launcher)
    files.launcher.chmod(files.launcher.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    done.append(f"wrote the launcher {files.launcher}")
    files.manifest.parent.mkdir(parents=True, exist_ok=True)
    files.manifest.write_text(json.dumps(manifest_document(files.launcher), indent=2) + "\n", encoding="utf-8")
    done.append(f"wrote the host manifest {files.manifest}")
    if files.registry:
        platform.registry.set_value(*files.registry, "", str(files.manifest))
        done.append(f"set the registry key {files.registry[0]}\\{files.registry[1]} to {files.manifest}")
    if platform.key == "linux" and not system:
        for sandbox in sandboxes.find_sandboxes(platform.user_home):
            done += sandboxes.install_into(sandbox, manifest_document(files.launcher), files.launcher,
                                           platform.user_home)
    return done


def uninstall_host(home: Home, system: bool = False, platform: Optional[Platform] = None) -> List[str]:
    """Remove exactly what ``install_host`` wrote on this platform."""
    platform = platform or Platform.current()
    files = host_files(home, system, platform)
    done = []
    for path in (files.manifest, files.launcher):
        if path.exists():
            path.unlink()
            done.append(f"removed {path}")
    if files.registry and platform.registry.delete_key(*files.registry):
        done.append(f"removed the registry key {files.registry[0]}\\{files.registry[1]}")
    if platform.key == "linux" and not system:
        done += sandboxes.uninstall_from(platform.user_home)
    return done or ["nothing to remove: the helper was not installed for Thunderbird"]


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


# Mail services whose SMTP server files its own copy of what it sends, pixel included (the
# add-on's modules/sentCopy.mjs holds the same list; a test keeps the two equal).
OWN_COPY_DOMAINS = ("gmail.com", "googlemail.com")


def own_copy_identities(home: Home) -> List[str]:
    """The addresses tracked mail was sent from (from any of the person's computers' tags
    logs) whose server files its own copy."""
    from mailtracker.desktop.tags import parse_tag_records

    data = b""
    for path in home.log_paths("tags", copies=False):
        try:
            data += path.read_bytes()
        except OSError:
            continue
    found = set()
    for record in parse_tag_records(data):
        identity = (record[1].get("identity", "") if record else "").strip().lower()
        identity = identity.rpartition("<")[2].rstrip(">").strip()  # "Name <address>" or the address
        if identity.rpartition("@")[2] in OWN_COPY_DOMAINS:
            found.add(identity)
    return sorted(found)


def check_host_chain(home: Home, system: bool = False, platform: Optional[Platform] = None) -> List[Check]:
    """Each link from Thunderbird to the helper, in order; stops at the first broken one."""
    platform = platform or Platform.current()
    files = host_files(home, system, platform)
    checks: List[Check] = []

    def add(name, ok, detail):
        checks.append(Check(name, ok, detail))
        return ok

    if files.registry:
        named = platform.registry.get_value(*files.registry, "")
        where = f"{files.registry[0]}\\{files.registry[1]}"
        if not add("registry key names the manifest", named == str(files.manifest),
                   f"{where} = {named}" if named == str(files.manifest)
                   else f"{where} is {'missing' if named is None else f'{named!r}, not {files.manifest}'}; "
                        "run 'mailtracker install-host'"):
            return checks
    if not add("host manifest present", files.manifest.is_file(),
               f"{files.manifest}" if files.manifest.is_file()
               else f"{files.manifest} is missing; run 'mailtracker install-host'"):
        return checks
    try:
        manifest = json.loads(files.manifest.read_text(encoding="utf-8"))
        valid = isinstance(manifest, dict) and manifest.get("name") == HOST_NAME and manifest.get("type") == "stdio"
    except (OSError, ValueError):
        manifest, valid = {}, False
    if not add("manifest valid", valid, f"name {HOST_NAME}, type stdio" if valid
               else f"{files.manifest} is not a valid manifest for {HOST_NAME}; run 'mailtracker install-host'"):
        return checks
    allowed = EXTENSION_ID in manifest.get("allowed_extensions", [])
    if not add("extension allowed", allowed, EXTENSION_ID if allowed
               else f"{EXTENSION_ID} is not in allowed_extensions; run 'mailtracker install-host'"):
        return checks
    launcher = Path(manifest.get("path", ""))
    runnable = launcher.is_absolute() and launcher.is_file() and (
        platform.is_windows or os.access(launcher, os.X_OK))
    if not add("launcher executable", runnable, str(launcher) if runnable
               else f"{launcher} is not an absolute path to an executable; run 'mailtracker install-host'"):
        return checks
    reply = ping_launcher(launcher, files.manifest)
    if not add("helper answers a ping", reply.get("ok") is True,
               f"version {reply.get('data', {}).get('version')}" if reply.get("ok")
               else f"no answer from {launcher}: {reply.get('message')}"):
        return checks
    try:
        load_config(home)
        read_secret(home.secret_path)
        add("home and secret readable", True, str(home.config_dir))
    except MailtrackerError as exc:
        add("home and secret readable", False, str(exc))
        return checks
    if platform.key == "linux" and not system:
        # The chain above is what a Debian or Mozilla build uses; a sandboxed one needs more.
        for sandbox in sandboxes.find_sandboxes(platform.user_home):
            for check in sandboxes.check_sandbox(sandbox, launcher, platform.user_home):
                add(check.name, check.ok, check.detail)
    problem = read_fold_problem(home)
    add("folding works", problem is None,
        "no fold has failed" if problem is None
        else f"every fold since {problem.get('since', '?')} failed ({problem.get('failures', '?')} tries): "
             f"{problem.get('error', '?')}")
    return checks


def read_fold_problem(home: Home) -> Optional[dict]:
    """What the daemon left while its folds fail, or None."""
    try:
        problem = json.loads(home.fold_problem_path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError, OSError):
        return None
    return problem if isinstance(problem, dict) else None


def ping_launcher(launcher: Path, manifest: Path, timeout: float = 20.0, env: Optional[dict] = None) -> dict:
    """Start the launcher as Thunderbird would and exchange one ping frame."""
    request = json.dumps({"id": "doctor", "command": "ping", "protocol": PROTOCOL_VERSION}).encode()
    try:
        proc = subprocess.run([str(launcher), str(manifest), EXTENSION_ID],
                              input=struct.pack("=I", len(request)) + request,
                              capture_output=True, timeout=timeout, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"ok": False, "message": str(exc)}
    out = proc.stdout
    if len(out) < 4:
        detail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        return {"ok": False, "message": f"exit code {proc.returncode}: {detail[0]}"}
    (length,) = struct.unpack("=I", out[:4])
    try:
        return json.loads(out[4:4 + length])
    except ValueError:
        return {"ok": False, "message": "the reply was not JSON"}
