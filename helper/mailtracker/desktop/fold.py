"""Folding the logs into counts: read what is new in tags.csv, self-fetches.csv
and every hits-*.csv, count each hit exactly once, and write what readers see:
register.csv and the read model (``view``).

The fold remembers how far it read each log (``tail.Cursor``) and which hits it
has counted, so a new hit costs the same however long the history is, and a
log read twice, replaced by a sync tool, or copied as a Syncthing conflict
file never counts a hit twice. Its state is private to this module; it rests in
the read model's store (``view``), one row per tag, and a pass writes only the
tags it touched, in the same transaction as the rows and timelines, under a lock:
an interrupted fold leaves the previous, correct state. What counts is decided by ``classify.Judge``.
The hot loop is ``fold_hit_lines``; big batches (a first fold, a rebuild, days
offline) go to ``fastfold``, which counts them as columns with polars when it is
installed and gives exactly the same results (the per-line loop is its reference).
"""

import bisect
import logging
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from filelock import FileLock, Timeout

from mailtracker.core.bulk import collector_paused, return_free_memory
from mailtracker.core.errors import LockTimeoutError, RegisterLockedError
from mailtracker.core.hitline import HITS_GLOB, is_header, split_hit_line
from mailtracker.core.origins import Origins
from mailtracker.core.paths import DeviceLog, Home
from mailtracker.core.settings import Config, load_config
from mailtracker.core.timestamps import parse_timestamp
from mailtracker.core.tokens import PROBE_TAG_PREFIX, short_id
from mailtracker.desktop.classify import PERSON_LABELS, SELF_BEFORE_S, Judge, Rules, load_ranges
from mailtracker.desktop.counts import MEMORY_AT, Counts, packed_apart  # MEMORY_AT: where packed() has the memory
from mailtracker.desktop.elsewhere import note_opens
from mailtracker.desktop.platforms import Platform
from mailtracker.desktop.register import (Row, plain_stored_rows, stored_rows, stored_rows_of_values, stored_tag_fields,
                                          write_register_lines)
from mailtracker.desktop.replies import REPLY_COLUMNS, packed_reply, parse_replies, replies_columns, reply_of
from mailtracker.desktop.tags import (
    LINK_COLUMNS,
    SELF_FETCH_COLUMNS,
    TAG_COLUMNS,
    parse_links,
    parse_self_fetches,
    parse_tag_records,
    read_columns,
    records_end,
    split_records,
)
from mailtracker.desktop.tail import Cursor, read_new_data
from mailtracker.desktop.view import StoredRow, ViewWriter, compact_json, compact_json_each, loads, view_path
from mailtracker.desktop.visibility import (
    SEEN,
    Knowledge,
    MailFacts,
    addresses,
    evidence_of,
    learned,
    mail_columns,
    note_machine_fetches,
    opened_evidence,
)

log = logging.getLogger(__name__)

STATE_VERSION = 12
FOLD_LOCK_TIMEOUT_S = 120.0
# Where the state rested up to version 8, as one JSON file rewritten whole by every pass; an
# old home counts its logs again into the store, and the file is removed.
LEGACY_STATE_FILE = "fold-state.json"


class SeenHits:
    """The hit ids already counted, as runs of sequence numbers per writer boot.

    Each server process numbers its hits from 1 (see ``core.hitline``), so the
    ids it wrote collapse into one run and the set stays tiny.
    """

    def __init__(self, runs: Optional[Dict[str, List[List[int]]]] = None):
        self.runs = runs or {}

    def add(self, boot: str, seq: int) -> bool:
        """Record a hit; False when it was counted before."""
        runs = self.runs.get(boot)
        if runs is None:
            self.runs[boot] = [[seq, seq]]
            return True
        last = runs[-1]
        if seq == last[1] + 1:
            last[1] = seq
            return True
        if seq > last[1]:
            runs.append([seq, seq])
            return True
        i = bisect.bisect_right(runs, [seq, float("inf")]) - 1
        if i >= 0 and runs[i][1] >= seq:
            return False
        joins_left = i >= 0 and runs[i][1] + 1 == seq
        joins_right = runs[i + 1][0] - 1 == seq
        if joins_left and joins_right:
            runs[i][1] = runs[i + 1][1]
            del runs[i + 1]
        elif joins_left:
            runs[i][1] = seq
        elif joins_right:
            runs[i + 1][0] = seq
        else:
            runs.insert(i + 1, [seq, seq])
        return True


@dataclass
class FoldResult:
    """What one fold pass did, for the CLI and the watcher to report."""

    new_hits: int = 0
    new_opens: int = 0
    new_clicks: int = 0
    new_replies: int = 0
    duplicate_hits: int = 0
    new_tags: int = 0
    new_moments: int = 0
    skipped_lines: int = 0
    unknown_tag_hits: int = 0
    files_read: int = 0
    # Entries of the hits folder named like hits files that were not read: folders,
    # FIFOs, devices, symlinks (a synced folder carries whatever the other side has).
    skipped_entries: List[str] = field(default_factory=list)
    register_written: bool = False
    register_error: str = ""
    # The tags whose rows or timelines this pass changed.
    touched: set = field(default_factory=set, repr=False)
    # Another computer's log brought a moment (a send, a display) for a tag whose hits were
    # already labelled without it: the history is counted again (``fold``).
    recount: bool = False

    def summary(self) -> str:
        parts = [f"{self.new_opens} new opens", f"{self.new_hits} new hits"]
        if self.new_clicks:
            parts.insert(1, f"{self.new_clicks} new clicks")
        if self.new_replies:
            parts.insert(1, f"{self.new_replies} new replies")
        if self.new_tags:
            parts.append(f"{self.new_tags} new tags")
        if self.duplicate_hits:
            parts.append(f"{self.duplicate_hits} already counted")
        if self.unknown_tag_hits:
            parts.append(f"{self.unknown_tag_hits} for tags not in tags.csv")
        if self.skipped_lines:
            parts.append(f"{self.skipped_lines} unreadable lines skipped")
        text = ", ".join(parts) + f" from {self.files_read} files"
        if self.skipped_entries:
            names = ", ".join(self.skipped_entries[:3]) + (", ..." if len(self.skipped_entries) > 3 else "")
            text += (f"; skipped {len(self.skipped_entries)} entries of the hits folder that are "
                     f"not regular files ({names})")
        if self.register_written:
            text += "; register.csv updated"
        return text


# The parts of a tag's data the state keeps besides its tags.csv fields, in the store's order.
_PARTS = ("counts", "moments", "links", "replies", "machine", "places")  # and so in ``_pack``
# A tag's value in a part not decoded yet (``_Parts``).
_UNREAD = object()


class StateDamaged(Exception):
    """A tag's data in the store cannot be read: the fold counts the logs again. No ValueError:
    a pass reads a tag's data where a ValueError means a hit line it skips."""


