"""Folding the logs into counts: read what is new in tags.csv and in every
hits-*.csv, count each hit exactly once, and write register.csv.

The fold remembers how far it read each log (``logs.Cursor``) and which hits it
has counted, so a new hit costs the same however long the history is, and a
log read twice, replaced by a sync tool, or copied as a Syncthing conflict
file never counts a hit twice. Its state is replaced atomically after each
pass, under a lock, so an interrupted fold leaves the previous, correct state.
"""

import bisect
import csv
import gc
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from filelock import FileLock, Timeout

from mailtracker.core.csvcodec import restore, strip_bom
from mailtracker.core.errors import LockTimeoutError, RegisterLockedError
from mailtracker.core.files import write_file_atomically
from mailtracker.core.hitline import HITS_GLOB
from mailtracker.core.paths import Home
from mailtracker.core.settings import Config, load_config
from mailtracker.core.timestamps import parse_timestamp, utc_timestamp
from mailtracker.core.tokens import PROBE_TAG_PREFIX, TOKEN_LENGTH, short_id
from mailtracker.desktop.classify import (
    SELF_AFTER_S,
    SELF_BEFORE_S,
    AddressRanges,
    Context,
    Rules,
    Verdict,
    decide,
    judge_agent,
    load_ranges,
)
from mailtracker.desktop.register import write_register
from mailtracker.desktop.tags import TAG_COLUMNS
from mailtracker.desktop.tail import Cursor, read_new_lines
from mailtracker.desktop.timeline import TimelineStore, read_timeline

log = logging.getLogger(__name__)

STATE_VERSION = 6
FOLD_LOCK_TIMEOUT_S = 120.0
RECENT_CLIENTS = 16
_HIT_TIME_LENGTH = len("2026-01-01T00:00:00.000Z")
# Fields of a tag's counts entry (a list: the fold's hot loop updates it per hit).
# RECENT maps a client (address + client description) to the time of its last
# counted open, for telling a repeat from a new open; it rests in the state file
# as one string and is unpacked only for the tags a fold touches. Each tag's
# latest hits, for the views, are kept apart in the timeline store.
HITS, OPENS, FIRST, LAST, SELF, MACHINE, RECENT = range(7)


def new_entry() -> list:
    return [0, 0, "", "", 0, 0, {}]


def _unpack_recent(packed) -> dict:
    if not isinstance(packed, str):
        return packed
    recent = {}
    for line in packed.split("\n") if packed else ():
        key, moment = line.split("\t")
        recent[key] = float(moment)
    return recent


def _pack_recent(recent) -> str:
    if isinstance(recent, str):
        return recent
    return "\n".join(f"{key}\t{moment!r}" for key, moment in recent.items())


