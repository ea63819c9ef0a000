"""One real Thunderbird, SMTP sink and pixel server for the whole e2e session.

Thunderbird starts once (about 5 s) and every test drives it like a user would.
Without Thunderbird the tests are skipped on a developer machine and fail in CI
(CI=true), where skipping would hide that nothing was tested.
"""

import os
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from mailtracker.core.paths import Home
from mailtracker.core.settings import init_home, load_config, save_config
from tests.conftest import PixelServer
from tests.e2e.thunderbird import THUNDERBIRD, SmtpSink, Thunderbird
from tests.tools import unavailable

EXTENSION_DIR = Path(__file__).resolve().parents[2] / "extension"


@dataclass
class Desktop:
    home: Home
    server: PixelServer
    sink: SmtpSink
    tb: Thunderbird
    # What Thunderbird was started with, for tests that start one of their own.
    env: dict = None
    prefs: dict = None


def _require_thunderbird(binary: str = THUNDERBIRD, how: str = "apt-get install thunderbird"):
    if not os.access(binary, os.X_OK):
        unavailable(f"needs Thunderbird at {binary} ({how})")


@pytest.fixture(scope="session")
def desktop(tmp_path_factory):
    _require_thunderbird()
    with started_desktop(tmp_path_factory.mktemp("e2e"), THUNDERBIRD) as started:
        yield started


@contextmanager
def started_desktop(root: Path, binary: str):
    """A home, a pixel server, an SMTP sink and the Thunderbird at ``binary`` with the add-on."""
    user_home = root / "user"
    user_home.mkdir()
    home = Home.locate(str(root / "mailtracker"))
    init_home(home)
    env = {**os.environ, "HOME": str(user_home), "XDG_CONFIG_HOME": str(user_home / ".config"),
           "XDG_DATA_HOME": str(user_home / ".local" / "share")}
    server = PixelServer(home)
    sink = tb = None
    try:
        init_home(home, server_url=server.base)
        # The tests' recipient opens within a second of the send; a real one takes longer
        # than the delivery window, which would rightly call such a fetch a scanner's.
        save_config(home, replace(load_config(home), delivery_window_s=0))
        installed = subprocess.run([sys.executable, "-m", "mailtracker", "--home", str(home.data_dir),
                                    "install-host"], env=env, capture_output=True, text=True)
        assert installed.returncode == 0, installed.stdout + installed.stderr
        sink = SmtpSink(root)
        prefs = {
            # Extension pages in the parent process, so tests can read them like a user sees them.
            "extensions.webextensions.remote": False,
            # Optional host permissions are granted by the options page's button without a prompt.
            "extensions.webextOptionalPermissionPrompts": False,
        }
        # A picture for the README needs a real display (xvfb-run): see test_sent_list.py.
        headless = not os.environ.get("MAILTRACKER_E2E_SCREENSHOT")
        tb = Thunderbird(root, env, sink.port, extra_prefs=prefs, headless=headless, binary=binary)
        tb.install_addon(EXTENSION_DIR)
        yield Desktop(home, server, sink, tb, env, prefs)
    finally:
        if tb is not None:
            tb.stop()
        if sink is not None:
            sink.stop()
        server.stop()
