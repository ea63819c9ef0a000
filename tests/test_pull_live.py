"""The live pull end to end (issue 24): a real server with --serve-hits, a real 'watch' with
the default settings, hits reaching register.csv within seconds; a restarted server, a dropped
connection and Caddy in front lose nothing and cut nothing."""

import signal
import statistics
import subprocess
import sys
import threading
import time
from typing import Optional

import requests

from mailtracker.core.contract import pull_token
from mailtracker.core.paths import Home
from mailtracker.core.secret import read_secret
from mailtracker.core.settings import init_home, load_config
from mailtracker.desktop.pull import Puller
from mailtracker.desktop.register import read_register
from mailtracker.desktop.tags import mint_tag
from tests.conftest import AGENT, PixelServer, free_port, wait_for
from tests.tcp_proxy import TcpProxy

# What the issue asks of the default settings: a median of 2 s, none over 4 s.
MEDIAN_BOUND_S = 2.0
WORST_BOUND_S = 4.0


def register_hits(desktop: Home) -> int:
    if not desktop.register_path.exists():
        return 0
    return sum(int(row["hits"]) for row in read_register(desktop.register_path))


class Watch:
    """A real 'mailtracker watch' with the default settings but pull_url."""

    def __init__(self, desktop: Home, pull_url: Optional[str] = None):
        if pull_url is not None:  # else the home is set up already
            init_home(desktop, pull_url=pull_url)
        self.proc = subprocess.Popen([sys.executable, "-m", "mailtracker", "--home", str(desktop.data_dir),
                                      "watch"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def stop(self) -> str:
        began = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0, err
        assert time.monotonic() - began < 5, "watch took more than 5 s to stop"
        return err


def open_and_time(server, tag, desktop, n: int, expected: int, bound_s: float = WORST_BOUND_S) -> float:
    """One person open; seconds until register.csv counts it."""
    began = time.monotonic()
    assert requests.get(server.url(tag.id), headers={"User-Agent": f"{AGENT} open {n}"}).ok
    wait_for(lambda: register_hits(desktop) >= expected, timeout=bound_s, interval=0.01,
             what=f"open {n} in the register within {bound_s} s")
    return time.monotonic() - began


def test_opens_reach_the_register_within_two_seconds(home, desktop):
    """Default settings (pull_interval_s 30), a server with two workers: five opens a few
    seconds apart reach register.csv with a median under 2 s and none over 4 s."""
    server = PixelServer(home, "--serve-hits", "--workers", "2")
    tag = mint_tag(desktop, load_config(desktop), name="Live")
    watch = Watch(desktop, server.base)
    try:
        assert requests.get(server.url(tag.id), headers={"User-Agent": f"{AGENT} first"}).ok
        wait_for(lambda: register_hits(desktop) == 1, timeout=15, what="the first pull")
        latencies = []
        for n in range(5):
            time.sleep(1.5)  # the listing request is held again by now
            latencies.append(open_and_time(server, tag, desktop, n, expected=2 + n))
        assert statistics.median(latencies) < MEDIAN_BOUND_S, latencies
        assert max(latencies) < WORST_BOUND_S, latencies
    finally:
        err = watch.stop()
        server.stop()
    assert "Traceback" not in err


def test_a_restarted_server_and_a_dropped_connection_lose_nothing(home, desktop):
    """The server restarts (SIGTERM, the same port) and, later, every connection is dropped while
    a request is held: each hit sent meanwhile reaches the register, once."""
    port = free_port()
    server = PixelServer(home, "--serve-hits", "--port", str(port))
    proxy = TcpProxy(port)
    tag = mint_tag(desktop, load_config(desktop), name="Restart")
    watch = Watch(desktop, proxy.url)
    try:
        assert requests.get(server.url(tag.id), headers={"User-Agent": f"{AGENT} before"}).ok
        wait_for(lambda: register_hits(desktop) == 1, timeout=15, what="the first pull")
        time.sleep(1)
        server.stop()
        server = PixelServer(home, "--serve-hits", "--port", str(port))
        for n in range(3):
            assert requests.get(server.url(tag.id), headers={"User-Agent": f"{AGENT} restarted {n}"}).ok
        wait_for(lambda: register_hits(desktop) == 4, timeout=15, what="the hits sent after the restart")
        time.sleep(1)
        proxy.drop_all()
        for n in range(2):
            assert requests.get(server.url(tag.id), headers={"User-Agent": f"{AGENT} dropped {n}"}).ok
        wait_for(lambda: register_hits(desktop) == 6, timeout=15, what="the hits sent after the drop")
        time.sleep(2)
        assert register_hits(desktop) == 6  # nothing counted twice
    finally:
        watch.stop()
        server.stop()
        proxy.close()


def test_caddy_does_not_cut_a_held_request(home, tmp_path, monkeypatch):
    """Through the shipped Caddyfile: a listing held the full 40 s comes back whole (304), and a hit
    during the next hold is pulled within 2 s."""
    from tests.caddy import caddy_in_front

    with caddy_in_front(home, tmp_path, monkeypatch) as caddy, requests.Session() as session:
        tag = mint_tag(home, load_config(home), name="Caddy")
        local = tmp_path / "desktop-hits"
        puller = Puller(local, [caddy.url], pull_token(read_secret(home.secret_path)), session=session)
        puller.pull_once()
        began = time.monotonic()
        result = puller.pull_once(wait_s=40)
        held = time.monotonic() - began
        assert result.unchanged and 39 < held < 45, held
        assert puller.sources[0].live
        outcome = []
        pulling = threading.Thread(target=lambda: outcome.append(puller.pull_once(wait_s=40)))
        pulling.start()
        time.sleep(0.5)
        sent = time.monotonic()
        assert session.get(f"{caddy.url}/p/{tag.id}.gif", headers={"User-Agent": AGENT}).ok
        pulling.join(10)
        assert outcome and outcome[0].changed and time.monotonic() - sent < 2
        assert tag.id in "".join(p.read_text() for p in local.glob("hits-*.csv"))
        # A held request over TLS is cut at once by stop() (its 3 s bound is not needed).
        puller.start()
        time.sleep(1.5)  # its first request is held now (the listing is known: nothing new)
        began = time.monotonic()
        puller.stop()
        assert time.monotonic() - began < 1 and puller.status.state == "stopped"


def test_a_write_by_another_process_wakes_a_held_request_at_once(tmp_path):
    """The server's workers are processes: a line appended by another process wakes a request held
    in this one within a moment (inotify), not at its timeout nor at the fallback poll."""
    import asyncio

    from mailtracker.server.livewatch import FALLBACK_POLL_S, FolderChanges

    hits = tmp_path / "hits"
    hits.mkdir()
    (hits / "hits-w1-2026-01-01.csv").write_bytes(b"hit_id\r\n")

    async def held() -> float:
        changes = FolderChanges(hits)
        changes.drain()
        # The writer says when it wrote (wall clock): the wake is measured from the write itself,
        # so a slow interpreter start on a loaded machine does not count.
        writer = subprocess.Popen([sys.executable, "-c", "import sys, time; time.sleep(0.5); "
                                   "open(sys.argv[1], 'ab').write(b'x\\r\\n'); print(time.time())",
                                   str(hits / "hits-w1-2026-01-01.csv")], stdout=subprocess.PIPE, text=True)
        await changes.wait(30)
        woke = time.time()
        written = float(writer.communicate(timeout=30)[0])
        changes.close()
        return woke - written

    took = asyncio.run(held())
    print(f"a held request woke {took * 1000:.0f} ms after another process's write")
    # Woken by the write (inotify): not before it (the writer sleeps 0.5 s first), nor at the
    # fallback poll or the 30 s timeout.
    assert -0.2 < took < FALLBACK_POLL_S / 2, took