class _ReadWhenAsked(dict):
    """A dict some of whose values are worked out when first asked for (``_Parts``, ``_Known``):
    each way of reading every value works all of them out first (``_read_all``)."""

    def _read_all(self) -> None:
        raise NotImplementedError

    def items(self):
        self._read_all()
        return dict.items(self)

    def values(self):
        self._read_all()
        return dict.values(self)

    def copy(self) -> dict:
        return dict(self.items())

    def __eq__(self, other) -> bool:
        return dict(self.items()) == other

    __hash__ = None


class _Parts(_ReadWhenAsked):
    """One part of the tags' data (``_FoldState.tags``, ``counts``...) of a state read back from
    the store: a tag's value stays ``_UNREAD`` until it is asked for (a pass touches a few of
    50,000 tags), then all of that tag's data is decoded (``_Unread.decode``). Each way of
    reading values decodes them first; keys, ``in`` and setting are a dict's own."""

    def __init__(self):
        super().__init__()
        self.unread: Optional["_Unread"] = None

    def __getitem__(self, tag):
        value = dict.__getitem__(self, tag)
        if value is _UNREAD:
            self.unread.decode(tag)
            value = dict.__getitem__(self, tag)
        return value

    def get(self, tag, default=None):
        value = dict.get(self, tag, default)
        if value is _UNREAD:
            self.unread.decode(tag)
            value = dict.__getitem__(self, tag)
        return value

    def setdefault(self, tag, default=None):
        if tag in self:
            return self[tag]
        dict.__setitem__(self, tag, default)
        return default

    def pop(self, tag, *default):
        if tag in self:
            self[tag]
        return dict.pop(self, tag, *default)

    def popitem(self):
        raise NotImplementedError("a part of the fold state gives no item at random")

    def _read_all(self) -> None:
        self.unread.decode_all()


class _Unread:
    """The data of the tags of a state read back from the store that were not asked for yet:
    tag -> (data, memory, row) as ``_FoldState.load`` read them."""

    def __init__(self, state: "_FoldState"):
        self.state = state
        self.raw: Dict[str, tuple] = {}
        self.parts = [getattr(state, name) for name in _PARTS]
        for part in (state.tags, *self.parts):
            part.unread = self

    def decode(self, tag: str) -> None:
        raw = self.raw.pop(tag, None)
        if raw is None:
            raise StateDamaged(f"the fold state has no data of tag {tag}")
        self.state.decode(tag, *raw)

    def decode_all(self) -> None:
        for tag in list(self.raw):
            self.decode(tag)


class _Known(_ReadWhenAsked):
    """``_FoldState.known`` of a state read back from the store: an address's knowledge is learned
    from its mails' evidence (``_FoldState.relearn``) when first asked for, as ``load`` once
    learned every address's (a pass asks for a few). Each way of reading learns first."""

    def __init__(self):
        super().__init__()
        self.state: Optional["_FoldState"] = None
        self.pending: set = set()

    def _learn(self, address) -> None:
        if address in self.pending:
            self.pending.discard(address)
            try:
                self.state.relearn(address)
            except (KeyError, TypeError, ValueError) as exc:
                raise StateDamaged(f"the fold state of {address} is damaged ({exc})") from None

    def _read_all(self) -> None:
        for address in list(self.pending):
            self._learn(address)

    def __getitem__(self, address):
        self._learn(address)
        return dict.__getitem__(self, address)

    def get(self, address, default=None):
        self._learn(address)
        return dict.get(self, address, default)

    def __contains__(self, address) -> bool:
        self._learn(address)
        return dict.__contains__(self, address)

    def setdefault(self, address, default=None):
        self._learn(address)
        return dict.setdefault(self, address, default)

    def pop(self, address, *default):
        self._learn(address)
        return dict.pop(self, address, *default)

    def popitem(self):
        self._read_all()
        return dict.popitem(self)

    def __setitem__(self, address, known) -> None:
        self.pending.discard(address)
        dict.__setitem__(self, address, known)

    def __delitem__(self, address) -> None:
        self._learn(address)
        dict.__delitem__(self, address)

    def __iter__(self):
        self._read_all()
        return dict.__iter__(self)

    def __len__(self) -> int:
        self._read_all()
        return dict.__len__(self)

    def keys(self):
        self._read_all()
        return dict.keys(self)


