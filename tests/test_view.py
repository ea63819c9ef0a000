"""The read model's store keeps each timeline as times and codes of event kinds, and every
reader gets back exactly the events the fold counted."""

import sqlite3

import pytest

from mailtracker.core.errors import FileAccessError
from mailtracker.core.settings import load_config
from mailtracker.desktop.fold import fold
from mailtracker.desktop.register import Register
from mailtracker.desktop.tags import mint_tag
from mailtracker.desktop.view import view_path
from tests.conftest import OUTLOOK, THUNDERBIRD, timeline_of, write_hits

FIREFOX = "Mozilla/5.0 (Windows NT 10.0; rv:128.0) Gecko/20100101 Firefox/128.0"


@pytest.fixture
def tags(home):
    config = load_config(home)
    return [mint_tag(home, config, name=name).id for name in ("Ann", "Bob")]


def _store(home):
    return sqlite3.connect(str(view_path(home.state_dir)))


def test_a_reader_left_open_reads_right_after_a_rebuild_dropped_kinds(home, tags):
    """A reader (the native host lives long) keeps the kinds it read; a rebuild deletes the
    kinds of hits the logs no longer hold, and a kind added after it never takes a deleted
    one's code, so the open reader still answers what the fold counted. The store holds each
    kind once."""
    ann, bob = tags
    path = home.hits_dir(load_config(home)) / "hits-a-2026-11-24.csv"
    write_hits(path, [(1, ann, "GET")], agent=OUTLOOK)
    write_hits(path, [(2, ann, "GET")], agent=THUNDERBIRD)
    fold(home)
    with Register.load(home) as reader:
        assert [event[4] for event in reader.timeline(ann)] == ["Outlook", "Thunderbird on Linux"]
        # The Thunderbird hit leaves the logs: a rebuild names only Outlook's kind.
        path.unlink()
        write_hits(path, [(1, ann, "GET")], agent=OUTLOOK)
        fold(home, rebuild=True)
        assert [event[4] for event in reader.timeline(ann)] == ["Outlook"]
        write_hits(path, [(3, bob, "GET")], agent=FIREFOX)
        fold(home)
        assert reader.timeline(bob) == timeline_of(home, bob)
        assert [event[4] for event in reader.timeline(bob)] == ["Firefox on Windows"]
    db = _store(home)
    try:
        kinds = [kind for (kind,) in db.execute("SELECT kind FROM event_kinds ORDER BY code")]
        texts = [events for (events,) in db.execute("SELECT events FROM timelines")]
    finally:
        db.close()
    assert len(kinds) == 2 and "Outlook" in kinds[0] and "Firefox" in kinds[1]
    assert not any("Outlook" in text or "open" in text for text in texts)


def test_a_timeline_in_another_versions_form_is_a_clear_error(home, tags):
    """A timeline the store holds in a form this version does not write (an older version's
    JSON) is said to be unreadable, with the code of a file that cannot be read; no traceback
    and no made-up events."""
    ann, _ = tags
    write_hits(home.hits_dir(load_config(home)) / "hits-a-2026-11-24.csv", [(1, ann, "GET")], agent=OUTLOOK)
    fold(home)
    db = _store(home)
    with db:
        db.execute("UPDATE timelines SET events = ? WHERE tag = ?",
                   ('[["2026-11-24T10:00:00.000Z","open",1,"open","Outlook"]]', ann))
    db.close()
    with Register.load(home) as reader, pytest.raises(FileAccessError) as raised:
        reader.timeline(ann)
    assert raised.value.code == FileAccessError.code and "another version" in str(raised.value)


def test_a_reader_reads_a_timeline_and_its_kinds_as_one_pass_left_them(home, tags, monkeypatch):
    """A rebuild that commits while a reader is between a timeline and its kinds (it deletes
    the kinds that timeline names) changes nothing in what the reader gets: the events as the
    pass before left them, not an error and not another pass's kinds."""
    from mailtracker.desktop import view

    ann, _ = tags
    path = home.hits_dir(load_config(home)) / "hits-a-2026-11-24.csv"
    write_hits(path, [(1, ann, "GET")], agent=OUTLOOK)
    write_hits(path, [(2, ann, "GET")], agent=THUNDERBIRD)
    fold(home)
    before = timeline_of(home, ann)
    path.unlink()
    write_hits(path, [(1, ann, "GET")], agent=FIREFOX)
    real = view._kinds_of
    rebuilt = []

    def rebuild_first(db, codes):
        if not rebuilt:
            rebuilt.append(fold(home, rebuild=True))
        return real(db, codes)

    monkeypatch.setattr(view, "_kinds_of", rebuild_first)
    with Register.load(home) as reader:
        assert reader.timeline(ann) == before
        assert rebuilt and [event[4] for event in reader.timeline(ann)] == ["Firefox on Windows"]
