"""Time that tracking adds to sending an email from a real Thunderbird.

Usage: python bench/bench_send.py [--sends N]

Measures (1) the helper's round trip for a `mint` request, started the way
Thunderbird starts it (one process per message: Python start-up, imports, the
tag appended to tags.csv), and (2) with a real headless Thunderbird and a local
SMTP sink, the time from pressing Send to the message at the sink, with tracking
on and off. Targets: at most 150 ms added with the host warm, 300 ms cold.
"""

import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mailtracker.core.paths import Home
from mailtracker.core.settings import save_config  # noqa: E402
from mailtracker.core.settings import init_home, load_config
from tests.conftest import PixelServer  # noqa: E402
from tests.e2e.thunderbird import SmtpSink, Thunderbird  # noqa: E402


def mint_round_trips(home: Home, count: int) -> list:
    request = json.dumps({"id": "1", "command": "mint", "protocol": 1, "subject": "bench",
                          "recipients": ["a@example.org"], "identity": "me@example.org"}).encode()
    frame = struct.pack("=I", len(request)) + request
    times = []
    for _ in range(count):
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "mailtracker", "--home", str(home.data_dir), "host",
                               "manifest.json", "mailtracker@mailtracker.invalid"],
                              input=frame, capture_output=True, check=True)
        times.append((time.perf_counter() - start) * 1000)
        assert b'"ok":true' in proc.stdout, proc.stdout
    return times


def set_tracking(tb: Thunderbird, on: bool) -> None:
    tb.in_extension_tab("options/options.html", """
        const box = await waitFor(d => d.querySelector("#identities input[type=checkbox]"), "identities");
        if (box.checked !== args[0]) {
            box.click();
            await waitFor(d => !d.getElementById("saved").hidden, "saved");
        }
        return box.checked;
    """, [on])


def send_times(tb: Thunderbird, sink: SmtpSink, label: str, count: int) -> list:
    times = []
    for n in range(count):
        subject = f"bench {label} {n}"
        start = time.perf_counter()
        tb.compose_and_send(subject, "rcpt@example.net")
        sink.wait_for_message(subject, timeout=60)
        times.append((time.perf_counter() - start) * 1000)
    return times


def describe(name: str, values: list) -> str:
    return f"{name:<46} median {statistics.median(values):7.0f} ms   min {min(values):6.0f}   max {max(values):6.0f}   n={len(values)}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=8, help="sends with tracking on and off (default 8)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        user = root / "user"
        user.mkdir()
        os.environ.update(HOME=str(user), XDG_CONFIG_HOME=str(user / ".config"),
                          XDG_DATA_HOME=str(user / ".local" / "share"))
        home = Home.locate(str(root / "mailtracker"))
        init_home(home)
        print(describe("helper round trip for 'mint' (new process)", mint_round_trips(home, 10)))
        server = PixelServer(home)
        sink = SmtpSink(root)
        tb = None
        try:
            init_home(home, server_url=server.base)
            save_config(home, replace(load_config(home), delivery_window_s=0))
            subprocess.run([sys.executable, "-m", "mailtracker", "--home", str(home.data_dir), "install-host"],
                           check=True, capture_output=True)
            tb = Thunderbird(root, dict(os.environ), sink.port,
                             extra_prefs={"extensions.webextensions.remote": False})
            tb.install_addon(ROOT / "extension")
            send_times(tb, sink, "warm-up", 2)
            tracked = send_times(tb, sink, "tracked", args.sends)
            set_tracking(tb, False)
            untracked = send_times(tb, sink, "untracked", args.sends)
        finally:
            if tb is not None:
                tb.stop()
            sink.stop()
            server.stop()
    print(describe("Send -> message at the SMTP sink, tracked", tracked))
    print(describe("Send -> message at the SMTP sink, untracked", untracked))
    added = statistics.median(tracked) - statistics.median(untracked)
    print(f"time added by tracking (difference of medians): {added:.0f} ms (target <= 150 ms warm, <= 300 ms cold)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
