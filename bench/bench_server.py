"""Benchmark the pixel server against nginx serving the same GIF, in one run.

nginx (a static file plus an access_log line per request) is the ceiling, not
a peer: it checks no token. ``mailtracker serve`` verifies the token of every
request and appends one CSV line to its hits log before it answers. Both are
loaded with the same wrk command, round after round, and each round's ratio to
nginx is taken within the round, because wrk shares the machine's cores with
the server and absolute figures drift.

After the load, every hits file is read back: each request wrk saw answered
must be a line in the log (a few more lines than wrk counted are the requests
still in flight when wrk stopped), and a fold of the log must count them all.

Everything listens on 127.0.0.1 only, every child runs in its own process
group, and every child is stopped in ``finally``.
"""

import argparse
import grp
import json
import os
import pwd
import re
import resource
import selectors
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional

from mailtracker.core.clicks import click_url
from mailtracker.core.contract import GIF
from mailtracker.core.csvcodec import header_line
from mailtracker.core.hitline import HIT_COLUMNS
from mailtracker.core.paths import Home
from mailtracker.core.secret import read_secret
from mailtracker.core.settings import init_home, load_config
from mailtracker.desktop.fold import fold
from mailtracker.desktop.register import Register

HOST = "127.0.0.1"
# Apple Mail's user agent: it holds a comma, so every logged line takes the
# quoted path of the CSV writer, as real opens do.
DEFAULT_USER_AGENT = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
TARGET_RATIO = 0.5
TARGET_P99_MS = 10.0
TARGET_RSS_BYTES = 60 * 10**6
STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
RSS_SAMPLE_S = 0.2
_HIT_ID_RE = re.compile(rb"^([a-z2-7]+)\.([0-9a-f]+)$")
_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


# --- wrk ------------------------------------------------------------------------------------

@dataclass
class WrkResult:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    socket_errors: int
    non_2xx: int


def parse_wrk(text: str) -> WrkResult:
    """The figures of ``wrk --latency`` output (wrk 4.x)."""
    def latency(pct: str) -> float:
        match = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
        if not match:
            raise ValueError(f"no {pct}% latency in wrk output:\n{text}")
        return float(match.group(1)) * _UNITS_MS[match.group(2)]

    requests = re.search(r"^\s+(\d+) requests in ", text, re.M)
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    if not (requests and rps):
        raise ValueError(f"unexpected wrk output:\n{text}")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return WrkResult(
        requests=int(requests.group(1)), rps=float(rps.group(1)),
        p50_ms=latency("50"), p99_ms=latency("99"),
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
    )


def run_wrk(url: str, args, duration_s: float) -> WrkResult:
    command = [_tool("wrk"), f"-t{args.threads}", f"-c{args.connections}", f"-d{duration_s:g}s",
               "--latency", "-H", f"User-Agent: {args.user_agent}", url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration_s + 30)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    return parse_wrk(done.stdout)


# --- processes and memory -------------------------------------------------------------------

