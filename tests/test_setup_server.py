"""setup-server against a throwaway root (--root): the files it writes, a second run that
changes nothing, --dry-run, --uninstall keeping the hits, and the written unit, Caddy
site and server config checked by systemd-analyze, caddy and a real pixel server."""

import os
import shlex
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mailtracker.core.errors import SetupError
from mailtracker.core.secret import read_secret
from mailtracker.server import setup
from mailtracker.server.config import read_server_config
from tests.conftest import free_port, run_cli
from tests.tools import require_tool

DEBIAN_CADDYFILE = """# The Caddyfile is an easy way to configure your Caddy web server.

:80 {
\troot * /usr/share/caddy
\tfile_server
}
"""


def setup_server(root, *args, check=True):
    return run_cli("setup-server", "--root", str(root), *args, check=check)


def files_under(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def root(tmp_path):
    """A throwaway / with Debian's default Caddyfile, as 'apt-get install caddy' leaves it."""
    root = tmp_path / "root"
    (root / "etc" / "caddy").mkdir(parents=True)
    (root / "etc" / "caddy" / "Caddyfile").write_text(DEBIAN_CADDYFILE)
    return root


def test_setup_server_writes_user_secret_config_unit_and_caddy_site(root):
    """Every file in its place with its mode; the unit runs this install; Debian's Caddyfile kept, plus an import."""
    proc = setup_server(root, "--domain", "t.example.org")
    assert "Not run under --root: useradd --system" in proc.stdout
    assert "Not run under --root: systemctl enable mailtracker.service" in proc.stdout
    secret = root / "etc/mailtracker/secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and len(read_secret(secret)) == 32
    assert stat.S_IMODE((root / "var/lib/mailtracker/hits").stat().st_mode) == 0o750
    settings = read_server_config(root / "etc/mailtracker/server.toml")
    assert settings == {"host": "127.0.0.1", "port": 56789, "hits_dir": "/var/lib/mailtracker/hits",
                        "server_id": "t.example.org", "trusted_proxies": ["127.0.0.1"], "client_address": "truncated",
                        "serve_hits": False, "retention_days": 90, "secret_file": "/etc/mailtracker/secret"}
    unit = (root / "etc/systemd/system/mailtracker.service").read_text()
    script = Path(sys.executable).with_name("mailtracker")
    assert f"ExecStart={script} serve --config /etc/mailtracker/server.toml" in unit
    assert "/opt/mailtracker" not in unit and "LoadCredential=secret:/etc/mailtracker/secret" in unit
    site = (root / "etc/caddy/mailtracker.caddy").read_text()
    assert "t.example.org {" in site and "reverse_proxy 127.0.0.1:56789" in site
    main = (root / "etc/caddy/Caddyfile").read_text()
    assert main.startswith(DEBIAN_CADDYFILE) and main.rstrip().endswith("import /etc/caddy/mailtracker.caddy")
    assert "scp root@t.example.org:/etc/mailtracker/secret" in proc.stdout


def test_a_second_run_changes_nothing_and_says_so(root):
    """Idempotent: the second run (even without --domain) plans no step and rewrites no file."""
    setup_server(root, "--domain", "t.example.org")
    before = {path: (data, (root / path).stat().st_mtime_ns) for path, data in files_under(root).items()}
    again = setup_server(root)
    assert "Nothing to change: the pixel server for t.example.org is set up as asked." in again.stdout
    assert "Write" not in again.stdout and "Not run" not in again.stdout
    assert {path: (data, (root / path).stat().st_mtime_ns) for path, data in files_under(root).items()} == before


def test_the_server_id_is_the_domain_unless_one_was_set(root, tmp_path):
    """A new server is named after its domain ('-' as '_'), so two servers never share an id; a
    server set up before keeps its id; a --server-id that cannot name a file is refused."""
    setup_server(root, "--domain", "pixel-eu.example.org")
    config = root / "etc/mailtracker/server.toml"
    assert read_server_config(config)["server_id"] == "pixel_eu.example.org"
    config.write_text(config.read_text().replace('server_id = "pixel_eu.example.org"', 'server_id = "vps1"'))
    assert "Nothing to change" in setup_server(root).stdout
    assert read_server_config(config)["server_id"] == "vps1"
    refused = setup_server(root, "--server-id", "a-b", check=False)
    assert refused.returncode != 0 and "--server-id 'a-b'" in refused.stderr
    assert read_server_config(config)["server_id"] == "vps1"


def test_edits_to_the_server_config_are_kept(root):
    """A setting changed by hand survives a re-run; a flag changes only its own setting (and restarts)."""
    setup_server(root, "--domain", "t.example.org")
    config = root / "etc/mailtracker/server.toml"
    config.write_text(config.read_text().replace("retention_days = 90", "retention_days = 7"))
    assert "Nothing to change" in setup_server(root).stdout
    changed = setup_server(root, "--port", "56790")
    assert "systemctl restart mailtracker.service" in changed.stdout
    settings = read_server_config(config)
    assert settings["retention_days"] == 7 and settings["port"] == 56790
    assert "reverse_proxy 127.0.0.1:56790" in (root / "etc/caddy/mailtracker.caddy").read_text()


def test_dry_run_prints_every_file_and_command_and_changes_nothing(root):
    """--dry-run: each file's content (the secret's excepted) and each command; the root is untouched."""
    before = files_under(root)
    proc = setup_server(root, "--domain", "t.example.org", "--dry-run")
    assert files_under(root) == before and not (root / "etc/mailtracker").exists()
    out = proc.stdout
    for path in (setup.SECRET, setup.CONFIG, setup.UNIT, setup.CADDY_SITE, setup.CADDYFILE):
        assert f"would write {path}" in out
    for command in ("useradd --system", "systemctl daemon-reload", "systemctl enable mailtracker.service",
                    "systemctl restart mailtracker.service", "caddy validate", "systemctl reload-or-restart caddy"):
        assert f"would run {command}" in out
    assert '    server_id = "t.example.org"' in out and "    t.example.org {" in out
    assert "(the secret: 32 random bytes as base64, not shown)" in out


def test_the_secret_file_given_is_installed_and_a_malformed_one_refused(root, home, tmp_path):
    """--secret-file copies the desktop's secret (root only); a malformed one changes nothing and exits 12."""
    bad = tmp_path / "bad"
    bad.write_text("not a secret\n")
    refused = setup_server(root, "--domain", "t.example.org", "--secret-file", str(bad), check=False)
    assert refused.returncode == 12 and not (root / "etc/mailtracker").exists()
    proc = setup_server(root, "--domain", "t.example.org", "--secret-file", str(home.secret_path))
    assert read_secret(root / "etc/mailtracker/secret") == read_secret(home.secret_path)
    assert "scp" not in proc.stdout
    assert "Nothing to change" in setup_server(root, "--secret-file", str(home.secret_path)).stdout


def test_uninstall_removes_what_it_made_and_never_the_hits(root):
    """--uninstall: unit, site, import line, config and secret go; the hits folder and its files stay."""
    setup_server(root, "--domain", "t.example.org")
    hits = root / "var/lib/mailtracker/hits/hits-vps1-2026-11-30.csv"
    hits.write_text("hit_id,time,tag,method,client,user_agent,referer\r\n")
    proc = setup_server(root, "--uninstall")
    assert "Not run under --root: systemctl disable --now mailtracker.service" in proc.stdout
    assert set(files_under(root)) == {"etc/caddy/Caddyfile", "var/lib/mailtracker/hits/hits-vps1-2026-11-30.csv"}
    assert (root / "etc/caddy/Caddyfile").read_text() == DEBIAN_CADDYFILE
    assert "Kept the hits in /var/lib/mailtracker/hits" in proc.stdout
    assert "Nothing to change: nothing of setup-server's is installed." in setup_server(root, "--uninstall").stdout


def test_the_written_unit_verifies(root):
    """systemd-analyze verify accepts the unit as written, ExecStart naming this install."""
    require_tool("systemd-analyze", "systemd")
    setup_server(root, "--domain", "t.example.org")
    unit = root / "etc/systemd/system/mailtracker.service"
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "mailtracker.service" not in proc.stderr, proc.stderr


def test_the_written_caddy_config_validates(root, tmp_path):
    """caddy validate accepts Debian's Caddyfile with the import and the site setup-server wrote."""
    require_tool("caddy", "caddy")
    setup_server(root, "--domain", "t.example.org")
    main = (root / "etc/caddy/Caddyfile").read_text().replace(setup.CADDY_SITE, str(root / "etc/caddy/mailtracker.caddy"))
    config = tmp_path / "Caddyfile"
    config.write_text(main)
    env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data"),
           "XDG_CONFIG_HOME": str(tmp_path / "config")}
    proc = subprocess.run(["caddy", "validate", "--adapter", "caddyfile", "--config", str(config)],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0 and "Valid configuration" in proc.stdout + proc.stderr, proc.stderr


def test_the_written_unit_and_config_run_a_server_that_the_final_checks_pass(root, home, tmp_path):
    """The unit's ExecStart with the written server.toml serves; the closing checks pass, and name a foreign secret."""
    setup_server(root, "--domain", "t.example.org", "--secret-file", str(home.secret_path))
    unit = (root / "etc/systemd/system/mailtracker.service").read_text()
    start = unit.index("ExecStart=")
    exec_start = unit[start + len("ExecStart="):unit.index("\nRestart=", start)].replace("\\\n", " ")
    args = shlex.split(exec_start)
    credentials = root / "etc/mailtracker"  # the file systemd's credential copies
    hits_dir, port = tmp_path / "state" / "hits", free_port()
    args = [arg.replace("${CREDENTIALS_DIRECTORY}", str(credentials))
            .replace(setup.CONFIG, str(root / setup.CONFIG.lstrip("/"))) for arg in args]
    proc = subprocess.Popen(args + ["--hits-dir", str(hits_dir), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            env={**os.environ, "HOME": "/nonexistent"})
    try:
        base = f"http://127.0.0.1:{port}"
        checks = setup.check_server_works(base, base, read_secret(home.secret_path), hits_dir, wait_s=20)
        assert [(c.name, c.ok) for c in checks] == [
            ("service answers", True), ("name resolves", True), ("TLS and Caddy", True),
            ("pixel served", True), ("test hit logged", True)], checks
        foreign = setup.check_server_works(base, base, b"another desktop's secret", hits_dir, wait_s=5)
        assert foreign[-1].name == "test hit logged" and not foreign[-1].ok
        assert "secret" in foreign[-1].detail
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=20)


def test_the_closing_checks_pass_over_https_through_the_written_caddy_site(root, home, tmp_path):
    """A real Caddy (local CA) runs the site setup-server wrote, before a server run from the written
    config: the checks pass over verified TLS, and an untrusted certificate is named at 'TLS and Caddy'."""
    import ssl

    from tests.test_packaging import Caddy

    require_tool("caddy", "caddy")
    port = free_port()
    setup_server(root, "--domain", "t.example.org", "--secret-file", str(home.secret_path), "--port", str(port))
    hits_dir = tmp_path / "hits"
    server = subprocess.Popen([sys.executable, "-m", "mailtracker", "serve", "--config",
                               str(root / "etc/mailtracker/server.toml"), "--secret-file", str(home.secret_path),
                               "--hits-dir", str(hits_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              start_new_session=True, env={**os.environ, "HOME": "/nonexistent"})
    (tmp_path / "caddy").mkdir()
    caddy = None
    try:
        caddy = Caddy(tmp_path / "caddy", port, site_file=root / "etc/caddy/mailtracker.caddy")
        trusted = ssl.create_default_context(cafile=str(caddy.ca))
        local = f"http://127.0.0.1:{port}"
        checks = setup.check_server_works(local, caddy.url, read_secret(home.secret_path), hits_dir,
                                          wait_s=20, context=trusted)
        assert all(check.ok for check in checks) and len(checks) == 5, checks
        untrusted = setup.check_server_works(local, caddy.url, read_secret(home.secret_path), hits_dir,
                                             wait_s=0)
        assert untrusted[-1].name == "TLS and Caddy" and not untrusted[-1].ok
        assert "CERTIFICATE_VERIFY_FAILED" in untrusted[-1].detail and "journalctl -u caddy" in untrusted[-1].detail
    finally:
        if caddy is not None:
            caddy.stop()
        os.killpg(server.pid, signal.SIGTERM)
        server.communicate(timeout=20)


def test_the_checks_name_a_service_that_does_not_answer():
    """Nothing listening: the first check is BROKEN and the rest are not tried."""
    base = f"http://127.0.0.1:{free_port()}"
    (check,) = setup.check_server_works(base, base, b"x" * 32, Path("/nonexistent"), wait_s=0)
    assert check.name == "service answers" and not check.ok


def test_an_install_the_service_cannot_reach_is_refused():
    """A mailtracker under /root or /home (pipx as root without PIPX_HOME) is refused with the fix."""
    with pytest.raises(SetupError, match=r"PIPX_HOME=/opt/pipx .*pipx install"):
        setup.service_executable("/root/.local/bin/mailtracker")
    assert setup.service_executable("/opt/pipx/venvs/mailtracker/bin/mailtracker") == [
        "/opt/pipx/venvs/mailtracker/bin/mailtracker"]


def test_the_real_machine_needs_root(monkeypatch):
    """Without --root or --dry-run, a user other than root is told to use sudo (exit 51)."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(SetupError, match="sudo mailtracker setup-server") as caught:
        setup.check_preconditions(setup.Machine(), dry_run=False)
    assert caught.value.code == 51
    setup.check_preconditions(setup.Machine(), dry_run=True)


def test_a_url_or_a_bad_name_as_domain_is_a_config_error(root):
    """--domain https://… or a name Caddy cannot certify exits 11 before anything is written."""
    for domain in ("https://t.example.org", "localhost", "t_1.example.org"):
        proc = setup_server(root, "--domain", domain, check=False)
        assert proc.returncode == 11, (domain, proc.stderr)
    assert not (root / "etc/mailtracker").exists()
    first = setup_server(root, check=False)
    assert first.returncode == 11 and "--domain is needed the first time" in first.stderr


def test_under_root_setup_server_names_the_files_where_it_wrote_them(tmp_path):
    """--root DIR: each line names the path under DIR, where the file really is."""
    from tests.conftest import run_cli

    out = run_cli("setup-server", "--root", str(tmp_path), "--domain", "t.example.org").stdout
    assert f"Write {tmp_path}/etc/mailtracker/server.toml (mode 0644" in out
    assert (tmp_path / "etc/mailtracker/server.toml").is_file()