@dataclass
class _FoldState:
    """Everything the fold remembers between passes; all of it derived from the logs."""

    files: Dict[str, Cursor] = field(default_factory=dict)
    tags_cursor: Cursor = field(default_factory=Cursor)
    self_cursor: Cursor = field(default_factory=Cursor)
    links_cursor: Cursor = field(default_factory=Cursor)
    # How far each log of the devices folder was read, by its file name (a replies log
    # of a home used from one computer too: replies.csv).
    device_cursors: Dict[str, Cursor] = field(default_factory=dict)
    replies_cursor: Cursor = field(default_factory=Cursor)
    # tag -> [[reply_id, from, time, epoch seconds, verdict, reason, recipient]], from every
    # computer's replies log, each reply once (replies.Reply.key) whichever computer reported it.
    replies: Dict[str, List[list]] = field(default_factory=dict)
    # tag -> {link number as a string: [target, text]}, from links.csv
    links: Dict[str, Dict[str, list]] = field(default_factory=dict)
    # tag -> [[epoch seconds, reason]]: moments the sender's Thunderbird may fetch it.
    moments: Dict[str, List[list]] = field(default_factory=dict)
    labels: str = ""
    seen: SeenHits = field(default_factory=SeenHits)
    tags: Dict[str, Dict[str, str]] = field(default_factory=dict)
    counts: Dict[str, Counts] = field(default_factory=dict)
    # What the "not seen" states are learned from (``visibility``): tag -> its machine fetches'
    # memory; address -> {tag: what that mail says of it (Evidence.packed)}, only the mails that
    # say something; address -> its knowledge (only the addresses in a state).
    machine: Dict[str, list] = field(default_factory=dict)
    evidence: Dict[str, Dict[str, list]] = field(default_factory=dict)
    known: Dict[str, Knowledge] = field(default_factory=dict)
    # tag -> [programs, networks, times of the opens from somewhere new] (``elsewhere``).
    places: Dict[str, list] = field(default_factory=dict)
    register_pending: bool = True
    # The odd entries of the hits folder already warned about (each is named once).
    odd_entries: List[str] = field(default_factory=list)

    # Not saved: the tags whose data changed outside ``FoldResult.touched`` (a moment, a new
    # entry of counts), and whether the store holds this state as its last pass saved it.
    dirty: set = field(default_factory=set)
    stored: bool = False
    # ``order()`` as it last was; a tags.csv row read since forgets it.
    ordered: Optional[List[str]] = None

    @classmethod
    def load(cls, view: ViewWriter) -> "_FoldState":
        entries, tag_rows = view.fold_state()
        core = entries.get("core")
        if core is None:
            return cls()
        try:
            doc = loads(core)
            if doc.get("version") != STATE_VERSION:
                log.info("the fold state is from another version; rebuilding it from the logs")
                return cls()
            state = cls(
                **{name: _Parts() for name in ("tags", *_PARTS)}, known=_Known(),
                files={name: Cursor.from_json(c) for name, c in doc["files"].items()},
                tags_cursor=Cursor.from_json(doc["tags_cursor"]),
                self_cursor=Cursor.from_json(doc["self_cursor"]),
                links_cursor=Cursor.from_json(doc["links_cursor"]),
                device_cursors={name: Cursor.from_json(c) for name, c in doc["device_cursors"].items()},
                replies_cursor=Cursor.from_json(doc["replies_cursor"]),
                labels=doc["labels"],
                seen=SeenHits(doc["seen"]),
                register_pending=doc["register_pending"],
                odd_entries=list(doc["odd_entries"]),
            )
            unread = _Unread(state)
            state.known.state = state
            for tag, parts, data, memory, evidence, row in tag_rows:
                # Each tag's data is decoded when first asked for (``_Unread``): a pass touches few.
                unread.raw[tag] = (data, memory, row)
                if row is not None:  # a tag of tags.csv: its fields are its row's
                    dict.__setitem__(state.tags, tag, _UNREAD)
                for at, part in enumerate(unread.parts):
                    if parts >> at & 1:
                        dict.__setitem__(part, tag, _UNREAD)
                for address, packed in (loads(evidence) if evidence is not None else {}).items():
                    state.evidence.setdefault(address, {})[tag] = packed
            # Each address's knowledge is what its mails' evidence says: learned when first asked for.
            state.known.pending.update(state.evidence)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning("the fold state in %s is damaged (%s); rebuilding it from the logs", view.path, exc)
            return cls()
        state.stored = True
        return state

    def decode(self, tag: str, data: str, memory: Optional[str], row: Optional[str]) -> None:
        """Decode a tag's data as ``load`` read it (``_Unread``): each of its parts not set since."""
        try:
            values = loads(data)
            if row is not None:
                values.insert(0, stored_tag_fields(loads(row)))
            counts = values[1 if row is not None else 0]
            if counts is not None:
                counts[MEMORY_AT] = memory
                values[1 if row is not None else 0] = Counts.unpacked(counts)
        except (TypeError, ValueError, IndexError) as exc:
            raise StateDamaged(f"the fold state of tag {tag} is damaged ({exc})") from None
        names = ("tags", *_PARTS) if row is not None else _PARTS
        if len(values) != len(names):
            raise StateDamaged(f"the fold state of tag {tag} is damaged (not its parts)")
        for name, value in zip(names, values):
            part = getattr(self, name)
            if dict.get(part, tag) is _UNREAD:
                if value is None:
                    raise StateDamaged(f"the fold state of tag {tag} is damaged (no {name})")
                dict.__setitem__(part, tag, value)

    def save(self, view: ViewWriter, touched: set, packed: Optional[List[tuple]] = None) -> str:
        """Into the store's open transaction: everything but the tags, and the data of the
        tags changed since the last save (every tag's when the store does not hold this
        state yet: ``packed``, when ``stored_all`` gave it). The id of this save, which the next
        pass compares (``_Kept``)."""
        core = {
            "version": STATE_VERSION,
            "files": {name: c.to_json() for name, c in self.files.items()},
            "tags_cursor": self.tags_cursor.to_json(),
            "self_cursor": self.self_cursor.to_json(),
            "links_cursor": self.links_cursor.to_json(),
            "device_cursors": {name: c.to_json() for name, c in self.device_cursors.items()},
            "replies_cursor": self.replies_cursor.to_json(),
            "labels": self.labels,
            "seen": self.seen.runs,
            "register_pending": self.register_pending,
            "odd_entries": self.odd_entries,
        }
        if packed is None:
            tags = touched | self.dirty if self.stored else self._every_tag()
            said = self._said()
            packed = [self._packed(tag, tag in said) for tag in tags]
        saved = uuid.uuid4().hex
        view.save_fold_state({"core": compact_json(core), "saved": saved}, packed, replace_all=not self.stored)
        return saved

    def _every_tag(self) -> set:
        return set().union(self.tags, self.counts, self.moments, self.links, self.replies, self.machine, self.places)

    def _said(self) -> set:
        """The tags whose mail says something of an address (few: the rest say nothing)."""
        return {tag for by_tag in self.evidence.values() for tag in by_tag}

    def _packed(self, tag: str, said: bool) -> tuple:
        return self._pack(tag, said, self.counts.get(tag), self.moments.get(tag), self.links.get(tag),
                          self.replies.get(tag), self.machine.get(tag), self.places.get(tag))

    def _pack(self, tag: str, said: bool, counts: Optional[Counts], moments, links, replies, machine,
              places) -> tuple:
        """A tag's data as the store keeps it: (tag, which parts it has (a bit each, in _PARTS'
        order), [counts, moments, links, replies, machine, places] each null when there is none,
        its counts' memory, its evidence); evidence is what this mail says of each of its
        addresses ({address: Evidence.packed}). ``said``: False when the mail is known to say
        nothing of any address. Its tags.csv fields are in its row."""
        memory = None
        if counts is not None:
            counts = counts.packed()
            memory, counts[MEMORY_AT] = counts[MEMORY_AT], None  # as it is: no JSON in JSON
        values = [counts, moments, links, replies, machine, places]
        parts = ((counts is not None) | (moments is not None) << 1 | (links is not None) << 2
                 | (replies is not None) << 3 | (machine is not None) << 4 | (places is not None) << 5)
        evidence = self._evidence_of(tag) if said else None
        return tag, parts, compact_json(values), memory, compact_json(evidence) if evidence is not None else None

    def relearn(self, address: str) -> bool:
        """Learn the address's knowledge again from its mails' evidence (only addresses in a
        state are kept); True when it changed."""
        known = learned(self.evidence.get(address, {}))
        if not known.state:
            return self.known.pop(address, None) is not None
        if known == self.known.get(address):
            return False
        self.known[address] = known
        return True

    def _evidence_of(self, tag: str) -> Optional[Dict[str, list]]:
        """This mail's entries in ``evidence``: only its recipients and repliers can have one."""
        senders = [packed[1] for packed in self.replies.get(tag, ()) if packed[4] == "reply"]
        recipients = (self.tags.get(tag) or {}).get("recipients", "")
        found = {}
        for address in addresses("; ".join([recipients, *senders])):
            packed = self.evidence.get(address, {}).get(tag)
            if packed is not None:
                found[address] = packed
        return found or None

    def row(self, tag_id: str) -> Row:
        """The tag's register row: its tags.csv fields, its counts and replies, and what its
        recipients' history says of the opens it can show."""
        row = self.counted_row(tag_id)
        columns = mail_columns(row, self.known)
        places = self.places.get(tag_id)
        elsewhere = " ".join(places[2]) if places else ""
        if not columns["not_seen"] and not elsewhere:
            return row  # most rows: no copy
        return row.but(**columns, opened_elsewhere=elsewhere)

    def counted_row(self, tag_id: str) -> Row:
        """The tag's row from its own logs alone (its "not seen" columns empty)."""
        return Row.of(tag_id, self.tags.get(tag_id, {}), self.counts.get(tag_id) or Counts(),
                      self.links.get(tag_id, {}), replies_columns(self.replies.get(tag_id, ())))

    def order(self) -> List[str]:
        """The tags in the register's order: by when they were made."""
        if self.ordered is None:
            self.ordered = [tag_id for tag_id, _ in sorted(
                self.tags.items(), key=lambda item: (item[1].get("created", ""), item[0]))]
        return self.ordered

    def rows(self) -> List[Row]:
        return [self.row(tag_id) for tag_id in self.order()]

    def stored_all(self) -> Tuple[List[StoredRow], List[tuple]]:
        """Every tag's row and data as the store keeps them (``register.stored_rows``, ``_packed``),
        for a save of all (a first fold, a rebuild: 50,000 tags): the rows of the tags with no
        links, clicks, replies or "not seen" state by the column (``plain_stored_rows``), the
        others by ``row``; the data by maps over the tags' parts (``_packed_all``)."""
        ordered = self.order()  # about the order their data was made in: quicker to read than by id
        every = [*ordered, *sorted(self._every_tag().difference(ordered))]
        counted = list(map(self.counts.get, every))
        return self._rows_all(every, counted), self._packed_all(every, counted)

    def _rows_all(self, every: List[str], counted: List[Optional[Counts]]) -> List[StoredRow]:
        """The rows of these tags (those in tags.csv), with their counts, as ``stored_all`` gives them."""
        tags, links, replies, places, known = self.tags, self.links, self.replies, self.places, self.known
        values = []
        plain, plain_fields, plain_counts, plain_places = [], [], [], []
        for tag, counts in zip(every, counted):
            fields = tags.get(tag)
            if fields is None:
                continue  # hits of a tag tags.csv does not have (yet): no row
            if counts is None:
                counts = _NO_COUNTS
            if counts.links or links.get(tag) or replies.get(tag) or (known and not counts.opened and any(
                    address in known for address in addresses(fields.get("recipients", "")))):
                values.append(self.row(tag).stored_values())
                continue
            found = places.get(tag)
            plain.append(tag)
            plain_fields.append(fields)
            plain_counts.append(counts)
            plain_places.append(" ".join(found[2]) if found else "")
        return stored_rows_of_values(values) + plain_stored_rows(plain, plain_fields, plain_counts, plain_places)

    def _packed_all(self, every: List[str], counted: List[Optional[Counts]]) -> List[tuple]:
        """``_packed`` of each of these tags, with their counts: each part read by a map, and the
        JSON written by ``compact_json_each``."""
        parts = [counted, *(list(map(getattr(self, name).get, every)) for name in _PARTS[1:])]
        packs, memories = packed_apart(counted)
        has = [[value is not None for value in part] for part in parts]
        bits = [counts | moments << 1 | links << 2 | replies << 3 | machine << 4 | places << 5
                for counts, moments, links, replies, machine, places in zip(*has)]
        data = compact_json_each(zip(packs, *parts[1:]))
        return list(zip(every, bits, data, memories, self._evidence_all(every)))

    def _evidence_all(self, every: List[str]) -> List[Optional[str]]:
        """``_evidence_of`` of each of these tags as JSON text (None where there is none): the
        evidence is read by tag once; a mail to one address without a reply that says something
        of it alone (most that say anything) is that entry, the others are read by ``_evidence_of``."""
        by_tag: Dict[str, list] = {}
        for address, kept in self.evidence.items():
            for tag, packed in kept.items():
                found = by_tag.get(tag)
                if found is None:
                    by_tag[tag] = [address, packed]
                else:
                    found.append(address)  # more than one address: read by _evidence_of
        tags, replies = self.tags, self.replies
        said, texts = [], []
        for tag, found in by_tag.items():
            fields = tags.get(tag)
            if len(found) == 2 and found[1] is not None and fields is not None and tag not in replies and \
                    addresses(fields.get("recipients", "")) == (found[0],):
                said.append(tag)
                texts.append({found[0]: found[1]})
                continue
            evidence = self._evidence_of(tag)
            if evidence is not None:
                said.append(tag)
                texts.append(evidence)
        return list(map(dict(zip(said, compact_json_each(texts))).get, every))


