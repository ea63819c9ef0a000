"""The fold's fast path (fastfold, polars) counts exactly what the per-line loop counts."""

import json
import random
import re
import shutil
import sqlite3
import sys

import pytest

from mailtracker.core.csvcodec import format_row, header_line, neutralise
from mailtracker.core.hitline import HIT_COLUMNS, format_hit_line
from mailtracker.core.paths import Home
from mailtracker.core.settings import init_home, load_config
from mailtracker.core.timestamps import parse_timestamp, utc_timestamp
from mailtracker.core.tokens import PROBE_TAG_PREFIX
from mailtracker.desktop import fold as fold_module
from mailtracker.desktop import tail as tail_module
from mailtracker.desktop.register import Register
from mailtracker.desktop.tags import mint_tag, record_self_fetch
from mailtracker.desktop.view import TIMELINE_LENGTH
from tests.conftest import OUTLOOK, THUNDERBIRD
from tests.corpus import APPLE_SAMPLE, load_corpus, run_corpus

pl = pytest.importorskip("polars")
from mailtracker.desktop import fastfold  # noqa: E402

START = 1_795_000_000.0
CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
AGENTS = [
    THUNDERBIRD, OUTLOOK, CHROME,
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
    "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
    "Mozilla/5.0",  # Apple's relay, or a bare client
    'Mozilla/5.0 (compatible; "quoted", scanner/1.0)', "python-requests/2.31", "", "=cmd|' /C calc'!A0",
]
CLIENTS = ["203.0.113.0", "198.51.100.0", "172.224.224.5", "40.107.22.7", "66.249.93.0", "2001:db8::", "unknown",
           "9f86d081884c7d65"]
ORIGINS = ["", "", "", "microsoft-eop", "google", "apple-relay", "yahoo", "not-an-origin"]


def _alphabet_tag(rng):
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz234567") for _ in range(32))


def _edge_home(root, rng, hits=6_000, one_each=False):
    """A home whose logs exercise every rule: repeats and returns within the window, more
    clients on a tag than the repeat rule remembers, sends, displays and hand-minted tags
    (first-fetch windows), Apple's bare agent, origins written or not (7- and 8-column
    lines), clicks with HEAD, scanners and repeats, unknown and probe tags, a restart, a
    sync-conflict copy, and unreadable lines."""
    home = Home.locate(str(root))
    init_home(home)
    config = load_config(home)
    # one_each: each mail to one person (the "not seen" and "somewhere new" rules read those).
    tags = [mint_tag(home, config, name=f"t{i}", recipients=[f"p{i}@example.org"] if one_each else ()).id
            for i in range(40)]
    sends = {}
    for i, tag in enumerate(tags[:28]):  # the rest were minted by hand: no send reported
        sends[tag] = START + i * 600
        record_self_fetch(home, tag, "send", when=utc_timestamp(sends[tag]))
        if i % 3 == 0:
            record_self_fetch(home, tag, "display", when=utc_timestamp(sends[tag] + 3_000))
    strangers = [_alphabet_tag(rng) for _ in range(3)]
    busy = tags[5]
    hits_dir = home.hits_dir(config)
    hits_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    boot, seq = "bootaaaa", 0
    for n in range(hits):
        if n == hits // 2:
            boot, seq = "bootbbbb", 0  # a restart
        seq += 1
        tag = rng.choice(tags + strangers) if n % 9 else busy
        base = sends.get(tag, START + 5_000)
        when = base + rng.choice([0.2, 1.5, 4, 9.9, 12, 30, 90, 119, 125, 600, 3_001, 3_100]) + rng.random() * 20_000 * (n % 2)
        agent, client = rng.choice(AGENTS), rng.choice(CLIENTS)
        if tag == busy:  # 30 clients coming back: the repeat rule's memory overflows
            client, agent = f"10.0.{n % 30}.0", CHROME
        method = rng.choice(["GET"] * 6 + ["HEAD", f"click:{rng.randrange(3)}:GET", f"click:{rng.randrange(3)}:HEAD"])
        stamp = utc_timestamp(when)
        hit_id = f"{boot}.{seq:x}"
        if rng.random() < 0.3:  # a server from before the origin column
            line = format_row([hit_id, stamp, tag, method, client, neutralise(agent), ""]).encode()
        else:
            line = format_hit_line(hit_id, stamp, tag, method, client, neutralise(agent),
                                   rng.choice(["", "https://mail.google.com/", "a,b"]), rng.choice(ORIGINS))
        lines.append(line)
        if rng.random() < 0.08:  # the same client again soon: a repeat, or just past the window;
            seq += 1             # earlier in time too, where the server's clock stepped back
            again = line.replace(stamp.encode(), utc_timestamp(
                when + rng.choice([1, 30, 59.9, 61, -1, -30, -59.9, -61, 100, -100])).encode(), 1)
            lines.append(again.replace(hit_id.encode(), f"{boot}.{seq:x}".encode(), 1))
    # A hand-minted tag's first fetch, then a scanner 3 s on.
    lines[:0] = [format_hit_line(f"bootdddd.{2 * i + k + 1:x}", utc_timestamp(START + 5_000 + offset), tag, "GET",
                                 "203.0.113.0", CHROME, "")
                 for i, tag in enumerate(tags[28:]) for k, offset in enumerate((0, 3))]
    lines.insert(100, format_hit_line("bootaaaa.fffff", utc_timestamp(START), PROBE_TAG_PREFIX + "b" * 13, "GET",
                                      "1.2.3.4", THUNDERBIRD, ""))
    lines.insert(200, b"not,a,hit,line")
    lines.insert(300, b"")
    lines.insert(400, b"bootaaaa.1x,2026-11-24T10:00:00.000Z," + tags[0].encode() + b",GET,1.2.3.0,x,")
    half = len(lines) // 2
    for name, part in (("hits-a-2026-11-24.csv", lines[:half]), ("hits-a-2026-11-25.csv", lines[half:])):
        (hits_dir / name).write_bytes(header_line(HIT_COLUMNS) + b"".join(
            line if line.endswith(b"\n") else line + b"\r\n" for line in part))
    shutil.copy(hits_dir / "hits-a-2026-11-24.csv",
                hits_dir / "hits-a-2026-11-24.sync-conflict-20261124-101010-ABCDEFG.csv")
    return home


