"""Benchmark the fold: how long counting hits takes, from scratch and as the
history grows.

A synthetic history is written into temporary homes in exactly the format the
pixel server writes (``hits-<server-id>-<UTC date>.csv``, one file per day,
hit ids ``<boot>.<seq hex>`` with a new boot at each restart, user agents that
hold commas and so are quoted), next to a tags.csv of a few thousand tags.
Then it measures:

  a. folding N new hits from scratch (no fold state yet);
  b. folding a small batch of new hits appended after histories of growing
     size that are already folded: the time must not grow with the history;
  c. rebuilding the largest history (``mailtracker rebuild``).

a and c are measured for each way the fold can count: the fast path
(``desktop/fastfold.py``, polars, used for big batches when installed) and the
per-line loop (the reference, and the fallback without polars); b's small
batches always go per line. Every fold is called in-process
(``mailtracker.desktop.fold.fold``), as the watcher calls it; its counts are
checked against what was written. The machine's load average is printed with
each figure: other work on the same cores slows every figure down.
"""

import argparse
import base64
import cProfile
import csv
import importlib.util
import io
import os
import pstats
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List

from mailtracker.core.csvcodec import format_row, header_line, neutralise
from mailtracker.core.hitline import HIT_COLUMNS, format_hit_line
from mailtracker.core.paths import Home
from mailtracker.core.secret import read_secret
from mailtracker.core.settings import init_home
from mailtracker.core.timestamps import utc_timestamp
from mailtracker.core.tokens import mint_token
from mailtracker.desktop import fold as fold_module
from mailtracker.desktop.fold import fold
from mailtracker.desktop.register import Register
from mailtracker.desktop.view import view_path
from mailtracker.desktop.tags import SELF_FETCH_COLUMNS, TAG_COLUMNS

TARGET_SCRATCH_S = 2.0
TARGET_SCRATCH_HITS = 1_000_000
# "Must not grow with the history": 100x more history may cost at most this
# factor on the same new hits (a linear cost would show ~100x).
TARGET_FLAT_RATIO = 2.0
SERVER_ID = "pixel"
DAY_S = 86_400
START_EPOCH = 1_700_000_000 - 1_700_000_000 % DAY_S  # a UTC midnight in November 2023

# What opens look like: mail clients, image proxies, the odd crawler. Several
# hold commas, so the server quotes them; one starts with '=' and is neutralised.
USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Thunderbird/128.5.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.4.3",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17928; Pro)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0",
    "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
    'Mozilla/5.0 (compatible; "quoted", scanner/1.0)',
    "=cmd|' /C calc'!A0",
    "",
]
REFERERS = ["", "", "", "", "https://mail.google.com/", "https://outlook.live.com/"]
# What the server writes as a hit's network origin (core.origins): mostly none.
ORIGINS = ["", "", "", "", "", "google", "microsoft-eop", "apple-relay", "yahoo"]
# A reader comes back: another fetch by the same client of the same tag a few seconds
# later (a second look, a client that fetches twice), now and then a third: the repeat rule.
COME_BACK_WITHIN_MS = (1_000, 50_000)


