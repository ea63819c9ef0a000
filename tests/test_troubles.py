"""The tray says when opens stop arriving: troubles.py reads what the leading daemon wrote
(servers-seen.json, devices-sync.json) and tells a failure once it has lasted the grace; a
real tray pulling from a real server says 'not answering' when the server stops, and clears
by itself when it is back."""

import json
import time
from dataclasses import asdict, replace

from mailtracker.core.hints import hint_for
from mailtracker.core.settings import init_home, load_config
from mailtracker.core.timestamps import clock_time, utc_timestamp
from mailtracker.desktop.devicesync import read_sync_state
from mailtracker.desktop.pull import FAILING, REACHABLE, UNREACHABLE, Puller
from mailtracker.desktop.reachability import Sighting, read_sightings, seen_path
from mailtracker.desktop.tray.app import Tray
from mailtracker.desktop.troubles import GRACE_S, NO_TROUBLES, TroubleWatch, troubles_of
from tests.conftest import PixelServer, free_port, wait_for, write_hits

URL = "https://t.example.org"
OTHER = "https://u.example.org"
NOW = 1_796_000_000.0


def _down(seconds_ago: float, outcome=UNREACHABLE, reason="connection refused", code=70,
          reached_ago: float = 0.0) -> Sighting:
    reached = utc_timestamp(NOW - reached_ago) if reached_ago else ""
    return Sighting(outcome, utc_timestamp(NOW - seconds_ago), reason, "cannot connect", code, reached)


def _config(home, *urls, devices=False):
    init_home(home, pull_url=list(urls))
    return _with_devices(load_config(home), devices)


def _with_devices(config, devices):
    return replace(config, devices_via_server=devices)


def test_a_failure_is_told_only_once_it_has_lasted_the_grace(home):
    """A failed round a few seconds ago is a blip, not a warning; one a minute old is told, with
    its host, since and reason; a server that answers, or one config.toml no longer names, never."""
    config = _config(home, URL)
    assert troubles_of(config, {URL: _down(GRACE_S / 2)}, {}, NOW) == NO_TROUBLES
    told = troubles_of(config, {URL: _down(GRACE_S + 1)}, {}, NOW)
    assert [(t.host, t.outcome, t.reason, t.code) for t in told.servers] == [
        ("t.example.org", UNREACHABLE, "connection refused", 70)]
    assert told.servers[0].since == utc_timestamp(NOW - GRACE_S - 1) and told.server_count == 1
    answering = Sighting(REACHABLE, utc_timestamp(NOW - 3600))
    assert troubles_of(config, {URL: answering, OTHER: _down(3600)}, {}, NOW) == NO_TROUBLES


def test_the_grace_counts_from_the_last_pull_that_worked(home):
    """Down, then answering with a refused token: the outcome's since is new, but no pull has
    worked for five minutes, so it is told at once; a failure just after a pull that worked is not."""
    config = _config(home, URL)
    token = _down(5, FAILING, "token refused (HTTP 401)", 71, reached_ago=300)
    assert [t.code for t in troubles_of(config, {URL: token}, {}, NOW).servers] == [71]
    assert troubles_of(config, {URL: _down(5, reached_ago=10)}, {}, NOW) == NO_TROUBLES


def test_a_failure_from_before_the_tray_started_waits_for_the_new_pulls(home):
    """A failure written an hour ago, before this tray began watching: not told at once (the new
    daemon's first pull may clear it), but once the grace has passed since the watch began."""
    config = _config(home, URL)
    sightings = {URL: _down(3600)}
    assert troubles_of(config, sightings, {}, NOW, watched_since=NOW - 5) == NO_TROUBLES
    assert troubles_of(config, sightings, {}, NOW, watched_since=NOW - GRACE_S).servers


def test_one_of_two_servers_failing_is_counted_against_both(home):
    """Two servers, one failing (a refused token): one trouble out of two servers."""
    config = _config(home, URL, OTHER)
    told = troubles_of(config, {URL: Sighting(REACHABLE, utc_timestamp(NOW)),
                                OTHER: _down(300, FAILING, "token refused (HTTP 401)", 71)}, {}, NOW)
    assert [(t.host, t.code) for t in told.servers] == [("u.example.org", 71)] and told.server_count == 2


