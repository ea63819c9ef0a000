"""The pixel server's hits log: one writer, one file per UTC day, every line in
the operating system before its hit is answered.
"""

import asyncio
import logging
import os
import time
from collections import deque
from pathlib import Path
from typing import Sequence

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
        return self.append_lines((line,), day)

    def append_lines(self, lines: Sequence[bytes], day: str) -> bool:
        """Write formatted lines of one day, in order, with one write where the OS takes it
        all; False when some had to wait in memory."""
        if not self.pending and day == self._day and time.monotonic() < self._next_check:
            data = lines[0] if len(lines) == 1 else b"".join(lines)
            try:
                count = self._file.write(data)
            except OSError as exc:
                count, problem = 0, exc
            else:
                problem = OSError(28, "the disk is full")
            if count == len(data):
                self.written += len(lines)
                return True
            # What the OS took is written; the rest waits, line by line, from where it stopped.
            for line in lines:
                if count >= len(line):
                    count -= len(line)
                    self.written += 1
                else:
                    self._keep(day, line[count:])
                    count = 0
            self._complain(problem)
            return False
        for line in lines:
            self._keep(day, line)
        return self.flush_pending()

    def _keep(self, day: str, line: bytes) -> None:
        self.pending.append((day, line))
        if len(self.pending) > self.MAX_PENDING:
            self.pending.popleft()
            self.dropped += 1

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



class GroupedWrites:
    """Hits answered in one turn of the event loop, written to the log together.

    ``add`` keeps a line and returns a future; at the end of the turn (the loop's next
    callback round) every kept line goes to the log in one write, and only then are the
    futures done: a hit's response waits on its future, so, as with one write per hit,
    every answered hit is in the operating system before its answer is sent. Under load
    one write(2) then carries the lines of many hits instead of one each.
    """

    def __init__(self, hit_log: HitLog):
        self.hit_log = hit_log
        self._day = ""
        self._lines: list = []
        self._waiting: list = []

    def add(self, line: bytes, day: str) -> "asyncio.Future":
        loop = asyncio.get_running_loop()
        if self._lines and day != self._day:
            self.write()  # one write is one day's file: the other day's lines go first
        if not self._lines:
            loop.call_soon(self.write)
            self._day = day
        self._lines.append(line)
        done = loop.create_future()
        self._waiting.append(done)
        return done

    def write(self) -> None:
        """Write what is kept now (a no-op when nothing is), then release its answers."""
        if not self._lines:
            return
        lines, waiting = self._lines, self._waiting
        self._lines, self._waiting = [], []
        try:
            self.hit_log.append_lines(lines, self._day)
        except BaseException as exc:
            for done in waiting:
                if not done.done():
                    done.set_exception(exc)
            raise
        for done in waiting:
            if not done.done():  # cancelled with its request
                done.set_result(None)