def process_tree(root: int) -> List[int]:
    """``root`` and all its descendants, from /proc."""
    children: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: fields start after the last ')'.
        ppid = int(stat[stat.rfind(b")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def _status_kib(pid: int, path: str, key: str) -> int:
    try:
        with open(f"/proc/{pid}/{path}") as handle:
            for line in handle:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_memory(root: int):
    """(RSS, PSS) in bytes, summed over the process tree. RSS counts shared
    pages once per process, PSS splits them: RSS is what the target names."""
    pids = process_tree(root)
    rss = sum(_status_kib(pid, "status", "VmRSS:") for pid in pids)
    pss = sum(_status_kib(pid, "smaps_rollup", "Pss:") for pid in pids)
    return rss * 1024, pss * 1024, len(pids)


def _busy_ticks() -> int:
    with open("/proc/stat") as handle:
        fields = [int(n) for n in handle.readline().split()[1:]]
    return sum(fields[:8]) - fields[3] - fields[4]  # all but idle and iowait


def _tree_ticks(pids: List[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total


class CpuMeter:
    """Who used the cores during a run: the server, wrk, and everything else
    (other work on the machine makes the figures noisy; this says how much)."""

    def __init__(self, root: int):
        self.root = root

    def __enter__(self):
        self.pids = process_tree(self.root)
        self._start = (time.monotonic(), _busy_ticks(), _tree_ticks(self.pids),
                       resource.getrusage(resource.RUSAGE_CHILDREN))
        return self

    def __exit__(self, *exc):
        wall0, busy0, tree0, children0 = self._start
        wall = time.monotonic() - wall0
        hz = os.sysconf("SC_CLK_TCK")
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy = (_busy_ticks() - busy0) / hz
        self.server_s = (_tree_ticks(self.pids) - tree0) / hz
        self.wrk_s = (children.ru_utime - children0.ru_utime) + (children.ru_stime - children0.ru_stime)
        capacity = wall * (os.cpu_count() or 1)
        self.server_pct = 100 * self.server_s / capacity
        self.wrk_pct = 100 * self.wrk_s / capacity
        self.other_pct = max(0.0, 100 * (busy - self.server_s - self.wrk_s) / capacity)


def wait_for_quiet(max_wait_s: float, threshold_pct: float = 10.0) -> float:
    """Wait (at most ``max_wait_s``) until the machine is nearly idle between
    runs, so that other work does not land in a measurement; returns the last
    load seen, in % of all cores."""
    hz, cores = os.sysconf("SC_CLK_TCK"), os.cpu_count() or 1
    deadline = time.monotonic() + max_wait_s
    while True:
        before = _busy_ticks()
        time.sleep(0.5)
        load = 100 * (_busy_ticks() - before) / hz / (0.5 * cores)
        if load < threshold_pct or time.monotonic() >= deadline:
            return load


class MemorySampler:
    """Samples a process tree's memory while the load runs; keeps the peak."""

    def __init__(self, root: int):
        self.root = root
        self.peak_rss = self.peak_pss = self.processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self):
        while True:
            rss, pss, count = tree_memory(self.root)
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
            self.processes = max(self.processes, count)
            if self._stop.wait(RSS_SAMPLE_S):
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def start_process(command: List[str], log_path: Path, **kwargs) -> subprocess.Popen:
    """A child in its own process group, so stopping it stops its workers too."""
    with open(log_path, "ab") as log:
        kwargs.setdefault("stdout", log)
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stderr=log,
                                start_new_session=True, **kwargs)


def drain(stream, log_path: Path) -> None:
    """Copy the rest of a child's stdout to its log, so a full pipe never blocks it."""
    def copy():
        with open(log_path, "ab") as log:
            for line in stream:
                log.write(line)
    threading.Thread(target=copy, name="drain", daemon=True).start()


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def wait_ready(url: str, proc: subprocess.Popen, name: str, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{name} did not answer {url} within {STARTUP_TIMEOUT_S:.0f} s")


def _tool(name: str) -> str:
    """A program's path; nginx lives in /usr/sbin, outside a normal user's PATH."""
    return shutil.which(name) or f"/usr/sbin/{name}"


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


# --- the servers ----------------------------------------------------------------------------

@dataclass
class Target:
    """One server under load, and what each round measured of it."""

    name: str
    kind: str  # "nginx" or "mailtracker"
    workers: str
    click: bool = False  # load a click URL (the signed redirect) instead of the pixel
    url: str = ""
    proc: Optional[subprocess.Popen] = None
    hits_dir: Optional[Path] = None
    access_log: Optional[Path] = None
    rounds: List[WrkResult] = field(default_factory=list)
    ratios: List[float] = field(default_factory=list)
    other_cpu: List[float] = field(default_factory=list)
    cpu_us: List[float] = field(default_factory=list)  # server CPU per answered request
    cpu_ratios: List[float] = field(default_factory=list)
    completed: int = 0  # requests wrk counted as answered, warm-up included
    peak_rss: int = 0
    peak_pss: int = 0
    processes: int = 0


NGINX_CONF = """\
{user}worker_processes {workers};
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    access_log {dir}/access.log;
    # granian keeps a connection open for any number of requests; nginx's
    # default of 1000 would make wrk reconnect and cost nginx, not us.
    keepalive_requests 1000000;
    server_tokens off;
    server {{
        listen {host}:{port};
        root {dir}/www;
        etag off;
        location ~ \\.gif$ {{
            default_type image/gif;
            add_header Cache-Control "no-store, no-cache, must-revalidate, max-age=0";
            add_header Pragma "no-cache";
            add_header Expires "Thu, 01 Jan 1970 00:00:00 GMT";
            add_header X-Content-Type-Options "nosniff";
            add_header Referrer-Policy "no-referrer";
            try_files /pixel.gif =404;
        }}
        location = /healthz {{ return 200 "ok\\n"; }}
    }}
}}
"""


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def start_nginx(target: Target, work: Path, token: str) -> None:
    root = work / _slug(target.name)
    (root / "www").mkdir(parents=True)
    (root / "www" / "pixel.gif").write_bytes(GIF)
    user = ""
    if os.geteuid() == 0:
        # As root, nginx's workers drop to an unprivileged user; let it read the GIF.
        nobody = pwd.getpwnam("nobody")
        user = f"user nobody {grp.getgrgid(nobody.pw_gid).gr_name};\n"
        for path in (work, root, root / "www"):
            path.chmod(0o755)
        (root / "www" / "pixel.gif").chmod(0o644)
    port = free_port()
    conf = root / "nginx.conf"
    conf.write_text(NGINX_CONF.format(user=user, workers=target.workers, dir=root, host=HOST, port=port))
    log_path = root / "stderr.log"
    target.proc = start_process([_tool("nginx"), "-p", str(root), "-c", str(conf)], log_path)
    target.access_log = root / "access.log"
    target.url = f"http://{HOST}:{port}/p/{token}.gif"
    wait_ready(f"http://{HOST}:{port}/healthz", target.proc, target.name, log_path)


def start_mailtracker(target: Target, work: Path, home_dir: Path) -> None:
    root = work / _slug(target.name)
    root.mkdir(parents=True)
    target.hits_dir = root / "hits"
    log_path = root / "stderr.log"
    command = [sys.executable, "-m", "mailtracker", "--home", str(home_dir), "serve",
               "--host", HOST, "--port", "0", "--hits-dir", str(target.hits_dir),
               "--server-id", "bench", "--workers", target.workers]
    target.proc = start_process(command, log_path, stdout=subprocess.PIPE)
    first = _read_first_line(target.proc, STARTUP_TIMEOUT_S)
    drain(target.proc.stdout, log_path)
    match = re.search(r"http://([\d.]+):(\d+)(\S*)/<token>\.gif", first)
    if not match:
        raise RuntimeError(f"unexpected first line from mailtracker serve: {first!r}\n"
                           f"{log_path.read_text()}")
    host, port, prefix = match.groups()
    target.url = f"http://{host}:{port}{prefix}/{{token}}.gif"
    wait_ready(f"http://{host}:{port}/healthz", target.proc, target.name, log_path)


# The same Granian settings as mailtracker.server.run_server, around bare_pixel.app.
_BARE_LAUNCHER = """\
import sys
from granian import Granian
from granian.constants import HTTPModes, Interfaces
from granian.http import HTTP1Settings
Granian("bare_pixel:app", address=sys.argv[1], port=int(sys.argv[2]), interface=Interfaces.ASGI,
        workers=int(sys.argv[3]), http=HTTPModes.http1, log_access=False,
        http1_settings=HTTP1Settings(header_read_timeout=10_000, max_buffer_size=65_536)).serve()
"""


def start_bare(target: Target, work: Path, token: str) -> None:
    root = work / _slug(target.name)
    root.mkdir(parents=True)
    log_path = root / "stderr.log"
    port = free_port()
    bench_dir = str(Path(__file__).resolve().parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [bench_dir, os.environ.get("PYTHONPATH")]))}
    target.proc = start_process([sys.executable, "-c", _BARE_LAUNCHER, HOST, str(port), target.workers],
                                log_path, env=env, cwd=bench_dir)
    target.url = f"http://{HOST}:{port}/p/{token}.gif"
    wait_ready(f"http://{HOST}:{port}/healthz", target.proc, target.name, log_path)


def _read_first_line(proc: subprocess.Popen, timeout_s: float) -> str:
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout_s):
            raise RuntimeError(f"no start-up line within {timeout_s:.0f} s")
    return proc.stdout.readline().decode("utf-8", "replace")


# --- checking the logs ----------------------------------------------------------------------

@dataclass
class LogCheck:
    lines: int = 0
    malformed: int = 0
    files: int = 0
    gaps: int = 0  # missing or repeated sequence numbers within a writer boot
    folded: int = -1


def check_hits(hits_dir: Path, token: str, home: Home) -> LogCheck:
    """Read every hits file back: well-formed lines for our token, each
    boot's sequence 1..n with no gap or repeat, and the fold's count."""
    check = LogCheck()
    header = header_line(HIT_COLUMNS)
    seqs: Dict[bytes, List[int]] = {}
    for path in sorted(hits_dir.glob("hits-*.csv")):
        check.files += 1
        data = path.read_bytes()
        if not data.startswith(header):
            check.malformed += 1
        body = data[len(header):] if data.startswith(header) else data
        if body and not body.endswith(b"\r\n"):
            check.malformed += 1  # a partial last line
        for line in body.split(b"\r\n"):
            if not line:
                continue
            check.lines += 1
            parts = line.split(b",", 5)
            match = _HIT_ID_RE.match(parts[0])
            if len(parts) < 6 or not match or parts[2] != token.encode() \
                    or parts[3] not in (b"GET", b"click:0:GET"):
                check.malformed += 1
                continue
            seqs.setdefault(match.group(1), []).append(int(match.group(2), 16))
    for numbers in seqs.values():
        numbers.sort()
        check.gaps += abs(numbers[-1] - len(numbers)) + (len(numbers) - len(set(numbers)))
    config = replace(load_config(home), hits_dir=str(hits_dir))
    state_home = Home(data_dir=hits_dir.parent / "fold-home", config_dir=home.config_dir)
    state_home.data_dir.mkdir(parents=True, exist_ok=True)
    # The register has rows for minted tags only: the fold needs the tag beside the hits.
    shutil.copyfile(home.tags_path, state_home.tags_path)
    fold(state_home, config=config)
    with Register.load(state_home) as register:
        row = register.get(token)
    check.folded = row.hits if row else 0
    return check


def count_lines(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


# --- the run --------------------------------------------------------------------------------

def build_targets(args) -> List[Target]:
    targets = [Target("nginx, 1 worker", "nginx", "1")]
    if args.nginx_auto:
        targets.append(Target(f"nginx, auto ({os.cpu_count()})", "nginx", "auto"))
    if args.bare_asgi:
        targets.append(Target("granian, bare ASGI app, 1 worker", "bare", "1"))
    for workers in args.workers:
        label = "worker" if workers == 1 else "workers"
        targets.append(Target(f"mailtracker serve, {workers} {label}", "mailtracker", str(workers)))
    if not args.no_clicks:
        targets.append(Target("mailtracker click redirect, 1 worker", "mailtracker", "1", click=True))
    return targets


def mib(n: int) -> str:
    return f"{n / 2**20:.0f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Load nginx (serving the same 43-byte GIF with an access_log) and "
                    "'mailtracker serve' (token check + one CSV line per hit) with wrk, "
                    "round after round, on 127.0.0.1; print req/s, p99, ratio to nginx, "
                    "RSS, and check that every answered hit was logged.")
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all servers; medians are reported (default 3)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of unmeasured load per server first (default 2)")
    parser.add_argument("--workers", default="1,2",
                        help="comma-separated worker counts of mailtracker serve to load (default 1,2)")
    parser.add_argument("--nginx-auto", action="store_true",
                        help="also load nginx with worker_processes auto (one per core; informative only)")
    parser.add_argument("--quiet-wait", type=float, default=20,
                        help="before each run, wait up to this many seconds for other work on the "
                             "machine to stop (0: don't wait) (default 20)")
    parser.add_argument("--bare-asgi", action="store_true",
                        help="also load granian running a bare ASGI app (same GIF, no token check, "
                             "no log): the HTTP server's own ceiling, to tell its cost from ours")
    parser.add_argument("--user-agent", default=DEFAULT_USER_AGENT, help="User-Agent header wrk sends")
    parser.add_argument("--no-clicks", action="store_true",
                        help="do not also load a click URL (verify the signature, log, 302 redirect)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory and print its path")
    args = parser.parse_args(argv)
    args.workers = [int(w) for w in args.workers.split(",") if w.strip()]
    if args.duration <= 0 or args.rounds < 1 or args.connections < 1 or args.threads < 1:
        parser.error("--duration, --rounds, --connections and --threads must be positive")
    if args.threads > args.connections:
        parser.error("--threads must not exceed --connections (wrk's rule)")
    for tool in ("wrk", "nginx"):
        if not Path(_tool(tool)).exists():
            parser.error(f"{tool} is not installed (Debian: apt-get install wrk nginx-light)")

    work = Path(tempfile.mkdtemp(prefix="mailtracker-bench-server-"))
    targets = build_targets(args)
    try:
        return run(args, work, targets)
    finally:
        for target in targets:
            if target.proc is not None:
                stop_process(target.proc)
        if args.keep:
            print(f"\nkept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def run(args, work: Path, targets: List[Target]) -> int:
    home = Home(data_dir=work / "home", config_dir=work / "home")
    init_home(home)
    minted = subprocess.run([sys.executable, "-m", "mailtracker", "--home", str(home.data_dir),
                             "tag", "--name", "bench", "--json"],
                            capture_output=True, text=True, check=True, timeout=60)
    token = json.loads(minted.stdout)["id"]

    for target in targets:
        if target.kind == "nginx":
            start_nginx(target, work, token)
        elif target.kind == "bare":
            start_bare(target, work, token)
        else:
            start_mailtracker(target, work, home.data_dir)
            target.url = target.url.format(token=token)
            if target.click:
                base = target.url.rsplit("/", 1)[0] + "/"
                target.url = click_url(base, read_secret(home.secret_path), token, 0,
                                       "https://shop.example.org/offer?id=42#terms")

    print(f"wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s --latency, "
          f"{args.rounds} rounds, {os.cpu_count()} cores shared by wrk and the server; "
          f"Python {sys.version.split()[0]}", flush=True)
    if args.warmup > 0:
        for target in targets:
            target.completed += run_wrk(target.url, args, args.warmup).requests

    for number in range(1, args.rounds + 1):
        for target in targets:
            if args.quiet_wait > 0:
                load = wait_for_quiet(args.quiet_wait)
                if load >= 10:
                    print(f"  (the machine stayed {load:.0f}% busy for {args.quiet_wait:g} s; measuring anyway)")
            with MemorySampler(target.proc.pid) as sampler, CpuMeter(target.proc.pid) as cpu:
                result = run_wrk(target.url, args, args.duration)
            target.rounds.append(result)
            target.completed += result.requests
            target.peak_rss = max(target.peak_rss, sampler.peak_rss)
            target.peak_pss = max(target.peak_pss, sampler.peak_pss)
            target.processes = max(target.processes, sampler.processes)
            target.other_cpu.append(cpu.other_pct)
            target.cpu_us.append(1e6 * cpu.server_s / max(1, result.requests))
            print(f"  round {number}: {target.name:<33} {result.rps:>8,.0f} req/s  "
                  f"p99 {result.p99_ms:6.2f} ms  errors {result.socket_errors + result.non_2xx}  "
                  f"CPU: server {cpu.server_pct:3.0f}%, wrk {cpu.wrk_pct:3.0f}%, "
                  f"other {cpu.other_pct:3.0f}%", flush=True)
        baseline = targets[0].rounds[-1].rps
        for target in targets:
            target.ratios.append(target.rounds[-1].rps / baseline)
            target.cpu_ratios.append(targets[0].cpu_us[-1] / target.cpu_us[-1])

    # Stop our servers before reading their logs: a clean stop closes the files.
    for target in targets:
        if target.kind == "mailtracker":
            stop_process(target.proc)
    time.sleep(0.2)

    print()
    print("| server | req/s | p99 ms | ÷ nginx | CPU µs/req | nginx CPU ÷ | RSS MiB (PSS) | processes |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for target in targets:
        rps = statistics.median(r.rps for r in target.rounds)
        p99 = statistics.median(r.p99_ms for r in target.rounds)
        ratio = statistics.median(target.ratios)
        print(f"| {target.name} | {rps:,.0f} | {p99:.2f} | {ratio:.2f} | {statistics.median(target.cpu_us):.1f} | "
              f"{statistics.median(target.cpu_ratios):.2f} | "
              f"{mib(target.peak_rss)} ({mib(target.peak_pss)}) | {target.processes} |")
    print("\nMedians over the rounds; ÷ nginx is the median of each round's ratio to "
          "'nginx, 1 worker'.\nCPU µs/req: the server's process tree's CPU time per request wrk counted; "
          "nginx CPU ÷ is nginx's\nfigure over the server's, round by round (the share of a core's work "
          "per hit; other load\nmoves it less than req/s).\nRSS: peak under load, summed over the server's "
          "process tree (PSS counts shared pages once).")
    other = [pct for target in targets for pct in target.other_cpu]
    print(f"Other load on the machine during the runs (CPU not used by wrk or the server): "
          f"median {statistics.median(other):.0f}%, max {max(other):.0f}% of the cores; "
          "above a few % the figures are noisy.")

    ok = True
    print("\nTargets (mailtracker serve vs nginx, 1 worker):")
    for target in targets:
        if target.kind != "mailtracker":
            continue
        ratio = statistics.median(target.ratios)
        p99 = statistics.median(r.p99_ms for r in target.rounds)
        checks = [
            (f"req/s ≥ {TARGET_RATIO}× nginx", ratio >= TARGET_RATIO, f"{ratio:.2f}×"),
            (f"p99 ≤ {TARGET_P99_MS:g} ms at {args.connections} connections",
             p99 <= TARGET_P99_MS, f"{p99:.2f} ms"),
            ("RSS ≤ 60 MB (60×10⁶ bytes)", target.peak_rss <= TARGET_RSS_BYTES,
             f"{target.peak_rss / 1e6:.1f} MB = {mib(target.peak_rss)} MiB"),
        ]
        for label, passed, value in checks:
            ok &= passed
            print(f"  {target.name:<28} {label:<36} {value:<22} {'met' if passed else 'MISSED'}")

    print("\nEvery answered hit logged (wrk's completed requests, warm-up included, "
          "vs lines in the hits files):")
    for target in targets:
        errors = sum(r.socket_errors + r.non_2xx for r in target.rounds)
        if target.kind == "bare":
            continue
        if target.kind == "nginx":
            lines = count_lines(target.access_log)
            print(f"  {target.name:<28} wrk answered {target.completed:,}, access.log lines "
                  f"{lines:,} (+{lines - target.completed - 1} in flight; 1 health check)")
            continue
        check = check_hits(target.hits_dir, token, home)
        extra = check.lines - target.completed
        runs = args.rounds + (1 if args.warmup > 0 else 0)
        # A request wrk sent before it stopped may be logged and answered
        # without wrk counting the answer: at most one per connection per run.
        passed = (0 <= extra <= args.connections * runs and not check.malformed
                  and not check.gaps and check.folded == check.lines and errors == 0)
        ok &= passed
        print(f"  {target.name:<28} wrk answered {target.completed:,}, hit lines {check.lines:,} "
              f"in {check.files} file(s) (+{extra} in flight at wrk's stop, ≤ {args.connections}×{runs} "
              f"allowed), malformed {check.malformed}, sequence gaps {check.gaps}, "
              f"folded {check.folded:,}, wrk errors {errors}: {'OK' if passed else 'FAILED'}")
    print(f"\n{'All targets met.' if ok else 'Some targets MISSED (see above).'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