def _observed(home, result):
    """Everything a fold leaves that anyone can see or that a later fold reads."""
    db = sqlite3.connect(str(home.state_dir / "view.sqlite3"))
    try:
        # Each timeline as its readers get it (the store's codes of event kinds may differ).
        with Register.load(home) as register:
            rows = register.rows()
            timelines = {tag: register.timeline(tag) for (tag,) in db.execute("SELECT tag FROM timelines")}
        # The fold's own state: each tag's counts, memory, moments... and the hits it counted.
        # As [fields, counts, moments, links, replies, machine, places, evidence, parts]: its tags.csv
        # fields are in its row, compared above (None in their place here), the memory in its counts.
        tags = {}
        for tag, parts, data, memory, evidence in db.execute(
                "SELECT tag, parts, data, memory, evidence FROM fold_tags"):
            tags[tag] = [None, *json.loads(data), evidence and json.loads(evidence), parts]
            if tags[tag][1] is not None:
                tags[tag][1][fold_module.MEMORY_AT] = memory
        core = json.loads(db.execute("SELECT value FROM fold_state WHERE key = 'core'").fetchone()[0])
    finally:
        db.close()
    fields = dict(vars(result), touched=sorted(result.touched))
    return {"rows": rows, "timelines": timelines, "tags": tags, "seen": core["seen"],
            "result": fields, "register": home.register_path.read_bytes()}


def _fold(home, fast, monkeypatch, rebuild=False, group_bytes=None):
    """One fold with the fast path for any batch (else none), ``group_bytes`` at a time; says
    whether it took them all."""
    taken = []
    real = fastfold.fold_batches

    def spy(*args):
        taken.append(real(*args))
        return taken[-1]

    with monkeypatch.context() as patch:
        patch.setattr(fold_module, "FAST_PATH", fast)
        patch.setattr(fold_module, "FAST_MIN_BYTES", 0)
        patch.setattr(fastfold, "fold_batches", spy)
        if group_bytes:
            patch.setattr(fold_module, "FAST_GROUP_BYTES", group_bytes)
        result = fold_module.fold(home, rebuild=rebuild)
    return result, bool(taken) and all(taken)


def _copy(home, root):
    shutil.copytree(home.data_dir, root, ignore=shutil.ignore_patterns("state", "register.csv"))
    return Home.locate(str(root))


def _both_ways(home, tmp_path, monkeypatch, expect_fast=True, group_bytes=None):
    homes = [_copy(home, tmp_path / name) for name in ("per-line", "fast")]
    reference, _ = _fold(homes[0], False, monkeypatch)
    result, took = _fold(homes[1], True, monkeypatch, group_bytes=group_bytes)
    assert took == expect_fast
    expected, got = _observed(homes[0], reference), _observed(homes[1], result)
    for part in expected:
        assert got[part] == expected[part], part
    return expected


