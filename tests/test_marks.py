"""The marks: seen and told opens and the pause, kept in the home, read by the native host."""

from mailtracker.desktop.marks import Marks, marks_path, tracking_paused
from mailtracker.desktop.register import Row
from tests.conftest import HostProcess

ROWS = [Row("a" * 32, "aaaaaaa", opens=3), Row("b" * 32, "bbbbbbb", opens=0)]


def test_marks_round_trip_through_the_home(home):
    """Seen, told and paused survive a save and a load; a new home starts unpaused and unbaselined."""
    fresh = Marks.load(home)
    assert not fresh.baselined and not fresh.paused and not tracking_paused(home)
    fresh.baseline(ROWS)
    fresh.paused = True
    fresh.save(home)
    loaded = Marks.load(home)
    assert loaded.baselined and loaded.paused and tracking_paused(home)
    assert loaded.seen == loaded.notified == {"a" * 32: 3, "b" * 32: 0}
    assert [loaded.unseen(Row("a" * 32, "aaaaaaa", opens=5)), loaded.unseen(Row("c" * 32, "ccccccc", opens=2))] == [2, 2]


def test_unreadable_marks_start_again_quietly(home):
    """A damaged marks file is not an error: the next fold takes a new baseline (no flood of notices)."""
    marks_path(home).parent.mkdir(parents=True, exist_ok=True)
    marks_path(home).write_text("{not json", encoding="utf-8")
    marks = Marks.load(home)
    assert not marks.baselined and not marks.paused


def test_the_native_host_reports_the_pause(home):
    """The config reply carries paused, so the add-on can send new emails without a pixel."""
    host = HostProcess(home)
    try:
        assert host.call("config")["data"]["paused"] is False
        marks = Marks.load(home)
        marks.paused = True
        marks.save(home)
        assert host.call("config")["data"]["paused"] is True
    finally:
        host.close()
