"""Install (or name) the system packages the test suite needs: packaging/ci-packages.txt.

Usage: python3 packaging/system_packages.py      (the first step of `make test`)

As root on Debian, the missing packages are installed with apt-get. Anywhere else the
missing ones are listed with the one command that installs them, and the run goes on:
each test that needs a missing program is skipped and says why (with CI=true it fails).
Standard library only: it runs before any virtualenv exists.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

LIST = Path(__file__).resolve().parent / "ci-packages.txt"
# Packages whose system service Debian starts on install, which the suite runs itself.
SERVICES_NOT_WANTED = {"dovecot-imapd": ("dovecot.service", "dovecot.socket")}


def read_list(path: Path = LIST) -> list:
    """(package, command or None) for each line of the list."""
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        words = line.split("#", 1)[0].split()
        if words:
            entries.append((words[0], words[1] if len(words) > 1 else None))
    return entries


def is_debian() -> bool:
    return Path("/etc/debian_version").exists() and shutil.which("apt-get") is not None


def missing_packages(entries: list, debian: bool) -> list:
    """The packages whose command is not on PATH (or, without a command, that dpkg lacks)."""
    installed = _dpkg_installed([package for package, command in entries if command is None]) if debian else set()
    missing = []
    for package, command in entries:
        present = shutil.which(command) is not None if command else package in installed
        if not present:
            missing.append(package)
    return missing


def _dpkg_installed(packages: list) -> set:
    if not packages:
        return set()
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${db:Status-Abbrev}\\n", *packages],
                          capture_output=True, text=True)
    return {line.split()[0] for line in proc.stdout.splitlines() if line.split()[1:2] == ["ii"]}


def install_command(missing: list) -> list:
    return ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]


def main() -> int:
    debian = is_debian()
    missing = missing_packages(read_list(), debian)
    if not missing:
        return 0
    if debian and os.geteuid() == 0:
        print(f"make test: installing {' '.join(missing)}", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(install_command(missing), check=True, env=env, stdout=subprocess.DEVNULL)
        for package in missing:
            units = SERVICES_NOT_WANTED.get(package)
            if units:
                # The tests start their own on loopback; the package's system service is not needed.
                subprocess.run(["systemctl", "disable", "--now", *units], check=False,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return 0
    bar = "*" * 78
    how = ("sudo " + " ".join(install_command(missing)).replace(" -qq", "") if debian else
           f"your system's package manager: {', '.join(missing)} (Debian's package names)")
    print(f"{bar}\nmake test: missing {' '.join(missing)}.\nThe tests that need them are SKIPPED "
          f"(listed at the end; with CI=true they fail). To run everything, install them with\n"
          f"    {how}\n{bar}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