def parse_count(text: str) -> int:
    """'1M', '100k', '10000' -> an int."""
    text = text.strip().lower().replace("_", "").replace(",", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def human(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return f"{n:,}"


def seconds(value: float) -> str:
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


# --- the synthetic history ------------------------------------------------------------------

def write_tags(home: Home, count: int, rng: random.Random) -> List[str]:
    """tags.csv with ``count`` tags minted under the home's secret, as mint_tag writes them."""
    secret = read_secret(home.secret_path)
    tokens = [mint_token(secret) for _ in range(count)]
    rows = [header_line(TAG_COLUMNS).decode("utf-8")]
    for i, token in enumerate(tokens):
        created = utc_timestamp(START_EPOCH - DAY_S + i * 10)
        fields = {"id": token, "created": created, "name": neutralise(f"Doe, Jane {i}"),
                  "subject": neutralise(f'Re: "Q{i % 4 + 1}" figures, draft {i}'),
                  # Two mails in three to one person (the "not seen" and "opened somewhere
                  # new" rules read those), the third to two.
                  "recipients": neutralise(f"jane{i}@example.org" if i % 3 else f"jane{i}@example.org; boss@example.org"),
                  "identity": "me@example.com", "status": "sent",
                  "sent_at": utc_timestamp(START_EPOCH - DAY_S + i * 10 + 2)}
        # Every column mint_tag writes, by name: one added later is left empty here.
        rows.append(format_row([fields.get(column, "") for column in TAG_COLUMNS]))
    home.tags_path.write_text("".join(rows), encoding="utf-8", newline="")
    return tokens


def write_self_fetches(home: Home, tokens: List[str], per_tag: int) -> None:
    """self-fetches.csv as the native host writes it: the moments the sender's
    own Thunderbird may fetch each pixel (compose, send, then displays)."""
    reasons = ["compose", "send"] + ["display"] * max(0, per_tag - 2)
    rows = [header_line(SELF_FETCH_COLUMNS).decode("utf-8")]
    for i, token in enumerate(tokens):
        for k, reason in enumerate(reasons[:per_tag]):
            rows.append(format_row([token, utc_timestamp(START_EPOCH - DAY_S + i * 10 + 30 * k), reason]))
    home.self_fetches_path.write_text("".join(rows), encoding="utf-8", newline="")


class HitWriter:
    """Writes hits as one pixel server would: a file per UTC day, a new boot
    (and sequence from 1) at every restart."""

    def __init__(self, hits_dir: Path, tokens: List[str], hits_per_day: int,
                 restart_days: int, rng: random.Random, come_back: float = 0.0):
        self.hits_dir = hits_dir
        self.tokens = tokens
        self.hits_per_day = hits_per_day
        self.restart_days = restart_days
        self.rng = rng
        self.come_back = come_back
        self.day = 0
        self.boot = ""
        self.seq = 0
        self.written = 0
        self.files = set()
        clients = [f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.0"
                   for _ in range(300)]
        # The tail of a line from the client on, formatted once per combination as
        # format_hit_line writes it (the server's _clean_text is neutralise() on text
        # without control characters).
        self.tails = [format_hit_line("", "", "", "", rng.choice(clients), neutralise(rng.choice(USER_AGENTS)),
                                      neutralise(rng.choice(REFERERS)), rng.choice(ORIGINS)).decode()[4:]
                      for _ in range(2_000)]

    def _restart(self) -> None:
        self.boot = base64.b32encode(secrets.token_bytes(5)).decode("ascii").lower()
        self.seq = 0

    def path(self, day: int) -> Path:
        return self.hits_dir / f"hits-{SERVER_ID}-{utc_timestamp(START_EPOCH + day * DAY_S)[:10]}.csv"

    def write_history(self, count: int) -> None:
        """``count`` hits, ``hits_per_day`` a day, from the first day on."""
        while count > 0:
            if self.day % self.restart_days == 0 or not self.boot:
                self._restart()
            batch = min(count, self.hits_per_day)
            self._write_day(self.day, batch, 0)
            count -= batch
            self.day += 1
        self.day -= 1  # later appends continue the last day's file

    def append(self, count: int) -> None:
        """``count`` new hits at the end of the latest day, as a running server adds them."""
        self._write_day(self.day, count, 86_000_000)

    def _write_day(self, day: int, count: int, from_ms: int) -> None:
        rng, tokens, tails = self.rng, self.tokens, self.tails
        stamp = utc_timestamp(START_EPOCH + day * DAY_S)[:10]
        fetches = []  # (ms into the day, tag, method, tail), written in time order
        while len(fetches) < count:
            ms, tag, tail = rng.randrange(from_ms, 86_400_000), rng.choice(tokens), rng.choice(tails)
            fetches.append((ms, tag, "HEAD" if rng.random() < 0.03 else "GET", tail))
            chance = self.come_back
            while rng.random() < chance and len(fetches) < count:
                ms = min(ms + rng.randrange(*COME_BACK_WITHIN_MS), 86_399_999)
                fetches.append((ms, tag, "GET", tail))
                chance /= 3
        fetches.sort(key=lambda fetch: fetch[0])
        offsets = [fetch[0] for fetch in fetches]
        lines = []
        seq = self.seq
        for ms, tag, method, tail in fetches:
            seq += 1
            sec, milli = divmod(ms, 1000)
            minute, sec = divmod(sec, 60)
            hour, minute = divmod(minute, 60)
            lines.append(f"{self.boot}.{seq:x},{stamp}T{hour:02d}:{minute:02d}:{sec:02d}.{milli:03d}Z,"
                         f"{tag},{method},{tail}")
        self.seq = seq
        path = self.path(day)
        with open(path, "ab") as handle:
            if handle.tell() == 0:
                handle.write(header_line(HIT_COLUMNS))
            handle.write("".join(lines).encode("utf-8"))
        self.files.add(path.name)
        self.written += count
        self._check_format(lines[:1], day, offsets[:1])

    @staticmethod
    def _check_format(lines: List[str], day: int, offsets: List[int]) -> None:
        """The shortcut formatting above must match the server's own functions."""
        for line, ms in zip(lines, offsets):
            hit_id, when, tag, method, rest = line.split(",", 4)
            assert when == utc_timestamp(START_EPOCH + day * DAY_S + ms / 1000), (when, ms)
            assert line.endswith("\r\n") and len(tag) == 32 and method in ("GET", "HEAD")
            client, agent, referer, origin = next(csv.reader([rest]))
            assert line.encode() == format_hit_line(hit_id, when, tag, method, client, agent, referer, origin)


@dataclass
class History:
    home: Home
    writer: HitWriter
    size: int
    tokens: List[str]


def make_history(root: Path, size: int, args) -> History:
    rng = random.Random(args.seed + size)
    home = Home(data_dir=root / f"history-{human(size)}", config_dir=root / f"history-{human(size)}")
    init_home(home)
    tokens = write_tags(home, args.tags, rng)
    if args.self_fetches:
        write_self_fetches(home, tokens, args.self_fetches)
    hits_dir = home.data_dir / "hits"
    writer = HitWriter(hits_dir, tokens, args.hits_per_day, args.restart_days, rng, args.come_back)
    writer.write_history(size)
    return History(home, writer, size, tokens)


# --- measuring ------------------------------------------------------------------------------

def timed_fold(home: Home, rebuild: bool = False, profile: "cProfile.Profile" = None, cpu: list = None):
    if profile is not None:
        profile.enable()
    start, start_cpu = time.perf_counter(), time.process_time()
    result = fold(home, rebuild=rebuild)
    elapsed = time.perf_counter() - start
    if cpu is not None:
        cpu.append(time.process_time() - start_cpu)  # all of the process's threads
    if profile is not None:
        profile.disable()
    return elapsed, result


def fast_path_available() -> bool:
    return importlib.util.find_spec("polars") is not None


def load_average() -> str:
    """The 1-minute load average (on 2 cores, above 2 means others wait for the CPU too)."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except (AttributeError, OSError):  # pragma: no cover - Windows
        return "?"


def store_bytes(home: Home) -> int:
    """The size of the store the fold writes (the read model and the fold's state, with its
    write-ahead log)."""
    path = view_path(home.state_dir)
    return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())


def forget_fold(home: Home) -> None:
    shutil.rmtree(home.state_dir, ignore_errors=True)
    home.register_path.unlink(missing_ok=True)


def check_counts(history: History, result, expected_new: int, label: str) -> None:
    problems = []
    if result.new_hits != expected_new:
        problems.append(f"new_hits {result.new_hits} != {expected_new}")
    if result.skipped_lines or result.unknown_tag_hits or result.duplicate_hits:
        problems.append(f"skipped {result.skipped_lines}, unknown {result.unknown_tag_hits}, "
                        f"duplicates {result.duplicate_hits}")
    if not result.register_written:
        problems.append(f"register not written: {result.register_error}")
    with Register.load(history.home) as register:
        total = sum(row.hits for row in register.rows())
    if total != history.writer.written:
        problems.append(f"counted {total} hits in all, {history.writer.written} written")
    if problems:
        raise SystemExit(f"fold counted wrong ({label}): " + "; ".join(problems))


def print_profile(title: str, profile: cProfile.Profile, limit: int) -> None:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("tottime").print_stats(limit)
    print(f"\n--- profile: {title} (sorted by own time) ---")
    text = out.getvalue()
    print(text[text.find("   ncalls"):].rstrip())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Build a synthetic history of hits in the pixel server's exact format "
                    "and time the fold: N new hits from scratch, a small batch of new hits "
                    "after growing histories, and a rebuild. Counts accept k and M (1M = 1,000,000).")
    parser.add_argument("--tags", type=parse_count, default=5_000, help="tags in tags.csv (default 5k)")
    parser.add_argument("--scratch", type=parse_count, default=1_000_000,
                        help="hits folded from scratch, and the history that is rebuilt (default 1M)")
    parser.add_argument("--histories", default="10k,100k,1M",
                        help="comma-separated history sizes already folded (default 10k,100k,1M)")
    parser.add_argument("--new", type=parse_count, default=1_000,
                        help="new hits appended before each incremental fold (default 1k)")
    parser.add_argument("--repeats", type=int, default=5, help="incremental folds per history; median reported (default 5)")
    parser.add_argument("--repeats-scratch", type=int, default=3,
                        help="from-scratch folds and rebuilds; median reported (default 3)")
    parser.add_argument("--hits-per-day", type=parse_count, default=1_000,
                        help="hits per daily file, so a longer history has more files (default 1k)")
    parser.add_argument("--restart-days", type=int, default=30,
                        help="days between server restarts (a new boot id) (default 30)")
    parser.add_argument("--self-fetches", type=int, default=2,
                        help="rows per tag in self-fetches.csv (compose, send, displays...); "
                             "0: no such file (default 2)")
    parser.add_argument("--come-back", type=float, default=0.15,
                        help="share of fetches the same client follows with another within seconds "
                             "(a third after a third of those...): the repeat rule (default 0.15)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--dir", help="where to build the temporary homes (default: the system temp dir)")
    parser.add_argument("--paths", default="fast,per-line",
                        help="the ways to count measured for a and c, the first one held to the target: "
                             "fast (polars), per-line (default fast,per-line)")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile one from-scratch fold and one incremental fold on the largest history")
    parser.add_argument("--keep", action="store_true", help="keep the temporary homes and print where")
    args = parser.parse_args(argv)
    args.histories = sorted({parse_count(size) for size in args.histories.split(",") if size.strip()})
    args.paths = [path.strip() for path in args.paths.split(",") if path.strip()]
    if not args.paths or set(args.paths) - {"fast", "per-line"}:
        parser.error("--paths takes fast and/or per-line")
    if args.self_fetches < 0:
        parser.error("--self-fetches must be 0 or more")
    if not 0 <= args.come_back < 1:
        parser.error("--come-back is a share: 0 or more, below 1")
    if min([args.tags, args.scratch, args.new, args.repeats, args.repeats_scratch,
            args.hits_per_day, args.restart_days] + args.histories) < 1:
        parser.error("every count must be 1 or more")

    root = Path(tempfile.mkdtemp(prefix="mailtracker-bench-fold-", dir=args.dir))
    try:
        return run(args, root)
    finally:
        if args.keep:
            print(f"\nkept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def run(args, root: Path) -> int:
    print(f"Load average at the start: {load_average()} on {os.cpu_count()} cores")
    print(f"Synthetic history: {args.tags:,} tags, {args.hits_per_day:,} hits per daily file, "
          f"a restart every {args.restart_days} days, {len(USER_AGENTS)} user agents (several "
          f"with commas, 2 Thunderbird), origins as the server writes them, {args.come_back:.0%} of "
          f"fetches followed by the same client within seconds, {args.self_fetches} self-fetch moments per tag; "
          f"homes under {root}; Python {sys.version.split()[0]}", flush=True)
    rows = []  # (what, history, files, time, target, verdict)
    ok = True

    # a + c: from scratch, then rebuild, on the same history.
    start = time.perf_counter()
    scratch = make_history(root, args.scratch, args)
    print(f"  wrote {args.scratch:,} hits in {len(scratch.writer.files)} files in "
          f"{time.perf_counter() - start:.1f} s", flush=True)
    paths = [path for path in args.paths if path != "fast" or fast_path_available()]
    if "fast" in args.paths and "fast" not in paths:
        print("  polars is not installed: no fast path to measure")
        paths = paths or ["per-line"]
    # The target is the fold's as a user gets it: the fast path where it is installed.
    target_path = paths[0]
    for path in paths:
        fold_module.FAST_PATH = path == "fast"
        times, cpu = [], []
        for _ in range(args.repeats_scratch):
            forget_fold(scratch.home)
            elapsed, result = timed_fold(scratch.home, cpu=cpu)
            check_counts(scratch, result, args.scratch, "from scratch")
            times.append(elapsed)
        if args.profile:
            # An extra pass, not timed above: the profiler slows the hot loop down.
            profile = cProfile.Profile()
            forget_fold(scratch.home)
            timed_fold(scratch.home, profile=profile)
            print_profile(f"fold of {args.scratch:,} hits from scratch, {path}", profile, 20)
        median = statistics.median(times)
        state_bytes = store_bytes(scratch.home)
        register_bytes = scratch.home.register_path.stat().st_size
        if path != target_path:
            target, verdict = "—", ""
        elif args.scratch == TARGET_SCRATCH_HITS:
            passed = median <= TARGET_SCRATCH_S
            ok &= passed
            target, verdict = f"≤ {TARGET_SCRATCH_S:g} s", "met" if passed else "MISSED"
        else:
            target, verdict = f"≤ {TARGET_SCRATCH_S:g} s at 1M", "n/a (not 1M)"
        rows.append((f"a. fold {human(args.scratch)} new hits from scratch, {path}", "0",
                     len(scratch.writer.files), times, cpu, load_average(), state_bytes, target, verdict))
        print(f"  from scratch, {path}: {seconds(median)} (median of {args.repeats_scratch}; "
              f"load {load_average()})", flush=True)

        times, cpu = [], []
        for _ in range(args.repeats_scratch):
            elapsed, result = timed_fold(scratch.home, rebuild=True, cpu=cpu)
            check_counts(scratch, result, args.scratch, "rebuild")
            times.append(elapsed)
        rows.append((f"c. rebuild the {human(args.scratch)} history, {path}", human(args.scratch),
                     len(scratch.writer.files), times, cpu, load_average(),
                     store_bytes(scratch.home), "—", ""))
    scratch_median = statistics.median(rows[0][3])
    fold_module.FAST_PATH = True

    # b: a small batch after growing, already folded histories.
    incremental = []
    for size in args.histories:
        if size == args.scratch:
            history = scratch
        else:
            history = make_history(root, size, args)
            check_counts(history, timed_fold(history.home)[1], size, f"initial fold of {size}")
        times, cpu = [], []
        for _ in range(args.repeats):
            history.writer.append(args.new)
            elapsed, result = timed_fold(history.home, cpu=cpu)
            check_counts(history, result, args.new, f"{args.new} new after {size}")
            times.append(elapsed)
        incremental.append((size, history, statistics.median(times)))
        rows.append((f"b. fold {human(args.new)} new hits", human(size), len(history.writer.files),
                     times, cpu, load_average(), store_bytes(history.home), "flat", ""))
        print(f"  history {human(size)}: {args.new:,} new hits folded in "
              f"{seconds(statistics.median(times))} (median of {args.repeats})", flush=True)

    largest = incremental[-1]
    if args.profile:
        profile = cProfile.Profile()
        largest[1].writer.append(args.new)
        timed_fold(largest[1].home, profile=profile)
        print_profile(f"fold of {args.new:,} new hits after {largest[0]:,}", profile, 20)

    # The same 1k through the command line, as a user or a cron job would run it.
    largest[1].writer.append(args.new)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mailtracker", "--home", str(largest[1].home.data_dir), "fold"],
                   check=True, capture_output=True, timeout=300)
    cli_s = time.perf_counter() - start

    print()
    print("| measurement | history already folded | hits files | median | min–max | CPU median | load | "
          "store after | target |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for what, history, files, times, cpu, load, state_size, target, verdict in rows:
        print(f"| {what} | {history} | {files:,} | {seconds(statistics.median(times))} | "
              f"{seconds(min(times))}–{seconds(max(times))} | {seconds(statistics.median(cpu))} | {load} | "
              f"{state_size / 2**20:.1f} MiB | {target} {verdict}".rstrip() + " |")
    print(f"\nCPU: all of the process's threads (polars uses every core); load: the 1-minute load "
          f"average after the runs, on {os.cpu_count()} cores.")
    smallest_s = min(t for _, _, t in incremental)
    ratio = largest[2] / smallest_s
    if len(incremental) > 1:
        passed = ratio <= TARGET_FLAT_RATIO
        ok &= passed
        print(f"\nb. {human(args.new)} new hits: largest/smallest history = {human(largest[0])}/"
              f"{human(incremental[0][0])} histories, time ratio {ratio:.2f}× "
              f"(flat: ≤ {TARGET_FLAT_RATIO:g}×; a cost linear in the history would be "
              f"~{largest[0] / incremental[0][0]:.0f}×): {'met' if passed else 'MISSED'}")
    print(f"   per new hit at the largest history: {largest[2] / args.new * 1e6:.1f} µs")
    print(f"   the same {human(args.new)} via 'mailtracker fold' (a new process, imports included): "
          f"{seconds(cli_s)}")
    print(f"a. {args.scratch / scratch_median / 1e6:.2f} M hits/s from scratch ({target_path}); "
          f"register.csv {register_bytes / 1024:.0f} KiB for {args.tags:,} tags")
    print(f"\n{'All targets met.' if ok else 'Some targets MISSED (see above).'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
