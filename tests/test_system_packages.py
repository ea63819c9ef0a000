"""`make test`'s first step (packaging/system_packages.py): one list of system packages,
installed as root on Debian, named with the one command elsewhere; .ci/run only calls make."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "packaging"))

import older_thunderbird  # noqa: E402
import system_packages  # noqa: E402


def test_ci_only_calls_make_test():
    """.ci/run installs nothing itself: the list lives in one place, which make test reads."""
    script = (ROOT / ".ci" / "run").read_text()
    assert "apt-get" not in script and script.rstrip().endswith("make test")
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test: system-packages$", makefile, re.M)
    assert "packaging/system_packages.py" in makefile


def test_every_program_a_test_requires_is_in_the_list():
    """Each require_tool(name, package) in the tests names a listed package, with that command."""
    listed = dict(system_packages.read_list())
    required = set()
    for path in (ROOT / "tests").rglob("*.py"):
        required |= set(re.findall(r'require_tool\("([^"]+)", "([^"]+)"\)', path.read_text()))
    assert required, "no require_tool calls found"
    for command, package in required:
        assert listed.get(package) == command, (command, package)
    for package in ("thunderbird", "xvfb", "chromium", "dunst", "trayer", "nodejs", "npm"):
        assert package in listed


def test_elsewhere_it_names_what_is_missing_and_goes_on(tmp_path):
    """Not Debian (no apt-get on PATH) and nothing installed: every package named loudly, exit 0."""
    proc = subprocess.run([sys.executable, str(ROOT / "packaging" / "system_packages.py")],
                          env={"PATH": str(tmp_path)}, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert "make test: missing python3-venv make nodejs npm thunderbird" in proc.stderr
    assert "SKIPPED" in proc.stderr and "your system's package manager" in proc.stderr


def test_on_debian_without_root_it_prints_the_one_command(monkeypatch, capsys):
    """Debian, not root: the single sudo apt-get line that installs exactly what is missing."""
    monkeypatch.setattr(system_packages, "is_debian", lambda: True)
    monkeypatch.setattr(system_packages, "missing_packages", lambda entries, debian: ["caddy", "syncthing"])
    monkeypatch.setattr(system_packages.os, "geteuid", lambda: 1000)
    assert system_packages.main() == 0
    assert "    sudo apt-get install -y --no-install-recommends caddy syncthing\n" in capsys.readouterr().err


def test_on_debian_as_root_it_installs_what_is_missing(monkeypatch, capsys):
    """Debian as root: apt-get update, then one install of the missing packages, non-interactively."""
    calls = []
    monkeypatch.setattr(system_packages, "is_debian", lambda: True)
    monkeypatch.setattr(system_packages, "missing_packages", lambda entries, debian: ["caddy"])
    monkeypatch.setattr(system_packages.os, "geteuid", lambda: 0)
    monkeypatch.setattr(system_packages.subprocess, "run",
                        lambda argv, **kw: calls.append((argv, kw["env"]["DEBIAN_FRONTEND"])))
    assert system_packages.main() == 0
    assert calls == [(["apt-get", "update", "-qq"], "noninteractive"),
                     (["apt-get", "install", "-y", "-qq", "--no-install-recommends", "caddy"], "noninteractive")]


def test_a_service_the_tests_run_themselves_is_disabled_after_its_install(monkeypatch):
    """Dovecot is started by the test session on loopback: its system service is disabled once installed."""
    calls = []
    monkeypatch.setattr(system_packages, "is_debian", lambda: True)
    monkeypatch.setattr(system_packages, "missing_packages", lambda entries, debian: ["dovecot-imapd"])
    monkeypatch.setattr(system_packages.os, "geteuid", lambda: 0)
    monkeypatch.setattr(system_packages.subprocess, "run", lambda argv, **kw: calls.append(argv))
    assert system_packages.main() == 0
    assert calls[-1] == ["systemctl", "disable", "--now", "dovecot.service", "dovecot.socket"]


def test_nothing_missing_says_nothing(monkeypatch, capsys):
    """All present (as on CI after the first run): silent, exit 0."""
    monkeypatch.setattr(system_packages, "missing_packages", lambda entries, debian: [])
    assert system_packages.main() == 0 and capsys.readouterr() == ("", "")


MADISON = """thunderbird | 1:153.8.0esr-1~deb12u1 | http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
thunderbird | 1:140.12.0esr-1~deb12u1 | http://deb.debian.org/debian bookworm/main amd64 Packages
thunderbird | 1:140.9.0esr-1~deb12u1 | http://deb.debian.org/debian bookworm/main amd64 Packages
"""


def test_the_older_thunderbird_is_the_add_ons_minimum_from_debians_archive():
    """make system-packages unpacks the newest release of the add-on's minimum major (140),
    as apt-cache madison lists it, into .cache/thunderbird-140, where the e2e harness looks."""
    assert older_thunderbird.claimed_major() == "140"
    assert older_thunderbird.versions_of_major(MADISON, "140") == ["1:140.12.0esr-1~deb12u1", "1:140.9.0esr-1~deb12u1"]
    assert older_thunderbird.versions_of_major(MADISON, "128") == []
    assert "system_packages.py\n\t@$(PYTHON) packaging/older_thunderbird.py" in (ROOT / "Makefile").read_text()
    from tests.e2e.thunderbird import OLDER_THUNDERBIRD

    if "MAILTRACKER_OLDER_THUNDERBIRD" not in os.environ:
        assert OLDER_THUNDERBIRD == str(older_thunderbird.binary_in(older_thunderbird.target_dir("140")))