def _on_top_both_ways(home, root, monkeypatch):
    """The home's new lines folded on top of its folded state, per line and by the fast path,
    in copies of it: the same everything. Gives what the per-line fold left."""
    homes = [root / "per-line", root / "fast"]
    for each in homes:
        shutil.copytree(home.data_dir, each)
    results = [_fold(Home.locate(str(homes[0])), False, monkeypatch)[0],
               _fold(Home.locate(str(homes[1])), True, monkeypatch)[0]]
    expected, got = (_observed(Home.locate(str(each)), result) for each, result in zip(homes, results))
    for part in expected:
        assert got[part] == expected[part], part
    return expected


def test_the_labelled_corpus_folds_the_same_both_ways(tmp_path, monkeypatch):
    """Every corpus trace, with each privacy setting: the same labels, counts and timelines."""
    for mode in ("truncated", "hash", "full"):
        with monkeypatch.context() as patch:
            patch.setattr(fold_module, "FAST_PATH", False)
            run_corpus(tmp_path / mode, client_address=mode)
        folded = _both_ways(Home.locate(str(tmp_path / mode)), tmp_path / f"{mode}-both", monkeypatch)
        assert folded["result"]["new_hits"] == len(load_corpus())


def test_an_edge_history_folds_the_same_both_ways(tmp_path, monkeypatch):
    """Repeats, crowded tags, windows, Apple, clicks, origins or none, a conflict copy, bad lines."""
    home = _edge_home(tmp_path / "edge", random.Random(12))
    from mailtracker.desktop.ranges import load_apple_ranges

    load_apple_ranges(home, APPLE_SAMPLE)
    folded = _both_ways(home, tmp_path / "both", monkeypatch)
    result = folded["result"]
    assert result["duplicate_hits"] > 1_000 and result["skipped_lines"] == 4 and result["unknown_tag_hits"]
    assert result["new_clicks"] and result["new_opens"]
    labels = {event[1] for events in folded["timelines"].values() for event in events}
    assert labels == {"open", "proxy", "prefetch", "self", "click"}
    reasons = {event[3].partition(":")[0] for events in folded["timelines"].values() for event in events}
    assert {"repeat", "delivery", "first-fetch", "origin", "apple-range", "click", "method", "scanner"} <= reasons


def test_mails_to_one_person_each_fold_the_same_both_ways(tmp_path, monkeypatch):
    """The edge history, each mail to one person: the machine fetches, the places of the opens
    ("opened somewhere new") and the "not seen" knowledge the fold learns from every hit are
    the same by the column as hit by hit, for a tag with far more hits than a timeline keeps."""
    home = _edge_home(tmp_path / "edge", random.Random(12), one_each=True)
    folded = _both_ways(home, tmp_path / "both", monkeypatch)
    kept = folded["tags"].values()
    assert sum(data[5] is not None for data in kept) > 10  # machine fetches noted
    assert sum(data[6] is not None and bool(data[6][2]) for data in kept) > 5  # opens from somewhere new
    assert max(row.hits for row in folded["rows"]) > 3 * TIMELINE_LENGTH


def test_a_mail_opened_only_through_an_image_proxy_keeps_empty_places_both_ways(tmp_path, monkeypatch):
    """A mail to one person whose only counted opens are an image proxy's: no mail program's
    open to place, and its places are kept empty by the column as hit by hit."""
    home = Home.locate(str(tmp_path / "proxied"))
    init_home(home)
    config = load_config(home)
    tags = [mint_tag(home, config, name=f"g{i}", recipients=[f"g{i}@example.org"]).id for i in range(3)]
    lines = [format_hit_line(f"bootgggg.{n + 1:x}", utc_timestamp(START + 5_000 + 90 * n), tags[n % 3], "GET",
                             f"66.249.{n % 7}.0", AGENTS[4] if n % 3 == 0 else AGENTS[n % 2], "")  # 4: Google's proxy
             for n in range(600)]
    hits_dir = home.hits_dir(config)
    hits_dir.mkdir(parents=True, exist_ok=True)
    (hits_dir / "hits-a-2026-11-24.csv").write_bytes(header_line(HIT_COLUMNS) + b"".join(
        line + b"\r\n" for line in lines))
    folded = _both_ways(home, tmp_path / "both", monkeypatch)
    proxied = next(row for row in folded["rows"] if row.id == tags[0])
    assert proxied.opens > 100 and folded["tags"][tags[0]][6] == [[], [], []]
    assert all(folded["tags"][tag][6][0] for tag in tags[1:])  # the others' programs


