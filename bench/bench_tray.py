"""Benchmark the tray daemon as a person runs it: a real ``mailtracker tray`` in a
real tray (Xvfb + Debian's trayer), measured from outside.

  a. idle CPU: the process's user+system time from /proc over a quiet window
     (event-driven: should be about zero);
  b. memory: its RSS (VmRSS) after start and after the appends;
  c. latency: from a hits line appended in the server's format to (1) the icon's
     pixels changing on the screen and (2) its title (the menu's headline) changing,
     each polled through the X server every 2 ms.

Needs Xvfb and trayer (apt-get install xvfb trayer). Prints figures; not a test.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mailtracker.core.csvcodec import format_row, header_line
from mailtracker.core.hitline import HIT_COLUMNS
from mailtracker.core.paths import Home
from mailtracker.core.settings import load_config  # noqa: E402
from mailtracker.core.settings import init_home
from mailtracker.core.timestamps import utc_timestamp  # noqa: E402
from mailtracker.desktop.tags import mint_tag  # noqa: E402
from tests.display import XDisplay, _start_xvfb, _stop, _tray_owned  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait(predicate, timeout: float, what: str, interval: float = 0.002):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise SystemExit(f"timed out waiting for {what}")


def append_open(path: Path, seq: int, tag: str) -> None:
    with open(path, "ab") as handle:
        if handle.tell() == 0:
            handle.write(header_line(HIT_COLUMNS))
        # A new client each time: a person's open, never a repeat of the last one.
        handle.write(format_row([f"benchboot.{seq:x}", utc_timestamp(), tag, "GET", f"10.0.{seq}.0",
                                 "Mozilla/4.0 (compatible; ms-office; MSOffice 16)", ""]).encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle CPU measurement")
    parser.add_argument("--opens", type=int, default=10, help="appends to time")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-tray-"))
    home = Home.locate(str(root / "home"))
    init_home(home)
    config = load_config(home)
    tags = [mint_tag(home, config, name=f"Person {i}", subject=f"Email {i}") for i in range(20)]
    hits = home.hits_dir(config) / "hits-bench-2026-11-24.csv"

    xvfb, name = _start_xvfb()
    display = XDisplay(name)
    trayer = tray = None
    try:
        trayer = subprocess.Popen(["trayer", "--edge", "bottom", "--align", "left", "--widthtype", "request",
                                   "--height", "32", "--SetDockType", "true", "--transparent", "false"],
                                  env=display.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait(lambda: _tray_owned(display), 15, "trayer")
        started = time.monotonic()
        tray = subprocess.Popen([sys.executable, "-m", "mailtracker", "--home", str(home.data_dir), "tray"],
                                env=display.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        icon = wait(lambda: (found := display.tray_icons("mailtracker")) and "no new opens" in found[0]["title"]
                    and found[0], 20, "the icon")
        wait(lambda: (home.state_dir / "marks.json").exists(), 20, "the first fold")
        print(f"start to icon docked and first fold: {time.monotonic() - started:.2f} s")
        print(f"RSS after start: {rss_mib(tray.pid):.1f} MiB")

        time.sleep(1.0)  # let start-up work finish before measuring idleness
        before, t0 = cpu_seconds(tray.pid), time.monotonic()
        time.sleep(args.idle)
        used, span = cpu_seconds(tray.pid) - before, time.monotonic() - t0
        print(f"idle CPU over {span:.1f} s: {used:.3f} s of CPU = {100 * used / span:.3f} %")

        pixel_ms, title_ms = [], []
        for seq in range(1, args.opens + 1):
            picture = display.screenshot(icon["box"]).tobytes()
            title = display.tray_icons("mailtracker")[0]["title"]
            appended = time.monotonic()
            append_open(hits, seq, tags[seq % len(tags)].id)
            seen = {}

            def changed():
                now = time.monotonic()
                if "pixels" not in seen and display.screenshot(icon["box"]).tobytes() != picture:
                    seen["pixels"] = now
                found = display.tray_icons("mailtracker") if "title" not in seen else []
                if found and found[0]["title"] != title:
                    seen["title"] = now
                return len(seen) == 2

            wait(changed, 5, f"open {seq} on the icon")
            pixel_ms.append(1000 * (seen["pixels"] - appended))
            title_ms.append(1000 * (seen["title"] - appended))
            time.sleep(0.3)
        for label, values in (("icon pixels", pixel_ms), ("title/menu", title_ms)):
            print(f"append -> {label} changed: median {statistics.median(values):.0f} ms, "
                  f"max {max(values):.0f} ms over {len(values)} opens")
        print(f"RSS after {args.opens} opens: {rss_mib(tray.pid):.1f} MiB")
    finally:
        _stop(tray, trayer, xvfb)


if __name__ == "__main__":
    main()
