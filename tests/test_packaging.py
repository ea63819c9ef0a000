"""The VPS files in packaging/: the systemd unit (systemd-analyze, and its
command line run for real) and the Caddyfile (caddy validate, and a real
Caddy with a local CA in front of a real pixel server)."""

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import urllib3

from mailtracker.core.contract import GIF, pull_token
from mailtracker.core.errors import PullError
from mailtracker.core.secret import read_secret
from mailtracker.core.settings import init_home, load_config
from mailtracker.desktop.pull import Puller
from mailtracker.desktop.tags import mint_tag
from tests.conftest import AGENT, PixelServer, free_port, run_cli, wait_for
from tests.caddy import CADDYFILE, Caddy
from tests.tools import require_tool, unavailable

PACKAGING = Path(__file__).resolve().parents[1] / "packaging"
UNIT = PACKAGING / "systemd" / "mailtracker.service"


def unit_settings():
    """The [Service] section as (key, value) pairs, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", UNIT.read_text())
    section, pairs = None, []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif line and not line.startswith("#") and section == "[Service]":
            key, _, value = line.partition("=")
            pairs.append((key, value))
    return pairs


def test_systemd_unit_verifies(tmp_path):
    """systemd-analyze verify finds nothing wrong (with ExecStart pointing at this install)."""
    require_tool("systemd-analyze", "systemd")
    unit = tmp_path / "mailtracker.service"
    unit.write_text(UNIT.read_text().replace("/opt/mailtracker/bin/mailtracker",
                                             str(Path(sys.executable).with_name("mailtracker"))))
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "mailtracker.service" not in proc.stderr, proc.stderr


def test_systemd_unit_is_unprivileged_and_sandboxed(tmp_path):
    """A dedicated user, a credential for the secret, a state dir, restart on failure; exposure 'OK'."""
    settings = dict(unit_settings())
    assert settings["User"] == "mailtracker" and "DynamicUser" not in settings
    assert settings["LoadCredential"] == "secret:/etc/mailtracker/secret"
    assert settings["StateDirectory"] == "mailtracker" and settings["ProtectSystem"] == "strict"
    assert settings["Restart"] == "on-failure" and settings["NoNewPrivileges"] == "yes"
    assert settings["CapabilityBoundingSet"] == ""
    require_tool("systemd-analyze", "systemd")
    proc = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=20", str(UNIT)],
                          capture_output=True, text=True, timeout=60)
    if "--offline" in proc.stderr and "unrecognized" in proc.stderr:
        unavailable("needs systemd-analyze security --offline (systemd 250 or later)")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    exposure = float(re.search(r"Overall exposure level for \S+: (\d+\.\d+)", proc.stdout).group(1))
    assert exposure <= 2.0, proc.stdout


def test_systemd_unit_command_line_runs_the_server(tmp_path, home):
    """ExecStart (serve --config), with systemd's variables filled in, logs hits into the state dir."""
    from mailtracker.server.setup import DEFAULTS, server_id_for
    from mailtracker.server.config import server_config_text

    args = shlex.split(dict(unit_settings())["ExecStart"])
    assert args[0] == "/opt/mailtracker/bin/mailtracker" and args[1:4] == [
        "serve", "--config", "/etc/mailtracker/server.toml"]
    credentials, state = tmp_path / "credentials", tmp_path / "state"
    credentials.mkdir()
    shutil.copy(home.secret_path, credentials / "secret")
    port = free_port()
    config = tmp_path / "server.toml"
    config.write_text(server_config_text({**DEFAULTS, "server_id": server_id_for("t.example.org"), "port": port,
                                          "hits_dir": str(state / "hits")},
                                         "t.example.org"))
    args = [arg.replace("${CREDENTIALS_DIRECTORY}", str(credentials)).replace(
        "/etc/mailtracker/server.toml", str(config)) for arg in args[1:]]
    proc = subprocess.Popen([sys.executable, "-m", "mailtracker", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True, cwd=tmp_path,
                            env={**os.environ, "HOME": "/nonexistent"})
    try:
        tag = mint_tag(home, load_config(home), name="Unit")
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(base + "/healthz"), timeout=20, what="the unit's server")
        assert requests.get(f"{base}/p/{tag.id}.gif", headers={"User-Agent": AGENT}).content == GIF
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=20)
    (hits_file,) = (state / "hits").glob("hits-t.example.org-*.csv")
    assert tag.id in hits_file.read_text(encoding="utf-8-sig")


def _answers(url):
    try:
        return requests.get(url, timeout=1).ok
    except requests.ConnectionError:
        return False


