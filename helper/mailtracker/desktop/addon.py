"""The Thunderbird add-on that ships inside this package, and the one Thunderbird has.

A built package carries ``mailtracker/addon/mailtracker-<version>.xpi`` (setup.py builds it
from extension/), so ``mailtracker addon`` gives a pipx user the add-on of exactly the installed
helper. An editable install (a checkout) has no built copy: the .xpi is built from the
checkout's extension/ with packaging/build_xpi.py, byte for byte what a release holds.

``installed_addons`` reads what each Thunderbird profile on this machine has installed
(its extensions.json), so doctor can say when the add-on and the helper differ in version.
"""

import configparser
import contextlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from mailtracker import __version__
from mailtracker.core.errors import FileAccessError, MailtrackerError
from mailtracker.core.paths import Home
from mailtracker.desktop.host import EXTENSION_ID

PACKAGE_DIR = Path(__file__).resolve().parent.parent
XPI_NAME = f"mailtracker-{__version__}.xpi"


def addon_bytes() -> bytes:
    """The .xpi of this helper's version: the packaged copy, else built from the checkout."""
    packaged = PACKAGE_DIR / "addon" / XPI_NAME
    if packaged.is_file():
        return packaged.read_bytes()
    checkout = PACKAGE_DIR.parent.parent
    if (checkout / "packaging" / "build_xpi.py").is_file() and (checkout / "extension" / "manifest.json").is_file():
        sys.path.insert(0, str(checkout / "packaging"))
        try:
            import build_xpi
        finally:
            sys.path.remove(str(checkout / "packaging"))
        with tempfile.TemporaryDirectory() as scratch:
            try:
                return build_xpi.build(Path(scratch)).read_bytes()
            except SystemExit as exc:  # build_xpi refuses a version mismatch with a message
                raise MailtrackerError(f"cannot build the add-on from {checkout / 'extension'}: {exc}") from None
    raise MailtrackerError(f"this mailtracker {__version__} carries no add-on ({packaged} is missing): "
                           "reinstall it from a release's wheel or a checkout")


def default_destination(home: Home) -> Path:
    """Where Thunderbird's file picker finds it easily: the Downloads folder, else the home."""
    import platformdirs

    downloads = Path(platformdirs.user_downloads_dir())
    return (downloads if downloads.is_dir() else home.data_dir) / XPI_NAME


def write_addon(target: Path) -> Path:
    """Write the .xpi to ``target`` (a folder gets the release's file name), in one step."""
    data = addon_bytes()
    if target.is_dir():
        target = target / XPI_NAME
    partial = target.with_name(target.name + ".part")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(data)
        os.replace(partial, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise FileAccessError(f"cannot write the add-on to {target}: {exc.strerror or exc}") from None
    return target


@dataclass
class InstalledAddon:
    profile: Path
    version: str
    active: bool


def profile_roots() -> List[Path]:
    """Where Thunderbird keeps its profiles on this platform (Debian/Mozilla builds, snap, Flatpak)."""
    home = Path.home()
    if sys.platform == "win32":
        return [Path(os.environ.get("APPDATA", home / "AppData" / "Roaming")) / "Thunderbird"]
    if sys.platform == "darwin":
        return [home / "Library" / "Thunderbird"]
    return [home / ".thunderbird", home / "snap" / "thunderbird" / "common" / ".thunderbird",
            home / ".var" / "app" / "org.mozilla.Thunderbird" / ".thunderbird"]


def profile_dirs(root: Path) -> List[Path]:
    """The profiles profiles.ini names under ``root`` (relative or absolute paths)."""
    ini = configparser.ConfigParser(interpolation=None)
    try:
        ini.read(root / "profiles.ini", encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
        return []
    found = []
    for section in ini.sections():
        path = ini[section].get("Path")
        if section.startswith("Profile") and path:
            found.append(root / path if ini[section].get("IsRelative", "1") == "1" else Path(path))
    return found


def installed_addons(roots: Optional[List[Path]] = None) -> List[InstalledAddon]:
    """The mailtracker add-on in each Thunderbird profile that has it."""
    found = []
    for root in profile_roots() if roots is None else roots:
        for profile in profile_dirs(root):
            try:
                document = json.loads((profile / "extensions.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            for addon in document.get("addons", []) if isinstance(document, dict) else []:
                if isinstance(addon, dict) and addon.get("id") == EXTENSION_ID:
                    found.append(InstalledAddon(profile, str(addon.get("version", "?")), bool(addon.get("active"))))
    return found


def addon_checks(roots: Optional[List[Path]] = None) -> list:
    """doctor's line on the add-on: installed in Thunderbird, and of this helper's version."""
    from mailtracker.desktop.install import Check

    installed = installed_addons(roots)
    fix = "run 'mailtracker addon' and install the file it writes (Add-ons and Themes › gear › Install Add-on From File…)"
    if not installed:
        profiles = [profile for root in (profile_roots() if roots is None else roots) for profile in profile_dirs(root)]
        if not profiles:
            return []  # no Thunderbird profile here (a Thunderbird elsewhere, or none yet): nothing to say
        return [Check("add-on installed", False, f"no Thunderbird profile here has the mailtracker add-on; {fix}")]
    checks = []
    for addon in installed:
        same = addon.version == __version__
        detail = (f"version {addon.version} in {addon.profile}" if same else
                  f"the add-on in {addon.profile} is version {addon.version}, the helper {__version__}; {fix}")
        if same and not addon.active:
            same, detail = False, f"version {addon.version} in {addon.profile} is disabled: enable it in Add-ons and Themes"
        checks.append(Check("add-on matches the helper", same, detail))
    return checks