def test_the_device_sync_failing_is_told_after_the_grace_and_not_twice(home):
    """The device logs not meeting at a server: told once failing a minute, only where the devices
    meet at the server, and not when that server's hits fail too (the headline says it)."""
    config = _config(home, URL, devices=True)
    failing = {URL: {"problem": "cannot connect to t.example.org", "failing_since": utc_timestamp(NOW - 120)}}
    told = troubles_of(config, {}, failing, NOW)
    assert [(t.host, t.problem) for t in told.device_sync] == [("t.example.org", "cannot connect to t.example.org")]
    assert told.sync_count == 1 and not told.servers
    recent = {URL: {**failing[URL], "failing_since": utc_timestamp(NOW - 5)}}
    assert troubles_of(config, {}, recent, NOW) == NO_TROUBLES
    assert troubles_of(_with_devices(config, False), {}, failing, NOW) == NO_TROUBLES
    both = troubles_of(config, {URL: _down(120)}, failing, NOW)
    assert both.servers and not both.device_sync


def test_the_device_sync_keeps_since_when_it_fails_while_it_fails(home):
    """devices-sync.json says since when the rounds fail: kept while they fail (for whatever
    reason), gone once one works."""
    puller = Puller(home.hits_dir(load_config(home)), [URL], "token", devices=home)
    puller.devices.note(URL, None, "cannot connect")
    since = read_sync_state(home)[URL]["failing_since"]
    wait_for(lambda: utc_timestamp() > since, what="the clock to pass the first failure's millisecond")
    puller.devices.note(URL, None, "timed out")
    assert read_sync_state(home)[URL] == {"problem": "timed out", "failing_since": since}
    puller.devices.note(URL, None, "")
    assert "failing_since" not in read_sync_state(home)[URL]
    puller.devices.note(URL, None, "refused")
    assert read_sync_state(home)[URL]["failing_since"] > since  # a new failure, a new since


def test_a_notification_when_a_server_starts_failing_and_when_all_answer_again(home):
    """Told once when a server's failure outlasts the grace (not again for new words, nor for the
    device sync), and once when the last failing server answers again."""
    from mailtracker.desktop.tray.menu import trouble_notice
    from mailtracker.desktop.troubles import ServerTrouble, SyncTrouble, Troubles

    down = ServerTrouble("t.example.org", UNREACHABLE, utc_timestamp(NOW - 120), "connection refused", 70)
    failing = Troubles((down,), 1)
    notice = trouble_notice(NO_TROUBLES, failing, NOW)
    assert notice.title == "Not receiving opens"
    assert notice.body.startswith(f"t.example.org not answering since {clock_time(down.since, NOW)} "
                                  "(connection refused)\nNothing is lost")
    reworded = Troubles((replace(down, reason="timed out"),), 1)
    assert trouble_notice(failing, reworded, NOW) is None
    assert trouble_notice(NO_TROUBLES, Troubles((), 1, (SyncTrouble("t.example.org", "refused"),), 1), NOW) is None
    back = trouble_notice(reworded, NO_TROUBLES, NOW)
    assert (back.title, back.body) == ("Receiving opens again",
                                       "t.example.org answers again: the opens it kept arrive now.")


def test_the_problem_line_chosen_says_the_failure_in_full_with_what_to_do(home):
    """The pull trouble's line in the menu can be chosen (the headline, or the line under a fold
    problem); it gives the failure's sentence and its code's fix for each failing server. A menu
    without a trouble has nothing to choose at its top. (Fails when the line stays disabled.)"""
    from mailtracker.desktop.marks import Marks
    from mailtracker.desktop.tray.menu import build_view, trouble_explained
    from mailtracker.desktop.troubles import ServerTrouble, Troubles

    token = ServerTrouble("t.example.org", FAILING, utc_timestamp(NOW - 120), "token refused (HTTP 401)", 71,
                          "t.example.org refused the pull token (HTTP 401): the server's secret is not this desktop's")
    troubles = Troubles((token,), 1)
    marks = Marks.load(home)
    first = build_view([], marks, NOW, troubles=troubles).entries[0]
    assert first.action == ("explain_trouble",) and first.enabled and first.text.startswith("Not receiving opens")
    under_fold = build_view([], marks, NOW, problem="register.csv is open in another program", troubles=troubles)
    assert not under_fold.entries[0].enabled and under_fold.entries[1].action == ("explain_trouble",)
    assert build_view([], marks, NOW).entries[0].action is None
    notice = trouble_explained(troubles)
    assert notice.body == f"{token.message}\n{hint_for(71)}"
    assert trouble_explained(NO_TROUBLES) is None