class SeenHits:
    """The hit ids already counted, as runs of sequence numbers per writer boot.

    A hit id is ``<boot>.<seq in hex>``: each server process numbers its hits
    from 1, so the ids it wrote collapse into one run and the set stays tiny.
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
    duplicate_hits: int = 0
    new_tags: int = 0
    updated_tags: int = 0
    new_moments: int = 0
    skipped_lines: int = 0
    unknown_tag_hits: int = 0
    files_read: int = 0
    register_written: bool = False
    register_error: str = ""

    def summary(self) -> str:
        parts = [f"{self.new_opens} new opens", f"{self.new_hits} new hits"]
        if self.new_tags:
            parts.append(f"{self.new_tags} new tags")
        if self.duplicate_hits:
            parts.append(f"{self.duplicate_hits} already counted")
        if self.unknown_tag_hits:
            parts.append(f"{self.unknown_tag_hits} for tags not in tags.csv")
        if self.skipped_lines:
            parts.append(f"{self.skipped_lines} unreadable lines skipped")
        text = ", ".join(parts) + f" from {self.files_read} files"
        if self.register_written:
            text += "; register.csv updated"
        return text


@dataclass
class FoldState:
    """Everything the fold remembers between passes; all of it derived from the logs."""

    files: Dict[str, Cursor] = field(default_factory=dict)
    tags_cursor: Cursor = field(default_factory=Cursor)
    self_cursor: Cursor = field(default_factory=Cursor)
    # tag -> [[epoch seconds, reason]]: moments the sender's Thunderbird may fetch it.
    moments: Dict[str, List[list]] = field(default_factory=dict)
    labels: str = ""
    seen: SeenHits = field(default_factory=SeenHits)
    tags: Dict[str, Dict[str, str]] = field(default_factory=dict)
    counts: Dict[str, list] = field(default_factory=dict)
    register_pending: bool = True

    @classmethod
    def load(cls, path: Path) -> "FoldState":
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            log.warning("fold state %s is unreadable (%s); rebuilding it from the logs", path, exc)
            return cls()
        if doc.get("version") != STATE_VERSION:
            log.info("fold state is from another version; rebuilding it from the logs")
            return cls()
        return cls(
            files={name: Cursor.from_json(c) for name, c in doc["files"].items()},
            tags_cursor=Cursor.from_json(doc["tags_cursor"]),
            self_cursor=Cursor.from_json(doc["self_cursor"]),
            moments=doc["moments"],
            labels=doc["labels"],
            seen=SeenHits(doc["seen"]),
            tags=doc["tags"],
            counts=doc["counts"],
            register_pending=doc["register_pending"],
        )

    def save(self, path: Path) -> None:
        doc = {
            "version": STATE_VERSION,
            "files": {name: c.to_json() for name, c in self.files.items()},
            "tags_cursor": self.tags_cursor.to_json(),
            "self_cursor": self.self_cursor.to_json(),
            "moments": self.moments,
            "labels": self.labels,
            "seen": self.seen.runs,
            "tags": self.tags,
            "counts": {tag: [*entry[:RECENT], _pack_recent(entry[RECENT])]
                       for tag, entry in self.counts.items()},
            "register_pending": self.register_pending,
        }
        write_file_atomically(path, json.dumps(doc, separators=(",", ":")).encode("utf-8"),
                              mode=0o644, replace_existing=True)

    timeline_path: Optional[Path] = None

    def timeline(self, tag_id: str) -> list:
        """The tag's latest hits, oldest first: (time, label, counted, reason code, client)."""
        return read_timeline(self.timeline_path, tag_id) if self.timeline_path else []

    def register_rows(self) -> List[Dict[str, str]]:
        rows = []
        for tag_id, tag in sorted(self.tags.items(), key=lambda item: (item[1]["created"], item[0])):
            entry = self.counts.get(tag_id) or new_entry()
            rows.append({
                **tag, "id": tag_id, "short_id": short_id(tag_id), "opens": entry[OPENS],
                "first_open": entry[FIRST], "last_open": entry[LAST], "hits": entry[HITS],
                "self_hits": entry[SELF], "machine_hits": entry[MACHINE],
            })
        return rows


def state_path(home: Home) -> Path:
    return home.state_dir / "fold-state.json"


def timeline_path(home: Home) -> Path:
    return home.state_dir / "timelines.sqlite3"


def fold(home: Home, config: Optional[Config] = None, rebuild: bool = False,
         progress: bool = False) -> FoldResult:
    """One fold pass over the home's logs; ``rebuild`` starts from the logs alone."""
    config = config or load_config(home)
    home.state_dir.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(home.state_dir / "fold.lock"), timeout=FOLD_LOCK_TIMEOUT_S):
            labeller = Labeller(config.rules(), load_ranges(home.apple_ranges_path))
            state = FoldState() if rebuild else FoldState.load(state_path(home))
            if state.labels and state.labels != labeller.fingerprint:
                log.info("the labelling rules changed; counting the whole history again")
                state, rebuild = FoldState(), True
            state.labels = labeller.fingerprint
            result = FoldResult()
            _fold_tags(home, state, result)
            _fold_self_fetches(home, state, result)
            # Millions of short-lived objects, none of them cyclic: the collector
            # would only rescan the state over and over.
            collecting = gc.isenabled()
            gc.disable()
            try:
                with TimelineStore(timeline_path(home)) as timelines:
                    events = _Timelines(timelines, fresh=rebuild)
                    _fold_hits(home.hits_dir(config), state, result, labeller, events,
                               progress or rebuild)
                    _save_state_and_register(home, state, result, rebuild)
                    # After the counts: a crash in between costs a view some events, never a count.
                    timelines.save(events.touched, replace_all=rebuild)
            finally:
                if collecting:
                    gc.enable()
            return result
    except Timeout:
        raise LockTimeoutError(
            f"another mailtracker fold held the lock for {FOLD_LOCK_TIMEOUT_S:.0f} s; "
            "is a rebuild running?"
        ) from None


