"""The fold's save path and its store: a first fold writes every row by the column, exactly as
``Row`` writes one; a fold in a new process writes register.csv from the lines the store keeps
and reads back only the data of the tags it touches; a tag's data that cannot be read back
makes the fold count the logs again."""

import json
import shutil
import sqlite3

from hypothesis import given, settings
from hypothesis import strategies as st

from mailtracker.core.csvcodec import format_row, header_line
from mailtracker.core.hitline import HIT_COLUMNS
from mailtracker.core.paths import Home
from mailtracker.core.settings import load_config
from mailtracker.core.timestamps import utc_timestamp
from mailtracker.desktop import fold as fold_module
from mailtracker.desktop import register as register_module
from mailtracker.desktop.counts import Counts
from mailtracker.desktop.fold import fold
from mailtracker.desktop.register import Register, Row, plain_rows_values, plain_stored_rows, stored_rows_of_values
from mailtracker.desktop.replies import Reply, record_reply
from mailtracker.desktop.tags import mint_tag, record_links, update_tag
from mailtracker.desktop.view import ROW_KEYS, compact_json
from tests.conftest import BASE_TIME, OUTLOOK, THUNDERBIRD
from tests.test_fastfold import _fold as fold_fast_or_per_line

APPLE_PROXY = "Mozilla/5.0"
DAY = 86400
# Names a register cell must neutralise or quote, and text beyond ASCII.
NAMES = ["=cmd|' /C calc'!A0", 'Quote "me", please', "two\r\nlines", "Ünïcødé 漢字 🙂", "+1", "-minus", "@at",
         "\ttab", "", "plain"]


def _hits(home, hits, boot="bootaaaa"):
    """Hits in the server's exact format: (seq, tag, seconds after BASE_TIME, client, agent, method)."""
    path = home.hits_dir(load_config(home)) / "hits-a-2026-11-24.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as handle:
        if handle.tell() == 0:
            handle.write(header_line(HIT_COLUMNS))
        for seq, tag, after, client, agent, method in hits:
            handle.write(format_row([f"{boot}.{seq:x}", utc_timestamp(BASE_TIME + after), tag, method, client,
                                     agent, "", "apple-relay" if agent == APPLE_PROXY else ""]).encode())


def _varied_home(home):
    """Mails of every kind a row can be: plain ones with names to neutralise, unsent and
    unconfirmed ones, one with links and clicks, a reply, opens from somewhere new, and
    recipients whose opens cannot show (a reply without the image; only Apple's proxy)."""
    config = load_config(home)
    tags = []
    for i, name in enumerate(NAMES * 3):
        tag = mint_tag(home, config, name=name, subject=f"{name} {i}", recipients=[f"p{i}@example.org"]).id
        if i % 3 == 0:
            update_tag(home, tag, status="sent", sent_at=utc_timestamp(BASE_TIME + i),
                       message_id=f"{tag}@sender.example.org")
        elif i % 3 == 1:
            update_tag(home, tag, status="unsent")
        tags.append(tag)
    linked = mint_tag(home, config, name="links", recipients=["links@example.org"]).id
    record_links(home, linked, [(1, "https://example.org/a", "A link"), (2, "https://example.org/=b", "=B")])
    ann = [mint_tag(home, config, subject=f"to Ann {i}", recipients=["ann@example.net"]).id for i in range(2)]
    cleo = [mint_tag(home, config, subject=f"to Cleo {i}", recipients=["cleo@example.net"]).id for i in range(3)]
    hits, seq = [], 0
    for i, tag in enumerate(tags):
        for k in range(i % 4):  # some never opened; some from several places
            seq += 1
            hits.append((seq, tag, 3600 * (i + 1) + 300 * k, f"203.0.{k}.0", (THUNDERBIRD, OUTLOOK)[k % 2], "GET"))
    for k, method in enumerate(["GET", "click:1:GET", "click:2:GET", "click:1:GET"]):
        seq += 1
        hits.append((seq, linked, DAY + 200 * k, "198.51.100.0", OUTLOOK, method))
    for i, tag in enumerate(cleo):
        seq += 1
        hits.append((seq, tag, DAY * (i + 1), "17.0.0.0", APPLE_PROXY, "GET"))
    _hits(home, hits)
    record_reply(home, Reply(tag=ann[0], reply_id="r1@example.net", sender="ann@example.net",
                             time=utc_timestamp(BASE_TIME + DAY), verdict="reply", reason="a reply from a person"))
    return tags + [linked] + ann + cleo


