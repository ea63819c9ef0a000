"""The pixel server's hits log: one writer, one file per UTC day, every line in
the operating system before its hit is answered.
"""

import logging
import os
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
    # How often the open file is compared with the one at its path: a file moved or
    # deleted while the server runs would otherwise take every later hit with it.
    CHECK_FILE_EVERY_S = 1.0

    def __init__(self, hits_dir: Path, writer_id: str):
        self.hits_dir = hits_dir
        self.writer_id = writer_id
        self.pending: deque = deque()
        self.dropped = 0
        self.written = 0
        self._day = ""
        self._file = None
        self._last_complaint = 0.0
        self._trouble_since = 0.0
        self._next_check = 0.0
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
        if not self.pending and day == self._day and time.monotonic() < self._next_check:
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

    def flush_pending(self, check_file: bool = False) -> bool:
        """Write what waits in memory; False while it cannot. ``check_file`` makes sure
        the open file is still the one at its path (as /healthz does)."""
        try:
            if self._file is not None and (check_file or time.monotonic() >= self._next_check):
                self._check_file()
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
        if self._trouble_since:
            log.warning("hits can be written to %s again after %.0f s; every hit kept in memory is "
                        "written (%d lost beyond the memory bound)", self.hits_dir,
                        time.monotonic() - self._trouble_since, self.dropped)
            self._trouble_since = 0.0
        return True

    def _check_file(self) -> None:
        self._next_check = time.monotonic() + self.CHECK_FILE_EVERY_S
        path = self.path_for(self._day)
        try:
            on_disk = os.stat(path)
        except FileNotFoundError:
            on_disk = None
        mine = os.fstat(self._file.fileno())
        if on_disk is None or (on_disk.st_dev, on_disk.st_ino) != (mine.st_dev, mine.st_ino):
            log.warning("%s was moved or deleted while this server wrote to it; writing to a new "
                        "%s from now on", path.name, path)
            self._open(self._day)

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
        # Until a file is open again, every write goes through flush_pending, which opens one.
        self._day = ""
        path = self.path_for(day)
        self._next_check = time.monotonic() + self.CHECK_FILE_EVERY_S
        # The folder too may have been deleted while the server ran.
        self.hits_dir.mkdir(parents=True, exist_ok=True)
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
        self._trouble_since = self._trouble_since or now
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

