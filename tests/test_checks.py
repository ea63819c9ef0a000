"""A check is one record on both sides, and a pixel's answer is judged by one rule: doctor on
the desktop and setup-server on the VPS name the same faults in the same words."""

import http.server
import threading

from mailtracker.core.checks import pixel_problems
from mailtracker.core.contract import GIF
from mailtracker.core.secret import read_secret
from mailtracker.core.settings import init_home
from mailtracker.server import setup
from tests.conftest import run_cli


class _CachedPng(http.server.BaseHTTPRequestHandler):
    """A server that is healthy but answers a pixel as a cacheable PNG (a CDN or proxy in between)."""

    def do_GET(self):
        body = b'{"status": "ok"}' if self.path == "/healthz" else b"\x89PNG fake"
        self.send_response(200)
        self.send_header("Content-Type", "application/json" if self.path == "/healthz" else "image/png")
        self.send_header("Cache-Control", "max-age=3600")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_the_pixel_rule_accepts_only_the_servers_answer():
    """The 43-byte GIF, 200, image/gif, no-store passes; each other answer names each of its faults."""
    assert pixel_problems(200, "image/gif", GIF, "no-store, max-age=0") == []
    assert pixel_problems(304, "image/gif", b"", "max-age=60") == [
        "HTTP 304 instead of 200", "a 0-byte body instead of the 43-byte GIF",
        "no 'Cache-Control: no-store' (a cache in between would hide opens)"]


def test_doctor_and_setup_server_name_a_wrong_pixel_alike(home, tmp_path):
    """A cached PNG where the pixel should be: both sides' 'pixel served' is broken, with the same faults."""
    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CachedPng)
    thread = threading.Thread(target=site.serve_forever)
    thread.start()
    base = f"http://127.0.0.1:{site.server_port}"
    try:
        init_home(home, server_url=base)
        doctor = run_cli("doctor", "--server", "--wait", "1", home=home, check=False)
        checks = setup.check_server_works(base, base, read_secret(home.secret_path), tmp_path, wait_s=1)
    finally:
        site.shutdown()
        site.server_close()
        thread.join()
    faults = ("Content-Type 'image/png' instead of image/gif; a 9-byte body instead of the 43-byte GIF; "
              "no 'Cache-Control: no-store' (a cache in between would hide opens)")
    assert doctor.returncode == 90 and "BROKEN  pixel served: " in doctor.stdout and faults in doctor.stdout
    assert checks[-1].name == "pixel served" and not checks[-1].ok and checks[-1].detail.endswith(faults)
