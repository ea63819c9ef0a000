"""Measure how long a hit takes from the pixel server to the desktop's
register.csv, and what a pull costs when nothing is new.

a. Syncthing: two real instances on loopback (tests/syncthing_pair.py: server
   folder send-only, desktop folder receive-only, fsWatcherDelayS=1). A real
   ``mailtracker serve`` writes into the server folder; the desktop's Watcher
   folds the desktop folder. Timed: GET of the pixel -> the fold that counted it.
b. HTTP pull, live (the default): a real server with --serve-hits and two
   workers, the desktop's Puller and Watcher as ``watch`` runs them; the server
   holds each listing request until a hit is written. Each hit is sent a random
   0.5-3 s after the last one arrived.
c. HTTP pull every 30 s (``pull_live = false``, and every desktop before the
   live pull): each hit at a random moment of the interval, so the samples
   spread over it as real opens do. Also timed: the same with ``pull_now``.
d. What an idle desktop costs the server: the live puller and the 30 s puller
   run side by side for ``--idle-s`` seconds with nothing new; the requests each
   made, and the server's CPU time, per hour.
e. Bytes per pull when nothing is new, counted on the wire by a TCP proxy
   (both directions, headers included) over a kept-alive connection: plain
   HTTP straight to the server, and HTTPS through Caddy when it is installed.

Everything listens on 127.0.0.1; every child is stopped in ``finally``.
Run from the repository root: ``.venv/bin/python bench/bench_delivery.py``.
"""

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests  # noqa: E402

from mailtracker.core.contract import pull_token  # noqa: E402
from mailtracker.core.paths import Home
from mailtracker.core.secret import read_secret  # noqa: E402
from mailtracker.core.settings import init_home, load_config
from mailtracker.desktop.client import Session  # noqa: E402
from mailtracker.desktop.pull import DEFAULT_INTERVAL_S, Puller  # noqa: E402
from mailtracker.desktop.tags import mint_tag  # noqa: E402
from mailtracker.desktop.watcher import Watcher  # noqa: E402
from tests.conftest import PixelServer  # noqa: E402
from tests.syncthing_pair import Pair  # noqa: E402
from tests.tcp_proxy import TcpProxy  # noqa: E402

AGENT = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


class Counted:
    """Wakes when the watcher's fold has counted a given number of hits."""

    def __init__(self):
        self.hits = 0
        self.changed = threading.Condition()

    def __call__(self, result):
        with self.changed:
            self.hits += result.new_hits
            self.changed.notify_all()

    def wait_for(self, total: int, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self.hits >= total, timeout)


def homes(root: Path, hits_dir: Path = None):
    server_home = Home.locate(str(root / "server"))
    init_home(server_home)
    desktop = Home.locate(str(root / "desktop"))
    init_home(desktop, hits_dir=str(hits_dir) if hits_dir else None)
    shutil.copy(server_home.secret_path, desktop.secret_path)
    return server_home, desktop


def time_hits(server: PixelServer, desktop: Home, counted: Counted, samples: int, before_each=None):
    tag = mint_tag(desktop, load_config(desktop), name="bench")
    times = []
    for i in range(samples):
        if before_each:
            before_each()
        started = time.monotonic()
        assert requests.get(server.url(tag.id), headers={"User-Agent": f"{AGENT} {i}"}).ok
        if not counted.wait_for(counted.hits + 1, 120):
            raise SystemExit(f"sample {i}: the hit never reached the register")
        times.append(time.monotonic() - started)
    return times


def bench_syncthing(root: Path, samples: int):
    pair = Pair(root).start()
    server_home, desktop = homes(root, pair.desktop.folder)
    server = PixelServer(server_home, "--server-id", "bench", hits_dir=pair.server.folder)
    counted = Counted()
    try:
        with Watcher(desktop, load_config(desktop), on_fold=counted):
            time.sleep(1.0)  # the watcher's first fold of what is already there
            return time_hits(server, desktop, counted, samples, before_each=lambda: time.sleep(0.5))
    finally:
        server.stop()
        pair.stop()


def bench_pull(root: Path, samples: int, on_demand: bool, interval: float, live: bool = False):
    server_home, desktop = homes(root)
    server = PixelServer(server_home, "--serve-hits", "--workers", "2")
    config = load_config(desktop)
    counted = Counted()
    try:
        with Watcher(desktop, config, on_fold=counted) as watcher:
            puller = Puller(desktop.hits_dir(config), [server.base], pull_token(read_secret(desktop.secret_path)),
                            interval_s=interval, live=live,
                            on_pull=lambda status, result: result and result.changed and watcher.fold_now())
            with puller:
                time.sleep(1.0)
                if on_demand:
                    return _on_demand(server, desktop, counted, samples, puller)
                pause = (lambda: random.uniform(0.5, 3.0)) if live else (lambda: random.uniform(0, interval))
                return time_hits(server, desktop, counted, samples, before_each=lambda: time.sleep(pause()))
    finally:
        server.stop()


