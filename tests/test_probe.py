"""``mailtracker doctor --server``: each step from the desktop to a real server
and back, the first broken one named, and the test hit never counted."""

import http.server
import os
import re
import shutil
import socket
import threading
import time

from mailtracker.core.contract import pull_token
from mailtracker.core.paths import Home
from mailtracker.core.secret import read_secret
from mailtracker.core.settings import init_home, load_config
from mailtracker.core.timestamps import utc_timestamp
from mailtracker.core.tokens import PROBE_TAG_PREFIX, probe_token, verify_token
from mailtracker.desktop import pull, reachability
from mailtracker.desktop.fold import fold
from mailtracker.desktop.probe import check_server
from mailtracker.desktop.pull import REACHABLE, UNREACHABLE, Puller
from mailtracker.desktop.reachability import Sightings, read_sightings
from mailtracker.desktop.register import read_register
from mailtracker.desktop.tags import mint_tag
from tests.conftest import PixelServer, free_port, rows_of, run_cli, wait_for


def _lines(proc):
    return [line for line in proc.stdout.splitlines() if line.startswith(("ok ", "BROKEN"))]


def test_the_probe_tag_verifies_and_is_recognisable_without_the_secret(home):
    """The reserved tag is a valid token (the server logs it) that the fold knows by its prefix."""
    secret = read_secret(home.secret_path)
    token = probe_token(secret)
    assert verify_token(secret, token) and token.startswith(PROBE_TAG_PREFIX)
    assert probe_token(b"another secret of 32 bytes......") != token


def test_doctor_server_passes_end_to_end_and_the_test_hit_is_no_open(home, pixel_server):
    """Server writing into this desktop's hits folder: every step ok, and the register shows no test hit."""
    init_home(home, server_url=pixel_server.base)
    tag = mint_tag(home, load_config(home), name="Real")
    proc = run_cli("doctor", "--server", home=home)
    steps = _lines(proc)
    assert [line.split(":")[0] for line in steps] == [
        "ok   name resolves", "ok   TLS certificate valid", "ok   server healthy",
        "ok   pixel served", "ok   test hit arrived"]
    assert "its hits reach this desktop" in proc.stdout
    # No puller here: the daemon claims nothing of the server, only when hits last came.
    assert "note    hits come by a sync tool: a hits file last changed 20" in proc.stdout
    probe_hits = [line for line in pixel_server.hit_lines() if PROBE_TAG_PREFIX in line]
    assert len(probe_hits) == 1 and "mailtracker-doctor/" in probe_hits[0]
    result = fold(home)
    assert result.new_hits == 0 and result.unknown_tag_hits == 0
    assert [row["id"] for row in read_register(home.register_path)] == [tag.id]
    assert not any(row.id.startswith(PROBE_TAG_PREFIX) for row in rows_of(home))
    assert not any(PROBE_TAG_PREFIX in line for line in home.register_path.read_text().splitlines()[1:])


def test_doctor_server_is_not_held_by_odd_entries_in_the_hits_folder(home, pixel_server):
    """A FIFO and a symlink to /dev/zero named like hits files: doctor still finds its test hit, promptly."""
    init_home(home, server_url=pixel_server.base)
    hits_dir = home.hits_dir(load_config(home))
    hits_dir.mkdir(parents=True, exist_ok=True)
    os.mkfifo(hits_dir / "hits-fifo-2026-01-01.csv")
    os.symlink("/dev/zero", hits_dir / "hits-zero-2026-01-01.csv")
    proc = run_cli("doctor", "--server", home=home, timeout=30)
    assert "ok   test hit arrived" in proc.stdout


def _vps(home, tmp_path) -> Home:
    """The server's own home, with this desktop's secret."""
    server_home = Home.locate(str(tmp_path / "vps"))
    init_home(server_home)
    shutil.copy(home.secret_path, server_home.secret_path)
    return server_home