# The counts of a tag without a hit (never changed: ``stored_all`` reads it).
_NO_COUNTS = Counts()


_ORIGINS_CACHE: Dict[tuple, Origins] = {}


def load_origins(home: Home) -> Origins:
    """The network origins in force: 'ranges update''s snapshot, else the package's. Read
    once per process (a daemon folds often; reading the snapshot takes a fifth of a second)."""
    path = home.origins_path
    try:
        key = (str(path), path.stat().st_mtime_ns)
    except FileNotFoundError:
        key = ("shipped",)
    if key not in _ORIGINS_CACHE:
        _ORIGINS_CACHE.clear()
        _ORIGINS_CACHE[key] = Origins.load(path)
    return _ORIGINS_CACHE[key]


def fold(home: Home, config: Optional[Config] = None, rebuild: bool = False,
         progress: bool = False, platform: Optional[Platform] = None) -> FoldResult:
    """One fold pass over the home's logs; ``rebuild`` starts from the logs alone.
    ``platform``: how register.csv is replaced (a test hands in Windows')."""
    config = config or load_config(home)
    home.state_dir.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(home.state_dir / "fold.lock"), timeout=FOLD_LOCK_TIMEOUT_S):
            try:
                result = _fold_locked(home, config, rebuild, progress, platform)
            except StateDamaged as exc:  # found when the pass read that tag: nothing was saved
                log.warning("%s; rebuilding it from the logs", exc)
                rebuild = True
                result = _fold_locked(home, config, rebuild, progress, platform)
            if result.recount and not rebuild:
                # Rare (a computer catching up on another's logs): the same counts as the
                # computer whose log it is, at the cost of one rebuild.
                log.info("another computer's log labels hits counted before it arrived; "
                         "counting the history again")
                again = _fold_locked(home, config, True, progress, platform)
                result.register_written, result.register_error = again.register_written, again.register_error
            if rebuild or result.new_hits >= BIG_PASS_HITS:
                return_free_memory()  # what the pass held at its peak, a daemon need not keep
            return result
    except Timeout:
        raise LockTimeoutError(
            f"another mailtracker fold held the lock for {FOLD_LOCK_TIMEOUT_S:.0f} s; "
            "is a rebuild running?"
        ) from None


