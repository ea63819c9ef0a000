"""A missing install extra is said before anything else, with the command that fits this install."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mailtracker.cli.extras import extra_requirements, install_command

REQUIRES = ['platformdirs>=3', 'granian>=2.0; extra == "server"',
            'uvloop>=0.19; sys_platform != "win32" and extra == "server"', 'requests>=2.28; extra == "server"',
            'watchdog>=3; extra == "desktop"', 'jeepney>=0.8; sys_platform == "linux" and extra == "desktop"']


def test_an_extras_requirements_for_this_platform():
    assert extra_requirements("server", REQUIRES, "linux") == ["granian>=2.0", "uvloop>=0.19", "requests>=2.28"]
    assert extra_requirements("server", REQUIRES, "win32") == ["granian>=2.0", "requests>=2.28"]
    assert extra_requirements("desktop", REQUIRES, "darwin") == ["watchdog>=3"]


def pipx_venv(root: Path) -> Path:
    """A pipx layout as pipx writes it (PIPX_HOME/venvs/mailtracker with its metadata): written here."""
    venv = root / "venvs" / "mailtracker"
    venv.mkdir(parents=True)
    (venv / "pipx_metadata.json").write_text("{}")
    return venv


def test_the_install_command_fits_how_mailtracker_was_installed(tmp_path):
    requires = REQUIRES
    user = install_command("server", prefix=pipx_venv(tmp_path / "pipx"), python="/x/python", direct_url={},
                           requires=requires)
    assert user == "pipx inject mailtracker 'granian>=2.0' 'uvloop>=0.19' 'requests>=2.28'"
    system = install_command("server", prefix=Path("/opt/pipx/venvs/mailtracker"), python="p", direct_url={},
                             requires=requires)
    assert system.startswith("sudo env PIPX_HOME=/opt/pipx PIPX_BIN_DIR=/usr/local/bin pipx inject mailtracker 'granian>=2.0'")
    checkout = install_command("desktop", prefix=tmp_path / "venv", python="/v/bin/python",
                               direct_url={"dir_info": {"editable": True}, "url": "file:///src/mt"},
                               requires=requires)
    assert checkout == "/v/bin/python -m pip install -e '/src/mt[desktop]'"
    plain = install_command("desktop", prefix=tmp_path / "venv", python="/v/bin/python", direct_url={},
                            requires=requires)
    assert plain == "/v/bin/python -m pip install 'watchdog>=3'" + (" 'jeepney>=0.8'" if sys.platform == "linux" else "")


def hidden(tmp_path: Path, *modules: str) -> dict:
    """An environment whose Python cannot import ``modules``: a sitecustomize (a stand-in for an
    install without that extra) refuses them."""
    folder = tmp_path / "hide"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(
        "import sys\n"
        "class Hide:\n"
        f"    names = {modules!r}\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in self.names:\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "        return None\n"
        "sys.meta_path.insert(0, Hide())\n")
    return {**os.environ, "PYTHONPATH": str(folder)}


@pytest.mark.parametrize("command, extra", [(["serve", "--port", "0"], "server"), (["demo", "--port", "0"], "server"),
                                            (["watch"], "desktop")])
def test_a_command_without_its_extra_says_so_first_and_how_to_add_it(home, tmp_path, command, extra):
    script = Path(sys.executable).parent / "mailtracker"
    proc = subprocess.run([str(script), "--home", str(home.data_dir), *command], capture_output=True, text=True,
                          timeout=60, env=hidden(tmp_path, "granian", "watchdog"))
    assert proc.returncode == 13, proc.stderr
    assert proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"mailtracker: 'mailtracker {command[0]}' needs mailtracker's '{extra}' extra")
    # This suite runs from a checkout's editable install: the fix is that checkout's pip install -e.
    root = Path(__file__).resolve().parents[1]
    assert line.endswith(f"-m pip install -e '{root}[{extra}]'") or line.endswith(f"-m pip install -e {root}[{extra}]")
