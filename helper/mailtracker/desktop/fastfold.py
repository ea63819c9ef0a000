"""The fold's fast path: many new hit lines counted at once, as columns (polars).

One responsibility: give exactly the counts, timelines, seen hits and repeat memory
that ``fold.fold_hit_lines`` gives for the same lines, in a fraction of its time,
for the big batches (a first fold, a rebuild, a catch-up after days offline). The
per-line loop stays the reference and the fallback: this module is used only when
polars is installed, and it hands back to that loop whatever it cannot do exactly.

How the work splits. Per line, only column operations run: splitting off the fixed
fields, the dedup against the seen hits, joins with small tables, the counting.
Python runs per distinct user agent (``classify.judge_agent``), per distinct client
(``Origins.lookup``), per distinct (method, agent, network) (``classify.decide``),
per tag only for the few things a tag holds (its moments listed, its memory from an
earlier pass read, its counts made and kept: windows, memories and timelines are
written by the column), and per hit only for the hits inside a tag's send, display
or first-fetch window, where time changes a label. The one rule that
depends on a tag's earlier hits is the repeat rule (the same client again within
the window counts once, among the tag's RECENT_CLIENTS most recent clients), done
by the column too (``_repeats``): a client's hits side by side, those it held before
as if seen just before the new hits; Python follows only a client whose repeats come
in a row. A tag where a client comes back within the window after more other hits
than the memory holds (it may have been forgotten), or with a click on delivery, is
a "slow tag": its new lines go through ``fold.fold_hit_lines`` itself, in order.

A batch is declined whole, before anything changes, when it holds what only the
per-line code reads exactly: a NUL byte, a lone carriage return, bytes that are not
UTF-8, or a line that parses as a hit but not in the server's own form (an odd
method, a leap second, a 30th of February, an upper-case id or one with a leading
zero).
"""

import bisect
import logging
import time
from itertools import chain, repeat
from typing import Callable, Dict, List, Sequence, Tuple

import polars as pl

from mailtracker.core.hitline import MAX_LINE_BYTES, is_header, origin_of, split_hit_line, user_agent_of
from mailtracker.core.origins import ORIGINS
from mailtracker.core.origins import describe as describe_origin
from mailtracker.core.tokens import PROBE_TAG_PREFIX
from mailtracker.desktop import fold as per_line
from mailtracker.desktop.classify import (FIRST_FETCH, PERSON_LABELS, RECENT_CLIENTS, SELF_AFTER_S, SELF_BEFORE_S,
                                          Judge, click_verdict, decide, is_repeat, judge_agent, repeat_key)
from mailtracker.desktop.counts import Counts
from mailtracker.desktop.elsewhere import program_of as elsewhere_program
from mailtracker.desktop.view import TIMELINE_LENGTH, compact_json
from mailtracker.desktop.visibility import addresses, by_apple

log = logging.getLogger(__name__)

# A line exactly as the pixel server writes it (core.hitline.format_hit_line), up to
# the free text: only such lines are split here. The character classes are ASCII on
# purpose (a Unicode digit or letter is no part of a hit id or a time), the time
# is always a real one (parse_timestamp accepts a few more: those lines go per line),
# the sequence number has no leading zero (so the hit id names one hit in one way).
_SERVER_LINE = (
    r"^[0-9A-Za-z_-]*\.(?:0|[1-9a-f][0-9a-f]{0,14}),"
    r"[12][0-9]{3}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{3}Z,"
    r"[!-+\--~]{32},(?:GET|HEAD|click:[0-9]{1,9}:(?:GET|HEAD)),[!-+\--~]*,"
)
_FIELDS = ("hit_id", "time", "tag", "method", "client", "rest")


class Declined(Exception):
    """The batch holds something only the per-line loop reads exactly."""


def fold_batches(batches: Sequence[Tuple[str, bytes]], state, result, judge: Judge, timelines,
                 logs_read: Callable[[], None] = lambda: None) -> bool:
    """Fold these blocks of complete lines (file name, bytes), in order, as
    ``fold.fold_hit_lines`` would; False, with nothing changed, when declined. The lines
    are cut into columns first, then ``logs_read`` waits for what labels them."""
    clock = _Clock()
    try:
        frame, unreadable, count = _split_all(batches)
        clock.tick("lines split")
    except Declined as exc:
        log.info("the fold's fast path left %d bytes to the per-line fold: %s",
                 sum(len(data) for _, data in batches), exc)
        return False
    logs_read()
    for file_name, line in unreadable:
        result.skipped_lines += 1
        log.warning("skipped an unreadable line in %s: %.80r", file_name, line)
    frame = frame.filter(~pl.col("tag").str.starts_with(PROBE_TAG_PREFIX))
    texts, duplicates = _new_hits(frame, state.seen.runs)
    del frame
    result.duplicate_hits += duplicates
    clock.tick("seen")
    if texts.height == 0:
        return True
    frame, words, last_seen, names = _labelled(texts, state, judge)
    clock.tick("labels")
    slow = frame.lazy().filter("slow").select("row").collect()["row"]
    if slow.len():
        # Their own order, through the reference loop, which also records them as seen.
        per_line.fold_hit_lines(_lines_of(texts, slow), "", state, result, judge, timelines)
    del texts
    clock.tick("slow tags")
    fast = frame.filter(~pl.col("slow")) if slow.len() else frame
    _add_seen(fast, state.seen.runs)
    _count(fast, words, last_seen, names, state, result, timelines)
    clock.tick("counts")
    log.debug("fast path: %d lines, %d hits of slow tags per line; %s", count, slow.len(), clock)
    return True


class _Clock:
    """Where the fast path's time goes (wall and CPU), for the debug log."""

    def __init__(self):
        self.last = (time.perf_counter(), time.process_time())
        self.parts: List[str] = []

    def tick(self, what: str) -> None:
        now = (time.perf_counter(), time.process_time())
        self.parts.append(f"{what} {now[0] - self.last[0]:.3f} s (CPU {now[1] - self.last[1]:.3f} s)")
        self.last = now

    def __str__(self) -> str:
        return ", ".join(self.parts)


# The blocks are cut into lines and split this many bytes at a time, so that each group's
# lines are let go before the next group's are read (their memory used again): fresh memory
# costs more than the cutting and splitting, and the fields of the lines are all that is kept.
SPLIT_GROUP_BYTES = 16 << 20


def _split_all(batches: Sequence[Tuple[str, bytes]]):
    """``_split``'s frame and unreadable lines for all these blocks (``row`` counting their lines
    from the first), and how many lines they hold."""
    groups: List[List[Tuple[str, bytes]]] = [[]]
    size = 0
    for name, data in batches:
        if size >= SPLIT_GROUP_BYTES:
            groups.append([])
            size = 0
        groups[-1].append((name, data))
        size += len(data)
    frames, unreadable, count = [], [], 0
    for group in groups:
        lines = _lines(b"".join([b"\n", *(data for _, data in group)]))
        frame, odd = _split(lines, group, count)
        frames.append(frame)
        unreadable += odd
        count += lines.len()
        del lines  # before the next group's are read
    return pl.concat(frames, rechunk=False), unreadable, count


