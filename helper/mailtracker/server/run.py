"""Running the pixel app: checks before start, the port, and granian's workers.
"""

import json
import logging
import os
import socket
import threading
import time
from dataclasses import asdict, replace
from pathlib import Path

from mailtracker.core.contract import DEVICES_ROUTE, HITS_ROUTE
from mailtracker.core.errors import ServerError
from mailtracker.core.secret import read_secret
from mailtracker.server.app import PixelApp, create_app, open_hit_log
from mailtracker.server.devicelogs import prepare_devices_dir
from mailtracker.server.settings import ServerSettings

log = logging.getLogger(__name__)

ENV_SETTINGS = "MAILTRACKER_SERVE_SETTINGS"

# granian logs to stdout by default; its log goes with ours to stderr, so stdout carries only
# serve's banner, printed once the server listens.
GRANIAN_LOG_TO_STDERR = {"handlers": {
    "console": {"formatter": "generic", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"},
    "access": {"formatter": "access", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"},
}}


def app_from_environment() -> PixelApp:
    """The factory granian calls in each worker process."""
    settings = ServerSettings(**json.loads(os.environ[ENV_SETTINGS]))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return create_app(settings, read_secret(Path(settings.secret_file)))


def check_can_serve(settings: ServerSettings) -> None:
    """Fail before starting workers, with a plain reason, if they could not run."""
    settings.validated()
    read_secret(Path(settings.secret_file))
    hits_dir = Path(settings.hits_dir)
    try:
        hits_dir.mkdir(parents=True, exist_ok=True)
        probe = hits_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ServerError(f"cannot write hits to {hits_dir}: {exc.strerror or exc}") from None
    open_hit_log(settings).close()
    if settings.serve_hits:
        problem = prepare_devices_dir(Path(settings.device_logs_dir))
        if problem:  # the hits are served all the same; only the computers' meeting point is missing
            log.warning("the device logs your computers push cannot be kept: %s", problem)
    check_port_free(settings)


def check_port_free(settings: ServerSettings) -> None:
    check_address_free(settings.host, settings.port)


def check_address_free(host: str, port: int) -> None:
    """Refuse a port another server already listens on.

    granian binds with SO_REUSEPORT, so a second server on the same port would start
    silently and the kernel would split the traffic between the two (their hits landing
    in two folders). A bind without SO_REUSEPORT fails whenever anything listens there.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        if os.name != "nt":
            # Connections of an earlier run in TIME_WAIT must not block a restart.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ServerError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}; another "
                "server (perhaps another 'mailtracker serve' or demo) is using the port: stop it or "
                "choose another --port"
            ) from None


def announce_when_listening(settings: ServerSettings, announce, timeout_s: float = 60.0) -> threading.Thread:
    """Call ``announce()`` once the server accepts connections (checked by connecting), so a
    banner is never printed for a server that did not start."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(settings.host, settings.host)

    def wait():
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                socket.create_connection((host, settings.port), timeout=1).close()
            except OSError:
                time.sleep(0.05)
                continue
            announce()
            return

    thread = threading.Thread(target=wait, name="announce-listening", daemon=True)
    thread.start()
    return thread


def pick_port(settings: ServerSettings) -> ServerSettings:
    """Port 0 means any free port; choose it here so it can be announced."""
    if settings.port:
        return settings
    with socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET) as probe:
        probe.bind((settings.host, 0))
        return replace(settings, port=probe.getsockname()[1])


def run_server(settings: ServerSettings, on_listening=None) -> None:
    """Run the pixel server in the foreground until interrupted; ``on_listening()`` is called
    once it accepts connections."""
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings

    check_can_serve(settings)
    if on_listening is not None:
        announce_when_listening(settings, on_listening)
    if settings.serve_hits:
        log.info("serving the hits files at %s and the device logs in %s at %s to holders of the pull "
                 "token", HITS_ROUTE, settings.device_logs_dir, DEVICES_ROUTE)
    if settings.retention_days:
        log.info("deleting this server's hits files older than %d days", settings.retention_days)
    os.environ[ENV_SETTINGS] = json.dumps(asdict(settings))
    options = dict(
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        http=HTTPModes.http1,
        # Slow senders are cut off after 10 s; oversized headers get granian's 431.
        http1_settings=HTTP1Settings(header_read_timeout=10_000),
        log_access=False,
        log_dictconfig=GRANIAN_LOG_TO_STDERR,
        factory=True,
    )
    if settings.workers == 1 and _serve_in_this_process(options):
        return
    from granian import Granian

    Granian("mailtracker.server.run:app_from_environment", workers=settings.workers,
            respawn_failed_workers=True, **options).serve()


def _serve_in_this_process(options: dict) -> bool:
    """One worker: granian serves from this process, with no supervisor process beside it;
    False, having served nothing, where this granian cannot (no embedded server).

    The supervisor costs a second interpreter (about 27 MiB of a 60 MB budget) and only
    respawns a worker that died: systemd's Restart=on-failure does that for this process.
    """
    import asyncio
    import signal

    try:
        from granian.server.embed import Server
    except ImportError:
        return False

    async def serve() -> bool:
        server = Server(app_from_environment, **options)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(signum, server.stop)
            except NotImplementedError:  # Windows' loop: a plain handler hands it to the loop
                signal.signal(signum, lambda *_: loop.call_soon_threadsafe(server.stop))
        await server.serve()
        return not server.interrupt_children

    try:
        import uvloop
    except ImportError:  # Windows: asyncio's own loop
        stopped_cleanly = asyncio.run(serve())
    else:
        stopped_cleanly = uvloop.run(serve())
    if not stopped_cleanly:
        raise ServerError("the pixel server's worker stopped unexpectedly (see the log above)")
    return True
