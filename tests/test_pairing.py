"""Pairing in one paste: setup-server prints 'mailtracker init --pair CODE', and that line on the
desktop sets the server's address, the pull (when the server serves hits) and the shared secret."""

import re

import pytest

from mailtracker.core.errors import ConfigError
from mailtracker.core.pairing import pairing_code, read_pairing_code
from mailtracker.core.paths import Home
from mailtracker.core.secret import read_secret
from mailtracker.core.settings import load_config
from tests.conftest import run_cli


def setup_server_pairing_line(root, *extra) -> str:
    out = run_cli("setup-server", "--root", str(root), "--domain", "t.example.org", *extra).stdout
    (line,) = re.findall(r"^  (mailtracker init --pair \S+)$", out, flags=re.M)
    return line


def test_the_line_setup_server_prints_pairs_a_new_desktop(tmp_path):
    root = tmp_path / "vps"
    line = setup_server_pairing_line(root, "--serve-hits")
    desktop = tmp_path / "desktop"
    out = run_cli("--home", str(desktop), *line.split()[1:]).stdout
    home = Home.locate(str(desktop))
    config = load_config(home)
    assert config.server_url == "https://t.example.org" and tuple(config.pull_urls) == ("https://t.example.org",)
    assert read_secret(home.secret_path) == read_secret(root / "etc/mailtracker/secret")
    assert oct(home.secret_path.stat().st_mode & 0o777) == "0o600"
    assert f"Took the server's secret into {home.secret_path}" in out and "doctor --server" in out
    assert "cannot reach" not in out


def test_a_server_without_serve_hits_pairs_without_pull(tmp_path):
    line = setup_server_pairing_line(tmp_path / "vps")
    run_cli("--home", str(tmp_path / "d"), *line.split()[1:])
    assert load_config(Home.locate(str(tmp_path / "d"))).pull_urls == ()


def test_pairing_never_silently_replaces_a_desktops_other_secret(tmp_path):
    line = setup_server_pairing_line(tmp_path / "vps")
    desktop = tmp_path / "desktop"
    run_cli("--home", str(desktop), "init")
    home = Home.locate(str(desktop))
    before = read_secret(home.secret_path)
    proc = run_cli("--home", str(desktop), *line.split()[1:], check=False)
    assert proc.returncode == 11 and "already has another secret" in proc.stderr and "--force" in proc.stderr
    assert read_secret(home.secret_path) == before
    run_cli("--home", str(desktop), *line.split()[1:], "--force")  # no terminal: warned, not asked
    assert read_secret(home.secret_path) == read_secret(tmp_path / "vps/etc/mailtracker/secret")
    # The same code again: nothing to replace, no --force needed.
    assert "is already the server's" in run_cli("--home", str(desktop), *line.split()[1:]).stdout


@pytest.mark.parametrize("code, says", [
    ("abc", "not a pairing code"),
    ("mtpair1.eyJ1cmwiOiJodHRwczovL3Qu", "cut short or mistyped"),
    (pairing_code("http://t.example.org", b"A" * 44, False), "not an https:// address"),
    (pairing_code("https://t.example.org", b"c2hvcnQ=", False), "too short"),
])
def test_a_mistyped_code_is_refused_and_nothing_is_written(tmp_path, code, says):
    proc = run_cli("--home", str(tmp_path / "d"), "init", "--pair", code, check=False)
    assert proc.returncode in (11, 12) and says in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "d").exists()


def test_the_code_round_trips():
    pairing = read_pairing_code(pairing_code("https://t.example.org", b"A" * 44 + b"\n", True))
    assert (pairing.server_url, pairing.pull, pairing.secret_text) == ("https://t.example.org", True, b"A" * 44 + b"\n")
    with pytest.raises(ConfigError):
        read_pairing_code("mtpair1.!!!")