def _lines_of(texts: "pl.DataFrame", rows: "pl.Series") -> List[bytes]:
    """The lines at these rows as they were read, from their fields (``_split`` cut them at
    their first five commas)."""
    line = pl.concat_str([pl.col(field) for field in _FIELDS], separator=",")
    return [text.encode("utf-8") for text in pl.DataFrame({"row": rows}).join(
        texts.select("row", line=line), on="row", how="left", maintain_order="left")["line"]]


def _lines(blob: bytes) -> "pl.Series":
    """The lines of ``blob`` (which starts with an empty one) as ``bytes.splitlines`` cuts
    them, as text (None for an empty line)."""
    if b"\x00" in blob:
        raise Declined("a NUL byte")
    try:
        # One column of whole lines: no separator or quote can occur in them. The empty
        # first line keeps a byte order mark at the start of the data in its line
        # (polars drops one there; the per-line fold sees it).
        column = pl.read_csv(blob, has_header=False, separator="\x00", quote_char=None,
                             new_columns=["line"], infer_schema=False, comment_prefix=None)["line"]
    except pl.exceptions.PolarsError as exc:  # bytes that are not UTF-8, above all
        raise Declined(f"unreadable as UTF-8 text ({type(exc).__name__})") from None
    # polars ends a line at "\r\n" or "\n"; splitlines() also at a lone "\r".
    if column.str.contains("\r", literal=True).any():
        raise Declined("a carriage return that ends no line")
    # Each line cut where splitlines() cuts it: the lines and their ends hold every byte, as
    # the server writes them (each line ends in "\r\n"), else there are as many as newlines.
    text = column.str.len_bytes().sum()
    if text + 2 * column.len() - 1 != len(blob) and column.len() != blob.count(b"\n"):
        raise Declined("polars cut the lines elsewhere")
    return column.slice(1)


def _split(lines: "pl.Series", batches: Sequence[Tuple[str, bytes]], first_row: int = 0):
    """The server's lines split into fields (with their place, ``row``, from ``first_row``), and
    the unreadable lines with their file names; Declined when a line is a hit in some other form."""
    regular = (pl.col("line").str.contains(_SERVER_LINE) & (pl.col("line").str.len_bytes() <= MAX_LINE_BYTES)
               ).fill_null(False)
    frame = _collect(pl.DataFrame({"line": lines}).with_row_index("row", offset=first_row).lazy().with_columns(
        regular=regular))
    unreadable = []
    odd = frame.filter(~pl.col("regular"))
    if odd.height:
        for row, line in odd.select("row", "line").iter_rows():
            raw = (line or "").encode("utf-8")
            try:
                split_hit_line(raw)
            except ValueError:
                if raw.strip() and not is_header(raw):
                    unreadable.append((row, raw))
                continue
            raise Declined(f"line {row + 1} is a hit line, but not as the pixel server writes one")
        if unreadable:  # named by their file, as the per-line fold names them
            ends, total = [], 0
            for _, data in batches:
                total += data.count(b"\n")
                ends.append(total)
            unreadable = [(batches[bisect.bisect_right(ends, row - first_row)][0], raw) for row, raw in unreadable]
    fields = pl.col("line").str.splitn(",", 6).struct.rename_fields(list(_FIELDS))
    query = frame.lazy().filter(pl.col("regular")).select("row", fields.alias("fields")).unnest("fields")
    hit_id = pl.col("hit_id").str.splitn(".", 2).struct.rename_fields(["boot", "seq"])
    frame = _collect(_with_when(query.with_columns(hit_id.alias("id")).unnest("id").with_columns(
        pl.col("seq").str.to_integer(base=16, dtype=pl.Int64))))
    if frame["when"].null_count():
        raise Declined("a time on a day the calendar does not have")
    return frame, unreadable


def _with_when(query: "pl.LazyFrame") -> "pl.LazyFrame":
    """With ``when``: parse_timestamp's float of the time as the server writes it (the places
    of its digits fixed by _SERVER_LINE); null on a day the calendar does not have."""
    # The time of day read from the text's bytes as two numbers, "DDTHH:MM" and ":SS.mmmZ":
    # integer operations, cheaper than cutting out each field as text and reading it.
    stamp = pl.col("time").cast(pl.Binary)
    query = query.with_columns(*(stamp.bin.slice(at, 8).bin.reinterpret(dtype=pl.UInt64, endianness="big")
                                 .cast(pl.Int64).alias(f"_word{at}") for at in (8, 16)))

    def number(word: str, first: int, count: int) -> "pl.Expr":
        """The decimal number in bytes ``first`` to ``first + count`` of the word."""
        field = pl.col(word) // 256 ** (8 - first - count) % 256 ** count
        value = field // 256 ** (count - 1) - ord("0")
        for at in range(1, count):
            value = value * 10 + field // 256 ** (count - 1 - at) % 256 - ord("0")
        return value

    day = pl.col("time").str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False).cast(pl.Int64)
    seconds = day * 86_400 + number("_word8", 3, 2) * 3_600 + number("_word8", 6, 2) * 60 + number("_word16", 1, 2)
    # parse_timestamp's float: whole seconds, plus the milliseconds / 1000, in that order.
    return query.with_columns(when=seconds.cast(pl.Float64) + number("_word16", 4, 3).cast(pl.Float64) / 1000
                              ).drop("_word8", "_word16")


def _collect(query: "pl.LazyFrame") -> "pl.DataFrame":
    """Run a query of per-line work on every core (polars' streaming engine splits the lines
    into morsels), the lines kept in their order, which the rules depend on."""
    frame = query.collect(engine="streaming")
    if not frame["row"].is_sorted():
        frame = frame.sort("row")
    return frame


def _new_hits(frame: "pl.DataFrame", runs: Dict[str, List[List[int]]]):
    """The hits not counted before (by an earlier pass, or earlier in these lines), and
    how many were; ``SeenHits.add``'s answers, without changing the runs yet."""
    # One spelling per hit (_SERVER_LINE), so a hit repeats only as the same id; where each
    # boot's hits stand together and rise, as the server writes them, none repeats.
    first = pl.lit(True) if _in_order(frame) else pl.col("hit_id").is_first_distinct()
    known = [boot for boot in frame["boot"].unique().to_list() if boot in runs]
    if known:
        spans = pl.DataFrame(
            [(boot, low, high) for boot in known for low, high in runs[boot]],
            schema={"boot": pl.String, "low": pl.Int64, "high": pl.Int64}, orient="row").sort("low")
        # Each hit against the last run of its boot starting at or before it.
        found = (frame.select("row", "boot", "seq").sort("seq")
                 .join_asof(spans, left_on="seq", right_on="low", by="boot", strategy="backward",
                            check_sortedness=False)  # both sorted just above
                 .filter(pl.col("high") >= pl.col("seq"))["row"])
        first = first & ~pl.col("row").is_in(found.implode())
    frame = frame.with_columns(new=first)
    new = frame.filter(pl.col("new")).drop("new")
    return new, frame.height - new.height


