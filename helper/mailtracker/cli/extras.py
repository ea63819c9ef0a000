"""A missing install extra, said before anything else, with the install command that fits how
this mailtracker was installed (pipx, a system-wide pipx, a checkout, a venv).

``EXTRAS_OF_COMMAND`` names what each command needs; ``missing_extra`` checks it with
``importlib.util.find_spec`` (nothing is imported), so the command never starts half-way.
"""

import importlib.metadata
import importlib.util
import json
import re
import shlex
import sys
from pathlib import Path
from typing import List, Optional, Sequence

# The module each extra's libraries are imported as (setup.cfg's extras_require).
MODULES_OF_EXTRA = {
    "server": ("granian",),
    "desktop": ("requests", "watchdog", "ua_parser", "tqdm", "pystray", "PIL"),
}
# Which extra brings a library, to name it when an import fails anyway.
EXTRA_OF_MODULE = {module: extra for extra, modules in MODULES_OF_EXTRA.items() for module in modules}
EXTRA_OF_MODULE["uvloop"] = "server"

# What each command needs beyond the core.
EXTRAS_OF_COMMAND = {
    "serve": ("server",),
    "demo": ("server", "desktop"),
    "watch": ("desktop",), "tray": ("desktop",), "fold": ("desktop",), "rebuild": ("desktop",),
    "pull": ("desktop",), "report": ("desktop",), "host": ("desktop",),
}

SYSTEM_PIPX_HOME = "/opt/pipx"


def missing_extra(command: str) -> Optional[str]:
    """The first extra ``command`` needs whose libraries are not all importable, or None."""
    for extra in EXTRAS_OF_COMMAND.get(command, ()):
        if not all(_importable(module) for module in MODULES_OF_EXTRA[extra]):
            return extra
    return None


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def extra_requirements(extra: str, requires: Optional[Sequence[str]] = None,
                       platform: str = sys.platform) -> List[str]:
    """The requirement strings of ``extra`` from the installed metadata, for this platform."""
    if requires is None:
        try:
            requires = importlib.metadata.requires("mailtracker") or []
        except importlib.metadata.PackageNotFoundError:
            requires = []
    found = []
    for line in requires:
        requirement, _, marker = line.partition(";")
        clauses = [clause.strip() for clause in marker.split(" and ")] if marker else []
        if f'extra == "{extra}"' not in clauses:
            continue
        if all(_platform_holds(clause, platform) for clause in clauses if not clause.startswith("extra")):
            found.append(requirement.strip())
    return found


def _platform_holds(clause: str, platform: str) -> bool:
    match = re.fullmatch(r'sys_platform\s*(==|!=)\s*"([^"]+)"', clause)
    if not match:
        return True  # anything else (a python_version bound) is left to the installer
    return (platform == match.group(2)) == (match.group(1) == "==")


def install_command(extra: str, prefix: Path = Path(sys.prefix), python: str = sys.executable,
                    direct_url: Optional[dict] = None, requires: Optional[Sequence[str]] = None) -> str:
    """The one command that adds ``extra`` to this install."""
    if direct_url is None:
        direct_url = _direct_url()
    packages = " ".join(shlex.quote(requirement) for requirement in extra_requirements(extra, requires))
    if _is_pipx_venv(prefix):
        pipx = f"pipx inject {prefix.name} {packages}"
        home = prefix.parent.parent
        if str(home) == SYSTEM_PIPX_HOME:
            return f"sudo env PIPX_HOME={SYSTEM_PIPX_HOME} PIPX_BIN_DIR=/usr/local/bin {pipx}"
        return pipx
    if direct_url.get("dir_info", {}).get("editable") and direct_url.get("url", "").startswith("file://"):
        checkout = direct_url["url"][len("file://"):]
        return f"{shlex.quote(python)} -m pip install -e {shlex.quote(checkout + f'[{extra}]')}"
    return f"{shlex.quote(python)} -m pip install {packages}"


def _is_pipx_venv(prefix: Path) -> bool:
    """PIPX_HOME/venvs/<name>: PIPX_HOME is a folder named pipx (~/.local/share/pipx, /opt/pipx…),
    or any folder when pipx's own metadata is there."""
    return prefix.parent.name == "venvs" and (
        prefix.parent.parent.name in ("pipx", ".pipx") or (prefix / "pipx_metadata.json").is_file())


def _direct_url() -> dict:
    try:
        return json.loads(importlib.metadata.distribution("mailtracker").read_text("direct_url.json") or "{}")
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return {}


def missing_extra_message(extra: str, what: str) -> str:
    return (f"{what} needs mailtracker's '{extra}' extra, which is not installed here; "
            f"add it with: {install_command(extra)}")
