"""Reading only what is new in an append-only log: a cursor (offset plus a
fingerprint of the start, so a truncated or replaced file is noticed) and a
reader of the complete records after it, with bounded reads.
"""

import hashlib
import logging
import os
import stat as stat_module
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, List, Optional

log = logging.getLogger(__name__)

_FINGERPRINT_BYTES = 4096


_READ_CHUNK = 8 << 20
# No writer of ours writes a record this long: bytes that run this far without an end
# are damage (or not a log at all), skipped so that the cursor moves on and memory stays bounded.
MAX_RECORD_BYTES = 16 << 20


@dataclass
class Cursor:
    """How far a log has been read: an offset, and a fingerprint of the bytes
    before it so that a truncated or replaced file is noticed."""

    offset: int = 0
    size: int = -1
    mtime_ns: int = 0
    fp_len: int = 0
    fp: str = ""

    def to_json(self) -> dict:
        return dict(vars(self))  # dataclasses.asdict copies deeply, 20 times slower

    @classmethod
    def from_json(cls, data: dict) -> "Cursor":
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})


def _fingerprint(fd: int, length: int) -> str:
    return hashlib.sha256(_read_at(fd, length, 0)).hexdigest()


def _read_at(fd: int, size: int, position: int) -> bytes:
    if hasattr(os, "pread"):
        return os.pread(fd, size, position)
    os.lseek(fd, position, os.SEEK_SET)  # pragma: no cover - Windows only
    return os.read(fd, size)


def after_last_newline(data: bytes) -> int:
    """Where the complete lines of ``data`` end: a line is complete with its newline."""
    return data.rfind(b"\n") + 1


def read_new_lines(path: Path, cursor: Cursor, follow_symlinks: bool = True,
                   chunk_bytes: Optional[int] = None) -> Iterator[List[bytes]]:
    """Yield batches of complete new lines of ``path``, advancing ``cursor``."""
    for data in read_new_data(path, cursor, follow_symlinks=follow_symlinks, chunk_bytes=chunk_bytes):
        yield data.splitlines()


def read_new_data(path: Path, cursor: Cursor, record_end: Callable[[bytes], int] = after_last_newline,
                  follow_symlinks: bool = True, chunk_bytes: Optional[int] = None) -> Iterator[bytes]:
    """Yield blocks of complete new records of ``path``, advancing ``cursor``.

    ``record_end(data)`` says where the last complete record in ``data`` ends (by
    default after its last newline; tags.csv also keeps a newline inside quotes). A
    trailing incomplete record is left for the next read: a sync tool or a writer may
    still be in the middle of it. A file that shrank or whose start changed was
    truncated or replaced: it is read again from the start (the fold skips hits it has
    already counted). Only what the file held when the read began is read, and only
    from a regular file: a device, a FIFO or a file that keeps growing cannot hold the
    reader. ``follow_symlinks=False`` refuses a symlink (OSError).
    """
    chunk_bytes = chunk_bytes or _READ_CHUNK
    try:
        seen = os.stat(path, follow_symlinks=follow_symlinks)
    except FileNotFoundError:
        return
    except OSError:
        seen = None  # opening it says what is wrong
    if seen is not None and stat_module.S_ISREG(seen.st_mode) and seen.st_size == cursor.size \
            and seen.st_mtime_ns == cursor.mtime_ns:
        return  # as it was when last read (one call, not three: a fold looks at every file)
    # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return
    try:
        stat = os.fstat(fd)
        if not stat_module.S_ISREG(stat.st_mode):
            raise OSError(f"{path.name} is not a regular file")
        if stat.st_size == cursor.size and stat.st_mtime_ns == cursor.mtime_ns:
            return
        if cursor.offset and (
            stat.st_size < cursor.offset or _fingerprint(fd, cursor.fp_len) != cursor.fp
        ):
            log.info("%s was truncated or replaced; reading it again from the start", path.name)
            cursor.offset = cursor.fp_len = 0
            cursor.fp = ""
        position = cursor.offset
        carry = b""
        while position < stat.st_size:
            block = _read_at(fd, min(chunk_bytes, stat.st_size - position), position)
            if not block:
                break  # the file shrank while it was read: the next read sees that
            position += len(block)
            data = carry + block
            end = record_end(data)
            carry = data[end:]
            if end:
                cursor.offset += end
                yield data[:end]
            if len(carry) > MAX_RECORD_BYTES:
                log.warning("%s holds %d bytes without a line end at offset %d; skipped them",
                            path.name, len(carry), cursor.offset)
                cursor.offset += len(carry)
                carry = b""
        if cursor.fp_len < min(cursor.offset, _FINGERPRINT_BYTES):
            cursor.fp_len = min(cursor.offset, _FINGERPRINT_BYTES)
            cursor.fp = _fingerprint(fd, cursor.fp_len)
    finally:
        os.close(fd)
    cursor.size, cursor.mtime_ns = stat.st_size, stat.st_mtime_ns
