"""The append-only CSV logs, tags.csv and hits-*.csv: their columns, their
spreadsheet-safe encoding, appending rows durably, and reading only what is new.

Every file is Excel-dialect CSV, UTF-8 with a BOM, with a header row. Text that
came from outside (names, subjects, user agents) is neutralised so that no
spreadsheet runs it as a formula.
"""

import calendar
import hashlib
import logging
import math
import os
import re
import time
from collections import deque
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Sequence

from filelock import FileLock, Timeout

from mailtracker.errors import LockTimeoutError, LogWriteError, ServerError

log = logging.getLogger(__name__)

BOM = "\ufeff"
TAG_COLUMNS = ("id", "created", "name", "subject", "recipients", "identity", "message_id", "status")
# Moments the sender's own Thunderbird may fetch a pixel (sending, showing the Sent copy).
SELF_FETCH_COLUMNS = ("tag", "time", "reason")
# The fields the fold needs come first and never hold a comma, so it can split
# them off without a CSV parser; the free text from the request comes last.
HIT_COLUMNS = ("hit_id", "time", "tag", "method", "client", "user_agent", "referer")
HITS_GLOB = "hits-*.csv"
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")
_FINGERPRINT_BYTES = 4096
_READ_CHUNK = 8 << 20
LOCK_TIMEOUT_S = 30.0


def neutralise(text: str) -> str:
    """Make outside text inert in a spreadsheet; ``restore`` undoes it exactly."""
    if text.startswith(_FORMULA_STARTS):
        return "'" + text
    return text


def restore(text: str) -> str:
    return text[1:] if text.startswith("'") else text


def csv_field(text: str) -> str:
    """One Excel-dialect CSV field, quoted only when it must be (as csv.writer does)."""
    if "," in text or '"' in text or "\r" in text or "\n" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


def format_row(fields: Sequence[str]) -> str:
    """One Excel-dialect CSV line, as ``csv.writer`` would write it, but faster."""
    return ",".join(csv_field(field) for field in fields) + "\r\n"


def header_line(columns: Sequence[str]) -> bytes:
    return (BOM + format_row(columns)).encode("utf-8")


_LAST_SECOND = (None, "")