def idle_cost(root: Path, seconds: float, interval: float):
    """{way: (requests per hour, server CPU seconds per hour)} for a live and a polling puller,
    idle side by side against one server (two workers); and the server's CPU alone, no puller."""
    server_home, desktop = homes(root)
    server = PixelServer(server_home, "--serve-hits", "--workers", "2")
    token = pull_token(read_secret(desktop.secret_path))
    results = {}
    try:
        time.sleep(1.0)
        before = _tree_cpu_s(server.proc.pid)
        time.sleep(seconds / 2)
        alone = (_tree_cpu_s(server.proc.pid) - before) * 3600 / (seconds / 2)
        pullers = {}
        for way, live in (("live (the default)", True), (f"every {interval:g} s", False)):
            session = Session()
            count = [0]
            session.hooks["response"].append(lambda response, *args, count=count, **kwargs: count.__setitem__(
                0, count[0] + 1))
            puller = Puller(root / way.split()[0], [server.base], token, interval_s=interval, live=live,
                            session=session)
            pullers[way] = (puller.start(), session, count)
        time.sleep(2.0)  # both caught up and waiting
        counts = {way: count[0] for way, (_, _, count) in pullers.items()}
        cpu = _tree_cpu_s(server.proc.pid)
        time.sleep(seconds)
        cpu = (_tree_cpu_s(server.proc.pid) - cpu) * 3600 / seconds
        for way, (puller, session, count) in pullers.items():
            results[way] = (count[0] - counts[way]) * 3600 / seconds
            puller.stop()
            session.close()
    finally:
        server.stop()
    return results, cpu, alone


def _tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its children (Linux /proc)."""
    import os

    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _on_demand(server, desktop, counted, samples, puller):
    tag = mint_tag(desktop, load_config(desktop), name="bench")
    times = []
    for i in range(samples):
        started = time.monotonic()
        assert requests.get(server.url(tag.id), headers={"User-Agent": f"{AGENT} {i}"}).ok
        puller.pull_now()
        if not counted.wait_for(counted.hits + 1, 60):
            raise SystemExit("an on-demand pull never reached the register")
        times.append(time.monotonic() - started)
    return times


def bytes_per_empty_pull(root: Path, pulls: int):
    server_home, desktop = homes(root)
    server = PixelServer(server_home, "--serve-hits")
    results = {}
    token = pull_token(read_secret(desktop.secret_path))
    try:
        tag = mint_tag(desktop, load_config(desktop), name="bench")
        for i in range(20):
            requests.get(server.url(tag.id), headers={"User-Agent": f"{AGENT} {i}"})
        upstream = int(server.base.rsplit(":", 1)[1])
        results["HTTP, straight to the server"] = _count(TcpProxy(upstream), "http", root / "a", token, pulls)
        if shutil.which("caddy"):
            from tests.caddy import Caddy

            caddy = Caddy(Path(tempfile.mkdtemp(dir=root)), upstream)
            try:
                results["HTTPS through Caddy (HTTP/1.1 over TLS 1.3)"] = _count(
                    TcpProxy(caddy.https_port), "https", root / "b", token, pulls, ca=caddy.ca)
            finally:
                caddy.stop()
    finally:
        server.stop()
    return results


def _count(proxy: TcpProxy, scheme: str, local: Path, token: str, pulls: int, ca=None):
    session = Session()
    if ca is not None:
        session.trust_env = False  # requests prefers REQUESTS_CA_BUNDLE over session.verify
        session.verify = str(ca)
    try:
        puller = Puller(local, [f"{scheme}://127.0.0.1:{proxy.port}"], token, session=session)
        puller.pull_once()
        proxy.reset_counts()
        for _ in range(pulls):
            assert puller.pull_once().unchanged
        return (proxy.up / pulls, proxy.down / pulls, proxy.connections)
    finally:
        session.close()
        proxy.close()


def describe(times):
    return (f"median {statistics.median(times):.2f} s, min {min(times):.2f}, max {max(times):.2f}, "
            f"n={len(times)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=10, help="hits timed per Syncthing / on-demand run")
    parser.add_argument("--interval-samples", type=int, default=8, help="hits timed at the default interval")
    parser.add_argument("--interval", type=float, default=DEFAULT_INTERVAL_S, help="pull interval (default 30)")
    parser.add_argument("--live-samples", type=int, default=8, help="hits timed over the live pull")
    parser.add_argument("--idle-s", type=float, default=120.0, help="seconds the idle pullers are watched")
    parser.add_argument("--pulls", type=int, default=20, help="empty pulls counted")
    parser.add_argument("--skip", action="append", default=[],
                        choices=("syncthing", "interval", "idle", "bytes"))
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mt-delivery-"))
    try:
        print("| way home | hit on the server -> register.csv updated |\n|---|---|")
        if "syncthing" not in args.skip and shutil.which("syncthing"):
            print(f"| Syncthing, fsWatcherDelayS=1 | {describe(bench_syncthing(root / 'st', args.samples))} |",
                  flush=True)
        live = bench_pull(root / 'live', args.live_samples, False, args.interval, live=True)
        print(f"| HTTP pull, live (the default) | {describe(live)} |", flush=True)
        print(f"| HTTP pull, on demand (pull_now) | "
              f"{describe(bench_pull(root / 'od', args.samples, True, args.interval))} |", flush=True)
        if "interval" not in args.skip:
            print(f"| HTTP pull, every {args.interval:g} s (hits at random moments) | "
                  f"{describe(bench_pull(root / 'iv', args.interval_samples, False, args.interval))} |",
                  flush=True)
        if "idle" not in args.skip:
            per_hour, cpu, alone = idle_cost(root / "idle", args.idle_s, args.interval)
            print(f"\n| idle desktop, {args.idle_s:g} s side by side | requests per hour |\n|---|---|")
            for way, requests_per_hour in per_hour.items():
                print(f"| {way} | {requests_per_hour:.0f} |")
            print(f"\nServer CPU while both wait: {cpu:.2f} s per hour (with no puller: {alone:.2f} s per hour).")
        if "bytes" not in args.skip:
            print("\n| empty pull (nothing new) | bytes sent | bytes received | connections |\n|---|---|---|---|")
            for name, (up, down, connections) in bytes_per_empty_pull(root / "bytes", args.pulls).items():
                print(f"| {name} | {up:.0f} | {down:.0f} | {connections} for {args.pulls + 1} pulls |")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
