"""The register: ``register.csv``, the user's view (one row per tag with its open
counts), and ``Register``, the read model every reader of the counts goes through.

The register is derived; the logs are the truth. It is replaced atomically
(temporary file, then rename), so a reader never sees half of it, and a
register that cannot be replaced (open in a spreadsheet on Windows) costs
nothing: the fold keeps its counts and writes it later.
"""

import csv
import logging
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from mailtracker.core.csvcodec import BOM, format_row, neutralise, restore
from mailtracker.core.errors import RegisterLockedError, UnknownTagError
from mailtracker.core.paths import Home
from mailtracker.core.tokens import SHORT_ID_LENGTH, TOKEN_LENGTH
from mailtracker.desktop.platforms import Platform
from mailtracker.desktop.view import Event, ViewReader, view_path

log = logging.getLogger(__name__)

REGISTER_COLUMNS = (
    "id", "short_id", "name", "subject", "recipients", "created", "status",
    "message_id", "opens", "first_open", "last_open", "hits", "self_hits", "machine_hits",
    "clicks", "first_click", "last_click", "group", "remind_at",
    "replies", "first_reply", "last_reply", "replied_by", "undelivered", "undelivered_reason", "remind_if",
)
_OUTSIDE_TEXT = ("name", "subject", "recipients", "message_id", "replied_by", "undelivered", "undelivered_reason")


def register_line(row: Dict[str, str]) -> str:
    """One row of register.csv, as text with its line end."""
    return format_row([neutralise(str(row.get(col, ""))) if col in _OUTSIDE_TEXT else str(row.get(col, ""))
                       for col in REGISTER_COLUMNS])


def write_register(path: Path, rows: Sequence[Dict[str, str]], new_opens: int = 0) -> None:
    write_register_lines(path, [register_line(row) for row in rows], new_opens)


def write_register_lines(path: Path, lines: Sequence[str], new_opens: int = 0,
                         platform: Optional[Platform] = None) -> None:
    """Replace register.csv with these rows (``register_line``), under its header.

    On Windows a program holding the file open without sharing it (Excel does) makes the
    replace fail with a sharing violation, which Python raises as PermissionError
    (WinError 32, or 5): the register is then left as it is, and ``RegisterLockedError``
    says the counts are kept; the next fold writes it. Elsewhere a PermissionError
    means the folder's permissions, and is said so."""
    platform = platform or Platform.current()
    data = "".join([BOM + format_row(REGISTER_COLUMNS), *lines]).encode("utf-8")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        platform.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        kept = f"the {new_opens} new opens are kept" if new_opens else "nothing is lost"
        if isinstance(exc, PermissionError) and platform.is_windows:
            raise RegisterLockedError(
                f"{path.name} is open in another program; {kept} and will be written "
                "when it is closed"
            ) from None
        raise RegisterLockedError(
            f"cannot write {path}: {exc.strerror or exc}; {kept} and will be written "
            "when this is fixed"
        ) from None


def read_register(path: Path) -> List[Dict[str, str]]:
    """register.csv as dicts, by its header (for tests and tools; programs read ``Register``).

    A row the csv module refuses (a field beyond its limit, from an older writer or a
    spreadsheet) is skipped with a warning; the rows after it are read."""
    rows = []
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                log.warning("skipped an unreadable row of %s (line %d): %s", path.name, reader.line_num, exc)
                continue
            rows.append(row)
    for row in rows:
        for col in _OUTSIDE_TEXT:
            row[col] = restore(row.get(col) or "")
    return rows


def grouped(rows: Sequence[Dict]) -> List[List[Dict]]:
    """Rows in order, the copies of one "send individually" mail together where its
    first copy stands: a list of groups, a lone tag being a group of one."""
    groups: List[List[Dict]] = []
    by_group: Dict[str, List[Dict]] = {}
    for row in rows:
        group_id = row.get("group") or ""
        if group_id and group_id in by_group:
            by_group[group_id].append(row)
            continue
        members = [row]
        groups.append(members)
        if group_id:
            by_group[group_id] = members
    return groups


def display_name(row: Dict[str, str]) -> str:
    """Who a tracked email went to, as people read it: name, else recipients, else the tag."""
    return row.get("name") or row.get("recipients") or f"tag {row['short_id']}"


class Register:
    """The read model: the register's rows and each tag's latest hits as the last fold
    left them. Every reader (the native host, the tray, the report, the CLI) asks here;
    none of them folds, takes the fold's lock or waits for a fold in progress.

    Use as ``with Register.load(home) as register``.
    """

    def __init__(self, reader: ViewReader):
        self._reader = reader

    @classmethod
    def load(cls, home: Home) -> "Register":
        return cls(ViewReader(view_path(home.state_dir)))

    def __enter__(self) -> "Register":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._reader.close()

    def rows(self) -> List[Dict]:
        """Every tag's row, oldest first (the columns of register.csv, values unneutralised)."""
        return self._reader.rows()

    def get(self, tag_id: str) -> Optional[Dict]:
        return self._reader.row(tag_id)

    def find(self, key: str) -> Optional[Dict]:
        """The row of a tag named by its id, its short id or its email's Message-ID.

        Raises UnknownTagError when a short id names several tags."""
        key = key.strip()
        if len(key) == TOKEN_LENGTH:
            row = self._reader.row(key)
            if row is not None:
                return row
        if SHORT_ID_LENGTH <= len(key) < TOKEN_LENGTH:
            ids = self._reader.ids_with_prefix(key)
            if len(ids) > 1:
                raise UnknownTagError(f"{key!r} names {len(ids)} tags; give more characters")
            if ids:
                return self._reader.row(ids[0])
        message_id = key.strip("<>")
        if message_id:
            ids = self._reader.ids_where("message_id", message_id)
            if ids:
                return self._reader.row(ids[-1])
        return None

    def group(self, group_id: str) -> List[Dict]:
        """The rows of one "send individually" mail, one per recipient's copy, oldest first."""
        if not group_id:
            return []
        return [row for row in self._reader.rows() if row.get("group") == group_id]

    def timeline(self, tag_id: str) -> List[Event]:
        """The tag's latest hits, oldest first: (time, label, counted, reason code, client)."""
        return self._reader.timeline(tag_id)

    def generation(self) -> int:
        """A number that changes whenever a fold changed what this model shows."""
        return self._reader.generation()
