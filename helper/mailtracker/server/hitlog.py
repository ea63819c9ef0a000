"""The pixel server's hits log: one writer, one file per UTC day, every line in
the operating system before its hit is answered.
"""

import logging
import time
from collections import deque
from pathlib import Path

from filelock import FileLock, Timeout

from mailtracker.core.csvcodec import header_line
from mailtracker.core.errors import ServerError
from mailtracker.core.files import _ends_with_newline
from mailtracker.core.hitline import HIT_COLUMNS

log = logging.getLogger(__name__)

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