def test_the_watch_tells_its_owner_when_the_file_changes_and_when_the_grace_ends(home):
    """The watch reads servers-seen.json as the leader writes it: a failure is told when it has
    lasted the grace (with no new write), and the all-clear when the file says it answers."""
    config = _config(home, URL)
    told = []
    watch = TroubleWatch(home, config, told.append, grace_s=0.5, poll_s=0.05).start()
    try:
        _write_sightings(home, {URL: Sighting(UNREACHABLE, utc_timestamp(), "connection refused", "no", 70)})
        wait_for(lambda: told, timeout=10, what="the failure told after its grace")
        assert told[0].servers[0].reason == "connection refused"
        _write_sightings(home, {URL: Sighting(REACHABLE, utc_timestamp())})
        wait_for(lambda: len(told) == 2, timeout=10, what="the all-clear")
        assert told[1] == NO_TROUBLES and watch.troubles == NO_TROUBLES
    finally:
        watch.stop()


def _write_sightings(home, sightings):
    seen_path(home).parent.mkdir(parents=True, exist_ok=True)
    body = {"version": 1, "servers": {url: asdict(s) for url, s in sightings.items()}}
    tmp = seen_path(home).with_suffix(".tmp")
    tmp.write_text(json.dumps(body))
    tmp.replace(seen_path(home))


def _headline(tray) -> str:
    return tray.view.entries[0].text


def _reached(desktop, server) -> bool:
    """Whether the leading daemon has noted that the server answers."""
    return read_sightings(desktop).get(server.base, Sighting("", "")).outcome == REACHABLE


def test_a_real_tray_says_a_real_server_stopped_answering_and_clears_when_it_is_back(home, desktop):
    """The tray's data path without a GUI, pulling from a real server with --serve-hits: the server
    stops, and the headline says not receiving opens, with host, since and 'connection refused'
    (grace 0 here: the grace has its own tests); it starts again on the same port, and the headline
    clears by itself."""
    port = free_port()
    server = PixelServer(home, "--serve-hits", "--port", str(port))
    init_home(desktop, pull_url=server.base)
    notices = []
    tray = Tray(desktop, load_config(desktop), deliver=notices.append, trouble_grace_s=0.0)
    try:
        with tray:
            wait_for(lambda: _reached(desktop, server), timeout=15, what="the first pull")
            assert _headline(tray) == "No new opens"
            server.stop()
            # Cut mid-request ("connection closed") first, then refused: the final words are waited for.
            wait_for(lambda: _headline(tray).endswith("(connection refused)"), timeout=30, interval=0.05,
                     what="the headline to say the server does not answer")
            since = clock_time(read_sightings(desktop)[server.base].since, time.time())
            expected = f"Not receiving opens: 127.0.0.1:{port} not answering since {since} (connection refused)"
            assert _headline(tray) == expected
            assert tray.view.title == "mailtracker: n" + expected[1:]
            # One notification, though the words changed on the way ("connection closed", then refused).
            assert [notice.title for notice in notices] == ["Not receiving opens"]
            assert notices[0].body.startswith(f"127.0.0.1:{port} not answering since {since}")
            # The line chosen says it in full, with what to do.
            tray.choose(tray.view.entries[0])
            explained = notices[-1]
            assert explained.title == "Why opens are not arriving"
            assert explained.body == f"{read_sightings(desktop)[server.base].message}\n{hint_for(70)}"
            notices.pop()
            server = PixelServer(home, "--serve-hits", "--port", str(port))
            wait_for(lambda: _headline(tray) == "No new opens", timeout=40, interval=0.05,
                     what="the headline to clear once the server answers again")
            assert tray.view.title == "mailtracker: no new opens"
            assert [notice.title for notice in notices] == ["Not receiving opens", "Receiving opens again"]
    finally:
        server.stop()