@dataclass
class _Kept:
    """What this process's last fold pass left: the state, the id of its save in the store,
    and each tag's register line. A daemon folds again and again: while the store holds that
    save, the next pass goes on from these instead of reading the state back and writing
    every line again (50,000 tags: a second a pass)."""

    saved: str
    state: "_FoldState"
    lines: Dict[str, str]


_KEPT: Dict[str, _Kept] = {}


def _fold_locked(home: Home, config: Config, rebuild: bool, progress: bool,
                 platform: Optional[Platform]) -> FoldResult:
    path = view_path(home.state_dir)
    # Taken out for the pass: a pass that fails leaves nothing to go on from but the store.
    kept = _KEPT.pop(str(path), None)
    result = FoldResult()
    # Millions of short-lived objects, none of them cyclic: the collector
    # would only rescan the state over and over.
    with collector_paused(), ViewWriter(path) as view, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="fold-logs") as pool:
        if rebuild:
            state, lines = _FoldState(), {}
        elif kept is not None and kept.saved == view.fold_state_entry("saved"):
            state, lines = kept.state, kept.lines
        else:
            state, lines = _FoldState.load(view), {}
        if (home.state_dir / LEGACY_STATE_FILE).exists():
            log.info("the fold state moves into %s; counting every log again, once", path.name)
        judge = Judge(Rules.of(config), load_ranges(home.apple_ranges_path), state.moments, load_origins(home))
        if state.labels and state.labels != judge.fingerprint:
            log.info("the labelling rules changed; counting the whole history again")
            state, rebuild, lines = _FoldState(), True, {}
            judge = Judge(judge.rules, judge.apple, state.moments, judge.origins)
        state.labels = judge.fingerprint
        logs_read = _SmallLogs(pool, home, state, result, judge)
        fresh = rebuild or not view.complete
        timelines = _Timelines(view, fresh=rebuild)
        _fold_hits(home.hits_dir(config), state, result, judge, timelines, progress or rebuild, logs_read)
        logs_read()
        _learn_visibility(state, result, timelines, fresh)
        saved = _save(home, state, result, view, fresh, lines, platform)
        if saved:
            view.save_timelines(timelines.touched, replace_all=rebuild, encoded=timelines.encoded,
                                appended=timelines.appended)
            # Rows, timelines and state at once: a pass killed before this left the store
            # as the last pass did, and its hits are counted again, once.
            view.commit()
            state.stored, state.dirty = True, set()
        else:
            saved = kept.saved if kept is not None and kept.state is state else view.fold_state_entry("saved")
    if saved:
        _KEPT[str(path)] = _Kept(saved, state, lines)
    (home.state_dir / LEGACY_STATE_FILE).unlink(missing_ok=True)
    return result


class _SmallLogs:
    """Reading the small logs (``_fold_logs``) in a thread while the fast path's polars cuts the
    hits into columns and lets go of the interpreter; calling it waits until they are read.
    Nothing else touches the tags, moments, links or the judge until then.

    The thread starts when the hits files are read (``start``), not before: reading a thousand
    files takes the interpreter back after each system call, and with a thread parsing beside
    it each time waits for that thread's turn to end (a first fold of 50,000 tags lost a second
    there)."""

    def __init__(self, pool: ThreadPoolExecutor, *args):
        self._pool, self._args = pool, args
        self._future = None

    def start(self) -> None:
        if self._future is None:
            self._future = self._pool.submit(_fold_logs, *self._args)

    def __call__(self) -> None:
        self.start()
        self._future.result()


def _save(home: Home, state: _FoldState, result: FoldResult, view: ViewWriter, fresh: bool,
          lines: Dict[str, str], platform: Optional[Platform] = None) -> Optional[str]:
    """The rows and register.csv, then the state, when the pass changed anything; the id of
    the state's save, or None. Into the store's transaction, which the caller commits after
    the register is replaced: a crash in between leaves the old state, and folding it again
    writes the same register. ``lines``: each tag's register line as the last pass of this
    process wrote it (those of the tags this pass touched are written anew)."""
    new_process = not (fresh or lines)  # no line of the last pass: the store has them
    packed = None
    if fresh:
        stored, packed = state.stored_all()
        view.save_rows(stored, replace_all=True)
        lines.clear()
        lines.update((entry[0], entry[-1]) for entry in stored)
    elif result.touched:
        stored = stored_rows([state.row(tag) for tag in result.touched if tag in state.tags])
        view.save_rows(stored, replace_all=False)
        lines.update((entry[0], entry[-1]) for entry in stored)
    if not (result.touched or fresh or result.new_moments or state.register_pending or state.dirty
            or state.odd_entries != result.skipped_entries or not home.register_path.exists()):
        return None
    state.odd_entries = list(result.skipped_entries)
    # The store has every tag's row now, as this pass left it: the order of those, and in a new
    # process their lines, come from there (without reading each tag's data back).
    if new_process:
        ordered = view.register_lines()
        lines.update(ordered)
        state.ordered = [tag for tag, _ in ordered]
    elif not fresh and state.ordered is None:
        state.ordered = view.ordered_tags()
    order = state.order()
    missing = [tag for tag in order if tag not in lines]  # none: the store has every tag's row
    lines.update((entry[0], entry[-1]) for entry in stored_rows([state.row(tag) for tag in missing]))
    try:
        write_register_lines(home.register_path, [lines[tag] for tag in order], result.new_opens,
                             platform)
    except RegisterLockedError as exc:
        result.register_error = str(exc)
        state.register_pending = True
    else:
        result.register_written = True
        state.register_pending = False
    return state.save(view, result.touched, packed)


class _Timelines:
    """The new events of the timelines a fold pass touches (the store adds them after those it
    holds: ``appended``); or, for a tag whose timeline starts in this pass, its latest events
    already written as the store keeps them (the fast path writes them by the column)."""

    def __init__(self, view: ViewWriter, fresh: bool):
        self.view = view
        self.fresh = fresh
        self.touched: Dict[str, list] = {}
        self.encoded: Dict[str, str] = {}
        self.appended: set = set()
        # What the fast path hands ``_learn_visibility`` of the tags it counts.
        self.noted = _Noted()
        self._stored: Optional[set] = None

    def of(self, tag: str) -> list:
        events = self.touched.get(tag)
        if events is None:
            text = self.encoded.pop(tag, None)
            events = self.touched[tag] = self.view.events_of(text) if text is not None else []
            if text is None and not self.fresh:
                self.appended.add(tag)
        return events

    def starts_here(self, tag: str) -> bool:
        """Whether this pass has no events of the tag yet, and the store none either."""
        if tag in self.touched or tag in self.encoded:
            return False
        return tag not in self._stored_tags()

    def add_encoded(self, tags: List[str], texts: List[str]) -> None:
        """These tags' latest events, each tag's as the store keeps them (``view.events_text``):
        kept so where its timeline starts here, else added to its events."""
        if not (self.touched or self.encoded or self._stored_tags()):
            self.encoded.update(zip(tags, texts))  # each starts here (a first fold's, most)
            return
        for tag, text in zip(tags, texts):
            if self.starts_here(tag):
                self.encoded[tag] = text
            else:
                self.of(tag).extend(self.view.events_of(text))

    def _stored_tags(self) -> set:
        if self._stored is None:
            self._stored = set() if self.fresh else self.view.tags_with_events()
        return self._stored