def _reference(rows):
    """The rows as the store keeps them, each written on its own (``Row.to_json``, ``csv_line``)."""
    return sorted((row.id, row.short_id, row.message_id, row.created,
                   compact_json([row.to_json()[key] for key in ROW_KEYS]), row.csv_line()) for row in rows)


def _stored(home):
    db = sqlite3.connect(str(home.state_dir / "view.sqlite3"))
    try:
        return {"rows": db.execute("SELECT id, short_id, message_id, created, row, line FROM tags ORDER BY id").fetchall(),
                "state": db.execute("SELECT * FROM fold_tags ORDER BY tag").fetchall(),
                "timelines": db.execute("SELECT * FROM timelines ORDER BY tag").fetchall()}
    finally:
        db.close()


def _kept(home):
    return fold_module._KEPT[str(home.state_dir / "view.sqlite3")].state


def test_a_first_fold_writes_every_row_by_the_column_as_row_writes_it(home, monkeypatch):
    """A first fold writes its rows by the column (here from the first row on); each is the
    row ``Row`` gives, in the store and in register.csv, whatever kind of mail it is."""
    monkeypatch.setattr(register_module, "COLUMNS_FROM", 1)
    _varied_home(home)
    fold(home)
    state = _kept(home)
    rows = state.rows()
    assert _stored(home)["rows"] == _reference(rows)
    with Register.load(home) as register:
        assert register.rows() == rows
        assert all(register.get(row.id) == row for row in rows)
    assert home.register_path.read_bytes().decode("utf-8-sig").split("\r\n", 1)[1] == \
        "".join(row.csv_line() for row in rows)
    kinds = {"links": any(row.links for row in rows), "replies": any(row.replies for row in rows),
             "no_images": any(row.not_seen == "no_images" for row in rows),
             "not_measurable": any(row.not_seen == "not_measurable" for row in rows),
             "elsewhere": any(row.opened_elsewhere for row in rows), "unsent": any(row.status == "unsent" for row in rows),
             "formula": any(row.name.startswith("=") for row in rows)}
    assert all(kinds.values()), kinds


TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
STAMP = st.sampled_from(["", "2026-11-24T10:00:00.000Z", "2026-11-25T10:00:00.001Z"])


# Texts a row's JSON must escape (a quote, a backslash, control characters) or write as they are.
JSON_TEXTS = ['say "hi"', "back\\slash \\\"", "\x00\x01\x1f\x7f", "line\nfeed\ttab\r", "\u2028\u2029 é 漢 🙂",
              "=cmd|' /C calc'!A0", "plain", ""]
CELL = st.one_of(TEXT, st.sampled_from(JSON_TEXTS))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.fixed_dictionaries({name: CELL for name in register_module._TAG_FIELDS}),
                          st.sampled_from(["sent", "unsent", "pending", "", "tagged"]), STAMP,
                          st.lists(st.integers(0, 2**62), min_size=4, max_size=4), STAMP, CELL),
                min_size=1, max_size=6))
