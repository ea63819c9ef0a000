"""A real Caddy on loopback running the shipped Caddyfile (local CA, test ports, no admin
API), in front of a pixel server: for the packaging tests and the live pull through Caddy."""

import os
import signal
import socket
import ssl
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from mailtracker.core.paths import Home
from tests.conftest import PixelServer, free_port, wait_for
from tests.tools import require_tool

CADDYFILE = Path(__file__).resolve().parent.parent / "packaging" / "caddy" / "Caddyfile"


class Caddy:
    """The shipped Caddyfile run by a real Caddy on loopback: local CA, test ports, no admin API."""

    def __init__(self, root: Path, upstream_port: int, site_file: Path = CADDYFILE):
        self.root = root
        self.https_port, self.http_port = free_port(), free_port()
        site = site_file.read_text().replace("t.example.org", "127.0.0.1").replace(
            "127.0.0.1:56789", f"127.0.0.1:{upstream_port}")
        config = root / "Caddyfile"
        config.write_text("{\n\tadmin off\n\tlocal_certs\n\tskip_install_trust\n"
                          "\tauto_https disable_redirects\n"
                          f"\thttp_port {self.http_port}\n\thttps_port {self.https_port}\n}}\n\n" + site)
        env = {**os.environ, "HOME": str(root), "XDG_DATA_HOME": str(root / "data"),
               "XDG_CONFIG_HOME": str(root / "config")}
        self.log = open(root / "caddy.log", "w")
        self.proc = subprocess.Popen(["caddy", "run", "--adapter", "caddyfile", "--config", str(config)],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.ca = root / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
        self.url = f"https://127.0.0.1:{self.https_port}"
        wait_for(self._ready, timeout=30, interval=0.1, what="Caddy serving TLS")

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"caddy exited:\n{(self.root / 'caddy.log').read_text()}")
        if not self.ca.exists():
            return False
        context = ssl.create_default_context(cafile=str(self.ca))
        try:
            with socket.create_connection(("127.0.0.1", self.https_port), timeout=1) as sock:
                with context.wrap_socket(sock, server_hostname="127.0.0.1"):
                    return True
        except (OSError, ssl.SSLError):
            return False

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=20)
        self.log.close()


@contextmanager
def caddy_in_front(home: Home, root: Path, monkeypatch) -> Iterator[Caddy]:
    """A real ``serve --serve-hits`` of ``home`` behind the shipped Caddyfile (trusting Caddy as
    its proxy); requests trust Caddy's local CA. Yields the Caddy (its ``url``); both stop after."""
    require_tool("caddy", "caddy")
    upstream = free_port()
    (root / "caddy").mkdir()
    caddy = Caddy(root / "caddy", upstream)
    try:
        server = PixelServer(home, "--port", str(upstream), "--trusted-proxies", "127.0.0.1", "--serve-hits")
        try:
            monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(caddy.ca))
            yield caddy
        finally:
            server.stop()
    finally:
        caddy.stop()
