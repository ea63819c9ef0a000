"""How the pixel server answered when last seen (issue 23, item 5): the daemon notes each
server's outcome in state/servers-seen.json when it changes, and the host's ``config`` answers
it, so the Track button can say before Send that the server did not answer."""

import json
import os
import time

import requests

from mailtracker.core.settings import init_home, load_config
from mailtracker.desktop.pull import FAILING, REACHABLE, UNREACHABLE, PullStatus
from mailtracker.desktop.reachability import Sightings, read_sightings, seen_path, server_seen
from mailtracker.desktop.tags import mint_tag
from tests.conftest import AGENT, HostProcess, PixelServer, free_port, wait_for, write_hits
from tests.test_pull_live import Watch, register_hits

URL = "https://t.example.org"


def seen_by_host(desktop) -> dict:
    """The ``server_seen`` of a real host process's ``config`` answer."""
    host = HostProcess(desktop)
    try:
        reply = host.call("config")
    finally:
        host.close()
    assert reply["ok"], reply
    return reply["data"]["server_seen"]


def test_a_stopped_server_is_told_unreachable_and_a_restarted_one_reachable(home, desktop):
    """A real 'watch' pulling from a real server on loopback: the server stops, and the host
    says it did not answer (connection refused, with the fix); it starts again on the same
    port, and the host says it answers."""
    port = free_port()
    server = PixelServer(home, "--serve-hits", "--port", str(port))
    tag = mint_tag(desktop, load_config(desktop), name="Seen")
    watch = Watch(desktop, server.base)
    try:
        assert requests.get(server.url(tag.id), headers={"User-Agent": f"{AGENT} before"}).ok
        wait_for(lambda: register_hits(desktop) == 1, timeout=15, what="the first pull")
        seen = seen_by_host(desktop)
        assert (seen["how"], seen["state"], seen["server"]) == ("pull", REACHABLE, f"127.0.0.1:{port}")
        reached = seen["since"]

        server.stop()
        # Cut mid-request ("connection closed") first, then refused: the final state is waited for.
        wait_for(lambda: read_sightings(desktop)[server.base].reason == "connection refused",
                 timeout=20, interval=0.1, what="the daemon noting the server stopped")
        seen = seen_by_host(desktop)
        assert seen["state"] == UNREACHABLE, seen
        assert seen["reason"] == "connection refused", seen
        assert seen["code"] == 70 and "doctor --server" in seen["hint"], seen
        assert seen["since"] >= reached and seen["last_reached"] >= reached, seen

        server = PixelServer(home, "--serve-hits", "--port", str(port))
        wait_for(lambda: read_sightings(desktop)[server.base].outcome == REACHABLE,
                 timeout=40, interval=0.1, what="the daemon noting the server answers again")
        seen = seen_by_host(desktop)
        assert seen["state"] == REACHABLE and "reason" not in seen, seen
    except AssertionError:
        print(watch.stop())
        raise
    finally:
        err = watch.stop() if watch.proc.returncode is None else ""
        server.stop()
    assert "Traceback" not in err


def status(reach, message="", reason="", code=0, server=URL, last_success="2026-12-07T10:00:00.000Z"):
    return PullStatus("ok" if reach == REACHABLE else "failing", message, 0, code, last_success,
                      server=server, reach=reach, reason=reason)


def test_the_file_is_written_when_the_outcome_changes_not_per_poll(home):
    """Ten polls that all fail alike write the file once; answering again writes it once more;
    a failure for another reason keeps the time it first stopped answering."""
    sightings = Sightings(home, [URL + "/"])
    refused = status(UNREACHABLE, "cannot connect to t.example.org: Connection refused", "connection refused", 70)
    for _ in range(10):
        sightings.record(refused)
    assert sightings.writes == 1
    first = read_sightings(home)[URL]
    stamp = os.stat(seen_path(home)).st_mtime_ns
    sightings.record(status(UNREACHABLE, "t.example.org did not answer in time", "timed out", 70))
    assert sightings.writes == 2
    assert read_sightings(home)[URL].since == first.since
    assert read_sightings(home)[URL].reason == "timed out"
    for _ in range(10):
        sightings.record(status(REACHABLE, "pulled nothing new"))
    assert sightings.writes == 3
    assert read_sightings(home)[URL].outcome == REACHABLE
    assert os.stat(seen_path(home)).st_mtime_ns >= stamp
    # A status that is not one server's (the puller's summary of several) is not noted.
    assert not sightings.record(PullStatus("waiting"))


