"""Reading only what is new in an append-only log: a cursor (offset plus a
fingerprint of the start, so a truncated or replaced file is noticed) and a
reader of the complete lines after it.
"""

import hashlib
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, List

log = logging.getLogger(__name__)

_FINGERPRINT_BYTES = 4096


_READ_CHUNK = 8 << 20


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
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Cursor":
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})


def _fingerprint(handle, length: int) -> str:
    handle.seek(0)
    return hashlib.sha256(handle.read(length)).hexdigest()


def read_new_lines(path: Path, cursor: Cursor) -> Iterator[List[bytes]]:
    """Yield batches of complete new lines of ``path``, advancing ``cursor``.

    A trailing line without its newline is left for the next read: a sync tool
    or a writer may still be in the middle of it. A file that shrank or whose
    start changed was truncated or replaced: it is read again from the start
    (the fold skips hits it has already counted).
    """
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return
    if stat.st_size == cursor.size and stat.st_mtime_ns == cursor.mtime_ns:
        return
    with open(path, "rb") as handle:
        if cursor.offset and (
            stat.st_size < cursor.offset or _fingerprint(handle, cursor.fp_len) != cursor.fp
        ):
            log.info("%s was truncated or replaced; reading it again from the start", path.name)
            cursor.offset = cursor.fp_len = 0
            cursor.fp = ""
        handle.seek(cursor.offset)
        carry = b""
        while True:
            block = handle.read(_READ_CHUNK)
            if not block:
                break
            data = carry + block
            end = data.rfind(b"\n") + 1
            carry = data[end:]
            if end:
                cursor.offset += end
                yield data[:end].splitlines()
        if cursor.fp_len < min(cursor.offset, _FINGERPRINT_BYTES):
            cursor.fp_len = min(cursor.offset, _FINGERPRINT_BYTES)
            cursor.fp = _fingerprint(handle, cursor.fp_len)
    cursor.size, cursor.mtime_ns = stat.st_size, stat.st_mtime_ns

