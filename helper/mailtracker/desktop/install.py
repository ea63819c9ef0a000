"""Installing the helper where Thunderbird looks for it: the native messaging
host manifest and a launcher, per platform, and checking that chain (doctor).

The per-platform locations live in one table, ``MANIFEST_DIRS``; a snap or Flatpak
Thunderbird on Linux needs more, which ``sandboxes`` knows.
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
from typing import List, Optional

from mailtracker.core.errors import MailtrackerError
from mailtracker.core.paths import Home
from mailtracker.core.secret import read_secret
from mailtracker.core.settings import load_config
from mailtracker.desktop import sandboxes
from mailtracker.desktop.host import EXTENSION_ID, HOST_NAME, PROTOCOL_VERSION

# Where Thunderbird reads native messaging host manifests, per platform and scope.
# Thunderbird on Linux reads ~/.mozilla (not ~/.thunderbird); on Windows the
# manifest may live anywhere and a registry key points at it.
MANIFEST_DIRS = {
    ("linux", "user"): "~/.mozilla/native-messaging-hosts",
    ("linux", "system"): "/usr/lib/mozilla/native-messaging-hosts",
    ("darwin", "user"): "~/Library/Mozilla/NativeMessagingHosts",
    ("darwin", "system"): "/Library/Application Support/Mozilla/NativeMessagingHosts",
    ("win32", "user"): None,
    ("win32", "system"): None,
}
REGISTRY_KEYS = {
    "user": ("HKEY_CURRENT_USER", rf"Software\Mozilla\NativeMessagingHosts\{HOST_NAME}"),
    "system": ("HKEY_LOCAL_MACHINE", rf"Software\Mozilla\NativeMessagingHosts\{HOST_NAME}"),
}


def platform_key() -> str:
    if sys.platform.startswith("linux") or sys.platform.startswith("freebsd"):
        return "linux"
    return sys.platform


@dataclass
class HostFiles:
    manifest: Path
    launcher: Path
    registry: Optional[tuple]


def host_files(home: Home, system: bool = False) -> HostFiles:
    scope = "system" if system else "user"
    plat = platform_key()
    launcher_name = f"{HOST_NAME}.bat" if plat == "win32" else HOST_NAME
    if system:
        launcher_dir = Path(sys.prefix) / ("Scripts" if plat == "win32" else "bin")
    else:
        launcher_dir = home.data_dir
    manifest_dir = MANIFEST_DIRS.get((plat, scope))
    if manifest_dir is None:
        manifest = launcher_dir / f"{HOST_NAME}.json"
        registry = REGISTRY_KEYS[scope] if plat == "win32" else None
    else:
        manifest = Path(manifest_dir).expanduser() / f"{HOST_NAME}.json"
        registry = None
    return HostFiles(manifest=manifest, launcher=launcher_dir / launcher_name, registry=registry)


def launcher_text(home_override: Optional[str]) -> str:
    """A launcher that works from a venv or pipx: the absolute interpreter path."""
    home_args = ["--home", home_override] if home_override else []
    if platform_key() == "win32":
        quoted = " ".join(f'"{arg}"' for arg in [sys.executable, "-m", "mailtracker", *home_args, "host"])
        return f"@echo off\r\n{quoted} %*\r\n"
    command = " ".join(shlex.quote(arg) for arg in [sys.executable, "-m", "mailtracker", *home_args, "host"])
    return f"#!/bin/sh\n# Started by Thunderbird for the mailtracker add-on.\nexec {command} \"$@\"\n"


def manifest_document(launcher: Path) -> dict:
    return {
        "name": HOST_NAME,
        "description": "mailtracker helper: mints tracking tags and reports opens",
        "path": str(launcher),
        "type": "stdio",
        "allowed_extensions": [EXTENSION_ID],
    }


def install_host(home: Home, home_override: Optional[str], system: bool = False) -> List[str]:
    """Write the launcher and manifest (and registry key); returns what was done."""
    files = host_files(home, system)
    done = []
    files.launcher.parent.mkdir(parents=True, exist_ok=True)
    files.launcher.write_text(launcher_text(home_override), encoding="utf-8", newline="")
    files.launcher.chmod(files.launcher.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    done.append(f"wrote the launcher {files.launcher}")
    files.manifest.parent.mkdir(parents=True, exist_ok=True)
    files.manifest.write_text(json.dumps(manifest_document(files.launcher), indent=2) + "\n", encoding="utf-8")
    done.append(f"wrote the host manifest {files.manifest}")
    if files.registry:
        _set_registry(files.registry, str(files.manifest))
        done.append(f"set the registry key {files.registry[0]}\\{files.registry[1]}")
    if platform_key() == "linux" and not system:
        for sandbox in sandboxes.find_sandboxes():
            done += sandboxes.install_into(sandbox, manifest_document(files.launcher), files.launcher)
    return done


def uninstall_host(home: Home, system: bool = False) -> List[str]:
    files = host_files(home, system)
    done = []
    for path in (files.manifest, files.launcher):
        if path.exists():
            path.unlink()
            done.append(f"removed {path}")
    if files.registry and _delete_registry(files.registry):
        done.append(f"removed the registry key {files.registry[0]}\\{files.registry[1]}")
    if platform_key() == "linux" and not system:
        done += sandboxes.uninstall_from()
    return done or ["nothing to remove: the helper was not installed for Thunderbird"]


def _set_registry(key, value: str) -> None:  # pragma: no cover - Windows only
    import winreg

    root = getattr(winreg, key[0])
    with winreg.CreateKey(root, key[1]) as handle:
        winreg.SetValueEx(handle, "", 0, winreg.REG_SZ, value)


def _delete_registry(key) -> bool:  # pragma: no cover - Windows only
    import winreg

    try:
        winreg.DeleteKey(getattr(winreg, key[0]), key[1])
    except FileNotFoundError:
        return False
    return True


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


def check_host_chain(home: Home, system: bool = False) -> List[Check]:
    """Each link from Thunderbird to the helper, in order; stops at the first broken one."""
    files = host_files(home, system)
    checks: List[Check] = []

    def add(name, ok, detail):
        checks.append(Check(name, ok, detail))
        return ok

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
        platform_key() == "win32" or os.access(launcher, os.X_OK))
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
    if platform_key() == "linux" and not system:
        # The chain above is what a Debian or Mozilla build uses; a sandboxed one needs more.
        for sandbox in sandboxes.find_sandboxes():
            for check in sandboxes.check_sandbox(sandbox, launcher):
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


def ping_launcher(launcher: Path, manifest: Path, timeout: float = 20.0) -> dict:
    """Start the launcher as Thunderbird would and exchange one ping frame."""
    request = json.dumps({"id": "doctor", "command": "ping", "protocol": PROTOCOL_VERSION}).encode()
    try:
        proc = subprocess.run([str(launcher), str(manifest), EXTENSION_ID],
                              input=struct.pack("=I", len(request)) + request,
                              capture_output=True, timeout=timeout)
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
