"""Writing files so that a crash never leaves half of one: whole files replaced
atomically, and rows appended to a log under a lock, durably; and reading back a
derived state file that may be missing, damaged or from another version.
"""

import csv
import json
import logging
import os
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Sequence

from filelock import FileLock, Timeout

from mailtracker.core.csvcodec import format_row, header_line, strip_bom
from mailtracker.core.errors import LockTimeoutError, LogWriteError

LOCK_TIMEOUT_S = 30.0

log = logging.getLogger(__name__)


def append_rows(path: Path, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """Append whole rows under a lock, durably; creates the file with its header.

    A file whose header has the same columns in another order (a spreadsheet saved it
    so) gets its rows in that order: its readers go by the header.
    """
    rows = list(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(path) + ".lock", timeout=LOCK_TIMEOUT_S):
            with open(path, "ab") as handle:
                order = None if handle.tell() == 0 else _reordered_columns(path, columns)
                if order is not None:
                    rows = [[dict(zip(columns, row)).get(name, "") for name in order] for row in rows]
                data = "".join(format_row(row) for row in rows).encode("utf-8")
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


def _reordered_columns(path: Path, columns: Sequence[str]) -> Optional[List[str]]:
    """The file's column order, when its header names all of ``columns`` in another order
    (or some of them: the others follow at the end)."""
    with open(path, "rb") as reader:
        first = strip_bom(reader.readline(64 << 10)).decode("utf-8", "replace")
    try:
        names = [name.strip().lower() for name in next(csv.reader([first]), [])]
    except csv.Error:
        return None
    if names == list(columns):
        return None
    if set(columns) <= set(names):
        return names
    if len(set(names) & set(columns)) >= 2 and set(names) < set(columns) and names != list(columns[:len(names)]):
        # A reordered header from before a column was added at the end: the new
        # columns follow the header's, in their own order (the readers do the same).
        return names + [name for name in columns if name not in names]
    return None


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



def read_versioned_json(path: Path, version: int, fallback: str,
                        loads: Callable[[bytes], object] = json.loads) -> Optional[dict]:
    """A derived state file (JSON, ``{"version": N, ...}``), or None when there is none
    to trust: missing, unreadable, or of another version; ``fallback`` says in the log
    what happens instead ("rebuilding it from the logs"). ``loads``: a faster parser."""
    try:
        doc = loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("%s is unreadable (%s); %s", path, exc, fallback)
        return None
    if not isinstance(doc, dict) or doc.get("version") != version:
        log.info("%s is from another version; %s", path, fallback)
        return None
    return doc