def _in_order(frame: "pl.DataFrame") -> bool:
    """Whether each boot's hits stand together, their sequence numbers rising."""
    boot, seq = pl.col("boot"), pl.col("seq")
    starts = (boot != boot.shift(1)).fill_null(True)
    runs, boots, falls = frame.select(
        runs=starts.sum(), boots=boot.n_unique(), falls=(~starts & (seq <= seq.shift(1))).sum()).row(0)
    return runs == boots and falls == 0


def _add_seen(frame: "pl.DataFrame", runs: Dict[str, List[List[int]]]) -> None:
    """Record these (new, distinct) hits in the seen runs, as SeenHits.add would one by one:
    the runs stay sorted, disjoint and apart, so the result does not depend on the order."""
    ids = frame.select("boot", "seq")
    if not _in_order(ids):  # else each boot's hits already form its fewest runs
        ids = ids.sort("boot", "seq")
    starts = ((pl.col("boot") != pl.col("boot").shift(1)) | (pl.col("seq") != pl.col("seq").shift(1) + 1)
              ).fill_null(True)
    spans = (ids.with_columns(run=starts.cum_sum())
             .group_by("run", maintain_order=True)
             .agg(pl.col("boot").first(), low=pl.col("seq").first(), high=pl.col("seq").last()))
    fresh: Dict[str, List[List[int]]] = {}
    for _, boot, low, high in spans.iter_rows():
        fresh.setdefault(boot, []).append([low, high])
    for boot, new in fresh.items():
        merged: List[List[int]] = []
        for low, high in sorted(runs.get(boot, []) + new):
            if merged and low <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], high)
            else:
                merged.append([low, high])
        runs[boot] = merged


def _labelled(frame: "pl.DataFrame", state, judge: Judge):
    """Every new hit with its label, reason and client description (as codes into ``words``),
    its repeat-rule key if it is a person's (a code too), and whether its tag is slow; with
    the texts, and each (tag, key)'s last hit among the tags that are not slow, of the clients
    their repeat memory keeps (``_remembered_clients``), in the order of those hits."""
    rules = judge.rules
    # Codes for the texts, so that what follows joins and sorts integers.
    frame = frame.with_columns(pl.col("tag", "method", "rest", "client").cast(pl.Categorical).to_physical()
                               .name.suffix("_c"))
    words = _Words()
    combo = _combined(frame, ["method_c", "rest_c", "client_c"])
    combos, texts = _combos(frame, combo, judge, words)
    tags, remembered = _tag_table(frame, texts[0], state, judge)
    names = dict(zip(tags["tag_c"].to_list(), tags["tag"].to_list()))
    # The texts stay behind: from here on each filter copies only numbers and times. Each
    # hit's combination's and tag's columns are gathered by their place in those tables.
    frame = frame.drop("tag", "method", "rest", "client", "hit_id").hstack(
        combos.drop("combo")[combo.replace_strict(combos["combo"], pl.Series(range(combos.height), dtype=pl.UInt32))])
    frame = frame.hstack(_gathered(tags.drop("tag"), "tag_c", frame["tag_c"]))

    # Inside a tag's window: decide() hit by hit, with the tag's context (few hits: the
    # send's, the displays', the first fetch's neighbours). Time orders as its text does.
    in_span = ~pl.col("click") & (pl.col("start") <= pl.col("when")) & (pl.col("when") <= pl.col("end"))
    timed = frame.lazy().filter(in_span.fill_null(False)).select(
        "row", "method_c", "rest_c", "client_c", "when", "tag_c", "origin", "first").collect()
    if timed.height:
        contexts = {tag_c: judge.window(names[tag_c], first)
                    for tag_c, first in timed.select("tag_c", "first").unique().iter_rows()}
        verdicts = {}
        labels = []
        for method_c, rest_c, client_c, when, tag_c, origin in timed.select(
                "method_c", "rest_c", "client_c", "when", "tag_c", "origin").iter_rows():
            method, rest, client = texts[0][method_c], texts[1][rest_c], texts[2][client_c]
            verdict = verdicts.get(rest)
            if verdict is None:
                verdict = verdicts[rest] = judge_agent(user_agent_of(rest.encode("utf-8")))
            label, reason = decide(method, verdict, client, when, contexts[tag_c].context, rules, judge.apple, origin)
            labels.append((words.label(label), words.reason(reason), label in PERSON_LABELS))
        timed = pl.DataFrame({"row": timed["row"], "tlabel": [x[0] for x in labels],
                              "treason": [x[1] for x in labels], "tperson": [x[2] for x in labels]},
                             schema={"row": pl.UInt32, "tlabel": pl.Int64, "treason": pl.Int64, "tperson": pl.Boolean})
        frame = frame.join(timed, on="row", how="left", maintain_order="left").with_columns(
            label=pl.coalesce("tlabel", "label"), reason=pl.coalesce("treason", "reason"),
            key=pl.when(pl.col("tperson").fill_null(True)).then("key")).drop("tlabel", "treason", "tperson")

    # A person's click on delivery: _judge_click words its reason with the seconds.
    on_delivery = pl.col("click") & pl.col("key").is_not_null() \
        & (pl.col("when") - pl.col("send") >= 0) & (pl.col("when") - pl.col("send") < rules.delivery_window_s)
    # The clients a tag's memory holds from before stand first, as if just seen, in its order
    # (each client once).
    before = pl.DataFrame([(tag_c, _Words._code(words.keys, key), row, when)
                           for tag_c, key, row, when in remembered if key != FIRST_FETCH],
                          schema={"tag_c": pl.UInt32, "key": pl.Int64, "row": pl.Int64, "when": pl.Float64},
                          orient="row")
    # (Lazily: a filter then copies only the columns selected.)
    people = pl.concat([before, frame.lazy().filter(pl.col("key").is_not_null()).select(
        "tag_c", "key", pl.col("row").cast(pl.Int64), "when").collect()])
    repeats, anchors, unsure = _repeats(people, rules.repeat_window_s)
    slow_tags = pl.concat([frame.lazy().filter(on_delivery.fill_null(False)).select("tag_c").collect()["tag_c"],
                           unsure]).unique()
    frame = frame.with_columns(slow=pl.col("tag_c").is_in(slow_tags.implode()))
    repeat = pl.col("row").is_in(repeats.implode())
    frame = frame.with_columns(
        counted=pl.col("key").is_not_null() & ~repeat,
        reason=pl.when(repeat).then(words.reason(f"repeat:{rules.repeat_window_s:.0f}")).otherwise("reason"))
    # Each client's last hit, with the time of its last hit that counted, for the repeat
    # memory of the tags that stay here: those it keeps, in the order of their hits.
    last_seen = _remembered_clients(anchors.filter(~pl.col("tag_c").is_in(slow_tags.implode()))).sort("row")
    words.first_fetches = [(tag_c, row, when) for tag_c, key, row, when in remembered if key == FIRST_FETCH]
    return frame.select("row", "boot", "seq", "time", "tag_c", "when", "label", "reason", "described",
                        "key", "counted", "link", "first_row", "first", "slow"), words, last_seen, names