def test_a_restarted_daemon_does_not_rewrite_what_it_already_knew(home):
    """The file survives the daemon: a new one that sees the same outcome writes nothing."""
    Sightings(home, [URL]).record(status(UNREACHABLE, "no", "connection refused", 70))
    again = Sightings(home, [URL])
    assert not again.record(status(UNREACHABLE, "no", "connection refused", 70))
    assert again.writes == 0


def test_a_refused_token_is_failing_with_its_own_fix(home):
    """Answered but refused (HTTP 401): not 'did not answer'; the hint is code 71's."""
    init_home(home, pull_url=URL)
    Sightings(home, [URL]).record(status(FAILING, "t.example.org refused the pull token (HTTP 401)", code=71))
    seen = server_seen(home, load_config(home))
    assert seen["state"] == FAILING and seen["code"] == 71
    assert "secret" in seen["hint"]


def test_several_servers_tell_the_worst_first(home):
    """Two servers, one down: the answer is the one that does not answer, with both listed."""
    other = "https://u.example.org"
    init_home(home, pull_url=[URL, other])
    sightings = Sightings(home, [URL, other])
    sightings.record(status(REACHABLE))
    sightings.record(status(UNREACHABLE, "cannot connect", "connection refused", 70, server=other))
    seen = server_seen(home, load_config(home))
    assert (seen["state"], seen["server"]) == (UNREACHABLE, "u.example.org")
    assert [s["state"] for s in seen["servers"]] == [UNREACHABLE, REACHABLE]


def test_a_server_never_pulled_yet_is_unknown_not_unreachable(home):
    """Configured, but no daemon ran since: nothing is claimed."""
    init_home(home, pull_url=URL)
    seen = server_seen(home, load_config(home))
    assert seen["state"] == "unknown" and "reason" not in seen


def test_a_home_without_a_puller_says_when_hits_last_arrived_and_never_alarms(home):
    """Hits synced by Syncthing or rsync: the answer is when the hits log last changed (or
    nothing yet), never unreachable, even with an old file saying so for a former pull_url."""
    seen_path(home).parent.mkdir(parents=True, exist_ok=True)
    seen_path(home).write_text(json.dumps({"version": 1, "servers": {URL: {
        "outcome": UNREACHABLE, "since": "2026-12-01T00:00:00.000Z"}}}))
    assert server_seen(home, load_config(home)) == {"how": "sync", "state": "unknown", "hits_changed": ""}
    hits = home.hits_dir(load_config(home))
    hits.mkdir(parents=True, exist_ok=True)
    write_hits(hits / "hits-pixel.csv", [(1, "a" * 32, "GET")])
    when = time.time() - 3600
    os.utime(hits / "hits-pixel.csv", (when, when))
    seen = server_seen(home, load_config(home))
    assert seen["state"] == "unknown"
    assert seen["hits_changed"].startswith(time.strftime("%Y-%m-%dT%H", time.gmtime(when))), seen


def test_an_unreadable_file_is_not_seen_and_is_replaced(home):
    """A damaged file (a crash can't make one, a hand can): servers are unknown, and the next
    outcome writes a good file."""
    init_home(home, pull_url=URL)
    seen_path(home).parent.mkdir(parents=True, exist_ok=True)
    seen_path(home).write_text("{not json")
    assert server_seen(home, load_config(home))["state"] == "unknown"
    Sightings(home, [URL]).record(status(REACHABLE))
    assert server_seen(home, load_config(home))["state"] == REACHABLE