def _again(home, shift_s):
    """The home's hits again, later and from a new boot of each server: new hits for the same
    tags and clients, after the earlier ones were folded."""
    hits_dir = home.hits_dir(load_config(home))
    for path in sorted(hits_dir.glob("hits-a-2026-11-2?.csv")):
        lines = path.read_bytes().split(b"\r\n")
        for n, line in enumerate(lines):
            fields = line.split(b",")
            if n and len(fields) > 5 and len(fields[1]) == 24:
                try:
                    fields[1] = utc_timestamp(parse_timestamp(fields[1].decode()) + shift_s).encode()
                except ValueError:
                    continue
                fields[0] = b"later" + fields[0]
                lines[n] = b",".join(fields)
        (hits_dir / path.name.replace("hits-a-", "hits-b-")).write_bytes(b"\r\n".join(lines))


def _calm(home, start):
    """Every hit a minute after the one before, and no click: no repeats, no slow tag."""
    for path in home.hits_dir(load_config(home)).glob("hits-*.csv"):
        lines = path.read_bytes().split(b"\r\n")
        kept = [line for line in lines if b",click:" not in line and b",bootaaaa.fffff," not in line]
        path.write_bytes(b"\r\n".join(line if n < 2 or line.count(b",") < 5 else line.replace(
            line.split(b",")[1], utc_timestamp(start + 61 * n).encode(), 1) for n, line in enumerate(kept)))


@pytest.mark.parametrize("one_each, calm", [(False, True), (True, True), (True, False)])
def test_a_batch_in_many_groups_folds_the_same(tmp_path, monkeypatch, one_each, calm):
    """A rebuild bigger than FAST_GROUP_BYTES goes in groups; each carries the last one's memory.
    Mails to one person each: what a tag's hits in several groups teach (machine fetches,
    places) is learned from the events each group hands over, as hit by hit; also where a tag
    goes per line in one group (a client back within the window) and by the column in another."""
    home = _edge_home(tmp_path / "big", random.Random(9), hits=3_000, one_each=one_each)
    if calm:
        _calm(home, START + 20_000)
    with _asked_for_events(monkeypatch) as asked:
        folded = _both_ways(home, tmp_path / "both", monkeypatch, group_bytes=40_000)
    if one_each:
        assert len(asked) > 20  # tags in several groups: their events, not the columns' places
        assert sum(data[6] is not None and bool(data[6][2]) for data in folded["tags"].values()) > 5


class _asked_for_events:
    """The tags whose deciding events the visibility step asked the fast path for (those whose
    machine memory and places it did not take from the columns)."""

    def __init__(self, monkeypatch):
        self.monkeypatch = monkeypatch
        self.asked = set()

    def __enter__(self):
        real = fold_module._Noted.events

        def events(noted, tags):
            self.asked.update(tags)
            return real(noted, tags)

        self.monkeypatch.setattr(fold_module._Noted, "events", events)
        return self.asked

    def __exit__(self, *exc):
        self.monkeypatch.undo()


def test_a_rebuild_by_the_columns_reads_the_same_and_keeps_only_the_kinds_it_met(tmp_path, monkeypatch):
    """A rebuild of a folded store by the columns: every reader gets what a fresh fold per line
    gives, and the store keeps only kinds of the events it counted (one made up before is
    gone), each once."""
    home = _edge_home(tmp_path / "edge", random.Random(4), hits=3_000)
    homes = [_copy(home, tmp_path / name) for name in ("per-line", "fast")]
    reference, _ = _fold(homes[0], False, monkeypatch)
    _fold(homes[1], True, monkeypatch)
    db = sqlite3.connect(str(homes[1].state_dir / "view.sqlite3"))
    with db:
        db.execute("INSERT INTO event_kinds (kind) VALUES ('[\"open\",1,\"open\",\"nobody\"]')")
    db.close()
    result, took = _fold(homes[1], True, monkeypatch, rebuild=True)
    assert took
    expected, got = _observed(homes[0], reference), _observed(homes[1], result)
    for part in expected:
        assert got[part] == expected[part], part
    db = sqlite3.connect(str(homes[1].state_dir / "view.sqlite3"))
    try:
        kinds = [json.loads(kind) for (kind,) in db.execute("SELECT kind FROM event_kinds")]
    finally:
        db.close()
    named = {event[1:] for events in got["timelines"].values() for event in events}
    kept = set(map(tuple, kinds))
    assert len(kept) == len(kinds) and named <= kept and ("open", 1, "open", "nobody") not in kept


