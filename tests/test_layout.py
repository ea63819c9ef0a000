"""The package layout shows where code runs: the VPS side imports no desktop code."""

import json
import subprocess
import sys

SERVER_MODULES = ["mailtracker.server.run", "mailtracker.server.app", "mailtracker.server.hitlog",
                  "mailtracker.server.hitfiles", "mailtracker.server.retention"]
# Libraries only the desktop installs (the 'desktop' extra): a server must never need them.
DESKTOP_LIBRARIES = ("watchdog", "requests", "pystray", "PIL", "ua_parser", "tqdm", "jeepney", "sqlite3")


def _imported_by(modules):
    code = ("import json, sys\n" + "".join(f"import {name}\n" for name in modules)
            + "print(json.dumps(sorted(sys.modules)))")
    return json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                     check=True).stdout)


def test_the_server_imports_no_desktop_code():
    """Importing every server module pulls in mailtracker.core and nothing of mailtracker.desktop."""
    loaded = _imported_by(SERVER_MODULES)
    ours = [name for name in loaded if name.startswith("mailtracker")]
    assert "mailtracker.server.app" in ours
    assert [name for name in ours if not name.startswith(("mailtracker.core", "mailtracker.server"))] \
        == ["mailtracker"], ours
    assert not [name for name in loaded if name.split(".")[0] in DESKTOP_LIBRARIES]


def test_the_core_imports_neither_side():
    """The shared core stands alone: it imports nothing from the server or the desktop."""
    core = ["mailtracker.core." + name for name in (
        "contract", "csvcodec", "errors", "files", "hitline", "paths", "secret", "settings",
        "timestamps", "tokens")]
    ours = [name for name in _imported_by(core) if name.startswith("mailtracker.")]
    assert ours and all(name.startswith("mailtracker.core") for name in ours), ours
