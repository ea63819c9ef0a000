"""The tray daemon: its menu model, its icon, the daemon's parts with a real watcher,
and the real program in a real tray (Xvfb + trayer), headless, and twice."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mailtracker.core.settings import load_config
from mailtracker.core.timestamps import ago, utc_timestamp
from mailtracker.desktop.fold import fold
from mailtracker.desktop.marks import Marks, marks_path, tracking_paused
from mailtracker.desktop.register import read_register
from mailtracker.desktop.tags import mint_tag
from mailtracker.desktop.tray.app import Tray
from mailtracker.desktop.tray.icon import BADGE_COLOUR, PAUSED_COLOUR, TILE_COLOUR, WARNING_COLOUR, draw_icon
from mailtracker.desktop.tray.menu import build_view
from mailtracker.desktop.troubles import ServerTrouble, SyncTrouble, Troubles
from tests.conftest import rows_of, wait_for, write_hits
from tests.display import started_within

ARTIFACTS = Path(os.environ.get("MAILTRACKER_TEST_ARTIFACTS", "")) if os.environ.get(
    "MAILTRACKER_TEST_ARTIFACTS") else None
HOUR = 3600.0


@pytest.fixture
def two_tags(home):
    config = load_config(home)
    ann = mint_tag(home, config, name="Ann", subject="Offer")
    bob = mint_tag(home, config, name="Bob", subject="Invoice 42")
    return ann, bob, home.hits_dir(config) / "hits-a-2026-11-24.csv"


def _texts(view):
    return [entry.text for entry in view.entries if not entry.separator]


def _colour_pixels(image, colour, tolerance=24):
    data = image.convert("RGB").tobytes()
    return sum(1 for pixel in zip(data[0::3], data[1::3], data[2::3])
               if all(abs(a - b) <= tolerance for a, b in zip(pixel, colour)))


def test_ago_says_how_long_ago_in_words():
    """Times in the menu read 'just now', 'N min ago', 'N h ago', 'N d ago'."""
    stamp = "2026-11-24T10:00:00.000Z"
    base = 1795514400.0  # 2026-11-24T10:00:00Z
    assert [ago(stamp, base + s) for s in (5, 300, 2 * HOUR + 60, 3 * 86400)] == [
        "just now", "5 min ago", "2 h ago", "3 d ago"]


def test_menu_lists_recent_emails_with_opens_and_last_open(home, two_tags):
    """The menu shows new opens, emails by latest activity with 'last opened 2 h ago', then actions."""
    ann, bob, hits = two_tags
    now = time.time()
    write_hits(hits, [(1, ann.id, "GET", utc_timestamp(now - 2 * HOUR - 60))])
    fold(home)
    view = build_view(rows_of(home), Marks(), now)
    texts = _texts(view)
    assert texts[0] == "1 new open"
    assert texts[1] == "Bob — Invoice 42 · not opened yet"  # sent after Ann's last open
    assert texts[2] == "● Ann — Offer · 1 open · last opened 2 h ago (1 new)"
    assert texts[3:] == ["Mark all as seen", "Pause tracking", "Open register in spreadsheet",
                         "Open report", "Quit mailtracker"]
    assert [entry.text for entry in view.entries if entry.default] == ["Open report"]
    assert view.title == 'mailtracker: 1 new open; Ann opened "Offer" 2 h ago'


def test_menu_groups_the_copies_sent_individually(home):
    """An email sent individually is one line saying how many opened, then a line per recipient."""
    config = load_config(home)
    ann = mint_tag(home, config, subject="Offer", recipients=["ann@x.org"], group="g-1")
    mint_tag(home, config, name="Lone", subject="Other")
    mint_tag(home, config, subject="Offer", recipients=["bob@x.org"], group="g-1")
    now = time.time()
    write_hits(home.hits_dir(config) / "hits-a-2026-11-24.csv", [(1, ann.id, "GET", utc_timestamp(now - 60))])
    fold(home)
    texts = _texts(build_view(rows_of(home), Marks(), now))
    # The group's line and its recipients stand together (Lone, minted in the same
    # millisecond as Bob on a fast machine, may come before or after the group).
    start = texts.index("Offer — sent individually · 1 of 2 opened")
    assert texts[start + 1:start + 3] == ["    bob@x.org — Offer · not opened yet",  # sent after Ann's open
                                          "    ● ann@x.org — Offer · 1 open · last opened 1 min ago (1 new)"], texts
    assert "Lone — Other · not opened yet" in texts[1:start] + texts[start + 3:start + 4]


def test_seen_and_paused_change_the_menu(home, two_tags):
    """Marked seen, no email is new and 'Mark all as seen' is off; paused, the menu offers Resume."""
    ann, _, hits = two_tags
    write_hits(hits, [(1, ann.id, "GET", utc_timestamp())])
    fold(home)
    rows = rows_of(home)
    marks = Marks()
    marks.mark_all_seen(rows)
    marks.paused = True
    view = build_view(rows, marks, time.time())
    entries = {entry.text: entry for entry in view.entries if not entry.separator}
    assert view.unseen == 0 and not entries["Mark all as seen"].enabled
    assert "Tracking paused: new emails get no pixel" in entries
    assert "Resume tracking" in entries and "Pause tracking" not in entries
    assert "Ann — Offer · 1 open · last opened just now" in entries


REFUSED = ServerTrouble("pixel.example.org", "unreachable", "2026-12-07T13:02:00.000Z", "connection refused", 70)


def _problem_view(troubles, problem="", paused=False):
    """The view of an empty register with these troubles, at 14:30 local time the same day."""
    marks = Marks()
    marks.paused = paused
    return build_view([], marks, _at("2026-12-07T13:30:00.000Z"), problem=problem, troubles=troubles)


def _at(stamp):
    from mailtracker.core.timestamps import parse_timestamp
    return parse_timestamp(stamp)


def _clock(stamp):
    from mailtracker.core.timestamps import clock_time
    return clock_time(stamp, _at(stamp))


def test_a_server_not_answering_is_the_headline_with_host_since_and_reason():
    """One server down: the headline and the title say opens are not received, from which host,
    since when (local clock) and why; not 'No new opens'."""
    view = _problem_view(Troubles((REFUSED,), 1))
    expected = f"Not receiving opens: pixel.example.org not answering since {_clock(REFUSED.since)} " \
               "(connection refused)"
    assert _texts(view)[:2] == [expected, "No tracked emails yet"]
    assert view.title == "mailtracker: n" + expected[1:]
    assert view.trouble and not _problem_view(Troubles()).trouble  # the icon's warning mark


def test_a_refused_token_and_a_full_disk_say_what_to_do_or_why():
    """A 401 says to run doctor --server; another failure its reason; no reason, doctor again."""
    token = ServerTrouble("pixel.example.org", "failing", REFUSED.since, "token refused (HTTP 401)", 71)
    assert _texts(_problem_view(Troubles((token,), 1)))[0] == (
        "Not receiving opens: pixel.example.org refused this computer's token (401): "
        "run mailtracker doctor --server")
    disk = ServerTrouble("pixel.example.org", "failing", REFUSED.since, "disk full here", 70)
    assert _texts(_problem_view(Troubles((disk,), 1)))[0] == \
        f"Not receiving opens: pixel.example.org failing since {_clock(REFUSED.since)} (disk full here)"
    bare = ServerTrouble("pixel.example.org", "failing", REFUSED.since, "", 70)
    assert _texts(_problem_view(Troubles((bare,), 1)))[0].endswith(
        f"failing since {_clock(REFUSED.since)}: run mailtracker doctor --server")


def test_one_of_two_servers_failing_says_so_and_all_failing_say_none_arrive():
    """With one server of two failing opens still come from the other: '1 of 2 servers failing';
    with both failing the headline says none arrive."""
    other = ServerTrouble("b.example.org", "unreachable", REFUSED.since, "timed out", 70)
    one = _texts(_problem_view(Troubles((other,), 2)))[0]
    assert one == f"1 of 2 servers failing: b.example.org not answering since {_clock(REFUSED.since)} (timed out)"
    both = _texts(_problem_view(Troubles((REFUSED, other), 2)))[0]
    assert both.startswith("Not receiving opens from any of 2 servers: pixel.example.org not answering")


def test_a_fold_problem_comes_first_and_the_pull_trouble_follows_it():
    """The fold's problem keeps the headline (no count moves); the pull trouble is the next line."""
    texts = _texts(_problem_view(Troubles((REFUSED,), 1), problem="register.csv is open in another program"))
    assert texts[0] == "Not counting: register.csv is open in another program"
    assert _problem_view(Troubles(), problem="register.csv is open in another program").trouble
    assert texts[1].startswith("Not receiving opens: pixel.example.org not answering since")