def _fold_logs(home: Home, state: _FoldState, result: FoldResult, judge: Judge) -> None:
    """What the logs beside the hits add: tags, the moments of self-fetches, links."""
    _fold_tags(home, state, result)
    _fold_self_fetches(home, state, result, judge)
    _fold_links(home, state, result)
    _fold_replies(home, state, result)


def _fold_tags(home: Home, state: _FoldState, result: FoldResult) -> None:
    tags, touched = state.tags, result.touched
    for batch, columns, _ in _new_log_data(home, "tags", state, TAG_COLUMNS):
        for record in parse_tag_records(batch, columns):
            if record is None:
                result.skipped_lines += 1
                continue
            tag_id, fields = record
            state.ordered = None
            existing = tags.get(tag_id)
            if existing is None:
                tags[tag_id] = fields
                result.new_tags += 1
            else:
                # Later rows for a tag (sent, unsent...) fill in or change fields.
                existing.update({key: value for key, value in fields.items() if value})
            touched.add(tag_id)


def _fold_self_fetches(home: Home, state: _FoldState, result: FoldResult, judge: Judge) -> None:
    for batch, columns, device in _new_log_data(home, "self-fetches", state, SELF_FETCH_COLUMNS):
        other = device and device != home.device
        found: Dict[str, List[list]] = {}
        for tag_id, moment, reason in parse_self_fetches(batch, columns):
            moments = found.get(tag_id)
            if moments is None:
                moments = found[tag_id] = []
            moments.append([moment, reason])
        for tag_id, moments in found.items():
            added = _add_moments(state.moments.setdefault(tag_id, []), moments)
            if not added:
                continue
            state.dirty.add(tag_id)
            if other and not result.recount:
                # The earliest moment answers for all: what it labels starts first.
                result.recount = _counted_since(state.counts.get(tag_id), min(moment for moment, _ in added))
            judge.forget_context(tag_id)
            result.new_moments += len(added)


def _add_moments(moments: List[list], found: List[list]) -> List[list]:
    """Appends to a tag's ``moments`` those ``found`` it does not hold yet (a log read twice,
    a copy, a replaced file brings the same moment again); returns them."""
    added = []
    if len(moments) + len(found) <= 8:
        for moment in found:
            if moment not in moments:
                moments.append(moment)
                added.append(moment)
        return added
    held = {tuple(moment) for moment in moments}  # a tag shown many times: no scan per moment
    for moment in found:
        key = tuple(moment)
        if key not in held:
            held.add(key)
            moments.append(moment)
            added.append(moment)
    return added


def _fold_links(home: Home, state: _FoldState, result: FoldResult) -> None:
    for batch, columns, _ in _new_log_data(home, "links", state, LINK_COLUMNS):
        for tag_id, number, target, text in parse_links(batch, columns):
            state.links.setdefault(tag_id, {})[str(number)] = [target, text]
            result.touched.add(tag_id)


# The cursor of each single-computer log, in the state's fields of old (replies.csv, once
# it is folded, is read through ``_new_log_data`` the same way, by its ``replies_cursor``).
_LEGACY_CURSORS = {"tags": "tags_cursor", "self-fetches": "self_cursor", "links": "links_cursor",
                   "replies": "replies_cursor"}


def _new_log_data(home: Home, kind: str, state: _FoldState, known: Tuple[str, ...]
                  ) -> Iterator[Tuple[bytes, Sequence[str], str]]:
    """(new complete records, the file's columns, the device id of its writer: '' for this
    home's single-computer log) of every log of ``kind``: this home's single-computer log,
    then each computer's log in the devices folder (``Home.log_paths``).
    A conflict copy of a computer's log brings only the records its log does not hold: the
    rest were read from the log itself, and reading an older copy of them again would
    take a tag back to what an earlier row said."""
    for path in home.log_paths(kind):
        legacy = path.parent != home.devices_dir
        if legacy and kind in _LEGACY_CURSORS:
            cursor = getattr(state, _LEGACY_CURSORS[kind])
        else:
            cursor = state.device_cursors.setdefault(path.name, Cursor())
        columns = read_columns(path, known)
        found = None if legacy else DeviceLog.parse(path.name)
        held = _records_of(path.with_name(found.main_name)) if found is not None and found.conflict else None
        # A synced folder carries whatever the other side has: no symlink is followed there.
        # A log that cannot be read stops the fold (the labels depend on every log).
        for batch in read_new_data(path, cursor, record_end=records_end, follow_symlinks=legacy):
            if held is not None:
                batch = b"".join(record for record in split_records(batch)[0] if record not in held)
            yield batch, columns, found.device if found is not None else ""


def _counted_since(counts: Optional[Counts], moment: float) -> bool:
    """Whether a person's open or click was counted for the tag at or after the start of
    what a moment labels (a hit then may be the sender's own, or a delivery scan)."""
    if counts is None:
        return False
    latest = max(counts.last_open, counts.last_click)
    try:
        return bool(latest) and parse_timestamp(latest) >= moment - SELF_BEFORE_S
    except ValueError:
        return True


def _records_of(path: Path) -> set:
    """The complete records of a log, for telling what a conflict copy adds to it."""
    try:
        data = path.read_bytes()
    except OSError:
        return set()
    return set(split_records(data)[0])


def _fold_replies(home: Home, state: _FoldState, result: FoldResult) -> None:
    for batch, columns, _ in _new_log_data(home, "replies", state, REPLY_COLUMNS):
        for reply, moment in parse_replies(batch, columns):
            kept = state.replies.setdefault(reply.tag, [])
            if any(reply_of(reply.tag, known).key == reply.key for known in kept):
                continue  # reported again (a catch-up, another computer), or the file was replaced
            kept.append(packed_reply(reply, moment))
            result.touched.add(reply.tag)
            if reply.counted:
                result.new_replies += 1


def _mail_facts(state: _FoldState, tag: str) -> MailFacts:
    """What the "not seen" rules read of a tag, without building its whole row."""
    fields, counts = state.tags[tag], state.counts.get(tag) or Counts()
    replied = replies_columns(state.replies[tag]) if tag in state.replies else {}
    return MailFacts(tag, short_id(tag), fields.get("subject", ""), fields.get("name", ""),
                     fields.get("recipients", ""), counts.opened, counts.first_open, counts.first_click,
                     replied.get("replied_by", ""), replied.get("first_reply", ""), replied.get("undelivered", ""))