def test_caddyfile_validates_and_is_formatted(tmp_path):
    """caddy validate accepts the shipped Caddyfile as is, without a formatting warning."""
    require_tool("caddy", "caddy")
    env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data"),
           "XDG_CONFIG_HOME": str(tmp_path / "config")}
    proc = subprocess.run(["caddy", "validate", "--adapter", "caddyfile", "--config", str(CADDYFILE)],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0 and "Valid configuration" in proc.stdout + proc.stderr, proc.stderr
    assert "not formatted" not in proc.stderr
    assert "reverse_proxy 127.0.0.1:56789" in CADDYFILE.read_text()


@pytest.fixture(scope="module")
def caddy_front(tmp_path_factory):
    """A Caddy in front of the port the module's pixel servers listen on."""
    require_tool("caddy", "caddy")
    upstream = free_port()
    caddy = Caddy(tmp_path_factory.mktemp("caddy"), upstream)
    yield caddy, upstream
    caddy.stop()


@pytest.fixture
def behind_caddy(caddy_front, home):
    """A real pixel server as the unit runs it (--trusted-proxy 127.0.0.1), behind the Caddy."""
    caddy, upstream = caddy_front
    server = PixelServer(home, "--port", str(upstream), "--trusted-proxy", "127.0.0.1",
                         "--client-address", "full", "--serve-hits")
    yield caddy, server
    server.stop()


def _client_addresses(server):
    return [line.split(",")[4] for line in server.hit_lines()]


def test_caddy_serves_the_pixel_and_passes_the_real_client_address(behind_caddy, home):
    """Through Caddy: the GIF over verified TLS; the address logged is the client's, a forged one is ignored."""
    caddy, server = behind_caddy
    tag = mint_tag(home, load_config(home), name="TLS")
    pool = urllib3.HTTPSConnectionPool("127.0.0.1", caddy.https_port, ca_certs=str(caddy.ca),
                                       cert_reqs="CERT_REQUIRED", source_address=("127.0.0.2", 0))
    try:
        reply = pool.request("GET", f"/p/{tag.id}.gif", headers={
            "User-Agent": AGENT, "X-Forwarded-For": "203.0.113.9"})
    finally:
        pool.close()
    assert reply.status == 200 and reply.data == GIF and reply.headers["Content-Type"] == "image/gif"
    # Straight to the server from another local address, bypassing Caddy: not a trusted proxy.
    with socket.create_connection(("127.0.0.1", int(server.base.rsplit(":", 1)[1])),
                                  source_address=("127.0.0.3", 0)) as sock:
        sock.sendall(f"GET /p/{tag.id}.gif HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.9\r\n"
                     "Connection: close\r\n\r\n".encode())
        while sock.recv(65536):
            pass
    assert _client_addresses(server) == ["127.0.0.2", "127.0.0.3"]


def test_doctor_server_over_https_through_caddy(behind_caddy, home):
    """doctor --server passes over HTTPS when the CA is trusted, and names TLS when it is not."""
    caddy, server = behind_caddy
    init_home(home, server_url=caddy.url)
    ok = run_cli("doctor", "--server", home=home, env={**os.environ, "REQUESTS_CA_BUNDLE": str(caddy.ca)})
    assert "BROKEN" not in ok.stdout and "ok   TLS certificate valid: verified for 127.0.0.1" in ok.stdout
    untrusted = run_cli("doctor", "--server", home=home, check=False)
    assert untrusted.returncode == 90
    assert "BROKEN  TLS certificate valid: TLS error with 127.0.0.1" in untrusted.stdout
    assert "certificate verify failed" in untrusted.stdout


def test_pull_over_https_through_caddy(behind_caddy, home, monkeypatch):
    """The pull's Range requests work through Caddy; an untrusted certificate is a clear TLS error."""
    caddy, server = behind_caddy
    # requests takes the CA bundle from the environment over a session's own setting.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(caddy.ca))
    tag = mint_tag(home, load_config(home), name="Pulled")
    for i in range(3):
        requests.get(server.url(tag.id), headers={"User-Agent": f"{AGENT} {i}"})
    desktop_dir = home.data_dir / "pulled"
    token = pull_token(read_secret(home.secret_path))
    with requests.Session() as session:
        puller = Puller(desktop_dir, [caddy.url], token, session=session)
        puller.pull_once()
        requests.get(server.url(tag.id), headers={"User-Agent": f"{AGENT} 4"})
        second = puller.pull_once()
        assert second.bytes_received < 400 and len(second.files) == 1
        assert puller.pull_once().unchanged
    (name,) = second.files
    assert (desktop_dir / name).read_bytes() == (server.hits_dir / name).read_bytes()
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    with requests.Session() as untrusting:
        with pytest.raises(PullError, match=r"TLS error with 127\.0\.0\.1:\d+: certificate verify failed"):
            Puller(desktop_dir, [caddy.url], token, session=untrusting).pull_once()
