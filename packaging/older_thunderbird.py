"""Unpack the oldest Thunderbird the add-on claims to support (the newest release of its
strict_min_version's major: 140 ESR) from Debian's archive into .cache/, for tests/e2e/test_older_thunderbird.py.

Usage: python3 packaging/older_thunderbird.py      (a step of `make system-packages`)

Debian keeps the previous ESR in its archive beside the current one (bookworm: 140 in main,
153 in bookworm-security). The package is downloaded with `apt-get download` (no install,
no root needed) and unpacked with `dpkg-deb -x`: it runs from there with the libraries the
installed thunderbird package already brought. Elsewhere, or when the archive has no such
version, it says so and goes on: those tests are then skipped (with CI=true they fail).
Standard library only: it runs before any virtualenv exists.
"""

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import List, Optional

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "extension" / "manifest.json"


def claimed_major(manifest: Path = MANIFEST) -> str:
    """The major version of the add-on's strict_min_version ("140")."""
    gecko = json.loads(manifest.read_text(encoding="utf-8"))["browser_specific_settings"]["gecko"]
    return gecko["strict_min_version"].split(".")[0]


def target_dir(major: str) -> Path:
    return ROOT / ".cache" / f"thunderbird-{major}"


def binary_in(directory: Path) -> Path:
    return directory / "usr" / "lib" / "thunderbird" / "thunderbird"


def versions_of_major(madison: str, major: str) -> List[str]:
    """The thunderbird versions `apt-cache madison thunderbird` lists for this major, in its
    order (newest first)."""
    found = []
    for line in madison.splitlines():
        fields = [field.strip() for field in line.split("|")]
        if len(fields) >= 2 and fields[0] == "thunderbird":
            upstream = fields[1].split(":", 1)[-1]
            if upstream.split(".")[0] == major and fields[1] not in found:
                found.append(fields[1])
    return found


def newest_of_major(major: str) -> Optional[str]:
    proc = subprocess.run(["apt-cache", "madison", "thunderbird"], capture_output=True, text=True)
    versions = versions_of_major(proc.stdout, major)
    return versions[0] if versions else None


def unpack(version: str, directory: Path) -> None:
    """apt-get download that version, dpkg-deb -x it into ``directory`` (whole or not at all)."""
    with tempfile.TemporaryDirectory() as work:
        # (As root, apt warns that its sandbox user cannot write here: harmless, kept quiet.)
        got = subprocess.run(["apt-get", "download", "-qq", f"thunderbird={version}"], cwd=work,
                             capture_output=True, text=True)
        if got.returncode != 0:
            raise SystemExit(f"apt-get download thunderbird={version} failed:\n{got.stderr}")
        (deb,) = Path(work).glob("thunderbird_*.deb")
        partial = Path(work) / "root"
        subprocess.run(["dpkg-deb", "-x", str(deb), str(partial)], check=True)
        directory.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(directory, ignore_errors=True)
        shutil.move(str(partial), str(directory))


def main() -> int:
    major = claimed_major()
    directory = target_dir(major)
    if binary_in(directory).exists():
        return 0
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        print(f"make test: no apt-get here: Thunderbird {major} (the add-on's minimum) is not "
              f"unpacked into {directory}; tests/e2e/test_older_thunderbird.py is SKIPPED "
              f"(set MAILTRACKER_OLDER_THUNDERBIRD to a Thunderbird {major} binary to run it)",
              file=sys.stderr)
        return 0
    version = newest_of_major(major)
    if version is None:
        print(f"make test: this machine's apt sources have no Thunderbird {major}; "
              "tests/e2e/test_older_thunderbird.py is SKIPPED", file=sys.stderr)
        return 0
    print(f"make test: unpacking Debian's thunderbird {version} into {directory}", flush=True)
    unpack(version, directory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