def test_a_following_tray_learns_the_leaders_pull_trouble(home, desktop):
    """A real 'watch' leads (it pulls); a tray started after it follows, with no puller of its own,
    and still says the server stopped answering: it reads what the leader wrote."""
    from tests.test_pull_live import Watch

    server = PixelServer(home, "--serve-hits")
    watch = Watch(desktop, server.base)
    try:
        wait_for(lambda: _reached(desktop, server), timeout=15, what="the leader's first pull")
        with Tray(desktop, load_config(desktop), deliver=[].append, trouble_grace_s=0.0) as tray:
            assert not tray.daemon.leading.is_set()
            server.stop()
            wait_for(lambda: _headline(tray).endswith("(connection refused)"), timeout=30, interval=0.05,
                     what="the following tray to say the server does not answer")
            assert _headline(tray).startswith(f"Not receiving opens: {server.base[len('http://'):]} not answering")
    finally:
        server.stop()
        assert "Traceback" not in watch.stop()


def test_a_following_tray_says_the_leaders_folds_fail_and_when_they_work_again(desktop):
    """A real 'watch' leads (it folds); a tray started after it follows, with no watcher of its
    own, and still says 'Not counting: …' when the leader's folds fail (tags.csv made unreadable),
    in the leader's words, and 'No new opens' once they work again. (Fails when only a leading
    tray's own watcher tells the fold problem.)"""
    from tests.test_pull_live import Watch

    init_home(desktop)
    config = load_config(desktop)
    hits = desktop.hits_dir(config) / "hits-a-2026-11-24.csv"
    watch = Watch(desktop)
    try:
        wait_for(lambda: desktop.register_path.exists(), timeout=15, what="the leader's first fold")
        with Tray(desktop, config, deliver=[].append) as tray:
            assert not tray.daemon.leading.is_set()
            desktop.tags_path.unlink(missing_ok=True)
            desktop.tags_path.mkdir()  # every fold stops at a log it cannot read
            write_hits(hits, [(1, "a" * 32, "GET")])
            wait_for(lambda: _headline(tray).startswith("Not counting:"), timeout=30, interval=0.05,
                     what="the following tray to say the folds fail")
            assert _headline(tray) == "Not counting: folding failed: tags.csv is not a regular file"
            assert tray.view.trouble
            desktop.tags_path.rmdir()
            write_hits(hits, [(2, "a" * 32, "GET")])
            wait_for(lambda: _headline(tray) == "No new opens", timeout=30, interval=0.05,
                     what="the headline to clear once a fold works again")
    finally:
        assert "Traceback" not in watch.stop()


def test_a_leading_tray_says_its_folds_fail_without_waiting_for_another_change(desktop):
    """The tray that folds itself: a fold that fails changes no count, yet the headline says so at
    once (the watch sees the problem the watcher wrote), and clears when a fold works again."""
    init_home(desktop)
    config = load_config(desktop)
    hits = desktop.hits_dir(config) / "hits-a-2026-11-24.csv"
    with Tray(desktop, config, deliver=[].append) as tray:
        wait_for(lambda: tray.daemon.leading.is_set() and desktop.register_path.exists(), timeout=15,
                 what="the first fold")
        desktop.tags_path.unlink(missing_ok=True)
        desktop.tags_path.mkdir()
        write_hits(hits, [(1, "a" * 32, "GET")])
        wait_for(lambda: _headline(tray).startswith("Not counting:"), timeout=30, interval=0.05,
                 what="the headline to say the folds fail")
        desktop.tags_path.rmdir()
        write_hits(hits, [(2, "a" * 32, "GET")])
        wait_for(lambda: _headline(tray) == "No new opens", timeout=30, interval=0.05,
                 what="the headline to clear once a fold works again")
