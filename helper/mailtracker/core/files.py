"""Writing files so that a crash never leaves half of one: whole files replaced
atomically, and rows appended to a log under a lock, durably.
"""

import os
from pathlib import Path
from typing import Iterable, Sequence

from filelock import FileLock, Timeout

from mailtracker.core.csvcodec import format_row, header_line
from mailtracker.core.errors import LockTimeoutError, LogWriteError

LOCK_TIMEOUT_S = 30.0


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


def write_file_atomically(path: Path, data: bytes, mode: int, replace_existing: bool) -> None:
    """Write a whole file atomically, created with ``mode`` (never briefly wider)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not replace_existing and path.exists():
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

