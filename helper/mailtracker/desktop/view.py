"""The read model's store: each tag's register row and its latest hits, in one SQLite
file beside the fold state (``state/view.sqlite3``).

The fold is its one writer: after each pass it rewrites only the rows and
timelines of the tags that pass touched, so a new hit costs the same however
long the history is. Everyone else reads it through ``register.Register``. The
database runs in WAL mode: a reader sees the last committed pass and never waits
for a fold in progress. Everything here is derived from the logs; ``mailtracker
rebuild`` makes it anew.

The fold keeps its own state in the same file (``fold_state``: how far it read each
log and which hits it counted; ``fold_tags``: each tag's counts and what the logs
said of it, one row a tag), private to it: no reader looks there. A pass commits
its rows, timelines and state in one transaction, so a pass killed at any moment
leaves the previous pass's store whole, and rewrites only the tags it touched.

A new store is built beside its place and renamed into it with its tables, so a
store that exists always has them; a fold that cannot build it (a full disk) leaves
it empty, as a sign. A store that is empty, or cannot be opened or read, is an error
for its readers (FileAccessError, code 32), never an empty register: only a store
that does not exist means that nothing was folded yet.
"""

import json
import os
import sqlite3
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from mailtracker.core.errors import FileAccessError
from mailtracker.core.hitline import TIME_LENGTH

# time, label, counted 0/1, reason code, client description
Event = Tuple[str, str, int, str, str]
# An event but its time: what many events share (label, counted, reason, client).
Kind = Tuple[str, int, str, str]
# A tag's row as ``ViewWriter.save_rows`` takes it: id, short id, Message-ID, created, the row
# (the values of ROW_KEYS, in JSON), its register line.
StoredRow = Tuple[str, str, str, str, str, str]
# What this store keeps of a row: the values of ``register.Row.to_json``'s keys, in this order
# (readers get them back as that dict). Register checks that it names every key.
ROW_KEYS = ("id", "short_id", "name", "subject", "recipients", "created", "status", "message_id", "group",
            "remind_at", "remind_if", "sent_at", "identity", "opens", "first_open", "last_open", "hits",
            "self_hits", "machine_hits", "clicks", "first_click", "last_click", "replies", "first_reply",
            "last_reply", "replied_by", "undelivered", "undelivered_reason", "not_seen", "not_seen_by",
            "not_seen_reason", "opened_elsewhere", "links", "opened", "read", "sent_time", "sent_how")