def test_doctor_server_checks_the_http_pull(home, tmp_path):
    """With a pull_url the test hit comes home by HTTP pull, and doctor says so."""
    server_home = _vps(home, tmp_path)
    server = PixelServer(server_home, "--serve-hits")
    try:
        init_home(home, server_url=server.base, pull_url=server.base)
        proc = run_cli("doctor", "--server", home=home)
    finally:
        server.stop()
    assert "ok   test hit arrived" in proc.stdout and "(HTTP pull)" in proc.stdout
    live = re.search(r"ok   live pull: the test hit was here (\d+\.\d+) s after", proc.stdout)
    assert live and float(live.group(1)) < 2, proc.stdout


def test_doctor_server_checks_the_device_logs_when_the_computers_meet_there(home, tmp_path):
    """A computer joined with --via-server: doctor --server says the pull server keeps the device
    logs, this computer's once pushed; a server without the route (no --serve-hits) is named."""
    server_home = _vps(home, tmp_path)
    server = PixelServer(server_home, "--serve-hits")
    try:
        init_home(home, server_url=server.base, pull_url=server.base)
        run_cli("devices", "join", "--via-server", home=home)
        mint_tag(home, load_config(home), name="Pushed")
        run_cli("pull", home=home)
        proc = run_cli("doctor", "--server", home=home)
    finally:
        server.stop()
    assert re.search(r"ok   device logs kept: 1 logs at .*/devices/: 1 of this computer's", proc.stdout), proc.stdout
    bare = PixelServer(server_home)
    try:
        init_home(home, server_url=bare.base, pull_url=bare.base)
        proc = run_cli("doctor", "--server", "--wait", "2", home=home, check=False)
    finally:
        bare.stop()
    assert re.search(r"BROKEN +device logs kept: .*HTTP 404: it keeps no device logs", proc.stdout), proc.stdout


def test_doctor_server_tells_how_the_daemon_last_saw_the_pull_server(home, tmp_path, monkeypatch):
    """Beside its own live check, doctor says how the daemon's pulls last found each pull server
    (servers-seen.json as a real Puller and reachability's Sightings wrote it, as the daemon
    does): not pulled yet; answering since when; not answering since when, why, and when it last
    answered (the server answered two hours ago: the pull's clock is set back that far)."""
    server_home = _vps(home, tmp_path)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    init_home(home, server_url=url, pull_url=url)
    config = load_config(home)
    name = f"127.0.0.1:{port}"

    proc = run_cli("doctor", "--server", "--wait", "1", home=home, check=False)
    assert "BROKEN  server answers" in proc.stdout
    assert f"note    last seen by the daemon: {name} not pulled from yet" in proc.stdout, proc.stdout

    sightings = Sightings(home, config.pull_urls)
    puller = Puller(home.hits_dir(config), config.pull_urls, pull_token(read_secret(home.secret_path)),
                    interval_s=0.2, live=False, on_pull=lambda status, result: sightings.record(status))
    server = PixelServer(server_home, "--serve-hits", "--port", str(port))
    try:
        with monkeypatch.context() as earlier:
            two_hours_ago = utc_timestamp(time.time() - 7200)
            for module in (pull, reachability):
                earlier.setattr(module, "utc_timestamp", lambda *when: two_hours_ago)
            with puller:
                wait_for(lambda: read_sightings(home).get(url, None) and read_sightings(home)[url].outcome == REACHABLE,
                         timeout=20, what="the pull to note the server answers")
        reached = read_sightings(home)[url].since
        assert reached == two_hours_ago
        proc = run_cli("doctor", "--server", home=home)
    finally:
        server.stop()
    assert "ok   test hit arrived" in proc.stdout
    assert f"note    last seen by the daemon: {name} answered every pull since {_utc(reached)}" in proc.stdout, \
        proc.stdout

    with puller:  # the same puller, as the daemon's: it remembers when the server last answered
        wait_for(lambda: read_sightings(home)[url].reason == "connection refused", timeout=20,
                 what="the pull to note the server stopped")
    down = read_sightings(home)[url]
    assert down.outcome == UNREACHABLE and down.since > reached and down.last_reached == two_hours_ago, down
    proc = run_cli("doctor", "--server", "--wait", "1", home=home, check=False)
    assert proc.returncode == 90 and "BROKEN  server answers" in proc.stdout
    assert (f"note    last seen by the daemon: {name} did not answer since {_utc(down.since)}"
            in proc.stdout), proc.stdout
    assert f": connection refused; it last answered {_utc(two_hours_ago)}2 h ago)" in proc.stdout, proc.stdout