def test_a_pull_trouble_shows_over_paused_and_the_title_says_it():
    """Paused is the user's choice; opens not arriving is not: the headline and title say the trouble."""
    view = _problem_view(Troubles((REFUSED,), 1), paused=True)
    assert _texts(view)[0].startswith("Not receiving opens:") and "Resume tracking" in _texts(view)
    assert view.title.startswith("mailtracker: not receiving opens: pixel.example.org")


def test_the_device_sync_failing_is_a_quieter_second_line():
    """The other computers not syncing: a line under the headline, which still says the opens."""
    sync = SyncTrouble("pixel.example.org", "cannot connect to pixel.example.org: Connection refused")
    view = _problem_view(Troubles((), 1, (sync,), 1))
    assert _texts(view)[:2] == ["No new opens", "Not syncing with your other computers: cannot connect to "
                                "pixel.example.org: Connection refused"]
    assert view.title == "mailtracker: no new opens" and not view.trouble
    one_of_two = _texts(_problem_view(Troubles((), 2, (sync,), 2)))[1]
    assert one_of_two.startswith("Not syncing with your other computers through pixel.example.org: ")


def test_a_failure_since_another_day_names_the_day():
    """'since 14:02' today; a failure from an earlier day says the day too."""
    from mailtracker.core.timestamps import clock_time
    since = "2026-12-05T13:02:00.000Z"
    moment = time.localtime(_at(since))
    assert clock_time(since, _at(since) + 60) == time.strftime("%H:%M", moment)
    assert clock_time(since, _at(since) + 3 * 86400) == f"{moment.tm_mday} {time.strftime('%b %H:%M', moment)}"