def _save_state_and_register(home: Home, state: FoldState, result: FoldResult, rebuild: bool) -> None:
    changed = (result.new_hits or result.new_tags or result.updated_tags or result.new_moments
               or rebuild)
    if changed or state.register_pending or not home.register_path.exists():
        # The register is written before the state: a crash in between leaves
        # the old state, and folding it again gives the same register.
        try:
            write_register(home.register_path, state.register_rows(), result.new_opens)
        except RegisterLockedError as exc:
            result.register_error = str(exc)
            state.register_pending = True
        else:
            result.register_written = True
            state.register_pending = False
        state.save(state_path(home))


class _Timelines:
    """The timelines a fold pass touches, read from the store on first touch."""

    def __init__(self, store: TimelineStore, fresh: bool):
        self.store = store
        self.fresh = fresh
        self.touched: Dict[str, list] = {}

    def of(self, tag: str) -> list:
        events = self.touched.get(tag)
        if events is None:
            events = self.touched[tag] = [] if self.fresh else self.store.get(tag)
        return events


def load_state(home: Home) -> FoldState:
    state = FoldState.load(state_path(home))
    state.timeline_path = timeline_path(home)
    return state


def _fold_tags(home: Home, state: FoldState, result: FoldResult) -> None:
    for batch in read_new_lines(home.tags_path, state.tags_cursor):
        text = [strip_bom(line).decode("utf-8", "replace") for line in batch]
        for row in csv.reader(text):
            if not row or row[0] == "id":
                continue
            if len(row) != len(TAG_COLUMNS) or len(row[0]) != 32:
                result.skipped_lines += 1
                log.warning("skipped an unreadable line in tags.csv: %.80r", ",".join(row))
                continue
            record = dict(zip(TAG_COLUMNS, (restore(value) for value in row)))
            tag_id = record.pop("id")
            existing = state.tags.get(tag_id)
            if existing is None:
                state.tags[tag_id] = record
                result.new_tags += 1
            else:
                # Later rows for a tag (sent, unsent...) fill in or change fields.
                existing.update({key: value for key, value in record.items() if value})
                result.updated_tags += 1


def _fold_self_fetches(home: Home, state: FoldState, result: FoldResult) -> None:
    for batch in read_new_lines(home.self_fetches_path, state.self_cursor):
        for row in csv.reader([strip_bom(line).decode("utf-8", "replace") for line in batch]):
            if len(row) < 3 or len(row[0]) != TOKEN_LENGTH:
                continue
            try:
                moment = parse_timestamp(row[1])
            except ValueError:
                continue
            state.moments.setdefault(row[0], []).append([moment, restore(row[2])])
            result.new_moments += 1


class Labeller:
    """Classifies hits with the rules and Apple ranges in force for this fold."""

    def __init__(self, rules: Rules, apple: Optional[AddressRanges]):
        self.rules = rules
        self.apple = apple
        self.fingerprint = f"{rules.fingerprint()}:apple={len(apple) if apple else 'none'}"
        self.verdicts: Dict[bytes, Verdict] = {}

    def context(self, moments: List[list]) -> Tuple[Context, str, str]:
        """The tag's context, and the span of hit times (as timestamp strings) in
        which it can change a label: outside it, the user agent alone decides."""
        sends = [moment for moment, reason in moments if reason == "send"]
        context = Context(sent_at=min(sends) if sends else None,
                          self_moments=[moment for moment, _ in moments])
        ends = [moment + SELF_AFTER_S for moment, _ in moments]
        if context.sent_at is not None:
            ends.append(context.sent_at + self.rules.delivery_window_s)
        start = min(moment for moment, _ in moments) - SELF_BEFORE_S
        return context, utc_timestamp(start), utc_timestamp(max(ends) + 1)


def _fold_hits(hits_dir: Path, state: FoldState, result: FoldResult, labeller: Labeller,
               timelines: "_Timelines", progress: bool) -> None:
    paths = sorted(hits_dir.glob(HITS_GLOB)) if hits_dir.is_dir() else []
    bar = _progress_bar(paths, state, progress)
    contexts: Dict[str, Optional[tuple]] = {}
    try:
        for path in paths:
            cursor = state.files.setdefault(path.name, Cursor())
            before = cursor.offset
            read_any = False
            for batch in read_new_lines(path, cursor):
                read_any = True
                _fold_hit_lines(batch, path.name, state, result, labeller, contexts, timelines)
                if bar is not None:
                    bar.update(cursor.offset - before)
                    before = cursor.offset
            result.files_read += read_any
    finally:
        if bar is not None:
            bar.close()


