"""The device logs a person's computers push to the pixel server (with ``--serve-hits``),
so that their laptop and desktop see the same tracked mail with nothing else to install.

Each computer appends only to its own desktop logs (``core.paths``: ``tags-<device>.csv``...);
it pushes their new whole lines here with ``POST /devices/<name>?at=<offset>`` and pulls the
other computers' with ``GET /devices/`` and ``GET /devices/<name>`` (served as ``/hits/`` is,
by ``hitfiles.py``). The folder is the server's own (``ServerSettings.device_logs_dir``),
beside the hits folder, never in it: the hits listing, retention and a sync tool sharing the
hits never see these files.

An append is all or nothing and idempotent: ``at`` names where the body goes. The bytes the
file already holds from ``at`` on must be the body's first bytes (a push resent after a lost
answer, or a few bytes of overlap the desktop sends to check the copies agree); the rest is
appended at the end, fsynced before the answer. Anything else is a 409 with the file's size,
from which the desktop sends again. A full disk leaves the file as it was (507).
"""

import errno
import json
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from mailtracker.core.contract import DEVICES_ROUTE, MAX_DEVICE_LOG_BYTES, MAX_PUSH_BYTES
from mailtracker.core.paths import is_device_log_name
from mailtracker.server.hitfiles import HitsResponse, ServedFolder, plain_answer

log = logging.getLogger(__name__)

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: one process serves, its appends run one at a time
    fcntl = None

# The header a 409 also carries the file's size in (its body says it in words and JSON).
SIZE_HEADER = b"mailtracker-size"
FOLDER_MODE = 0o700
FILE_MODE = 0o600


def devices_folder(devices_dir: Path) -> ServedFolder:
    return ServedFolder(devices_dir, DEVICES_ROUTE, is_device_log_name)


@dataclass(frozen=True)
class PushAnswer:
    """What a push is answered: the status, and the file's size after it (-1: not known)."""

    status: int
    size: int = -1
    message: str = ""

    def response(self) -> HitsResponse:
        if self.status == 200:
            body = json.dumps({"size": self.size}).encode() + b"\n"
            return HitsResponse(200, [(b"content-type", b"application/json"),
                                      (b"content-length", str(len(body)).encode()),
                                      (b"cache-control", b"no-store")], body)
        extra = [(SIZE_HEADER, str(self.size).encode())] if self.size >= 0 else []
        return plain_answer(self.status, self.message.encode() + b"\n", extra)


def prepare_devices_dir(devices_dir: Path) -> str:
    """Make the folder (private to the server's user); what is wrong with it, '' when nothing."""
    try:
        devices_dir.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
        if not devices_dir.is_dir() or devices_dir.is_symlink():
            return f"{devices_dir} is not a folder"
    except OSError as exc:
        return f"cannot make {devices_dir}: {exc.strerror or exc}"
    return ""


def append_device_log(devices_dir: Path, name: str, at: int, body: bytes,
                      cap: int = MAX_DEVICE_LOG_BYTES) -> PushAnswer:
    """Append ``body`` (whole lines) to the device log ``name`` at ``at``; see the module."""
    if not is_device_log_name(name):
        return PushAnswer(404, message=f"{name!r} is not the name of a device log")
    if len(body) > MAX_PUSH_BYTES:
        return PushAnswer(413, message=f"a push carries at most {MAX_PUSH_BYTES} bytes")
    if not body.endswith(b"\n"):
        return PushAnswer(400, message="a push carries whole lines: its body must end with a newline")
    problem = prepare_devices_dir(devices_dir)
    if problem:
        return PushAnswer(503, message=f"the server cannot keep device logs: {problem}")
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) \
        | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(devices_dir / name, flags, FILE_MODE)
    except OSError as exc:  # a symlink (ELOOP), a folder, unreadable
        return PushAnswer(409, message=f"{name} on the server is not a regular file "
                          f"({exc.strerror or exc}); it takes no pushes")
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return PushAnswer(409, message=f"{name} on the server is not a regular file; it takes no pushes")
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)  # two pushes of one log (two processes of one computer)
        return _append_locked(fd, name, at, body, cap)
    finally:
        os.close(fd)


def _append_locked(fd: int, name: str, at: int, body: bytes, cap: int) -> PushAnswer:
    size = os.fstat(fd).st_size
    if at > size:
        return PushAnswer(409, size, f"{name} holds {size} bytes on the server, not {at}: push from there")
    overlap = min(size - at, len(body))
    if overlap and os.pread(fd, overlap, at) != body[:overlap]:
        return PushAnswer(409, size, f"{name} on the server differs from the bytes pushed at {at}: "
                          "the server's copy is not this computer's log")
    rest = body[overlap:]
    if not rest:
        return PushAnswer(200, size)  # sent before (an answer was lost): done
    if size + len(rest) > cap:
        return PushAnswer(413, size, f"{name} would grow past {cap >> 20} MiB on the server; it takes no more")
    try:
        written = 0
        while written < len(rest):
            written += os.pwrite(fd, rest[written:], size + written)
        os.fsync(fd)
    except OSError as exc:
        _truncate_back(fd, size, name)
        if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            log.error("the disk holding the device logs is full: a push of %s was refused", name)
            return PushAnswer(507, size, "the server's disk is full: nothing of this push was kept; "
                              "it is sent again later")
        log.error("cannot append to the device log %s: %s", name, exc.strerror or exc)
        return PushAnswer(500, size, f"the server cannot write {name}: {exc.strerror or exc}")
    return PushAnswer(200, size + len(rest))


def _truncate_back(fd: int, size: int, name: str) -> None:
    """No partial line stays behind a failed append."""
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    except OSError as exc:
        log.error("cannot cut the partial push off %s: %s", name, exc.strerror or exc)