def test_icon_has_a_badge_only_with_new_opens_and_greys_when_paused():
    """The icon is a blue tile; new opens add a red badge; paused turns the tile grey; a trouble
    (opens not arriving, or not counted) adds an amber warning mark, beside the badge."""
    plain, badged, paused = draw_icon(0, False), draw_icon(3, False), draw_icon(0, True)
    warned = draw_icon(3, False, trouble=True)
    assert _colour_pixels(plain, WARNING_COLOUR, 0) == _colour_pixels(badged, WARNING_COLOUR, 0) == 0
    assert _colour_pixels(warned, WARNING_COLOUR, 0) > 200
    assert _colour_pixels(warned, BADGE_COLOUR, 0) == _colour_pixels(badged, BADGE_COLOUR, 0)
    assert _colour_pixels(plain, BADGE_COLOUR, 0) == 0
    assert _colour_pixels(badged, BADGE_COLOUR, 0) > 300
    assert _colour_pixels(plain, TILE_COLOUR, 0) > 1500
    assert _colour_pixels(paused, TILE_COLOUR, 0) == 0 and _colour_pixels(paused, PAUSED_COLOUR, 0) > 1500
    assert draw_icon(12, False).tobytes() != draw_icon(3, False).tobytes()


class Recorder(list):
    """Notices delivered, in order (the delivery end of the daemon)."""