TIMELINE_LENGTH = 50
# 2: the fold's state moved in (fold_state, fold_tags); a store of 1 is made anew, and the
# fold counts the logs again. 6: a row kept as the values of ROW_KEYS, its register line beside
# it (``line``), no index on short_id (a short id is a prefix of the id, which its key finds);
# a tag's state in columns its reader can take apart (``fold._FoldState.load``), its tags.csv
# fields in its row alone; a timeline keeps each event as its time and the code of its kind
# (event_kinds), not its texts again and again (a third of the bytes). 3, 4 and 5 were steps
# on the way there, which a store of this layout must not be taken for.
SCHEMA_VERSION = 6
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tags (
    id TEXT PRIMARY KEY, short_id TEXT NOT NULL, message_id TEXT NOT NULL,
    created TEXT NOT NULL, row TEXT NOT NULL, line TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS tags_message_id ON tags (message_id);
CREATE TABLE IF NOT EXISTS timelines (tag TEXT PRIMARY KEY, events TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS event_kinds (code INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS fold_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS fold_tags (
    tag TEXT PRIMARY KEY, parts INTEGER NOT NULL, data TEXT NOT NULL, memory TEXT, evidence TEXT);
"""
PAGE_SIZE = 16384
_TABLES = ("meta", "tags", "timelines", "event_kinds", "fold_state", "fold_tags")


try:
    import orjson  # the desktop extra's: five times quicker for a first fold of many tags
except ImportError:
    orjson = None


def compact_bytes(value) -> bytes:
    """JSON as the desktop's derived stores keep it (this one and the fold state): no spaces;
    orjson when there, the same values either way."""
    if orjson is not None:
        try:
            return orjson.dumps(value)
        except (TypeError, orjson.JSONEncodeError):  # a number beyond 64 bits: json writes it
            pass
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def compact_json(value) -> str:
    return compact_bytes(value).decode("utf-8")


def compact_json_each(values: Iterable) -> List[str]:
    """``compact_json`` of each value, the same texts, at C speed with orjson (a first fold
    writes 50,000 tags' data)."""
    values = list(values)
    if orjson is not None:
        try:
            return list(map(bytes.decode, map(orjson.dumps, values)))
        except TypeError:  # orjson.JSONEncodeError too: a number beyond 64 bits
            pass
    return list(map(compact_json, values))


# What reads it back.
loads = orjson.loads if orjson is not None else json.loads


# A timeline as the store keeps it: its events, oldest first, joined by commas, each its time (a
# hit's, always TIME_LENGTH characters, never a comma) and the code of its kind in event_kinds,
# which holds each kind's JSON text ([label, counted, reason, client]) once for every timeline.
# A code names one kind for the life of the store (AUTOINCREMENT: never given twice), so a
# reader may keep what it read; a rebuild keeps only the kinds of the events it counted.


def events_text(stamps: Sequence[str], codes: Sequence[int]) -> str:
    """The stored text of events with these times and kind codes (the latest TIMELINE_LENGTH)."""
    for stamp in stamps:
        if len(stamp) != TIME_LENGTH or "," in stamp:
            raise ValueError(f"not a hit's time: {stamp!r}")
    return ",".join(f"{stamp}{code}" for stamp, code in zip(stamps[-TIMELINE_LENGTH:], codes[-TIMELINE_LENGTH:]))


def coded_events(text: str) -> List[Tuple[str, int]]:
    """(time, kind code) of each event of a stored timeline; ValueError when it is not one."""
    return [(piece[:TIME_LENGTH], int(piece[TIME_LENGTH:])) for piece in text.split(",")] if text else []


def latest_events(stored: str, new: str) -> str:
    """The timeline ``stored`` (as this store keeps one) with the events of ``new`` after it,
    its latest TIMELINE_LENGTH kept: by the text, without reading every event back."""
    if not stored:
        return new
    if not new:
        return stored
    pieces = f"{stored},{new}".split(",")
    return ",".join(pieces[-TIMELINE_LENGTH:])


def view_path(state_dir: Path) -> Path:
    return state_dir / "view.sqlite3"


def _cannot_write(path: Path, exc: sqlite3.Error) -> FileAccessError:
    return FileAccessError(f"cannot write the read model {path}: {exc}; the logs are untouched "
                           "and the next fold catches up once it can write (free disk space if it is full)")


def _cannot_read(path: Path, why) -> FileAccessError:
    return FileAccessError(f"cannot read the read model {path}: {why}; the counts are not lost "
                           "(the next fold makes it from the logs): free disk space if it is full, or "
                           "run 'mailtracker fold'")


def _open_store(path: Path) -> Tuple[sqlite3.Connection, Optional[Path]]:
    """The writer's connection, and where the store is made when there is none yet (else
    None). A new store is made aside (``view.sqlite3.new``), without a journal, and renamed
    into place whole by the commit of its first pass (``ViewWriter.commit``); a store of
    another layout is made anew in place, in one transaction (a reader never sees its
    tables half made)."""
    if not path.exists() or path.stat().st_size == 0:
        aside = path.with_name(path.name + ".new")
        for leftover in (aside, *(Path(f"{base}{end}") for base in (aside, path) for end in ("-wal", "-shm"))):
            leftover.unlink(missing_ok=True)
        db = sqlite3.connect(str(aside), timeout=60, isolation_level=None)
        try:
            # No reader sees this file before its first pass is in: nothing to journal (a
            # pass that fails leaves it behind, and the next starts again).
            db.execute("PRAGMA journal_mode=OFF")
            db.execute("PRAGMA synchronous=OFF")
            # Pages of 16 KiB (SQLite's default is 4): a tag's row, state and timeline take a
            # few kilobytes each, and fewer, fuller pages halve what a first fold of many tags
            # spends in SQLite. The size is set before the first table.
            db.execute(f"PRAGMA page_size={PAGE_SIZE}")
            db.executescript(f"{_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION};")
        except BaseException:
            db.close()
            _left_unmade(path, aside)
            raise
        db.isolation_level = ""
        return db, aside
    db = _connect(path)
    try:
        if db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            # Another layout: everything here is derived, so start afresh.
            drops = " ".join(f"DROP TABLE IF EXISTS {table};" for table in _TABLES)
            db.executescript(f"BEGIN; {drops} {_SCHEMA} "
                             f"PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
    except BaseException:
        db.close()
        raise
    db.isolation_level = ""
    return db, None


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(str(path), timeout=60, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        # A commit waits for no disk flush (the checkpoints do): a power cut may take the last
        # passes back, all of a pass or none (the fold then counts their hits again), never
        # half of one; a killed process loses nothing.
        db.execute("PRAGMA synchronous=NORMAL")
    except BaseException:
        db.close()
        raise
    db.isolation_level = ""
    return db


def _left_unmade(path: Path, aside: Path) -> None:
    """A new store that could not be made: none aside, and an empty file in its place, so
    that its readers say it could not be made, not that there is nothing."""
    aside.unlink(missing_ok=True)
    try:
        path.touch()
    except OSError:
        pass


class ViewWriter:
    """The fold's handle on the store: ``with ViewWriter(path) as view``. What a pass saves
    stays in one open transaction until ``commit``; leaving without it undoes all of it."""

    def __init__(self, path: Path):
        self.path = path
        self._db: Optional[sqlite3.Connection] = None
        self._aside: Optional[Path] = None
        # The event kinds this pass met, by kind and by code (a pass that is not committed
        # forgets them with its writer); a rebuild keeps only these.
        self._codes: Dict[Kind, int] = {}
        self._kinds: Dict[int, Kind] = {}

    def __enter__(self) -> "ViewWriter":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db, self._aside = _open_store(self.path)
        except sqlite3.Error as exc:
            raise _cannot_write(self.path, exc) from exc
        return self

    def __exit__(self, kind, exc, trace) -> None:
        if self._db is not None:
            self._db.close()  # without a commit: what was saved since is rolled back
            self._db = None
        if self._aside is not None:  # a new store whose first pass did not get in
            if isinstance(exc, sqlite3.Error):
                _left_unmade(self.path, self._aside)
            else:
                self._aside.unlink(missing_ok=True)
        if isinstance(exc, sqlite3.Error):  # a full disk mid-pass: said in words, with its code
            raise _cannot_write(self.path, exc) from exc

    def commit(self) -> None:
        """Make everything saved since the last commit visible to readers, at once."""
        self._db.commit()
        if self._aside is None:
            return
        # A new store: on disk, in WAL mode, then renamed into place.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.close()
        self._db = None
        with open(self._aside, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(self._aside, self.path)
        self._aside = None
        self._db = _connect(self.path)

    @property
    def complete(self) -> bool:
        """Whether a pass ever wrote every row (a new or reset store holds none)."""
        return self._db.execute("SELECT 1 FROM meta WHERE key = 'complete'").fetchone() is not None

    def save_rows(self, rows: Iterable[StoredRow], replace_all: bool) -> None:
        """Store these rows (``StoredRow``)."""
        if replace_all:
            self._db.execute("DELETE FROM tags")
        _insert(self._db, "INSERT OR REPLACE INTO tags (id, short_id, message_id, created, row, line) VALUES ",
                _by_key(list(rows)), replace_all)
        if replace_all:
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('complete', '1')")
        # Readers compare this to know that something changed.
        self._db.execute("INSERT INTO meta (key, value) VALUES ('generation', '1') "
                         "ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1")

    def register_lines(self) -> List[Tuple[str, str]]:
        """(id, register line) of every tag with a row, in the register's order (``ordered_tags``)."""
        return self._db.execute("SELECT id, line FROM tags ORDER BY created, id").fetchall()

    def tags_with_events(self) -> set:
        return {tag for (tag,) in self._db.execute("SELECT tag FROM timelines")}

    def event_codes(self, kinds: Iterable[Kind]) -> List[int]:
        """The code of each kind of event, in this pass's transaction; a kind the store does not
        hold yet is added (a pass that is not committed adds none)."""
        codes = []
        for kind in kinds:
            code = self._codes.get(kind)
            if code is None:
                kind = (kind[0], int(kind[1]), kind[2], kind[3])  # counted as readers get it back
                text = compact_json(list(kind))
                found = self._db.execute("SELECT code FROM event_kinds WHERE kind = ?", (text,)).fetchone()
                code = found[0] if found else self._db.execute(
                    "INSERT INTO event_kinds (kind) VALUES (?)", (text,)).lastrowid
                self._codes[kind], self._kinds[code] = code, kind
            codes.append(code)
        return codes

    def events_of(self, text: str) -> List[Event]:
        """The events of a timeline's stored text (``events_text``)."""
        coded = coded_events(text)
        missing = {code for _, code in coded if code not in self._kinds}
        for code, kind in _kinds_of(self._db, missing).items():
            self._kinds[code] = kind
            self._codes.setdefault(kind, code)
        return [(stamp, *self._kinds[code]) for stamp, code in coded]

    def save_timelines(self, changed: Dict[str, List[Event]], replace_all: bool,
                       encoded: Optional[Dict[str, str]] = None, appended: Iterable[str] = ()) -> None:
        """Store these timelines (their latest TIMELINE_LENGTH events); those of the tags in
        ``appended`` are new events, after those stored. ``encoded``: more, each already in the
        store's text (``events_text``, its codes from ``event_codes``)."""
        after = set(appended)
        if replace_all:
            self._db.execute("DELETE FROM timelines")
        rows = []
        for tag, events in changed.items():
            events = events[-TIMELINE_LENGTH:]
            text = events_text([event[0] for event in events], self.event_codes([event[1:] for event in events]))
            if tag in after:
                stored = self._db.execute("SELECT events FROM timelines WHERE tag = ?", (tag,)).fetchone()
                text = latest_events(stored[0], text) if stored else text
            rows.append((tag, text))
        rows.extend((encoded or {}).items())
        self._db.executemany("INSERT OR REPLACE INTO timelines (tag, events) VALUES (?, ?)", _by_key(rows))
        if replace_all:
            # Every timeline was written by this pass: the kinds it did not meet are no one's.
            unnamed = [(code,) for (code,) in self._db.execute("SELECT code FROM event_kinds")
                       if code not in self._kinds]
            self._db.executemany("DELETE FROM event_kinds WHERE code = ?", unnamed)

    def fold_state(self) -> Tuple[Dict[str, str], Iterable[tuple]]:
        """The fold's state as it last saved it: its entries by key, and per tag (tag, parts,
        data, memory, evidence, the tag's row: the state keeps no copy of what the row holds)."""
        entries = dict(self._db.execute("SELECT key, value FROM fold_state"))
        return entries, self._db.execute(
            "SELECT fold_tags.tag, fold_tags.parts, fold_tags.data, fold_tags.memory, fold_tags.evidence, "
            "tags.row FROM fold_tags LEFT JOIN tags ON tags.id = fold_tags.tag")

    def fold_state_entry(self, key: str) -> Optional[str]:
        found = self._db.execute("SELECT value FROM fold_state WHERE key = ?", (key,)).fetchone()
        return found[0] if found else None

    def save_fold_state(self, entries: Dict[str, str], tags: Iterable[tuple], replace_all: bool) -> None:
        """Store the fold's entries and these tags' (tag, parts, data, memory, evidence) (all of
        them: ``replace_all``)."""
        if replace_all:
            self._db.execute("DELETE FROM fold_state")
            self._db.execute("DELETE FROM fold_tags")
        self._db.executemany("INSERT OR REPLACE INTO fold_state (key, value) VALUES (?, ?)", entries.items())
        _insert(self._db, "INSERT OR REPLACE INTO fold_tags (tag, parts, data, memory, evidence) VALUES ",
                _by_key(list(tags)), replace_all)

    def ordered_tags(self) -> List[str]:
        """The ids of the tags with a row, in the register's order (by when they were made)."""
        return [tag for (tag,) in self._db.execute("SELECT id FROM tags ORDER BY created, id")]


def _kinds_of(db: sqlite3.Connection, codes: Iterable[int]) -> Dict[int, Kind]:
    """The kinds of these codes that the store holds."""
    found: Dict[int, Kind] = {}
    for code, text in _rows_in(db, "SELECT code, kind FROM event_kinds WHERE code IN", list(codes)):
        label, counted, reason, client = loads(text)
        found[code] = (label, counted, reason, client)
    return found


# An IN list goes to SQLite this many values at a time (its bound on a statement's parameters
# was 999 before 3.32).
_IN_AT_ONCE = 500


def _rows_in(db: sqlite3.Connection, select: str, values: list) -> List[tuple]:
    """The rows of ``select`` (which ends in "IN") for these values, asked a part at a time."""
    rows: List[tuple] = []
    for start in range(0, len(values), _IN_AT_ONCE):
        part = values[start:start + _IN_AT_ONCE]
        rows += db.execute(f"{select} ({','.join('?' * len(part))})", part).fetchall()
    return rows


# Rows a statement of ``_insert`` takes at once (SQLite allows 32,766 parameters from 3.32 on,
# 999 before: tags' six columns fit).
_ROWS_AT_ONCE = 100


def _insert(db: sqlite3.Connection, insert: str, rows: list, into_empty: bool) -> None:
    """``executemany`` of ``insert`` (up to "VALUES ") with these rows (tuples of one length); into
    an empty table (``into_empty``: a first fold, a rebuild) many rows a statement, 50,000 rows in a
    fifth less time. A pass's few rows, replacing rows spread through a full table, go one a
    statement: many a statement they took longer (a 1k-hit pass after 1M: about 25 ms more)."""
    if not rows:
        return
    one = "(" + ", ".join("?" * len(rows[0])) + ")"
    if not into_empty:
        db.executemany(insert + one, rows)
        return
    whole = len(rows) - len(rows) % _ROWS_AT_ONCE
    if whole:
        db.executemany(insert + ", ".join([one] * _ROWS_AT_ONCE),
                       [tuple(chain.from_iterable(rows[at:at + _ROWS_AT_ONCE])) for at in range(0, whole, _ROWS_AT_ONCE)])
    db.executemany(insert + one, rows[whole:])


def _by_key(rows: list) -> list:
    """Rows in the order of their key (the first item): a table takes them at its end, page
    after page, where rows in the order of a dict would split pages all over its index (a
    first fold of 50,000 tags: a third of the time)."""
    rows.sort(key=itemgetter(0))
    return rows


class ViewReader:
    """A read-only connection: it never writes, and never waits for the fold."""

    def __init__(self, path: Path):
        self.path = path
        self._db: Optional[sqlite3.Connection] = None
        # The event kinds read so far: a code never names another kind in the same store.
        self._kinds: Dict[int, Kind] = {}
        if path.exists():
            if path.stat().st_size == 0:
                raise _cannot_read(path, "it is empty, the last fold could not write it")
            try:
                self._db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=1)
            except sqlite3.Error as exc:
                raise _cannot_read(path, exc) from exc

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _query(self, sql: str, args=()) -> list:
        if self._db is None:
            return []
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise _cannot_read(self.path, exc) from exc

    def rows(self) -> List[dict]:
        return [dict(zip(ROW_KEYS, values)) for values in self.row_values()]

    def row_values(self) -> List[list]:
        """Every row's values (in ``ROW_KEYS``' order), by when its tag was made."""
        return [loads(row) for (row,) in self._query("SELECT row FROM tags ORDER BY created, id")]

    def row(self, tag_id: str) -> Optional[dict]:
        found = self._query("SELECT row FROM tags WHERE id = ?", (tag_id,))
        return dict(zip(ROW_KEYS, loads(found[0][0]))) if found else None

    def ids_with_prefix(self, prefix: str) -> List[str]:
        return [tag_id for (tag_id,) in self._query(
            "SELECT id FROM tags WHERE id >= ? AND id < ? LIMIT 2", (prefix, prefix + "\x7f"))]

    def ids_where(self, column: str, value: str) -> List[str]:
        assert column in ("short_id", "message_id")
        return [tag_id for (tag_id,) in self._query(
            f"SELECT id FROM tags WHERE {column} = ? ORDER BY created", (value,))]

    def timeline(self, tag_id: str) -> List[Event]:
        return self.timelines([tag_id]).get(tag_id, [])

    def timelines(self, tag_ids: Iterable[str]) -> Dict[str, List[Event]]:
        """These tags' timelines (the tags with none are left out), read at once."""
        if self._db is None:
            return {}
        try:
            # The timelines and their kinds as one pass left them (a rebuild deletes kinds).
            self._db.execute("BEGIN")
            try:
                coded = {tag: coded_events(events) for tag, events in _rows_in(
                    self._db, "SELECT tag, events FROM timelines WHERE tag IN", list(tag_ids))}
                kinds = self._kinds
                kinds.update(_kinds_of(self._db, {code for events in coded.values() for _, code in events
                                                  if code not in kinds}))
            finally:
                self._db.execute("COMMIT")
            return {tag: [(stamp, *kinds[code]) for stamp, code in events] for tag, events in coded.items()}
        except sqlite3.Error as exc:
            raise _cannot_read(self.path, exc) from exc
        except (ValueError, KeyError) as exc:
            raise _cannot_read(self.path, f"a timeline is not as this version keeps one ({exc!r}); "
                                          "was it written by another version?") from exc

    def generation(self) -> int:
        found = self._query("SELECT value FROM meta WHERE key = 'generation'")
        return int(found[0][0]) if found else 0
