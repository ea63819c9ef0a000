"""The package layout shows where code runs: the VPS side imports no desktop code, and the
shared core neither side. Checked twice: by what importing the modules loads, and by every
import statement in their source (one inside a function runs only when it is called)."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import mailtracker

PACKAGE = Path(mailtracker.__file__).parent
# Libraries only the desktop installs (the 'desktop' extra): a server must never need them.
DESKTOP_LIBRARIES = ("watchdog", "requests", "pystray", "PIL", "ua_parser", "tqdm", "jeepney", "sqlite3")


def _modules(side: str):
    return sorted(f"mailtracker.{side}.{path.stem}" for path in (PACKAGE / side).glob("*.py")
                  if path.stem != "__init__")


def _imported_by(modules):
    code = ("import json, sys\n" + "".join(f"import {name}\n" for name in modules)
            + "print(json.dumps(sorted(sys.modules)))")
    return json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                     check=True).stdout)


def _import_statements(side: str):
    """(file, module named) for every import statement in the side's source, wherever it stands."""
    for path in sorted((PACKAGE / side).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                yield from ((path.name, alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: from within the same side
                    yield path.name, f"mailtracker.{side}.{node.module or ''}"
                else:
                    yield path.name, node.module


def test_the_layout_lists_every_module():
    """The lists below are read from the folders: a new module is checked without being named."""
    assert {"mailtracker.core.origins", "mailtracker.core.clicks"} <= set(_modules("core"))
    assert {"mailtracker.server.app", "mailtracker.server.settings"} <= set(_modules("server"))


def test_the_server_imports_no_desktop_code():
    """Importing every server module pulls in mailtracker.core and nothing of mailtracker.desktop."""
    loaded = _imported_by(_modules("server"))
    ours = [name for name in loaded if name.startswith("mailtracker")]
    assert "mailtracker.server.app" in ours
    assert [name for name in ours if not name.startswith(("mailtracker.core", "mailtracker.server"))] \
        == ["mailtracker"], ours
    assert not [name for name in loaded if name.split(".")[0] in DESKTOP_LIBRARIES]


def test_no_import_statement_of_the_server_names_the_desktop():
    """Not even inside a function: every import in server/ is of the core, the server or a server library."""
    wrong = [(file, name) for file, name in _import_statements("server")
             if name.startswith(("mailtracker.desktop", "mailtracker.cli")) or name.split(".")[0] in DESKTOP_LIBRARIES]
    assert not wrong, wrong


def test_the_core_imports_neither_side():
    """The shared core stands alone: loading it imports nothing from the server or the desktop,
    and no import statement in it names either."""
    ours = [name for name in _imported_by(_modules("core")) if name.startswith("mailtracker.")]
    assert ours and all(name.startswith("mailtracker.core") for name in ours), ours
    wrong = [(file, name) for file, name in _import_statements("core")
             if name.startswith("mailtracker.") and not name.startswith("mailtracker.core")]
    assert not wrong, wrong