def test_daemon_notifies_one_new_person_open_and_not_on_a_refold(home, two_tags):
    """With a real watcher: machine hits are quiet, a person's open notifies once, a rebuild stays quiet."""
    ann, _, hits = two_tags
    delivered = Recorder()
    with Tray(home, load_config(home), deliver=delivered.append) as tray:
        wait_for(lambda: tray.marks.baselined, what="the first fold to set the baseline")
        write_hits(hits, [(1, ann.id, "HEAD")])
        wait_for(lambda: any(row.machine_hits == 1 for row in tray.view.rows), what="the HEAD folded")
        assert delivered == [] and tray.view.unseen == 0
        write_hits(hits, [(2, ann.id, "GET", utc_timestamp())])
        wait_for(lambda: delivered, what="a notification")
        assert delivered[0].title == "Ann opened “Offer”"
        wait_for(lambda: tray.view.unseen == 1, what="the icon to count the new open")
        assert "● Ann — Offer · 1 open · last opened just now (1 new)" in _texts(tray.view)
        fold(home, rebuild=True)  # counts every hit again, as another process might
        write_hits(hits, [(3, ann.id, "HEAD")])
        wait_for(lambda: any(row.machine_hits == 2 for row in tray.view.rows), what="the refold seen")
        assert len(delivered) == 1 and not tray.notifier.pending
    assert Marks.load(home).notified == {ann.id: 1, two_tags[1].id: 0}


def test_menu_actions_persist_seen_and_pause(home, two_tags):
    """'Mark all as seen' and 'Pause tracking' are kept in the home; the native host reads the pause."""
    ann, _, hits = two_tags
    write_hits(hits, [(1, ann.id, "GET", utc_timestamp())])
    fold(home)
    tray = Tray(home, load_config(home))
    tray.refresh()
    entries = {entry.text: entry for entry in tray.view.entries}
    tray.choose(entries["Mark all as seen"])
    tray.choose(entries["Pause tracking"])
    assert tray.view.unseen == 0 and tray.view.paused
    marks = Marks.load(home)
    assert marks.seen[ann.id] == 1 and marks.paused and tracking_paused(home)
    tray.choose({entry.text: entry for entry in tray.view.entries}["Resume tracking"])
    assert not tracking_paused(home)


def test_choosing_an_email_opens_the_report_at_its_row_even_an_old_one(home, two_tags, monkeypatch):
    """The menu lists the emails with the latest activity, an old one opened lately among them;
    choosing one opens the report at its row, and the report lists it even past the newest it
    lists (here none). (Fails when the tray does not name the email to the report.)"""
    from functools import partial

    from mailtracker.desktop import report as report_module
    from mailtracker.desktop.tray import app as app_module

    ann, _, hits = two_tags
    write_hits(hits, [(1, ann.id, "GET", utc_timestamp())])
    fold(home)
    opened = []
    monkeypatch.setattr("webbrowser.open", opened.append)
    monkeypatch.setattr(app_module, "write_report", partial(report_module.write_report, table_rows=0))
    tray = Tray(home, load_config(home))
    tray.refresh()
    tray.choose(next(entry for entry in tray.view.entries if entry.action == ("show", ann.id)))
    path = report_module.report_path(home)
    assert opened == [f"{path.as_uri()}#t-{ann.short_id}"]
    assert re.findall(r'<tr id="t-([^"]+)"', path.read_text(encoding="utf-8")) == [ann.short_id]