def _gathered(table: "pl.DataFrame", code: str, codes: "pl.Series") -> "pl.DataFrame":
    """``table``'s other columns for each of ``codes`` (each found in its column ``code``, once),
    as a left join gives them: a code is a place in an array, not a key to hash."""
    places = pl.Series(dtype=pl.UInt32).extend_constant(None, table[code].max() + 1).scatter(
        table[code], pl.Series(range(table.height), dtype=pl.UInt32))
    return table.drop(code)[places.gather(codes)]


def _repeats(people: "pl.DataFrame", window_s: float):
    """The repeat rule (``Judge.judge``) for these people's hits (tag, key, row, time; the
    memory's clients from before first, at rows below 0): a hit within the window after its
    client's last hit that counted is a repeat while the tag remembers the client, that is
    while fewer than RECENT_CLIENTS other hits of the tag came between. Gives the repeats'
    rows; per (tag, client), its last row and the time of its last hit that counted; and the
    tags where a client came back after that many others (the per-line loop knows whether
    it was forgotten)."""
    # Each hit's place among its tag's hits side by side, in their order (two hits of a tag are
    # one place apart more than the tag's hits between them); then stably by (tag, client), the
    # hits of each in their order (a sort of one integer: both codes are below 2**32).
    people = people.sort("tag_c", maintain_order=True).with_columns(
        place=pl.int_range(pl.len()), pair=pl.col("tag_c").cast(pl.Int64) * (1 << 32) + pl.col("key")
    ).sort("pair", maintain_order=True)
    same = (pl.col("pair") == pl.col("pair").shift(1)).fill_null(False)
    gap = pl.col("when") - pl.col("when").shift(1)
    # Near: within the window either way (classify.is_repeat). Close: near enough to the hit
    # before that it may be within the window of the one that counted before that.
    people = people.with_columns(near=same & (gap.abs() < window_s), close=same & (gap.abs() < 2 * window_s),
                                 between=pl.col("place") - pl.col("place").shift(1) - 1)
    # After a hit that counted, a near one is a repeat. After a repeat it depends on the time of
    # the hit that counted before: those clients are followed hit by hit.
    chained = people.filter(pl.col("close") & pl.col("near").shift(1).fill_null(False))["pair"].unique()
    people = people.with_columns(chained=pl.col("pair").is_in(chained.implode()))
    simple = people.filter(pl.col("near") & ~pl.col("chained"))
    unsure = simple.filter(pl.col("between") >= RECENT_CLIENTS)["tag_c"].to_list()
    repeats = simple.filter(pl.col("between") < RECENT_CLIENTS)["row"].to_list()
    anchors = {}
    last_pair, anchor = None, 0.0
    for pair, tag_c, row, when, between in people.filter("chained").select(
            "pair", "tag_c", "row", "when", "between").iter_rows():
        if pair != last_pair:
            last_pair, anchor = pair, when
        elif not is_repeat(when, anchor, window_s):
            anchor = when
        elif between < RECENT_CLIENTS:
            repeats.append(row)
        else:
            unsure.append(tag_c)
        anchors[pair] = anchor
    # A client's last hit counted unless it was a repeat; then the one before it did.
    counted = pl.when(pl.col("near") & ~pl.col("chained")).then(pl.col("when").shift(1)).otherwise("when")
    last = people.with_columns(when=counted).filter(~same.shift(-1).fill_null(False))
    if anchors:
        fixed = pl.DataFrame({"pair": list(anchors), "anchor": list(anchors.values())},
                             schema={"pair": pl.Int64, "anchor": pl.Float64})
        last = last.join(fixed, on="pair", how="left", maintain_order="left").with_columns(
            when=pl.coalesce("anchor", "when")).drop("anchor")
    return (pl.Series(repeats, dtype=pl.UInt32), last.select("tag_c", "key", "row", "when"),
            pl.Series(unsure, dtype=pl.UInt32))


class _Words:
    """The texts of labels, reasons, client descriptions and repeat-rule keys, by code; and the
    first fetches the tags' memories held, which the memory is rebuilt with."""

    def __init__(self):
        self.labels: Dict[str, int] = {}
        self.reasons: Dict[str, int] = {}
        self.described: Dict[str, int] = {}
        self.keys: Dict[str, int] = {}
        # (tag, place, time) of the first fetches the tags' memories held (_tag_table).
        self.first_fetches: List[tuple] = []

    @staticmethod
    def _code(table: Dict[str, int], text: str) -> int:
        code = table.get(text)
        if code is None:
            code = table[text] = len(table)
        return code

    def label(self, text: str) -> int:
        return self._code(self.labels, text)

    def reason(self, text: str) -> int:
        return self._code(self.reasons, text)

    @staticmethod
    def texts(table: Dict[str, int]) -> List[str]:
        return list(table)  # codes are given in insertion order


def _combined(frame: "pl.DataFrame", columns: List[str]) -> "pl.Series":
    """One number per line for its codes in these columns (each below 2**32) together: the same
    codes give the same number, other codes another."""
    number, size = None, 1
    for column in columns:
        span = frame[column].max() + 1
        if size * span > 1 << 64:  # the numbers so far by their rank instead, below the lines' count
            number, size = number.rank("dense").cast(pl.UInt64), frame.height + 1
        part = pl.col(column).cast(pl.UInt64)
        number = part if number is None else number * pl.lit(span, pl.UInt64) + part
        size *= span
    return frame.select(number.alias("combo"))["combo"]