def test_rows_by_the_column_are_the_rows_row_by_row(tags):
    """``plain_rows_values``, the lines by the column and ``plain_stored_rows`` (a first fold's plain
    rows, their JSON at once) give what ``Row.of``, ``csv_line`` and the JSON of each row alone give,
    for any fields, counts and places. (Fails when a column of the lines is taken from another
    place.)"""
    ids = [f"{n:032d}" for n in range(len(tags))]
    fields, counts, places = [], [], []
    for (tag, status, sent_at, (hits, opens, machine, selfs), first_open, elsewhere) in tags:
        fields.append(dict(tag, status=status, sent_at=sent_at))
        counts.append(Counts(hits, opens, first_open, first_open, selfs, machine))
        places.append(elsewhere)
    values = plain_rows_values(ids, fields, counts, places)
    rows = [Row.of(tag_id, tag, counted, {}).but(opened_elsewhere=where)
            for tag_id, tag, counted, where in zip(ids, fields, counts, places)]
    assert values == [row.stored_values() for row in rows]
    times = register_module.COLUMNS_FROM // len(values) + 1  # enough rows to be written by the column
    many = values * times
    assert [entry[-1] for entry in stored_rows_of_values(many)] == [row.csv_line() for row in rows] * times
    stored = [(row.id, row.short_id, row.message_id, row.created, compact_json(row.stored_values()), row.csv_line())
              for row in rows]
    assert plain_stored_rows(ids * times, fields * times, counts * times, places * times) == stored * times


def _fold_one_way(home, monkeypatch, fast):
    """A first fold by the fast path (which must take every hit) or line by line; every row and
    tag's data of the save by the column (``_FoldState.stored_all``)."""
    with monkeypatch.context() as patch:
        patch.setattr(register_module, "COLUMNS_FROM", 1)
        _, took = fold_fast_or_per_line(home, fast, patch)
    assert took or not fast


def test_a_first_fold_stores_each_tags_data_as_the_per_line_fold_and_each_tag_alone_do(home, tmp_path, monkeypatch):
    """The fold state and the rows a first fold stores by the column (plain and other tags: links,
    clicks, a reply, "not seen", several recipients, a recipient by name, a tag tags.csv does not
    have, a tag without hits) are byte for byte those of the per-line fold, and each tag's data
    is what the save of that tag alone writes (``_FoldState._packed``, a later pass's). (Fails
    when ``stored_all`` leaves out a part, a memory or the evidence of one tag.)"""
    config = load_config(home)
    _varied_home(home)
    pair = mint_tag(home, config, subject="to two", recipients=["ann@example.net", "bob@example.net"]).id
    named = mint_tag(home, config, subject="by name", recipients=["Bob B <Bob@Example.net>"]).id
    mint_tag(home, config, subject="never opened", recipients=["dee@example.net"])
    _hits(home, [(2, named, 2 * DAY, "203.0.9.0", OUTLOOK, "GET"), (3, "x" * 32, 2 * DAY, "203.0.9.0", OUTLOOK, "GET")],
          boot="bootbbbb")
    for sender in ("bob@example.net", "ann@example.net"):  # both answer, neither loads the image
        record_reply(home, Reply(tag=pair, reply_id=f"{sender}.1", sender=sender, time=utc_timestamp(BASE_TIME + 3 * DAY),
                                 verdict="reply", reason="a reply from a person"))
    other = Home.locate(str(tmp_path / "per-line"))
    shutil.copytree(home.data_dir, other.data_dir)
    _fold_one_way(home, monkeypatch, fast=True)
    _fold_one_way(other, monkeypatch, fast=False)
    stored = _stored(home)
    assert stored["state"] == _stored(other)["state"] and stored["rows"] == _stored(other)["rows"]
    state = _kept(home)
    said = state._said()
    assert stored["state"] == sorted(state._packed(tag, tag in said) for tag in state._every_tag())
    assert stored["rows"] == _reference(state.rows())
    evidence = {tag: json.loads(found) for tag, _, _, _, found in stored["state"] if found}
    assert len(evidence[pair]) == 2 and list(evidence[named]) == ["bob@example.net"], evidence
    assert "x" * 32 in {entry[0] for entry in stored["state"]} - {entry[0] for entry in stored["rows"]}