def test_the_same_logs_make_the_same_store_by_the_columns(tmp_path, monkeypatch):
    """Two first folds of the same logs by the columns store the same timelines byte for byte:
    the kinds of events are numbered in one order, whatever order polars meets them in."""
    home = _edge_home(tmp_path / "edge", random.Random(5), hits=3_000)
    stores = []
    for name in ("one", "two"):
        copy = _copy(home, tmp_path / name)
        _, took = _fold(copy, True, monkeypatch)
        assert took
        db = sqlite3.connect(str(copy.state_dir / "view.sqlite3"))
        try:
            stores.append([list(db.execute("SELECT tag, events FROM timelines ORDER BY tag")),
                           list(db.execute("SELECT code, kind FROM event_kinds ORDER BY code"))])
        finally:
            db.close()
    assert stores[0] == stores[1]


@pytest.mark.parametrize("one_each", [False, True])
def test_tags_without_repeats_are_counted_by_the_columns(tmp_path, monkeypatch, caplog, one_each):
    """A history where no client comes back within the window: no tag is handed to the per-line
    loop, from scratch and on top of that history (the repeat memory it left). Mails to one
    person each: their machine memory and places come from the columns, then go on from the
    events the fast path hands over."""
    home = _edge_home(tmp_path / "calm", random.Random(3), hits=3_000, one_each=one_each)
    _calm(home, START + 20_000)
    with caplog.at_level("DEBUG", logger="mailtracker.desktop.fastfold"), _asked_for_events(monkeypatch) as asked:
        folded = _both_ways(home, tmp_path / "both", monkeypatch)
    assert folded["result"]["new_opens"] > 500
    assert "fast path:" in caplog.text and " 0 hits of slow tags per line" in caplog.text
    assert not asked
    caplog.clear()
    fold_module.fold(home)
    _again(home, 400_000)
    with caplog.at_level("DEBUG", logger="mailtracker.desktop.fastfold"), _asked_for_events(monkeypatch) as asked:
        expected = _on_top_both_ways(home, tmp_path / "again", monkeypatch)
    assert " 0 hits of slow tags per line" in caplog.text
    assert expected["result"]["new_hits"] > 2_000
    if one_each:
        assert len(asked) > 20
        assert sum(data[6] is not None and bool(data[6][2]) for data in expected["tags"].values()) > 5


def _returning_home(root, rng, tags=60, hits=8_000, one_each=False):
    """Sent tags whose readers come back: bursts of the same client seconds apart (chains of
    repeats, a burst that outlasts the window), times out of order, a client back after more
    than RECENT_CLIENTS others, and clicks well after the send. ``one_each``: each mail to one
    person."""
    home = Home.locate(str(root))
    init_home(home)
    config = load_config(home)
    ids = [mint_tag(home, config, name=f"r{i}", recipients=[f"r{i}@example.org"] if one_each else ()).id
           for i in range(tags)]
    for i, tag in enumerate(ids):
        record_self_fetch(home, tag, "send", when=utc_timestamp(START + i))
    clock = {tag: START + 10_000 for tag in ids}
    lines = []
    for n in range(hits):
        tag = rng.choice(ids[:8]) if n % 3 else rng.choice(ids)  # a few crowded tags
        crowded = tag in ids[:4]  # more clients than the memory holds, many at once
        clock[tag] += rng.choice([1, 2, 3, 70, -2] if crowded else [1, 5, 20, 45, 59, 61, 75, 200, 4_000, -30])
        pool = 24 if crowded else 6
        client, agent = f"10.1.{rng.randrange(pool)}.0", rng.choice([THUNDERBIRD, OUTLOOK, CHROME])
        method = "GET" if rng.random() < 0.9 else f"click:{rng.randrange(2)}:GET"
        lines.append(format_hit_line(f"bootrrrr.{n + 1:x}", utc_timestamp(clock[tag]), tag, method, client,
                                     agent, ""))
    hits_dir = home.hits_dir(config)
    hits_dir.mkdir(parents=True, exist_ok=True)
    (hits_dir / "hits-a-2026-11-26.csv").write_bytes(header_line(HIT_COLUMNS) + b"".join(lines))
    return home


