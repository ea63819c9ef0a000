"""Build the release artefacts into one folder: the wheel and the sdist (python -m build)
and the add-on (build_xpi.py), refuse a set whose versions differ, and list their SHA-256
in SHA256SUMS (printed too: a user checks the wheel they install against it).

Usage: python packaging/build_dist.py [--out DIR] [--update-url URL]   (what `make dist` runs)

--update-url is passed to build_xpi.py: the add-on then updates itself from your copy of
DIR/updates.json. The checks of the result (twine check, the sdist's own tests) are in
tests/test_dist.py.
"""

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "packaging"))

import build_xpi  # noqa: E402  (beside this script, standard library only)


CHECKSUMS = "SHA256SUMS"

# Left out of the clean copy the release is built from: local state, never released.
UNPACKED = (".git", ".venv", "node_modules", "dist", "build", "*.egg-info", "__pycache__",
            ".pytest_cache", ".demo-home", "web-ext-artifacts", ".cache")


def artefact_versions(out_dir: Path) -> dict:
    """The version each artefact in ``out_dir`` says it is, read from inside it."""
    versions = {}
    for wheel in out_dir.glob("*.whl"):
        with zipfile.ZipFile(wheel) as archive:
            (metadata,) = [name for name in archive.namelist() if name.endswith(".dist-info/METADATA")]
            versions[wheel.name] = _metadata_version(archive.read(metadata).decode("utf-8"))
    for sdist in out_dir.glob("*.tar.gz"):
        with tarfile.open(sdist) as archive:
            member = next(m for m in archive.getmembers() if m.name.count("/") == 1 and m.name.endswith("/PKG-INFO"))
            versions[sdist.name] = _metadata_version(archive.extractfile(member).read().decode("utf-8"))
    for xpi in out_dir.glob("*.xpi"):
        with zipfile.ZipFile(xpi) as archive:
            versions[xpi.name] = json.loads(archive.read("manifest.json"))["version"]
    return versions


def _metadata_version(text: str) -> str:
    return re.search(r"^Version: (\S+)$", text, re.M).group(1)


def build_all(out_dir: Path, update_url: str = "") -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in [*out_dir.glob("mailtracker-*"), out_dir / "updates.json", out_dir / CHECKSUMS]:
        old.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        # From a clean copy: setuptools would also pack every file an old egg-info's
        # SOURCES.txt lists, so a build in the work tree could hide a gap in MANIFEST.in.
        source = Path(scratch) / "src"
        shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*UNPACKED))
        subprocess.run([sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out_dir),
                        str(source)], check=True, stdout=subprocess.DEVNULL)
    build_xpi.build(out_dir, update_url)
    versions = artefact_versions(out_dir)
    check_versions(versions, build_xpi.helper_version())
    return versions


def write_checksums(out_dir: Path, names) -> Path:
    """SHA256SUMS beside the artefacts, in the format ``sha256sum -c`` checks: publish it with them."""
    lines = [f"{hashlib.sha256((out_dir / name).read_bytes()).hexdigest()}  {name}\n" for name in sorted(names)]
    path = out_dir / CHECKSUMS
    path.write_text("".join(lines), encoding="utf-8")
    return path


def check_versions(versions: dict, expected: str) -> None:
    """One wheel, one sdist, one .xpi, all of version ``expected``."""
    kinds = sorted(name.rsplit(".", 1)[-1] for name in versions)
    wrong = {name: version for name, version in versions.items() if version != expected}
    if wrong or kinds != ["gz", "whl", "xpi"]:
        raise SystemExit(f"the artefacts disagree with __version__ {expected}: {versions}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output directory (default: dist/)")
    parser.add_argument("--update-url", default="", metavar="URL",
                        help="https URL where you will serve DIR/updates.json (and the .xpi beside it)")
    args = parser.parse_args(argv)
    out_dir = args.out.resolve()
    versions = build_all(out_dir, args.update_url)
    checksums = write_checksums(out_dir, versions)
    print(f"In {out_dir}, with their SHA-256 (also in {checksums.name}; 'sha256sum -c {checksums.name}' checks them):")
    print(checksums.read_text(encoding="utf-8"), end="")
    if args.update_url:
        print(args.out.resolve() / "updates.json")
    else:
        print("No update_url in the add-on: 'make dist UPDATE_URL=https://…/updates.json' writes "
              "updates.json for add-on updates from your own server.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