def _combos(frame: "pl.DataFrame", combo: "pl.Series", judge: Judge, words: _Words):
    """Per distinct (method, free text, client) (``combo``: their codes' ``_combined`` number):
    what ``Judge.judge`` says outside any window, and the texts of the three codes. The user
    agent's verdict is taken once per free text, the network once per client, the label once
    per (method, agent, network, and for Apple's bare agent the address)."""
    rules, apple, origins = judge.rules, judge.apple, judge.origins
    verdicts, written, looked, decided, described = {}, {}, {}, {}, {}
    rows = []
    texts = ({}, {}, {})
    # The numbers alone are compared, and each combination's codes and texts taken from one of its lines.
    distinct = pl.DataFrame({"combo": combo, "at": pl.Series(range(len(combo)), dtype=pl.UInt32)}).unique(
        subset="combo", keep="any")
    distinct = distinct.select("combo").hstack(
        frame.select("method_c", "rest_c", "client_c", "method", "rest", "client")[distinct["at"]])
    for combination, method_c, rest_c, client_c, method, rest, client in distinct.iter_rows():
        texts[0][method_c], texts[1][rest_c], texts[2][client_c] = method, rest, client
        verdict = verdicts.get(rest)
        if verdict is None:
            raw = rest.encode("utf-8")
            verdict = verdicts[rest] = judge_agent(user_agent_of(raw))
            written[rest] = origin_of(raw, ORIGINS)
        link = None
        if method.startswith("click:"):
            click = decided.get((method, rest))
            if click is None:
                click = decided[(method, rest)] = click_verdict(method.encode("ascii"), verdict)
            label, reason, number = click
            # The link as the register counts it (by its number as text).
            link = None if number is None else str(number)
            origin, client_words = "", verdict.client
            key = repeat_key(client, verdict.client, number) if number is not None else None
        else:
            # Judge.origin: what the server wrote, else the client's network; not asked
            # when the agent settles the label.
            origin = ""
            if verdict.kind != "fixed":
                origin = written[rest]
                if not origin and origins is not None:
                    origin = looked.get(client)
                    if origin is None:
                        origin = looked[client] = origins.lookup(client)
            address = client if verdict.kind == "apple" else ""
            pair = decided.get((method, rest, origin, address))
            if pair is None:
                pair = decided[(method, rest, origin, address)] = decide(
                    method, verdict, address, 0.0, None, rules, apple, origin)
            label, reason = pair
            client_words = described.get((verdict.client, origin))
            if client_words is None:
                client_words = described[(verdict.client, origin)] = (
                    f"{verdict.client} · {describe_origin(origin)}" if origin else verdict.client)
            key = repeat_key(client, verdict.client) if label in PERSON_LABELS else None
        rows.append((combination, method.startswith("click:"), origin, words.label(label),
                     words.reason(reason), _Words._code(words.described, client_words),
                     None if key is None else _Words._code(words.keys, key), link))
    return pl.DataFrame(rows, orient="row", schema={
        "combo": pl.UInt64, "click": pl.Boolean,
        "origin": pl.String, "label": pl.Int64, "reason": pl.Int64, "described": pl.Int64, "key": pl.Int64,
        "link": pl.String}), texts


def _tag_table(frame: "pl.DataFrame", methods: Dict[int, str], state, judge: Judge):
    """Per tag: the first fetch that opens its delivery window (remembered, or this batch's
    first pixel hit: ``first_row``), the span in which time changes a label, and the reported
    send a click is measured from; and what the tags' memories hold, in their order, as
    (tag, key, a place before every new hit, time). Python runs only for the tags with a
    memory from an earlier pass (and per moment, to list them): the rest is by the column."""
    clicks = [code for code, method in methods.items() if method.startswith("click:")]
    per_tag = frame.select("tag_c", "tag", "row", "when", pixel=~pl.col("method_c").is_in(clicks)).group_by(
        "tag_c").agg(pl.col("tag").first(), pl.col("row").filter("pixel").first().alias("pixel_row"),
                     pl.col("when").filter("pixel").first().alias("pixel_when"))
    codes, names = per_tag["tag_c"].to_list(), per_tag["tag"].to_list()
    counts = state.counts
    remembered, known, known_first = [], [], []
    for tag_c, tag in zip(codes, names) if counts else ():
        if tag in counts:
            recent = counts[tag].recent()
            remembered.extend((tag_c, key, place - len(recent), when)
                              for place, (key, when) in enumerate(recent.items()))
            known.append(tag_c)
            known_first.append(recent.get(FIRST_FETCH))
    # Each tag's moments (a send and a display or two, most) side by side, each with its tag.
    listed = list(map(judge.moments.get, names))
    moments = list(chain.from_iterable(filter(None, listed)))
    times, reasons = zip(*moments) if moments else ((), ())
    owners = pl.DataFrame({"tag_c": per_tag["tag_c"], "n": [len(said) if said else 0 for said in listed]},
                          schema={"tag_c": pl.UInt32, "n": pl.UInt32}).filter(pl.col("n") > 0).select(
        pl.col("tag_c").repeat_by("n")).explode("tag_c")
    said = owners.with_columns(moment=pl.Series(times, dtype=pl.Float64), reason=pl.Series(reasons, dtype=pl.String)
                               ).group_by("tag_c").agg(low=pl.col("moment").min(), high=pl.col("moment").max(),
                                                       sent=pl.col("moment").filter(pl.col("reason") == "send").min())
    memory = pl.DataFrame({"tag_c": known, "memory_first": known_first},
                          schema={"tag_c": pl.UInt32, "memory_first": pl.Float64})
    tags = per_tag.join(said, on="tag_c", how="left").join(memory, on="tag_c", how="left")
    # judge.send_reported, then the first fetch: remembered, else (no send reported) the batch's first.
    reported = pl.col("sent").is_not_null()
    batch_first = pl.col("memory_first").is_null() & ~reported & pl.col("pixel_row").is_not_null()
    tags = tags.with_columns(first=pl.when(batch_first).then("pixel_when").otherwise("memory_first"),
                             first_row=pl.when(batch_first).then("pixel_row"))
    return tags.select("tag_c", "tag", "first", "first_row", *_windows(judge.rules)), remembered


def _windows(rules) -> List["pl.Expr"]:
    """``Judge.window`` by the column, with its moments as ``stamped`` gives them: ``start``,
    ``end`` (null without a window) and ``send`` (null when no send was reported), from each
    tag's moments (``low``, ``high``, ``sent``: the earliest, the latest and the earliest send,
    null without one) and its ``first`` fetch. A float's min, max and sums are exact here as
    in Python, so the spans are the same to the bit (the tests compare them)."""
    reported = pl.col("sent").is_not_null()
    # Without a reported send the first fetch is one more moment, and the delivery starts there.
    fetched = pl.when(~reported).then("first")
    low, high = pl.min_horizontal("low", fetched), pl.max_horizontal("high", fetched)
    sent_at = pl.when(reported).then("sent").otherwise("first")
    start = low - SELF_BEFORE_S
    end = pl.max_horizontal(high + SELF_AFTER_S, sent_at + rules.delivery_window_s) + 1
    return [_stamped(start).alias("start"), _stamped(end).alias("end"), pl.col("sent").alias("send")]