@pytest.mark.parametrize("one_each", [False, True])
def test_clients_that_come_back_are_counted_by_the_columns(tmp_path, monkeypatch, caplog, one_each):
    """The repeat rule by the column: the same counts, memory and timelines as hit by hit, and
    only the tags where a client came back after more others than the memory holds are left to
    the per-line loop; on top of that history too. Mails to one person each: the places of
    their opens by the column read the networks of the clients a crowded memory still holds."""
    home = _returning_home(tmp_path / "returning", random.Random(21), one_each=one_each)
    with caplog.at_level("DEBUG", logger="mailtracker.desktop.fastfold"):
        folded = _both_ways(home, tmp_path / "both", monkeypatch)
    rows = folded["rows"]
    repeats = sum(row.hits - row.opens - row.clicks - row.machine_hits - row.self_hits for row in rows)
    assert repeats > 250 and sum(row.clicks for row in rows) > 100
    slow = int(re.search(r"(\d+) hits of slow tags per line", caplog.text).group(1))
    assert 0 < slow < folded["result"]["new_hits"] / 2
    fold_module.fold(home)
    _again(home, 40)  # the same clients, some within the window of what the memory holds
    assert _on_top_both_ways(home, tmp_path / "again", monkeypatch)["result"]["new_hits"] > 5_000


@pytest.mark.parametrize("one_each", [False, True])
def test_new_hits_after_a_folded_history_fold_the_same_both_ways(tmp_path, monkeypatch, one_each):
    """On top of a folded history (stored repeat memory, seen runs, first fetches): the same.
    Mails to one person each: their machine memory and places from before go on."""
    home = _edge_home(tmp_path / "history", random.Random(5), hits=3_000, one_each=one_each)
    fold_module.fold(home)
    _again(home, 30)  # some within the repeat window of the same client's last open
    hits_dir = home.hits_dir(load_config(home))
    # And a copy of a file already folded: every hit in it was counted by the earlier pass.
    shutil.copy(hits_dir / "hits-a-2026-11-25.csv", hits_dir / "hits-a-2026-11-25.sync-conflict-20261125-1-AB.csv")
    expected = _on_top_both_ways(home, tmp_path / "again", monkeypatch)
    assert expected["result"]["new_hits"] > 1_000 and expected["result"]["duplicate_hits"] > 1_000


def test_lines_cut_and_split_a_group_at_a_time_fold_the_same(tmp_path, monkeypatch, caplog):
    """The blocks read are cut into lines and split a group at a time (here each 64 kB block
    alone): the same everything as hit by hit, each unreadable line named by its file, and the
    lines of the tags left to the per-line loop handed to it as they were read (rebuilt from
    their fields, the group's text let go)."""
    home = _edge_home(tmp_path / "groups", random.Random(12), hits=6_000)
    monkeypatch.setattr(tail_module, "_READ_CHUNK", 64 << 10)
    monkeypatch.setattr(fastfold, "SPLIT_GROUP_BYTES", 1)
    handed = []
    real = fold_module.fold_hit_lines

    def per_line(lines, file_name, *args):
        if not file_name:  # the fast path's slow tags
            handed.extend(lines)
        return real(lines, file_name, *args)

    monkeypatch.setattr(fold_module, "fold_hit_lines", per_line)
    with caplog.at_level("WARNING"):
        _both_ways(home, tmp_path / "both", monkeypatch)
    skipped = {name: sorted(record.getMessage() for record in caplog.records
                            if record.name == f"mailtracker.desktop.{name}" and "unreadable line" in record.getMessage())
               for name in ("fold", "fastfold")}
    assert len(skipped["fold"]) == 4 and skipped["fastfold"] == skipped["fold"]
    assert "hits-a-2026-11-24.sync-conflict-20261124-101010-ABCDEFG.csv" in " ".join(skipped["fold"])
    written = set(b"".join(path.read_bytes() for path in home.hits_dir(load_config(home)).glob("*.csv")).split(b"\r\n"))
    assert len(handed) > 100 and set(handed) <= written


