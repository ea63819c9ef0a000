"""The ``demo`` command (what ``make run`` runs): a local pixel server, the daemon and a demo tag."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from mailtracker.cli.registry import argument, command
from mailtracker.core.errors import MailtrackerError, ServerError
from mailtracker.core.paths import Home
from mailtracker.core.settings import init_home, load_config


@command("demo", help="run a local pixel server, the watcher and a demo tag",
         description="Everything on this machine: a pixel server on 127.0.0.1, the watcher, and a "
         "demo tag to open with curl.",
         arguments=[argument("--port", type=int, default=56789, help="pixel server port (default 56789)")])
def cmd_demo(args, home: Home) -> int:
    from mailtracker.desktop.daemon import Daemon
    from mailtracker.desktop.register import Register
    from mailtracker.desktop.tags import mint_tag
    from mailtracker.server.run import check_address_free

    try:
        # Before anything is printed: with the port held by another server, the curl the demo
        # prints would reach that one, and no open would ever show here.
        check_address_free("127.0.0.1", args.port)
    except ServerError as exc:
        raise ServerError(f"{exc} (mailtracker demo --port N, or make run DEMO_PORT=N)") from None
    init_home(home, server_url=f"http://127.0.0.1:{args.port}")
    config = load_config(home)
    stop = threading.Event()
    server = subprocess.Popen([sys.executable, "-m", "mailtracker", "--home", str(home.data_dir),
                               "serve", "--port", str(args.port)])
    try:
        wait_healthy(f"http://127.0.0.1:{args.port}/healthz", server)
        tag = mint_tag(home, config, name="Demo recipient", subject="mailtracker demo")

        shown = [0]

        def report(result):
            with Register.load(home) as register:
                row = register.get(tag.id)
            if row is not None and row.opens > shown[0]:
                shown[0] = row.opens
                print(f"Opened: tag {tag.short_id} opens={row.opens} last_open={row.last_open}",
                      flush=True)

        with Daemon(home, config, on_change=report):
            print(f"\nDemo home: {home.data_dir}\nDemo tag {tag.short_id}: {tag.url}\n"
                  f"This demo is local: its server listens on 127.0.0.1, so only this machine can load "
                  f"its pixels (real email needs a server of your own: the README's 'A VPS').\n\n"
                  f"Trigger an open:  curl -s -o /dev/null {tag.url}\n"
                  f"See the counts:   {own_command()} --home {home.data_dir} list\n"
                  f"The register:     {home.register_path}\n\nCtrl-C stops.", flush=True)
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            try:
                while not stop.wait(1.0) and server.poll() is None:
                    pass
            except KeyboardInterrupt:
                stop.set()
    finally:
        server.terminate()
        server.wait(timeout=15)
    if not stop.is_set():
        # The server ended by itself: the demo has failed, and says so by its exit code.
        raise ServerError(f"the demo's pixel server stopped with exit code {server.returncode}")
    return 0


def own_command() -> str:
    """How to run this mailtracker again: its console script, which may not be on PATH (a venv)."""
    import shutil

    script = Path(sys.executable).parent / ("mailtracker.exe" if os.name == "nt" else "mailtracker")
    if shutil.which("mailtracker") == str(script) or not script.exists():
        return "mailtracker"
    return str(script)


def wait_healthy(url: str, server: subprocess.Popen, timeout_s: float = 20.0) -> None:
    import requests

    from mailtracker.desktop.client import session

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise MailtrackerError(f"the pixel server exited with code {server.returncode}")
        try:
            if session().get(url, timeout=1).ok:
                return
        except requests.RequestException:
            time.sleep(0.1)
    raise MailtrackerError(f"the pixel server did not answer {url} within {timeout_s:.0f} s")