def test_a_fold_in_a_new_process_reads_back_only_the_tags_it_touches_and_writes_the_same(home, tmp_path):
    """After a folded history, new hits and a reply folded by a new process (the state read back
    from the store, register.csv from its stored lines) leave the same register, rows,
    timelines and state as the process that folded the history going on; only the data of
    the tags the pass touched was read back."""
    tags = _varied_home(home)
    fold(home)
    other = Home.locate(str(tmp_path / "other"))
    shutil.copytree(home.data_dir, other.data_dir)
    for each in (home, other):
        _hits(each, [(1, tags[4], 5 * DAY, "192.0.2.0", OUTLOOK, "GET"),
                     (2, tags[9], 5 * DAY, "192.0.2.0", THUNDERBIRD, "GET")], boot="bootbbbb")
        record_reply(each, Reply(tag=tags[5], reply_id="r2@example.net", sender="p5@example.org",
                                 time=utc_timestamp(BASE_TIME + 5 * DAY), verdict="reply", reason="a reply"))
    assert fold(home).new_hits == 2  # going on from the state it holds
    result = fold(other)  # a new process: nothing kept for this store
    assert result.new_hits == 2 and result.new_replies == 1
    assert other.register_path.read_bytes() == home.register_path.read_bytes()
    assert _stored(other) == _stored(home)
    unread = _kept(other).tags.unread.raw
    assert len(unread) >= len(tags) - 6, "read back the data of tags the pass did not touch"
    assert not set(unread) & result.touched
    # The next pass of that process goes on from what it read: a new mail, another one sent.
    mint_tag(home, load_config(home), name="later", recipients=["p3@example.org"])
    update_tag(home, tags[7], status="sent", sent_at=utc_timestamp(BASE_TIME + 6 * DAY))
    shutil.copy(home.tags_path, other.tags_path)
    for each in (home, other):
        fold(each)
    assert other.register_path.read_bytes() == home.register_path.read_bytes()
    assert _stored(other) == _stored(home)
    assert len(_kept(other).tags.unread.raw) >= len(tags) - 6
    fold(other, rebuild=True)
    assert other.register_path.read_bytes() == home.register_path.read_bytes()


def test_what_a_reply_from_someone_else_says_is_read_back_by_a_new_process(home, tmp_path):
    """Dan answers a mail that went to Ann, without its image loaded: Dan does not load images.
    A new process reads that back from the store as the process that folded it knows it: a new
    mail to Dan says "not visible" in both."""
    config = load_config(home)
    to_ann = mint_tag(home, config, subject="to Ann", recipients=["ann@example.net"]).id
    record_reply(home, Reply(tag=to_ann, reply_id="d1@example.net", sender="dan@example.net",
                             time=utc_timestamp(BASE_TIME + DAY), verdict="reply", reason="a reply from a person"))
    fold(home)
    other = Home.locate(str(tmp_path / "other"))
    shutil.copytree(home.data_dir, other.data_dir)
    later = mint_tag(home, config, subject="to Dan", recipients=["dan@example.net"]).id
    shutil.copy(home.tags_path, other.tags_path)
    for each in (home, other):
        fold(each)
        with Register.load(each) as register:
            assert register.get(later).not_seen == "no_images", each
    assert other.register_path.read_bytes() == home.register_path.read_bytes()
    assert _stored(other) == _stored(home)


def test_a_tag_whose_data_cannot_be_read_back_is_counted_again_from_the_logs(home, caplog):
    """One tag's data in the store damaged (a disk error, a hand edit): the pass that reads it
    says so and counts the logs again; nothing is lost or counted twice."""
    tags = _varied_home(home)
    fold(home)
    db = sqlite3.connect(str(home.state_dir / "view.sqlite3"))
    with db:
        db.execute("UPDATE fold_tags SET data = '[not json' WHERE tag = ?", (tags[4],))
    db.close()
    fold_module._KEPT.clear()  # as another process would: reading the state back
    _hits(home, [(1, tags[4], 5 * DAY, "192.0.2.0", OUTLOOK, "GET")], boot="bootbbbb")
    with caplog.at_level("WARNING", logger="mailtracker.desktop.fold"):
        result = fold(home)
    assert f"the fold state of tag {tags[4]} is damaged" in caplog.text
    expected = home.register_path.read_bytes()
    with Register.load(home) as register:
        assert register.get(tags[4]).opens == 1 and result.register_written  # its first open
    fold(home, rebuild=True)
    assert home.register_path.read_bytes() == expected