def _stamped(when: "pl.Expr") -> "pl.Expr":
    """``timestamps.stamped`` by the column: whole seconds, plus the microseconds rounded half
    to even (as ``round``) cut to milliseconds."""
    second = when.floor()
    micros = ((when - second) * 1_000_000).round(0).cast(pl.Int64)
    carry = micros >= 1_000_000
    second = pl.when(carry).then(second + 1).otherwise(second)
    micros = pl.when(carry).then(micros - 1_000_000).otherwise(micros)
    return second + (micros // 1000) / 1000


def _count(frame: "pl.DataFrame", words: "_Words", last_seen: "pl.DataFrame", names: Dict[int, str], state, result,
           timelines) -> None:
    """Add the fast tags' hits to their counts, repeat memory and timelines."""
    if frame.height == 0:
        return
    counts, tags = state.counts, state.tags
    result.new_hits += frame.height
    codes = words.labels
    click_code = codes.get("click", -1)
    machine_codes = [code for label, code in codes.items() if label not in (*PERSON_LABELS, "click", "self")]
    is_open = pl.col("counted") & (pl.col("label") != click_code)
    is_click = pl.col("counted") & (pl.col("label") == click_code)
    # The kinds as flags first, then sums: quicker than filtered expressions inside the groups.
    per_tag = frame.select("tag_c", opens=is_open, selfs=pl.col("label") == codes.get("self", -1),
                           machine=pl.col("label").is_in(machine_codes)).group_by("tag_c").agg(
        hits=pl.len(), opens=pl.col("opens").sum(), selfs=pl.col("selfs").sum(), machine=pl.col("machine").sum())
    # The first and last open's times: a time's text orders as its moment (``when``) does, the
    # same moment is the same text (_SERVER_LINE), and a float is cheaper to compare.
    spans = frame.filter(is_open).group_by("tag_c").agg(
        first=pl.col("time").get(pl.col("when").arg_min()), last=pl.col("time").get(pl.col("when").arg_max()))
    per_tag = per_tag.join(spans, on="tag_c", how="left").with_columns(pl.col("first", "last").fill_null(""))
    clicked: Dict[int, list] = {}
    if click_code >= 0:
        # Each tag's links in the order of their first clicks, as the per-line loop adds them.
        per_link = (frame.filter(is_click).group_by("tag_c", "link")
                    .agg(n=pl.len(), first=pl.col("time").min(), last=pl.col("time").max(), at=pl.col("row").min())
                    .sort("at").drop("at"))
        for tag_c, *link_clicks in per_link.iter_rows():
            clicked.setdefault(tag_c, []).append(link_clicks)
    memories = _memories(frame, words, last_seen)
    tag_codes, hits, opens, selfs, machine, firsts, lasts = (
        per_tag[name].to_list() for name in ("tag_c", "hits", "opens", "selfs", "machine", "first", "last"))
    tag_names = list(map(names.__getitem__, tag_codes))
    result.touched.update(tag_names)
    result.unknown_tag_hits += sum(n for tag, n in zip(tag_names, hits) if tag not in tags)
    # A batch's counts as Counts.add_opens would leave them (no opens: no times), with its
    # memory, made from the columns' items (no Python loop per tag for these).
    batches = list(map(Counts, hits, opens, firsts, lasts, selfs, machine, repeat(0), repeat(""), repeat(""),
                       repeat(None), map(memories.get, tag_codes)))
    new_clicks = 0
    if clicked:
        by_code = dict(zip(tag_codes, batches))
        for tag_c, links in clicked.items():
            batch = by_code[tag_c]
            for link, n, first_click, last_click in links:
                batch.add_clicks(link, n, first_click, last_click)
            new_clicks += batch.clicks
    if counts.keys().isdisjoint(tag_names):  # most of a first fold's: its counts as they are
        counts.update(zip(tag_names, batches))
    else:
        for tag, tag_c, batch in zip(tag_names, tag_codes, batches):
            known = counts.get(tag)
            if known is None:
                counts[tag] = batch
            else:
                known.merge(batch)
                if tag_c in memories:
                    known.remember(memories[tag_c])
    result.new_opens += per_tag["opens"].sum()
    result.new_clicks += new_clicks
    _add_events(frame, words, names, timelines)
    _note_deciding_events(frame, words, names, last_seen, tag_names, tags, timelines)


def _note_deciding_events(frame: "pl.DataFrame", words: "_Words", names: Dict[int, str], last_seen: "pl.DataFrame",
                          tags: List[str], fields: Dict[str, Dict[str, str]], timelines) -> None:
    """What the fold learns of these fast tags after the pass (``fold._learn_visibility``),
    handed over in ``timelines.noted`` (``fold._Noted``): the tags; what the hits of those sent
    to one person (by their tags.csv ``fields``: only those say anything) make of a machine
    memory and places that start with them (``note_machine_fetches`` and
    ``elsewhere.note_opens`` from nothing, with the repeat memory these hits leave, ``last_seen``),
    by the column; and, for a tag that had either before or that more hits of the pass reach, the
    events that decide them (``_DecidingEvents``)."""
    labels = words.labels
    reasons, described = _Words.texts(words.reasons), _Words.texts(words.described)
    fetches = firsts = None
    machines, places = {}, {}
    tag = pl.col("tag_c")
    # Each tag's recipients' addresses, of the tags tags.csv has (fold._learn_visibility reads them too).
    recipients = {name: addresses(found.get("recipients", ""))
                  for name, found in zip(names.values(), map(fields.get, names.values())) if found is not None}
    alone = tag.is_in(pl.Series([code for code, name in names.items() if len(recipients.get(name, ())) == 1],
                                dtype=pl.UInt32).implode())
    if "prefetch" in labels:
        fetches = frame.filter((pl.col("label") == labels["prefetch"]) & alone).select(
            "tag_c", "row", "time", "when", "label", "counted", "reason", "described",
            apple=pl.col("reason").is_in([code for code, text in enumerate(reasons) if by_apple(text)]))
        # note_machine_fetches: the last fetch at the latest time, and whether Apple's proxy made one.
        latest = fetches.filter(pl.col("when") == pl.col("when").max().over(tag)).filter(
            pl.col("row") == pl.col("row").max().over(tag)).select(
            "tag_c", "time", "reason", apple=tag.is_in(fetches.filter("apple")["tag_c"].implode()))
        codes, stamps, kinds, by_proxy = (column.to_list() for column in latest.get_columns())
        machines = {names[tag_c]: [stamp, reasons[kind], apple]
                    for tag_c, stamp, kind, apple in zip(codes, stamps, kinds, by_proxy)}
    if "open" in labels:
        # Each mail program's first open, as note_opens sorts events (time, then the texts), in
        # that order.
        programs: Dict[str, int] = {}
        program_of = [programs.setdefault(elsewhere_program(text), len(programs)) for text in described]
        ranks = [pl.lit(pl.Series(_ranks(texts), dtype=pl.Int64)) for texts in (reasons, described)]
        firsts = frame.filter((pl.col("label") == labels["open"]) & pl.col("counted") & alone).select(
            "tag_c", "row", "time", "when", "label", "counted", "reason", "described",
            program=pl.lit(pl.Series(program_of, dtype=pl.Int64)).gather("described"),
            reason_rank=ranks[0].gather("reason"), client_rank=ranks[1].gather("described")).sort(
            "tag_c", "when", "reason_rank", "client_rank").filter(
            (tag.cast(pl.Int64) * len(programs) + pl.col("program")).is_first_distinct())
        places = _places(firsts, last_seen.filter(alone), words, programs, names)
    timelines.noted.add(tags, machines, places, _DecidingEvents(fetches, firsts, names, words), recipients)


def _ranks(texts: List[str]) -> List[int]:
    """Each text's place in their sorted order, by code."""
    ranks = [0] * len(texts)
    for rank, code in enumerate(sorted(range(len(texts)), key=texts.__getitem__)):
        ranks[code] = rank
    return ranks


def _places(firsts: "pl.DataFrame", clients: "pl.DataFrame", words: "_Words", programs: Dict[str, int],
            names: Dict[int, str]) -> Dict[str, list]:
    """``elsewhere.note_opens`` from nothing, by the column, for the tags with counted opens:
    [programs, networks, hints] as the fold state keeps them. ``firsts``: each mail program's
    first open, by tag, in order; ``clients``: the repeat memory's (``_remembered_clients``).
    The programs in that order; the networks the memory saw each from
    (``elsewhere.networks_by_program``: in the memory's order), each once; the time of each
    program's first open whose networks are all new, from the second program on."""
    # Each memory key's network and program, as networks_by_program reads them (a key is
    # network + " " + program: two keys never give the same pair).
    networks: Dict[str, int] = {}
    key_network, key_program = [], []
    for key in _Words.texts(words.keys):
        network, _, program = key.partition(" ")
        kept = not (key == FIRST_FETCH or key.startswith("click")) and program in programs
        key_network.append(networks.setdefault(network, len(networks)) if kept else None)
        key_program.append(programs[program] if kept else None)
    tag, pair, at = pl.col("tag_c"), pl.col("pair"), pl.int_range(pl.len())
    starts = (tag != tag.shift(1)).fill_null(True)
    # A (tag, program) pair as one number.
    firsts = firsts.select("tag_c", "program", "time", pair=tag.cast(pl.Int64) * len(programs) + pl.col("program"),
                           place=at - pl.when(starts).then(at).forward_fill())
    seen_from = clients.select(
        "row", pair=tag.cast(pl.Int64) * len(programs) + pl.lit(pl.Series(key_program, dtype=pl.Int64)).gather("key"),
        network=pl.lit(pl.Series(key_network, dtype=pl.Int64)).gather("key")).drop_nulls("pair").sort("row")
    # Each (program's first open, network its program was seen from), in the order note_opens
    # meets them: a network is new where its tag meets it first. A program's first open is from
    # somewhere new when each of its (one or more) networks is new there.
    pairs = firsts.join(seen_from, on="pair", how="inner", maintain_order="left_right").with_columns(
        new=(tag.cast(pl.Int64) * len(networks) + pl.col("network")).is_first_distinct())
    ends = (pair != pair.shift(-1)).fill_null(True)
    olds = pairs.select("tag_c", "time", "place", old=(~pl.col("new")).cum_sum(), end=ends).filter("end")
    hints = olds.filter((pl.col("old") == pl.col("old").shift(1).fill_null(0)) & (pl.col("place") > 0))
    new = pairs.filter("new")
    # Python lists (as the fold state keeps them) cut from three long ones, tag by tag.
    sizes = firsts.group_by("tag_c", maintain_order=True).len("programs").join(
        new.group_by("tag_c").len("networks"), on="tag_c", how="left", maintain_order="left").join(
        hints.group_by("tag_c").len("hints"), on="tag_c", how="left", maintain_order="left").fill_null(0)
    program_texts, network_texts = list(programs), list(networks)
    seen = [program_texts[code] for code in firsts["program"].to_list()]
    where = [network_texts[code] for code in new["network"].to_list()]
    times = hints["time"].to_list()
    made = {}
    a = b = c = 0
    for tag_c, n_programs, n_networks, n_hints in zip(*(column.to_list() for column in sizes.get_columns())):
        made[names[tag_c]] = [seen[a:a + n_programs], where[b:b + n_networks], times[c:c + n_hints]]
        a, b, c = a + n_programs, b + n_networks, c + n_hints
    return made


class _DecidingEvents:
    """One batch's events that decide what the fold learns of a tag, as frames until the fold
    asks for some tags' (those with a machine memory or places from before, or that more hits
    of the pass reach): of its machine fetches, the last one at the latest time, after one of
    Apple's if that one is not (``note_machine_fetches`` keeps the latest and whether Apple
    was among them); of its counted opens, each mail program's first (``note_opens`` looks at
    a program's first open only). From these they give what they give from all its events,
    whatever a timeline keeps."""

    def __init__(self, fetches, firsts, names: Dict[int, str], words: "_Words"):
        self.fetches, self.firsts, self.names = fetches, firsts, names
        self.texts = (_Words.texts(words.labels), _Words.texts(words.reasons), _Words.texts(words.described))

    def of(self, tags: set) -> Dict[str, list]:
        """These tags' events, by tag, as timeline events (time, label, counted, reason, client)."""
        codes = pl.Series([code for code, tag in self.names.items() if tag in tags], dtype=pl.UInt32).implode()
        parts = []
        if self.fetches is not None:
            fetches = self.fetches.filter(pl.col("tag_c").is_in(codes))
            parts += [fetches.filter("apple").group_by("tag_c").first().with_columns(order=pl.lit(0)),
                      fetches.sort("when", "row").group_by("tag_c").last().with_columns(order=pl.lit(1))]
        if self.firsts is not None:
            parts.append(self.firsts.filter(pl.col("tag_c").is_in(codes)).with_columns(order=pl.lit(2)))
        found: Dict[str, list] = {}
        if not parts:
            return found
        label_of, reasons, described = self.texts
        events = pl.concat([part.select("tag_c", "order", "row", "time", "label", pl.col("counted").cast(pl.Int64),
                                        "reason", "described") for part in parts])
        for tag_c, _, _, stamp, label, counted, reason, client in events.sort("tag_c", "order", "row").iter_rows():
            found.setdefault(self.names[tag_c], []).append(
                (stamp, label_of[label], counted, reasons[reason], described[client]))
        return found


def _add_events(frame: "pl.DataFrame", words: "_Words", names: Dict[int, str], timelines) -> None:
    """The fast tags' latest events in their timelines: only view.TIMELINE_LENGTH are kept, so
    only those are built, and a timeline that starts here is written by the column, as the
    store keeps it (``view.events_text``: each event's time and the code of its kind)."""
    # All but the time as one number (each part a code below its table's size), and that
    # number's code in the store.
    reasons, described = len(words.reasons), len(words.described)
    kind = ((pl.col("label") * 2 + pl.col("counted").cast(pl.Int64)) * reasons + pl.col("reason")) * described \
        + pl.col("described")
    numbered = frame.select("tag_c", "time", kind.alias("kind"))
    kinds = numbered["kind"].unique().to_list()
    texts = (_Words.texts(words.labels), _Words.texts(words.reasons), _Words.texts(words.described))
    spelled = []
    for number in kinds:
        number, client = divmod(number, described)
        number, reason = divmod(number, reasons)
        label, counted = divmod(number, 2)
        spelled.append((texts[0][label], counted, texts[1][reason], texts[2][client]))
    view = timelines.view
    # New kinds get their codes in the order of their texts: the same logs make the same store.
    order = sorted(range(len(kinds)), key=spelled.__getitem__)
    given = dict(zip(order, view.event_codes([spelled[i] for i in order])))
    codes = pl.Series([str(given[i]) for i in range(len(kinds))], dtype=pl.String)
    # A time is TIME_LENGTH characters, never a comma (_SERVER_LINE): it and the code are the event.
    event = pl.concat_str([pl.col("time"), pl.col("kind").replace_strict(kinds, codes)])
    # Each tag's latest events as a list, then joined: quicker than joining inside the groups.
    joined = numbered.lazy().select("tag_c", event.alias("events")).group_by("tag_c").agg(
        pl.col("events").tail(TIMELINE_LENGTH)).with_columns(pl.col("events").list.join(",")).collect()
    timelines.add_encoded(list(map(names.__getitem__, joined["tag_c"].to_list())), joined["events"].to_list())


def _memories(frame: "pl.DataFrame", words: "_Words", last_seen: "pl.DataFrame") -> Dict[int, object]:
    """Each fast tag's repeat memory after its hits: its last RECENT_CLIENTS clients by their
    last hit (those it remembered count as seen before every new hit), oldest first, each with
    that hit's time (it counted), and the first fetch where ``Judge.judge`` put it, after the
    clients seen before it and before those that came after. Each (tag, key) once: a client's
    last hit is one row of ``last_seen`` (the remembered clients'), and a first fetch comes
    from the memory or the batch.

    By tag, as ``Counts.packed`` keeps it (JSON text, written by the column) when each time in
    it is a whole number of milliseconds as a hit's is, else as a dict."""
    first_fetch = _Words._code(words.keys, FIRST_FETCH)
    schema = {"tag_c": pl.UInt32, "row": pl.Int64, "kind": pl.Int8, "key": pl.Int64, "when": pl.Float64}
    clients = last_seen.select("tag_c", "row", pl.lit(1, pl.Int8).alias("kind"), "key", "when")
    firsts = frame.lazy().filter(pl.col("first_row").is_not_null()).select(
        "tag_c", pl.col("first_row").cast(pl.Int64).alias("row"), pl.lit(0, pl.Int8).alias("kind"),
        pl.lit(first_fetch, pl.Int64).alias("key"), pl.col("first").alias("when")).unique("tag_c").collect()
    remembered = pl.DataFrame([(tag_c, row, 0, first_fetch, when) for tag_c, row, when in words.first_fetches],
                              schema=schema, orient="row").filter(pl.col("tag_c").is_in(frame["tag_c"].implode()))
    # In their order (a first fetch before a client's hit of the same row): a group keeps its
    # rows' order, so one key of numbers sorts them, not three; the clients come in their order.
    order = (pl.col("row") * 2 + pl.col("kind")).alias("order")
    items = clients.cast(schema).with_columns(order).merge_sorted(
        pl.concat([firsts.cast(schema), remembered]).with_columns(order).sort("order"), key="order")
    # A time as repr() and orjson write it: the seconds, and the milliseconds without their
    # trailing zeros ("1700000000.5"). That is the float's shortest spelling whenever it is
    # the sum of the two (as parse_timestamp makes a hit's time) between 1 s and 2**35 s,
    # where floats are far finer than a millisecond.
    when = pl.col("when")
    whole = when.floor()
    millis = ((when - whole) * 1000).round(0).cast(pl.Int64).clip(0, 999)
    plain = (when >= 1) & (when < 2 ** 35) & (whole + millis / 1000 == when)
    # An item in three parts: "[key,", the seconds, the decimals and "]".
    decimals = pl.Series([(f".{n:03d}".rstrip("0") if n else ".0") + "]" for n in range(1000)], dtype=pl.String)
    spelled = pl.Series([f"[{compact_json(key)}," for key in _Words.texts(words.keys)], dtype=pl.String)
    item = pl.concat_str([pl.lit(spelled).gather(pl.col("key")), whole.cast(pl.Int64).cast(pl.String),
                          pl.lit(decimals).gather(millis)])
    # Each tag's items as a list, then joined: quicker than joining inside the groups.
    texts = items.lazy().select("tag_c", item=item, plain=plain).group_by("tag_c").agg(
        pl.col("plain").all(), pl.col("item")).select(
        "tag_c", "plain", text=pl.concat_str([pl.lit("["), pl.col("item").list.join(","), pl.lit("]")])).collect()
    plain_texts = texts.filter("plain")
    memories: Dict[int, object] = dict(zip(plain_texts["tag_c"].to_list(), plain_texts["text"].to_list()))
    odd = items.filter(pl.col("tag_c").is_in(texts.filter(~pl.col("plain"))["tag_c"].implode())).sort(
        "tag_c", maintain_order=True)
    if odd.height:
        keys = _Words.texts(words.keys)
        codes, whens = odd["key"].to_list(), odd["when"].to_list()
        spans = odd.with_row_index("at").group_by("tag_c", maintain_order=True).agg(pl.col("at").first(), pl.len())
        for tag_c, at, n in spans.iter_rows():
            memories[tag_c] = dict(zip(map(keys.__getitem__, codes[at:at + n]), whens[at:at + n]))
    return memories


def _remembered_clients(last_seen: "pl.DataFrame") -> "pl.DataFrame":
    """The clients each fast tag's repeat memory keeps after its hits (``last_seen``'s rows, one
    per client and its last hit): of a tag that saw more than it remembers, its latest."""
    crowded = last_seen.group_by("tag_c").len().filter(pl.col("len") > RECENT_CLIENTS)["tag_c"].implode()
    latest = pl.col("row") >= pl.col("row").top_k(RECENT_CLIENTS).min().over("tag_c")
    return pl.concat([last_seen.filter(~pl.col("tag_c").is_in(crowded)),
                      last_seen.filter(pl.col("tag_c").is_in(crowded)).filter(latest)])
