"""The user's marks beside the logs: which opens they have seen, which opens they
have been told about, and whether tracking is paused.

The tray is the one writer of ``state/marks.json``; the native host reads the
pause from it. Marks count opens per tag rather than remember times, so an
open that arrives late (a sync tool catching up) is still new, and a re-fold
of the same hits, which gives the same counts, is not.
"""

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable

from mailtracker.core.files import read_versioned_json, write_file_atomically
from mailtracker.core.paths import Home
from mailtracker.desktop.register import Row

log = logging.getLogger(__name__)

MARKS_VERSION = 1


@dataclass
class Marks:
    """Per tag, the opens seen and the opens notified; and the pause switch."""

    paused: bool = False
    seen: Dict[str, int] = field(default_factory=dict)
    notified: Dict[str, int] = field(default_factory=dict)
    # Per tag, the clicks notified (as ``notified`` is for opens).
    clicks_notified: Dict[str, int] = field(default_factory=dict)
    # False until the first fold after the marks were created: the history that
    # fold finds is taken as seen and told, not announced as new.
    baselined: bool = False

    @classmethod
    def load(cls, home: Home) -> "Marks":
        doc = read_versioned_json(marks_path(home), MARKS_VERSION, "starting with every open seen")
        if doc is None:
            return cls()
        return cls(paused=bool(doc.get("paused")), seen=_counts(doc.get("seen")),
                   notified=_counts(doc.get("notified")),
                   clicks_notified=_counts(doc.get("clicks_notified")), baselined=True)

    def save(self, home: Home) -> None:
        doc = {"version": MARKS_VERSION, "paused": self.paused, "seen": self.seen,
               "notified": self.notified, "clicks_notified": self.clicks_notified}
        write_file_atomically(marks_path(home), json.dumps(doc, separators=(",", ":")).encode("utf-8"),
                              mode=0o600, replace_existing=True)

    def baseline(self, rows: Iterable[Row]) -> None:
        """Take every open counted so far as seen and told."""
        for row in rows:
            self.seen[row.id] = self.notified[row.id] = row.opens
            self.clicks_notified[row.id] = row.clicks
        self.baselined = True

    def unseen(self, row: Row) -> int:
        """Opens of this tag the user has not marked as seen."""
        return max(0, row.opens - self.seen.get(row.id, 0))

    def mark_all_seen(self, rows: Iterable[Row]) -> None:
        for row in rows:
            self.seen[row.id] = row.opens


def marks_path(home: Home) -> Path:
    return home.state_dir / "marks.json"


def tracking_paused(home: Home) -> bool:
    """Whether the user paused tracking (from the tray); new emails then get no pixel."""
    return Marks.load(home).paused


def _counts(value) -> Dict[str, int]:
    if not isinstance(value, dict):
        return {}
    return {str(key): int(count) for key, count in value.items() if isinstance(count, int)}