class TrayProcess:
    """A real ``mailtracker tray`` process; its log goes to a file the test reads."""

    def __init__(self, home, env, tmp_path, name="tray"):
        self.log_path = tmp_path / f"{name}.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mailtracker", "--home", str(home.data_dir), "-v", "tray"],
            env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_log(self, text, timeout=10.0):
        started_within(self.proc, lambda: text in self.log(), timeout, f"{text!r} in the tray's log")

    def stop(self) -> int:
        """SIGTERM, as a session ending does; a tray that does not exit is killed and fails the test."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return -1
        finally:
            self._log.close()


def _headless_env():
    return {key: value for key, value in os.environ.items()
            if key not in ("DISPLAY", "WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS")}


def test_headless_tray_says_why_and_still_folds(home, two_tags, tmp_path):
    """Without a display the daemon names the reason, keeps register.csv current, and stops on SIGTERM."""
    ann, _, hits = two_tags
    tray = TrayProcess(home, _headless_env(), tmp_path)
    try:
        tray.wait_log("no tray icon: there is no graphical session ($DISPLAY is not set")
        tray.wait_log("folded")
        write_hits(hits, [(1, ann.id, "GET", utc_timestamp())])
        wait_for(lambda: home.register_path.exists() and any(
            row["opens"] == "1" for row in read_register(home.register_path)), what="the open in the register")
    finally:
        code = tray.stop()
    assert code == 0, tray.log()
    assert "Traceback" not in tray.log()


def test_a_second_tray_says_one_is_running(home, tmp_path):
    """A second 'mailtracker tray' for the same home exits with code 80 and names the running one."""
    first = TrayProcess(home, _headless_env(), tmp_path, "first")
    try:
        first.wait_log("no tray icon")
        second = subprocess.run([sys.executable, "-m", "mailtracker", "--home", str(home.data_dir), "tray"],
                                env=_headless_env(), capture_output=True, text=True, timeout=30)
        assert second.returncode == 80
        assert f"mailtracker tray is already running for {home.data_dir} (process {first.proc.pid})" \
            in second.stderr
        assert first.proc.poll() is None
    finally:
        assert first.stop() == 0, first.log()


def _icon(x_display):
    icons = x_display.tray_icons("mailtracker")
    return icons[0] if len(icons) == 1 else None


def _save(image, name):
    if ARTIFACTS is not None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        image.save(ARTIFACTS / name)


@pytest.mark.slow
def test_icon_docks_in_a_real_tray_and_changes_when_an_open_arrives(home, two_tags, tmp_path, x_display):
    """Under Xvfb with trayer: the icon shows; a hits line makes the badge and title change (bounded
    at 5 s so a loaded CI machine does not fail it; how fast is printed, typically well under 1 s);
    a click opens the report."""
    ann, _, hits = two_tags
    opened = tmp_path / "browser-opened.txt"
    # webbrowser runs $BROWSER: here a recorder of what the click opened.
    recorder = f"{sys.executable} -c \"import sys,pathlib; pathlib.Path(sys.argv[1]).write_text(sys.argv[2])\""
    env = {**x_display.env, "BROWSER": f"{recorder} {opened} %s"}
    tray = TrayProcess(home, env, tmp_path)
    try:
        icon = started_within(tray.proc, lambda: (i := _icon(x_display)) and "no new opens" in i["title"]
                              and i, 15, "the icon docked in trayer")
        started_within(tray.proc, lambda: marks_path(home).exists(), 10, "the first fold's baseline")
        before = x_display.screenshot(icon["box"])
        _save(x_display.screenshot(), "tray-before.png")
        assert _colour_pixels(before, TILE_COLOUR) > 150
        assert _colour_pixels(before, BADGE_COLOUR) == 0

        appended = time.monotonic()
        write_hits(hits, [(1, ann.id, "GET", utc_timestamp())])
        started_within(tray.proc, lambda: _colour_pixels(x_display.screenshot(icon["box"]), BADGE_COLOUR) > 20,
                       5, "the red badge on the icon")
        changed = time.monotonic() - appended
        after = _icon(x_display)
        assert after["title"] == 'mailtracker: 1 new open; Ann opened "Offer" just now'
        _save(x_display.screenshot(), "tray-after.png")
        print(f"the icon changed {changed:.2f} s after the append")

        box = after["box"]
        x_display.click((box[0] + box[2]) // 2, (box[1] + box[3]) // 2)
        started_within(tray.proc, lambda: opened.exists(), 10, "the click to open the report")
        assert opened.read_text() == (home.data_dir / "report.html").as_uri()
    finally:
        code = tray.stop()
    assert code == 0, tray.log()
    assert "Traceback" not in tray.log() and "Failed to dock" not in tray.log()