def _fold_hit_lines(lines: List[bytes], file_name: str, state: FoldState, result: FoldResult,
                    labeller: Labeller, contexts: Dict[str, Optional[tuple]],
                    timelines: "_Timelines") -> None:
    """The hot loop: split off the fixed fields, label each new hit, count it.

    Written for speed (a million hits in a couple of seconds): the user agent's
    verdict is looked up by the raw bytes after the fixed fields, and the time is
    only parsed when a rule needs it.
    """
    seen_add = state.seen.add
    counts = state.counts
    moments = state.moments
    verdicts = labeller.verdicts
    touched = timelines.touched
    missing = object()
    rules, apple = labeller.rules, labeller.apple
    repeat_window = rules.repeat_window_s
    for line in lines:
        parts = line.split(b",", 5)
        try:
            boot, _, seq = parts[0].partition(b".")
            boot, seq = boot.decode("ascii"), int(seq, 16)
            stamp = parts[1].decode("ascii")
            tag = parts[2].decode("ascii")
            method = parts[3]
            verdict = verdicts.get(parts[5])
            if verdict is None:
                verdict = verdicts[parts[5]] = judge_agent(_first_field(parts[5]))
            if len(stamp) != _HIT_TIME_LENGTH or len(tag) != TOKEN_LENGTH or stamp[-1] != "Z":
                raise ValueError(line)
        except (IndexError, ValueError):
            if not strip_bom(line).startswith(b"hit_id,") and line.strip():
                result.skipped_lines += 1
                log.warning("skipped an unreadable line in %s: %.80r", file_name, line)
            continue
        if tag.startswith(PROBE_TAG_PREFIX):
            continue  # the test hit of 'doctor --server': it proves the path, it is no open
        if not seen_add(boot, seq):
            result.duplicate_hits += 1
            continue
        entry = counts.get(tag)
        if entry is None:
            entry = counts[tag] = new_entry()
        span = contexts.get(tag, missing)
        if span is missing:
            span = contexts[tag] = labeller.context(moments[tag]) if tag in moments else None
        context = span[0] if span is not None and span[1] <= stamp <= span[2] else None
        try:
            when = parse_timestamp(stamp) if context is not None else 0.0
        except ValueError:
            result.skipped_lines += 1
            continue
        if method == b"GET" and verdict.kind == "candidate" and context is None:
            label, reason = verdict.label, verdict.code  # decide()'s answer, without the call
        else:
            label, reason = decide(method.decode("ascii", "replace"), verdict,
                                   parts[4].decode("ascii", "replace"), when, context, rules, apple)
        counted = 1
        entry[HITS] += 1
        result.new_hits += 1
        if label == "open" or label == "proxy":
            recent = entry[RECENT]
            if recent.__class__ is str:
                recent = entry[RECENT] = _unpack_recent(recent)
            key = parts[4].decode("ascii", "replace") + " " + verdict.client
            if context is None:
                when = parse_timestamp(stamp)
            last = recent.pop(key, None)
            if last is not None and 0 <= when - last < repeat_window:
                recent[key] = last
                counted, reason = 0, f"repeat:{repeat_window:.0f}"
            else:
                # Re-inserted at the end: the first key is the least recently seen.
                recent[key] = when
                if len(recent) > RECENT_CLIENTS:
                    del recent[next(iter(recent))]
                entry[OPENS] += 1
                result.new_opens += 1
                if not entry[FIRST] or stamp < entry[FIRST]:
                    entry[FIRST] = stamp
                if stamp > entry[LAST]:
                    entry[LAST] = stamp
        elif label == "self":
            entry[SELF] += 1
        else:
            entry[MACHINE] += 1
        timeline = touched.get(tag)
        if timeline is None:
            timeline = timelines.of(tag)
        timeline.append((stamp, label, counted, reason, verdict.client))
        if tag not in state.tags:
            result.unknown_tag_hits += 1


def _first_field(rest: bytes) -> str:
    """The user agent: the first CSV field of what follows the fixed fields."""
    if not rest.startswith(b'"'):
        text = rest.split(b",", 1)[0].decode("utf-8", "replace")
    elif b'""' not in rest:
        text = rest[1:rest.index(b'"', 1)].decode("utf-8", "replace")
    else:
        text = next(csv.reader([rest.decode("utf-8", "replace")]))[0]
    return restore(text)


def _progress_bar(paths: List[Path], state: FoldState, wanted: bool):
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