def _learn_visibility(state: _FoldState, result: FoldResult, timelines: _Timelines, fresh: bool) -> None:
    """What this pass teaches of the recipients of the mails it touched (``visibility``): each
    tag's machine fetches and the places of its opens (``elsewhere``) noted, each of their
    addresses' knowledge learned again from all its mails; where an address's knowledge
    changed, its other mails' rows are written anew too."""
    tags, all_counts, machines = state.tags, state.counts, state.machine
    evidence, replies, known = state.evidence, state.replies, state.known
    note = _Places(state, timelines)
    read = timelines.noted.recipients
    affected = set()
    for tag in result.touched:
        recipients = read.get(tag)
        if recipients is None:
            fields = tags.get(tag)
            if fields is None:
                continue
            recipients = addresses(fields.get("recipients", ""))
        counts = all_counts.get(tag)
        alone = len(recipients) == 1
        # Machine fetches and places tell something of a mail to one person only.
        if alone and counts is not None and (counts.machine_hits or counts.opens):
            note(tag, counts)
        if alone and tag not in replies:
            # Most mails: to one person, with no reply (so none bounced).
            address = recipients[0]
            if counts is not None and counts.opened:
                now = opened_evidence(counts.first_open, counts.first_click)
            elif tag in machines:
                now = evidence_of(_mail_facts(state, tag), machines[tag]).get(address)
            else:
                now = None
            # An address with no state that only this mail's open speaks of keeps none (most).
            if _hear(evidence, address, tag, now) and not (
                    now is not None and now[0] == SEEN and len(evidence[address]) == 1 and address not in known):
                affected.add(address)
            continue
        senders = [packed[1] for packed in replies.get(tag, ()) if packed[4] == "reply"]
        # Only a reply, or a mail to one person that was opened or fetched by a machine, says anything.
        if senders or (alone and ((counts is not None and counts.opened) or tag in machines)):
            said = evidence_of(_mail_facts(state, tag), machines.get(tag))
        elif not evidence.keys().isdisjoint(recipients):
            said = {}
        else:  # most mails to several people: nothing said of them, before or now
            continue
        for address in addresses("; ".join([*recipients, *senders])) if senders else recipients:
            if _hear(evidence, address, tag, said.get(address)):
                affected.add(address)
    changed = {address for address in affected if state.relearn(address)}
    if changed and not fresh:
        # Rare (an address's state changed): its other mails' rows are written anew (a fresh
        # read model has every row written anyway).
        result.touched.update(tag for tag, fields in state.tags.items()
                              if tag not in result.touched and changed.intersection(addresses(fields.get("recipients", ""))))


def _hear(evidence: Dict[str, Dict[str, list]], address: str, tag: str, now: Optional[list]) -> bool:
    """Put what a mail now says of an address (packed; None: nothing) among the address's
    evidence (an address keeps only the mails that say something); whether that changed it."""
    kept = evidence.get(address)
    if kept is None:
        if now is None:
            return False
        evidence[address] = {tag: now}
        return True
    if kept.get(tag) == now:
        return False
    if now is None:
        del kept[tag]
        if not kept:
            del evidence[address]
    else:
        kept[tag] = now
    return True


class _Places:
    """Noting each mail to one person's machine fetches and the places of its opens after this
    pass (``note_machine_fetches``, ``note_opens``). Where all of a tag's events of the pass
    came from one batch of the fast path and it had none before, they are what the fast path
    made of them; else they are noted from its events: the fast path's deciding ones, then the
    per-line loop's (a timeline it wrote, ``encoded``, has no other that decides anything)."""

    def __init__(self, state: _FoldState, timelines: _Timelines):
        self.machines, self.places = state.machine, state.places
        noted = timelines.noted
        self.per_line = per_line = timelines.touched
        sole = noted.tags.difference(noted.again, per_line)
        # The deciding events of the tags that need them (few, mostly none), at once.
        self.decided = noted.events(noted.tags.difference(sole).union(
            sole.intersection(self.machines), sole.intersection(self.places)))
        # The tags whose memory and places are what the fast path made (most): those it made
        # at once (it makes them of a mail to one person with machine fetches, or with opens).
        self.made = made = sole.difference(self.decided)
        self.machines.update((tag, machine) for tag, machine in noted.machine.items() if tag in made)
        self.places.update((tag, found) for tag, found in noted.places.items() if tag in made)

    def __call__(self, tag: str, counts: Counts) -> None:
        machines, places = self.machines, self.places
        if tag in self.made:
            if counts.opens and tag not in places:  # no open of this pass by a mail program itself
                places[tag] = [[], [], []]
            return
        events = self.per_line.get(tag)
        if tag in self.decided:
            events = self.decided[tag] + (events or [])
        if counts.machine_hits:
            machine = note_machine_fetches(machines.get(tag), events or ())
            if machine is not None:
                machines[tag] = machine
        if counts.opens:
            places[tag] = note_opens(places.get(tag), events or (), counts.recent())


class _Noted:
    """What the fast path hands ``_learn_visibility`` of the tags it counted in this pass
    (``fastfold._note_deciding_events``): for each tag, the machine memory and places its hits
    give from nothing (none where they give none), and the events that decide them, asked for
    only for the tags that had either before or that more than one batch reached; and the
    addresses of their recipients it read (tags.csv changes no more in the pass)."""

    def __init__(self):
        self.tags: set = set()
        # Tags that more than one batch of this pass counted.
        self.again: set = set()
        self.machine: Dict[str, list] = {}
        self.places: Dict[str, list] = {}
        self.recipients: Dict[str, tuple] = {}
        self._batches: list = []

    def add(self, tags, machine: Dict[str, list], places: Dict[str, list], events,
            recipients: Dict[str, tuple]) -> None:
        """A batch's tags, what their hits make, and its deciding events (``events.of(tags)``
        gives those of some tags, by tag); ``recipients``: ``visibility.addresses`` of the
        recipients of those tags.csv has."""
        tags = set(tags)
        self.again.update(self.tags.intersection(tags))
        self.tags.update(tags)
        self.machine.update(machine)
        self.places.update(places)
        self.recipients.update(recipients)
        self._batches.append(events)

    def events(self, tags: set) -> Dict[str, list]:
        """These tags' deciding events, by tag, batch after batch."""
        found: Dict[str, list] = {}
        if tags:
            for batch in self._batches:
                for tag, events in batch.of(tags).items():
                    found.setdefault(tag, []).extend(events)
        return found