def _utc(stamp: str) -> str:
    """A UTC timestamp as doctor prints it, without the 'ago' that moves with the clock."""
    return f"{stamp[:10]} {stamp[11:16]} UTC ("


def test_a_server_that_is_down_is_named(home):
    """Nothing listening: the step 'server healthy' is never reached; the reason is given."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    init_home(home, server_url=f"http://127.0.0.1:{port}")
    proc = run_cli("doctor", "--server", home=home, check=False)
    assert proc.returncode == 90
    assert "BROKEN  server answers: cannot connect to 127.0.0.1" in proc.stdout
    assert "Connection refused" in proc.stdout and "breaks at: server answers" in proc.stdout


def test_a_name_that_does_not_resolve_is_named(home, monkeypatch):
    """A resolver failure stops the check at the first step (resolver replaced: no DNS traffic)."""
    init_home(home, server_url="https://t.example.invalid")

    def no_such_name(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
    checks = check_server(home, load_config(home), wait_s=1)
    assert [(c.name, c.ok) for c in checks] == [("name resolves", False)]
    assert "t.example.invalid does not resolve" in checks[0].detail


class _NotMailtracker(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"<html>a web site</html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_url_that_is_not_the_pixel_server_is_named(home):
    """A web site at server_url: /healthz is not mailtracker's, and doctor says so."""
    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotMailtracker)
    thread = threading.Thread(target=site.serve_forever)
    thread.start()
    try:
        init_home(home, server_url=f"http://127.0.0.1:{site.server_port}")
        proc = run_cli("doctor", "--server", home=home, check=False)
    finally:
        site.shutdown()
        site.server_close()
        thread.join()
    assert proc.returncode == 90 and "BROKEN  server healthy" in proc.stdout
    assert "is this URL the mailtracker pixel server" in proc.stdout


def test_a_hit_that_never_arrives_is_named(home, tmp_path):
    """The server answers but writes elsewhere and nothing syncs: the last step fails within --wait."""
    server = PixelServer(home, hits_dir=tmp_path / "elsewhere")
    try:
        init_home(home, server_url=server.base)
        proc = run_cli("doctor", "--server", "--wait", "1", home=home, check=False)
    finally:
        server.stop()
    assert proc.returncode == 90
    assert "ok   pixel served" in proc.stdout and "BROKEN  test hit arrived" in proc.stdout
    assert "within 1 s" in proc.stdout and "secret" in proc.stdout


def test_a_server_with_another_secret_is_named_by_the_pull(home, tmp_path):
    """Another secret on the server: its pull refuses this desktop's token, and doctor shows the 401."""
    server_home = Home.locate(str(tmp_path / "vps"))
    init_home(server_home)
    server = PixelServer(server_home, "--serve-hits")
    try:
        init_home(home, server_url=server.base, pull_url=server.base)
        began = time.monotonic()
        proc = run_cli("doctor", "--server", home=home, check=False)
        took = time.monotonic() - began
    finally:
        server.stop()
    assert proc.returncode == 90
    assert "BROKEN  pull token accepted" in proc.stdout and "HTTP 401" in proc.stdout
    assert took < 10, f"doctor kept pulling through 401s for {took:.0f} s"  # the wait is 20 s
    assert not [line for line in server.hit_lines() if PROBE_TAG_PREFIX in line]



def test_doctor_server_never_ends_in_a_traceback(home, monkeypatch, capsys):
    """An unexpected failure inside the checks is one BROKEN line and exit 90, not a traceback."""
    from mailtracker import cli
    from mailtracker.desktop import probe

    def broken(*args, **kwargs):
        raise ValueError("Port out of range 0-65535")

    monkeypatch.setattr(probe, "check_server", broken)
    assert cli.main(["doctor", "--server"]) == 90
    out = capsys.readouterr().out
    assert "BROKEN  the check itself: it failed unexpectedly (ValueError: Port out of range" in out
