"""Our app's own Python per hit, in process: the pixel server's ASGI app called
directly, with no HTTP server around it.

``bench_server.py`` measures the whole server against nginx; this script isolates
the part we write. It runs ``PixelApp`` (``create_app``, with a real hits log in a
temporary directory) on hits that arrive ``--concurrency`` at a time in one turn
of the event loop, as they do under load, and subtracts the same loop driving a
bare coroutine that answers the GIF with no work (``bench/bare_pixel.py``). What
is left is the token check, the timestamp, the line, the grouped write and the
caches. Each figure is the best of ``--repeats`` runs of ``--hits`` hits, in CPU time of
the thread (``time.thread_time``): on a shared machine, time spent waiting for a core
is left out.

Rows: ``pixel`` (a valid token, the Apple Mail user agent), ``pixel, forged``
(a token whose MAC does not verify: answered, not logged), and ``click``
(a signed click URL: verified, logged, answered with a 302). The server remembers
tokens and click URLs that verified: the ``cold`` rows go round more of them
(``--cold``) than it remembers, so that every hit is checked in full.
"""

import argparse
import asyncio
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bare_pixel import app as bare_app  # noqa: E402
from bench_server import DEFAULT_USER_AGENT  # noqa: E402
from mailtracker.core.clicks import click_url  # noqa: E402
from mailtracker.core.tokens import mint_token  # noqa: E402
from mailtracker.server.app import create_app  # noqa: E402
from mailtracker.server.settings import ServerSettings  # noqa: E402

SECRET = bytes(range(32))
TARGET = "https://example.com/a/page?x=1&y=two"


def _scope(path: str, query: bytes = b"") -> dict:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "scheme": "http",
            "method": "GET", "path": path, "raw_path": path.encode(), "query_string": query,
            "root_path": "", "server": ("127.0.0.1", 56789), "client": ("127.0.0.1", 50000),
            "headers": [(b"host", b"127.0.0.1:56789"), (b"user-agent", DEFAULT_USER_AGENT.encode()),
                        (b"accept", b"*/*")]}


def _click_scope(token: str) -> dict:
    url = click_url("http://127.0.0.1:56789/p/", SECRET, token, 3, TARGET)
    path, _, query = url.partition("://")[2].partition("/")[2].partition("?")
    return _scope("/" + path, query.encode())


async def _receive():
    return {"type": "http.disconnect"}


async def _send(message):
    pass


def time_hits(app, scopes, hits: int, concurrency: int) -> float:
    """Seconds per hit: ``hits`` calls of ``app``, ``concurrency`` at a time, each on a
    fresh copy of one of ``scopes`` (granian builds a new scope per request)."""
    async def run():
        started = time.thread_time()
        for start in range(0, hits, concurrency):
            await asyncio.gather(*(app(dict(scopes[(start + i) % len(scopes)]), _receive, _send)
                                   for i in range(concurrency)))
        return time.thread_time() - started
    gc.collect()
    return asyncio.run(run()) / hits


def best(app, scopes, args) -> float:
    return min(time_hits(app, scopes, args.hits, args.concurrency) for _ in range(args.repeats))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hits", type=int, default=20_000, help="hits per run (default 20000)")
    parser.add_argument("--concurrency", type=int, default=8, help="hits per turn of the loop (default 8)")
    parser.add_argument("--repeats", type=int, default=7, help="runs per row; the best is kept (default 7)")
    parser.add_argument("--tags", type=int, default=100, help="distinct valid tokens hit in turn (default 100)")
    parser.add_argument("--cold", type=int, default=5000,
                        help="distinct tokens and click URLs of the cold rows (default 5000)")
    args = parser.parse_args(argv)

    tokens = [mint_token(SECRET) for _ in range(max(args.tags, args.cold))]
    forged = [t[:-1] + ("a" if t[-1] != "a" else "b") for t in tokens[:args.tags]]
    clicks = [_click_scope(token) for token in tokens[:args.cold]]
    rows = {
        "pixel": [_scope(f"/p/{t}.gif") for t in tokens[:args.tags]],
        "pixel, cold": [_scope(f"/p/{t}.gif") for t in tokens[:args.cold]],
        "pixel, forged": [_scope(f"/p/{t}.gif") for t in forged],
        "click": clicks[:args.tags],
        "click, cold": clicks,
    }
    with tempfile.TemporaryDirectory(prefix="bench-app-") as work:
        secret_file = Path(work) / "secret"
        secret_file.write_bytes(SECRET)
        settings = ServerSettings(hits_dir=os.path.join(work, "hits"), server_id="bench",
                                  secret_file=str(secret_file))
        app = create_app(settings, SECRET)
        try:
            bare = best(bare_app, rows["pixel"], args)
            print(f"{args.hits} hits per run, {args.concurrency} per turn, best of {args.repeats}; "
                  f"load {os.getloadavg()[0]:.1f}")
            print(f"{'bare coroutine':<16}{bare * 1e6:8.2f} µs/hit")
            for name, scopes in rows.items():
                per_hit = best(app, scopes, args)
                print(f"{name:<16}{per_hit * 1e6:8.2f} µs/hit   app's own: {(per_hit - bare) * 1e6:6.2f} µs")
        finally:
            app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
