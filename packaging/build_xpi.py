"""Build the Thunderbird add-on: zip extension/ into dist/mailtracker-<version>.xpi.

Usage: python packaging/build_xpi.py [--out DIR] [--update-url URL]

With --update-url (https://you.example/mailtracker/updates.json) the built manifest
names that URL as its update_url, and DIR/updates.json is written beside the .xpi: copy
both to that folder and every Thunderbird with this build updates itself from there.
Without it the add-on never asks anywhere for updates.

Only the files Thunderbird runs go in (no tests, node_modules, npm files or dev
tools), with manifest.json at the root of the zip. The build refuses to run
when the manifest's version differs from the helper's __version__: the two are
released together and the options page warns when they differ.
Standard library only, so it runs before any virtualenv exists.
"""

import argparse
import json
import re
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXTENSION = ROOT / "extension"
VERSION_FILE = ROOT / "helper" / "mailtracker" / "__init__.py"

# Development-only entries at the top of extension/; dot files are skipped too.
EXCLUDED = {
    "README.md",
    "dev",
    "node_modules",
    "package-lock.json",
    "package.json",
    "tests",
    "web-ext-artifacts",
}

# A fixed timestamp makes two builds of the same sources byte-identical.
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def helper_version() -> str:
    """__version__ of the helper package, read with a regex so nothing is imported."""
    match = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", VERSION_FILE.read_text(encoding="utf-8"), re.M)
    if not match:
        raise SystemExit(f"no __version__ = \"...\" line in {VERSION_FILE}")
    return match.group(1)


def runtime_files() -> list:
    """Paths (relative to extension/) of the files the add-on ships, manifest first."""
    files = []
    for path in sorted(EXTENSION.rglob("*")):
        relative = path.relative_to(EXTENSION)
        if relative.parts[0] in EXCLUDED or any(part.startswith(".") for part in relative.parts):
            continue
        if path.is_file():
            files.append(relative)
    files.sort(key=lambda p: (p.as_posix() != "manifest.json", p.as_posix()))
    return files


def build(out_dir: Path, update_url: str = "") -> Path:
    manifest_bytes = (EXTENSION / "manifest.json").read_bytes()
    manifest = json.loads(manifest_bytes.decode("utf-8"))
    version = manifest["version"]
    expected = helper_version()
    if version != expected:
        raise SystemExit(
            f"refusing to build: extension/manifest.json has version {version}, "
            f"helper/mailtracker/__init__.py has {expected}; make them equal"
        )
    if update_url:
        if not update_url.startswith("https://"):
            raise SystemExit(f"--update-url {update_url!r} must be an https:// URL (Thunderbird requires it)")
        manifest["browser_specific_settings"]["gecko"]["update_url"] = update_url
        manifest_bytes = (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"mailtracker-{version}.xpi"
    partial = target.with_suffix(".xpi.part")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for relative in runtime_files():
            info = zipfile.ZipInfo(relative.as_posix(), date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            data = manifest_bytes if relative.as_posix() == "manifest.json" else (EXTENSION / relative).read_bytes()
            archive.writestr(info, data)
    # Replace in one step so a failed build never leaves a truncated .xpi behind.
    partial.replace(target)
    if update_url:
        write_updates_manifest(out_dir, manifest, target.name, update_url)
    return target


def write_updates_manifest(out_dir: Path, manifest: dict, xpi_name: str, update_url: str) -> Path:
    """updates.json in the format Thunderbird reads from update_url: this version, and
    the .xpi in the same folder as updates.json."""
    gecko = manifest["browser_specific_settings"]["gecko"]
    folder = update_url.rsplit("/", 1)[0]
    document = {"addons": {gecko["id"]: {"updates": [{
        "version": manifest["version"],
        "update_link": f"{folder}/{xpi_name}",
        "applications": {"gecko": {"strict_min_version": gecko["strict_min_version"]}},
    }]}}}
    path = out_dir / "updates.json"
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output directory (default: dist/)")
    parser.add_argument("--update-url", default="", metavar="URL",
                        help="where your copy of updates.json will be served (https); also writes it")
    args = parser.parse_args(argv)
    print(build(args.out.resolve(), args.update_url))
    if args.update_url:
        print(args.out.resolve() / "updates.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
