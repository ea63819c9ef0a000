"""Each tag's latest hits with their labels, for the views (Thunderbird's status,
``show``, the tray, the report): a small SQLite table beside the fold state.

The fold reads and rewrites only the rows of the tags it touched, so a new hit
costs the same however many tags and hits came before. The counts themselves
live in the fold state; losing a timeline row loses only what a view shows,
and ``mailtracker rebuild`` regenerates it.
"""

import sqlite3
from pathlib import Path
from typing import Dict, Iterable, List, Tuple

Event = Tuple[str, str, int, str, str]  # time, label, counted 0/1, reason code, client
TIMELINE_LENGTH = 50


def _pack(events: Iterable[Event]) -> str:
    return "\n".join("\t".join((stamp, label, str(counted), reason, client.replace("\t", " ")))
                     for stamp, label, counted, reason, client in events)


def _unpack(packed: str) -> List[Event]:
    events = []
    for line in packed.split("\n") if packed else ():
        stamp, label, counted, reason, client = line.split("\t")
        events.append((stamp, label, int(counted), reason, client))
    return events


class TimelineStore:
    """Open with ``with TimelineStore(path) as store``; every write is one transaction."""

    def __init__(self, path: Path):
        self.path = path
        self._db = None

    def __enter__(self) -> "TimelineStore":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS timelines (tag TEXT PRIMARY KEY, events TEXT NOT NULL)")
        return self

    def __exit__(self, *exc) -> None:
        self._db.close()
        self._db = None

    def get(self, tag: str) -> List[Event]:
        row = self._db.execute("SELECT events FROM timelines WHERE tag = ?", (tag,)).fetchone()
        return _unpack(row[0]) if row else []

    def all(self) -> Dict[str, List[Event]]:
        return {tag: _unpack(events) for tag, events in self._db.execute("SELECT tag, events FROM timelines")}

    def save(self, changed: Dict[str, List[Event]], replace_all: bool = False) -> None:
        with self._db:
            if replace_all:
                self._db.execute("DELETE FROM timelines")
            self._db.executemany(
                "INSERT OR REPLACE INTO timelines (tag, events) VALUES (?, ?)",
                ((tag, _pack(events[-TIMELINE_LENGTH:])) for tag, events in changed.items()))


def read_timeline(path: Path, tag: str) -> List[Event]:
    if not path.exists():
        return []
    with TimelineStore(path) as store:
        return store.get(tag)
