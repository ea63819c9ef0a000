"""One person, several computers: making this home one of them, and which computers
it has heard from.

Each computer appends only to its own desktop logs in the devices folder
(``Home.log_path``); a sync tool carries that folder between the computers, and
every computer's fold reads every log in it (``Home.log_paths``). Joining gives
this computer a device id and moves the logs it kept as a single computer into
the folder under that id, so the other computers get its whole history.
"""

import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Optional

from filelock import FileLock

from mailtracker.core.files import LOCK_TIMEOUT_S, write_file_atomically
from mailtracker.core.paths import DESKTOP_LOGS, DeviceLog, Home, device_log_name, new_device_id

log = logging.getLogger(__name__)

# What of the devices folder stays on each computer: the lock files of the log writers,
# and temp files of atomic writes ((?d): Syncthing may delete them to remove a folder).
STIGNORE = "(?d)*.lock\n(?d).*.tmp\n"


@dataclass
class Joined:
    """What joining did: this computer's id, and the single-computer logs it moved."""

    device: str
    created: bool
    moved: List[str] = field(default_factory=list)


def join(home: Home, hostname: Optional[str] = None) -> Joined:
    """Make this home one of the person's computers (again: nothing changes twice).

    The id is written before the old logs move: a host that appends at the same moment
    either still reaches the old file (moved with its row, or left behind and moved by the
    next join; the fold reads it meanwhile) or already writes the new one.
    """
    device = home.device
    created = not device
    if created:
        device = new_device_id(hostname)
        home.config_dir.mkdir(parents=True, exist_ok=True)
        write_file_atomically(home.device_path, (device + "\n").encode("ascii"), mode=0o644,
                              replace_existing=False)
        device = home.device  # another join at the same moment may have been first
    home.devices_dir.mkdir(parents=True, exist_ok=True)
    # Not synced: Syncthing reads .stignore on each computer; the writers' lock files are local.
    write_file_atomically(home.devices_dir / ".stignore", STIGNORE.encode("ascii"), mode=0o644,
                          replace_existing=False)
    joined = Joined(device, created)
    for kind in DESKTOP_LOGS:
        old = home.legacy_log_path(kind)
        if not old.is_file():
            continue
        _move_log(old, home.devices_dir / device_log_name(kind, device))
        joined.moved.append(old.name)
    return joined


def _move_log(old: Path, new: Path) -> None:
    """``old``'s rows at the end of ``new`` (or ``old`` renamed to ``new``), then ``old`` gone;
    under both writers' locks, so no row is being appended to either meanwhile."""
    with FileLock(str(old) + ".lock", timeout=LOCK_TIMEOUT_S), FileLock(str(new) + ".lock", timeout=LOCK_TIMEOUT_S):
        if not new.exists():
            os.replace(old, new)
            return
        _append_file(old, new)
        old.unlink()


def _append_file(old: Path, new: Path) -> None:
    data = old.read_bytes()
    with open(new, "rb+") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell() and (handle.seek(-1, os.SEEK_END), handle.read(1))[1] != b"\n":
            handle.write(b"\r\n")
        handle.write(data.removeprefix(b"\xef\xbb\xbf"))  # its header row is read as one
        handle.flush()
        os.fsync(handle.fileno())


def left_behind(home: Home) -> List[str]:
    """Single-computer logs that a writer started before joining added to since."""
    if not home.device:
        return []
    return [path.name for path in map(home.legacy_log_path, DESKTOP_LOGS) if path.is_file()]


@dataclass
class Computer:
    """One computer whose logs are in the devices folder."""

    device: str
    this: bool
    last_write: str          # UTC, when its newest log last changed here
    logs: List[str]
    conflict_copies: int


def heard_from(home: Home) -> List[Computer]:
    """The computers whose logs this home holds, latest writer first."""
    found: Dict[str, List[os.stat_result]] = {}
    logs: Dict[str, List[str]] = {}
    copies: Dict[str, int] = {}
    try:
        with os.scandir(home.devices_dir) as entries:
            for entry in entries:
                name = DeviceLog.parse(entry.name)
                if name is None or not entry.is_file(follow_symlinks=False):
                    continue
                if name.conflict:
                    copies[name.device] = copies.get(name.device, 0) + 1
                    continue
                found.setdefault(name.device, []).append(entry.stat(follow_symlinks=False))
                logs.setdefault(name.device, []).append(name.kind)
    except (FileNotFoundError, NotADirectoryError):
        return []
    me = home.device
    computers = [Computer(device, device == me, _utc(max(stat.st_mtime for stat in stats)),
                          sorted(logs[device]), copies.get(device, 0)) for device, stats in found.items()]
    computers += [Computer(device, device == me, "", [], count) for device, count in copies.items()
                  if device not in found]
    return sorted(computers, key=lambda computer: computer.last_write, reverse=True)


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