@pytest.mark.parametrize("damage", [b"\x00", b"\xff\xfe", b"\r", b"bootaaaa.1F", b"bootaaaa.01", b"Feb 30"])
@pytest.mark.parametrize("groups", ["one group", "a group per block"])
def test_a_batch_only_the_per_line_loop_reads_exactly_is_left_to_it(tmp_path, monkeypatch, damage, groups):
    """A NUL, bytes that are not UTF-8, a lone carriage return, a hit id in capitals or with a
    leading zero, a 30th of February (parse_timestamp runs it into March): per line. Also when
    it is in the second group split (the first split well): the whole batch, nothing counted twice."""
    if groups == "a group per block":
        monkeypatch.setattr(fastfold, "SPLIT_GROUP_BYTES", 1)
    home = _edge_home(tmp_path / "damaged", random.Random(8), hits=500)
    path = home.hits_dir(load_config(home)) / "hits-a-2026-11-25.csv"
    data = path.read_bytes()
    cut = data.index(b"\r\n", len(data) // 2) + 2
    line = data[cut:data.index(b"\r\n", cut)]
    if damage.startswith(b"boot"):  # a well-formed hit, but not as the server writes one
        damage = damage + line[line.index(b","):] + b"\r\n"
    elif damage == b"Feb 30":
        fields = line.split(b",")
        fields[0], fields[1] = b"bootzzzz.1", b"2026-02-30" + fields[1][10:]
        damage = b",".join(fields) + b"\r\n"
    path.write_bytes(data[:cut] + damage + data[cut:])
    _both_ways(home, tmp_path / "both", monkeypatch, expect_fast=False)


@pytest.mark.parametrize("fast", [False, True], ids=["per-line", "columns"])
def test_a_server_clock_stepping_back_counts_a_repeat_once(tmp_path, monkeypatch, fast):
    """The same client 30 s *before* its counted open (the server's clock stepped back) is a
    repeat, both ways; 61 s before is an open of its own."""
    home = Home.locate(str(tmp_path / "home"))
    init_home(home)
    config = load_config(home)
    tag = mint_tag(home, config, name="Ann").id
    hits_dir = home.hits_dir(config)
    hits_dir.mkdir(parents=True, exist_ok=True)
    offsets = [0, -30, -20, -61]  # the last: 61 s before the open that counted
    lines = [format_hit_line(f"bootaaaa.{n + 1:x}", utc_timestamp(START + 5_000 + offset), tag, "GET",
                             "203.0.113.0", OUTLOOK, "") for n, offset in enumerate(offsets)]
    (hits_dir / "hits-a-2026-11-24.csv").write_bytes(header_line(HIT_COLUMNS) + b"".join(line + b"\r\n" for line in lines))
    took = _fold(home, fast, monkeypatch)[1]
    assert took or not fast
    with Register.load(home) as register:
        assert register.get(tag).opens == 2


def test_without_polars_the_fold_is_the_per_line_loop(home, monkeypatch):
    """polars missing: the fold imports no fast path and still counts."""
    monkeypatch.setitem(sys.modules, "mailtracker.desktop.fastfold", None)
    monkeypatch.setattr(fold_module, "FAST_MIN_BYTES", 0)
    tag = mint_tag(home, load_config(home), name="Ann").id
    hits_dir = home.hits_dir(load_config(home))
    hits_dir.mkdir(parents=True, exist_ok=True)
    (hits_dir / "hits-a-2026-11-24.csv").write_bytes(
        format_hit_line("bootaaaa.1", utc_timestamp(START), tag, "GET", "1.2.3.0", OUTLOOK, ""))
    assert fold_module.fold(home).new_opens == 1


@pytest.mark.parametrize("far", [False, True])
def test_each_method_agent_and_client_together_is_one_number_and_no_other(far):
    """The fast path labels each distinct (method, free text, client) once, by one number for
    their three codes: the same codes give the same number and other codes another, also
    when the codes lie far apart (a process that has coded millions of texts)."""
    rng = random.Random(7)
    pool = [0, 1, 2, 2**32 - 2, 2**32 - 1] if far else [0, 1, 2, 40, 41]
    columns = {name: [rng.choice(pool) for _ in range(3000)] for name in ("method_c", "rest_c", "client_c")}
    frame = pl.DataFrame(columns, schema={name: pl.UInt32 for name in columns})
    numbers = fastfold._combined(frame, list(columns))
    triples = list(zip(*columns.values()))
    assert numbers.null_count() == 0
    assert len(set(zip(triples, numbers.to_list()))) == len(set(triples)) == numbers.n_unique() == 125


@pytest.mark.parametrize("delivery_window_s", [10.0, 400.0])
def test_each_tags_window_by_the_column_is_the_judges(delivery_window_s):
    """The first fetch, window and reported send _tag_table works out for many tags by the
    column are what Judge.window (and the per-line fold's first fetch) gives each tag: sends,
    several sends, displays with or without a send, no moments, a first fetch remembered from
    an earlier pass or this batch's first pixel hit (not a click), and moments 128ths of a
    second past the second (microseconds that end in a half, which ``stamped`` rounds)."""
    from mailtracker.core.timestamps import stamped
    from mailtracker.desktop.classify import FIRST_FETCH, Judge, Rules
    from mailtracker.desktop.counts import Counts

    rng = random.Random(7)
    moments, counts, hits = {}, {}, []
    kinds = [(), ("send",), ("send", "display"), ("display",), ("display", "display"),
             ("compose", "send", "display"), ("send", "send")]
    for i in range(600):
        tag = f"tag{i:04d}"
        near = START + rng.randrange(100_000)

        def moment():
            return near + rng.choice([rng.randrange(-400_000, 400_000) / 1000,
                                      rng.randrange(-300, 300) + rng.randrange(128) / 128, rng.uniform(-400, 400)])
        said = [[moment(), kind] for kind in rng.choice(kinds)]
        if said:
            moments[tag] = said
        if rng.random() < 0.3:  # a memory from an earlier pass, with or without a first fetch
            recent = {"203.0.113.0 Outlook": moment()}
            if rng.random() < 0.6:
                recent[FIRST_FETCH] = moment()
            counts[tag] = Counts(hits=1, recent=recent)
        for _ in range(rng.randrange(4)):
            hits.append((tag, rng.random() < 0.3, moment()))
        if not hits or hits[-1][0] != tag:  # every tag has a hit in the batch, some only clicks
            hits.append((tag, rng.random() < 0.5, moment()))
    rng.shuffle(hits)
    tag_codes = {tag: code for code, tag in enumerate(sorted({tag for tag, _, _ in hits}))}
    frame = pl.DataFrame({"tag_c": [tag_codes[tag] for tag, _, _ in hits], "tag": [tag for tag, _, _ in hits],
                          "row": list(range(len(hits))), "when": [when for _, _, when in hits],
                          "method_c": [int(click) for _, click, _ in hits]},
                         schema={"tag_c": pl.UInt32, "tag": pl.String, "row": pl.UInt32, "when": pl.Float64,
                                 "method_c": pl.UInt32})

    class State:
        pass

    state = State()
    state.counts = counts
    judge = Judge(Rules(delivery_window_s=delivery_window_s), None, moments)
    table, _ = fastfold._tag_table(frame, {0: "GET", 1: "click:0:GET"}, state, judge)
    got = {row["tag"]: row for row in table.iter_rows(named=True)}
    assert len(got) == len(tag_codes)
    shapes = set()
    for tag in tag_codes:
        recent = counts[tag].recent() if tag in counts else {}
        first, first_row = recent.get(FIRST_FETCH), None
        pixels = [(row, when) for row, (each, click, when) in enumerate(hits) if each == tag and not click]
        if not judge.send_reported(tag) and first is None and pixels:
            first_row, first = pixels[0]
        window = judge.window(tag, first)
        expected = {"first": first, "first_row": first_row,
                    "start": stamped(window.start) if window else None, "end": stamped(window.end) if window else None,
                    "send": window.context.sent_at if window and judge.send_reported(tag) else None}
        assert {key: got[tag][key] for key in expected} == expected, tag
        shapes.add((window is not None, first_row is not None, first is not None and first_row is None,
                    judge.send_reported(tag)))
    assert len(shapes) >= 6  # every kind of tag above was met


def test_a_memory_of_times_before_1970_folds_the_same_both_ways(tmp_path, monkeypatch, caplog):
    """The repeat memory the columns write as JSON text (as Counts.packed keeps it) holds each
    time as repr() spells it; a server clock set to 1969 (negative times, and times below one
    second) gives floats whose spelling the columns do not make: those tags keep a dict, and
    every tag's memory is the per-line loop's, from scratch and on top of it."""
    home = Home.locate(str(tmp_path / "early"))
    init_home(home)
    config = load_config(home)
    tags = [mint_tag(home, config, name=f"e{i}").id for i in range(6)]
    hits_dir = home.hits_dir(config)
    hits_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(2)
    starts = [-86_400 * 365 * 20 + 0.25, -1.5, 0.25, START, START + 0.5, -0.75]
    lines = []
    clocks = list(starts)
    for n in range(3_000):
        i = n % len(tags)
        clocks[i] += rng.choice([0.125, 61, 200, 3_000]) * (1 if i % 2 else -1)  # some repeats, none crowded
        when = clocks[i]
        lines.append(format_hit_line(f"bootaaaa.{n + 1:x}", utc_timestamp(when), tags[i], "GET",
                                     f"10.2.{rng.randrange(5)}.0", rng.choice([OUTLOOK, CHROME]), ""))
    (hits_dir / "hits-a-2026-11-24.csv").write_bytes(
        header_line(HIT_COLUMNS) + b"".join(line + b"\r\n" for line in lines))
    with caplog.at_level("DEBUG", logger="mailtracker.desktop.fastfold"):
        folded = _both_ways(home, tmp_path / "both", monkeypatch)
    assert " 0 hits of slow tags per line" in caplog.text
    memories = [data[1][6] for data in folded["tags"].values() if data[1]]
    assert len(memories) == len(tags) and any(when < 1 for memory in memories for _, when in json.loads(memory))
    fold_module.fold(home)
    _again(home, 30)
    _on_top_both_ways(home, tmp_path / "again", monkeypatch)