# The fast path (``fastfold``, with polars) pays off from a few megabytes of new lines
# (about 20,000 hits); below that the per-line loop is quicker than importing polars.
# It takes up to FAST_GROUP_BYTES at a time, which bounds what a rebuild holds in memory:
# about six times the bytes at the peak (1M hits of 172 MB: 1.1 GB; in 64 MiB groups
# 0.6 GB, and a fifth slower).
FAST_PATH = True
FAST_MIN_BYTES = 4 << 20
# From this many new hits a pass gives back the memory it held (a first fold of 1M hits left a
# daemon 575 MB, 240 MB of it free; a 1k-hit pass needs no more than the last one left).
BIG_PASS_HITS = 20_000
FAST_GROUP_BYTES = 256 << 20


def _fold_hits(hits_dir: Path, state: _FoldState, result: FoldResult, judge: Judge,
               timelines: _Timelines, progress: bool, logs_read: _SmallLogs) -> None:
    """Fold the new lines of the hits files; ``logs_read`` waits for the other logs, which
    the labels depend on (called before any hit is labelled)."""
    paths = _hits_files(hits_dir, state, result)
    bar = _progress_bar(paths, state, progress)
    # Blocks read but not yet folded, in order: (file name, complete lines).
    pending: List[tuple] = []
    pending_bytes = 0
    try:
        for path in paths:
            cursor = state.files.setdefault(path.name, Cursor())
            before = cursor.offset
            read_any = False
            try:
                # Not following a symlink even if one replaced the file since it was listed.
                for data in read_new_data(path, cursor, follow_symlinks=False):
                    read_any = True
                    if FAST_PATH:
                        pending.append((path.name, data))
                        pending_bytes += len(data)
                        if pending_bytes >= FAST_GROUP_BYTES:
                            _fold_pending(pending, state, result, judge, timelines, logs_read)
                            pending_bytes = 0
                    else:
                        logs_read()
                        fold_hit_lines(data.splitlines(), path.name, state, result, judge, timelines)
                    if bar is not None:
                        bar.update(cursor.offset - before)
                        before = cursor.offset
            except OSError as exc:
                # What was read is counted and its cursor kept; the rest waits for the next fold.
                log.warning("cannot read %s (%s); the next fold tries again", path.name, exc.strerror or exc)
                result.skipped_entries.append(path.name)
            result.files_read += read_any
        if bar is not None and pending:
            # All read; the fast path counts what waits at once, with nothing to show meanwhile.
            bar.set_postfix_str("counting them", refresh=True)
        _fold_pending(pending, state, result, judge, timelines, logs_read)
    finally:
        if bar is not None:
            bar.set_postfix_str("", refresh=False)
            bar.close()


def _fold_pending(pending: List[tuple], state: _FoldState, result: FoldResult, judge: Judge,
                  timelines: _Timelines, logs_read: _SmallLogs) -> None:
    """Fold the blocks read so far: many at once by the fast path when it is there and
    takes them, else line by line (the reference)."""
    if sum(len(data) for _, data in pending) >= FAST_MIN_BYTES:
        try:
            from mailtracker.desktop import fastfold
        except ImportError:  # polars is not installed: the per-line loop does it all
            fastfold = None
        if fastfold is not None:
            logs_read.start()  # read beside polars' work, which lets go of the interpreter
            if fastfold.fold_batches(pending, state, result, judge, timelines, logs_read):
                pending.clear()
                return
    logs_read()
    for file_name, data in pending:
        fold_hit_lines(data.splitlines(), file_name, state, result, judge, timelines)
    pending.clear()


def hits_files(hits_dir: Path) -> Tuple[List[Path], List[str]]:
    """The regular hits files directly in the folder, and the names of the other entries
    named like one: a folder, FIFO, device or symlink (a FIFO would block its reader,
    /dev/zero never ends, a symlink would bring some other file's lines in)."""
    names, odd = [], []
    prefix, suffix = HITS_GLOB.split("*")
    try:
        with os.scandir(hits_dir) as entries:
            for entry in entries:
                name = os.path.normcase(entry.name)  # as fnmatch matches HITS_GLOB, a thousand times a pass
                if not (name.startswith(prefix) and name.endswith(suffix)):
                    continue
                if entry.is_file(follow_symlinks=False):
                    names.append(entry.name)
                else:
                    odd.append(entry.name)
    except (FileNotFoundError, NotADirectoryError):
        pass
    return [hits_dir / name for name in sorted(names)], sorted(odd)


def _hits_files(hits_dir: Path, state: _FoldState, result: FoldResult) -> List[Path]:
    """``hits_files``, with each odd entry named in the result and warned about once."""
    paths, result.skipped_entries = hits_files(hits_dir)
    for name in result.skipped_entries:
        if name not in state.odd_entries:
            log.warning("skipped %s in %s: it is not a regular file (a folder, FIFO, device or "
                        "symlink); only regular hits files are folded", name, hits_dir)
    return paths


def fold_hit_lines(lines: List[bytes], file_name: str, state: _FoldState, result: FoldResult,
                    judge: Judge, timelines: _Timelines) -> None:
    """The hot loop: split off the fixed fields, have the judge label each new hit, count it."""
    seen_add = state.seen.add
    counts = state.counts
    touched = timelines.touched
    tags_touched = result.touched
    for line in lines:
        try:
            hit = split_hit_line(line)
        except ValueError:
            if line.strip() and not is_header(line):
                result.skipped_lines += 1
                log.warning("skipped an unreadable line in %s: %.80r", file_name, line)
            continue
        tag = hit.tag
        if tag.startswith(PROBE_TAG_PREFIX):
            continue  # the test hit of 'doctor --server': it proves the path, it is no open
        if not seen_add(hit.boot, hit.seq):
            result.duplicate_hits += 1
            continue
        entry = counts.get(tag)
        if entry is None:
            entry = counts[tag] = Counts()
            state.dirty.add(tag)
        try:
            label, reason, counted, client = judge.judge(hit, entry.recent())
        except ValueError:
            result.skipped_lines += 1
            log.warning("skipped a line with an unreadable time in %s: %.80r", file_name, line)
            continue
        entry.hits += 1
        result.new_hits += 1
        if counted and label != "click":
            entry.add_open(hit.time)
            result.new_opens += 1
        elif label == "click" and counted:
            entry.add_click(hit.time, reason.partition(":")[2])
            result.new_clicks += 1
        elif label == "self":
            entry.self_hits += 1
        elif label not in PERSON_LABELS and label != "click":
            entry.machine_hits += 1
        timeline = touched.get(tag)
        if timeline is None:
            timeline = timelines.of(tag)
        timeline.append((hit.time, label, int(counted), reason, client))
        tags_touched.add(tag)
        if tag not in state.tags:
            result.unknown_tag_hits += 1


def _progress_bar(paths: List[Path], state: _FoldState, wanted: bool):
    if not wanted:
        return None
    total = 0
    for path in paths:
        cursor = state.files.get(path.name)
        size = path.stat().st_size
        total += size - cursor.offset if cursor and cursor.offset <= size else size
    if total < (8 << 20):
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, desc="folding hits", disable=None)