def utc_timestamp(when: Optional[float] = None) -> str:
    """UTC ISO 8601 with milliseconds and a Z; sorts as text in time order."""
    global _LAST_SECOND
    when = time.time() if when is None else when
    second = math.floor(when)
    # Rounded to microseconds first, as datetime does, so 15.573 stays .573.
    micros = round((when - second) * 1_000_000)
    if micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    cached_second, prefix = _LAST_SECOND  # one tuple: safe to share between threads
    if cached_second != second:
        prefix = datetime.fromtimestamp(second, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.")
        _LAST_SECOND = (second, prefix)
    return f"{prefix}{micros // 1000:03d}Z"


_STAMP_RE = re.compile(r"\d{4}-\d\d-\d\dT([01]\d|2[0-3]):[0-5]\d:[0-6]\d\.\d{3}Z")
_MINUTES: dict = {}
_DAYS: dict = {}


def _minute_of(stamp: str) -> int:
    day = _DAYS.get(stamp[:10])
    if day is None:
        if not _STAMP_RE.fullmatch(stamp):
            raise ValueError(f"not a mailtracker timestamp: {stamp!r}")
        day = _DAYS[stamp[:10]] = calendar.timegm((int(stamp[0:4]), int(stamp[5:7]), int(stamp[8:10]), 0, 0, 0))
    hours, minutes = stamp[11:13], stamp[14:16]
    if stamp[10] != "T" or stamp[13] != ":" or not (hours.isdigit() and minutes.isdigit()) \
            or hours > "23" or minutes > "59":
        raise ValueError(f"not a mailtracker timestamp: {stamp!r}")
    return day + int(hours) * 3600 + int(minutes) * 60


def parse_timestamp(stamp: str) -> float:
    """Seconds since the epoch of a ``utc_timestamp`` string; ValueError if it is not one.

    The fold calls this for most hits: the minute is looked up in a cache instead
    of going through strptime (14 µs) every time.
    """
    minute = _MINUTES.get(stamp[:16])
    if minute is None:
        if len(_MINUTES) > 100_000:
            _MINUTES.clear()
        minute = _MINUTES[stamp[:16]] = _minute_of(stamp)
    if len(stamp) != 24 or stamp[16] != ":" or stamp[19] != "." or stamp[23] != "Z":
        raise ValueError(f"not a mailtracker timestamp: {stamp!r}")
    return minute + int(stamp[17:19]) + int(stamp[20:23]) / 1000


def ago(stamp: str, now: float) -> str:
    """How long before ``now`` (epoch seconds) a timestamp was: 'just now', '5 min ago',
    '2 h ago', '3 d ago'."""
    seconds = max(0, int(now - parse_timestamp(stamp)))
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


def append_rows(path: Path, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """Append whole rows under a lock, durably; creates the file with its header."""
    data = "".join(format_row(row) for row in rows).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(path) + ".lock", timeout=LOCK_TIMEOUT_S):
            with open(path, "ab") as handle:
                if handle.tell() == 0:
                    data = header_line(columns) + data
                elif not _ends_with_newline(handle):
                    # A writer killed mid-line left a fragment: end it, so the
                    # new row is not glued onto it.
                    data = b"\r\n" + data
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
    except Timeout:
        raise LockTimeoutError(
            f"{path.name} stayed locked by another mailtracker process for {LOCK_TIMEOUT_S:.0f} s"
        ) from None
    except OSError as exc:
        raise LogWriteError(f"cannot append to {path}: {exc.strerror or exc}") from None


def _ends_with_newline(handle) -> bool:
    with open(handle.name, "rb") as reader:
        reader.seek(-1, os.SEEK_END)
        return reader.read(1) == b"\n"


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


def strip_bom(line: bytes) -> bytes:
    return line[3:] if line.startswith(b"\xef\xbb\xbf") else line


class HitLog:
    """The pixel server's hits log: one writer, one file per UTC day.

    Each line reaches the operating system before ``append`` returns, so a hit
    whose response was sent survives a crash of the server. When the disk is
    full, lines wait in memory, the server says so loudly, and they are written
    in order as soon as space returns.
    """

    MAX_PENDING = 200_000

    def __init__(self, hits_dir: Path, writer_id: str):
        self.hits_dir = hits_dir
        self.writer_id = writer_id
        self.pending: deque = deque()
        self.dropped = 0
        self.written = 0
        self._day = ""
        self._file = None
        self._last_complaint = 0.0
        hits_dir.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(hits_dir / f".lock-{writer_id}"))
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise ServerError(
                f"another pixel server with the id {writer_id!r} is already writing to "
                f"{hits_dir}; give each instance its own --server-id"
            ) from None

    def path_for(self, day: str) -> Path:
        return self.hits_dir / f"hits-{self.writer_id}-{day}.csv"

    def append(self, line: bytes, day: str) -> bool:
        """Write one formatted line; False when it had to wait in memory."""
        if not self.pending and day == self._day:
            try:
                count = self._file.write(line)
            except OSError as exc:
                count, problem = 0, exc
            else:
                problem = OSError(28, "the disk is full")
            if count == len(line):
                self.written += 1
                return True
            self.pending.append((day, line[count:]))
            self._complain(problem)
            return False
        self.pending.append((day, line))
        if len(self.pending) > self.MAX_PENDING:
            self.pending.popleft()
            self.dropped += 1
        return self.flush_pending()

    def flush_pending(self) -> bool:
        try:
            while self.pending:
                day, line = self.pending[0]
                if day != self._day:
                    self._open(day)
                remaining = self._write_all(line)
                if remaining:
                    self.pending[0] = (day, remaining)
                    raise OSError(28, "the disk is full")
                self.pending.popleft()
                self.written += 1
        except OSError as exc:
            self._complain(exc)
            return False
        return True

    def _write_all(self, data: bytes) -> bytes:
        """Write as much as the OS takes; returns what is left unwritten."""
        view = memoryview(data)
        try:
            while view:
                count = self._file.write(view)
                if not count:
                    break
                view = view[count:]
        except OSError:
            if len(view) == len(data):
                raise
        return bytes(view)

    def _open(self, day: str) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        path = self.path_for(day)
        handle = open(path, "ab", buffering=0)
        try:
            if handle.tell() == 0:
                self._write_required(handle, header_line(HIT_COLUMNS))
            elif not _ends_with_newline(handle):
                self._write_required(handle, b"\r\n")
        except OSError:
            handle.close()
            raise
        self._file, self._day = handle, day

    @staticmethod
    def _write_required(handle, data: bytes) -> None:
        if handle.write(data) != len(data):
            raise OSError(28, "the disk is full")

    def _complain(self, exc: OSError) -> None:
        now = time.monotonic()
        if now - self._last_complaint >= 10.0:
            self._last_complaint = now
            log.error(
                "cannot write hits to %s: %s. %d hits are kept in memory and will be "
                "written as soon as this is fixed (%d lost beyond the memory bound)",
                self.hits_dir, exc.strerror or exc, len(self.pending), self.dropped,
            )

    def close(self) -> None:
        self.flush_pending()
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.pending:
            log.error("%d hits could not be written to %s and are lost", len(self.pending), self.hits_dir)
        self._lock.release()
