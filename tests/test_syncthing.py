"""Syncthing: the settings mailtracker prints, and two real Syncthing instances
on loopback carrying hits from a real pixel server to the desktop's register."""

import json
import shutil
import threading
import time

import pytest
import requests

from mailtracker.core.paths import Home
from mailtracker.core.settings import init_home, load_config
from mailtracker.desktop.register import read_register
from mailtracker.desktop.tags import mint_tag
from mailtracker.desktop.watcher import Watcher
from tests.conftest import AGENT, PixelServer, run_cli, wait_for
from tests.syncthing_pair import FOLDER_ID, Pair
from tests.tools import require_tool

DELIVERY_BOUND_S = 3.0


@pytest.fixture(scope="session")
def pair(tmp_path_factory):
    """Two Syncthing instances, connected, started once for the whole session."""
    require_tool("syncthing", "syncthing")
    pair = Pair(tmp_path_factory.mktemp("syncthing")).start()
    yield pair
    pair.stop()


@pytest.fixture
def desktop(tmp_path, home, pair) -> Home:
    """A desktop home that reads its hits from the desktop side's Syncthing folder."""
    desktop = Home.locate(str(tmp_path / "desktop"))
    init_home(desktop, hits_dir=str(pair.desktop.folder))
    shutil.copy(home.secret_path, desktop.secret_path)
    return desktop


def test_settings_name_both_sides(home):
    """'syncthing settings' gives send-only for the server, receive-only + ignoreDelete for the desktop."""
    doc = json.loads(run_cli("syncthing", "settings", "--json", home=home).stdout)
    assert doc["server"]["type"] == "sendonly" and doc["desktop"]["type"] == "receiveonly"
    assert doc["server"]["fsWatcherDelayS"] == doc["desktop"]["fsWatcherDelayS"] == 1
    assert doc["desktop"]["ignoreDelete"] is True and "ignoreDelete" not in doc["server"]
    assert doc["desktop"]["path"] == str(home.hits_dir(load_config(home)))
    assert doc["server"]["path"] == "/var/lib/mailtracker/hits"
    text = run_cli("syncthing", "settings", home=home).stdout
    assert "Send Only" in text and "Receive Only" in text and "Fs Watcher Delay S" in text


@pytest.mark.slow
def test_a_hit_on_the_server_reaches_the_desktop_register_within_3_s(home, desktop, pair):
    """Pixel server -> hits file -> Syncthing (fsWatcherDelayS=1) -> watcher -> register.csv, in under 3 s."""
    config = load_config(desktop)
    tag = mint_tag(desktop, config, name="Synced")
    server = PixelServer(home, "--server-id", "st1", hits_dir=pair.server.folder)
    folded = threading.Event()

    def opened(result):
        if result.new_hits and tag.id in {row["id"] for row in read_register(desktop.register_path)
                                          if int(row["hits"])}:
            folded.set()

    try:
        with Watcher(desktop, config, on_fold=opened):
            started = time.monotonic()
            assert requests.get(server.url(tag.id), headers={"User-Agent": AGENT}).ok
            assert folded.wait(DELIVERY_BOUND_S + 2), "the hit never reached the desktop's register"
            took = time.monotonic() - started
    finally:
        server.stop()
    assert took < DELIVERY_BOUND_S, f"took {took:.2f} s"


@pytest.mark.slow
def test_check_names_wrong_settings_and_fix_repairs_them(desktop, pair):
    """The check passes on a good setup, names each wrong setting, and --fix puts them right."""
    key = ["--address", pair.desktop.base, "--api-key", pair.desktop.api_key]
    good = run_cli("syncthing", "check", *key, home=desktop)
    assert "BROKEN" not in good.stdout and "other side connected" in good.stdout
    pair.desktop.api(f"/rest/config/folders/{FOLDER_ID}", "PATCH",
                     json={"fsWatcherDelayS": 10, "ignoreDelete": False})
    try:
        bad = run_cli("syncthing", "check", "--syncthing-home", str(pair.desktop.home), home=desktop, check=False)
        assert bad.returncode == 90
        assert "BROKEN  watcher delay: fsWatcherDelayS = 10, should be 1" in bad.stdout
        assert "BROKEN  ignore deletes" in bad.stdout and "--fix" in bad.stdout
        fixed = run_cli("syncthing", "check", "--fix", *key, home=desktop)
        assert "Changed fsWatcherDelayS = 1, ignoreDelete = True" in fixed.stdout and "BROKEN" not in fixed.stdout
    finally:
        pair.desktop.api(f"/rest/config/folders/{FOLDER_ID}", "PATCH",
                         json={"fsWatcherDelayS": 1, "ignoreDelete": True})
    folder = pair.desktop.api(f"/rest/config/folders/{FOLDER_ID}")
    assert folder["fsWatcherDelayS"] == 1 and folder["ignoreDelete"] is True
    server_side = run_cli("syncthing", "check", "--side", "server", "--path", str(pair.server.folder),
                          "--address", pair.server.base, "--api-key", pair.server.api_key, home=desktop)
    assert "ok   folder type: type = 'sendonly'" in server_side.stdout


@pytest.mark.slow
def test_a_wrong_api_key_is_named(desktop, pair):
    """A refused API key is reported with exit code 72 and where to find the right one."""
    proc = run_cli("syncthing", "check", "--address", pair.desktop.base, "--api-key", "wrong",
                   home=desktop, check=False)
    assert proc.returncode == 72 and "refused the API key" in proc.stderr


@pytest.mark.slow
def test_files_the_server_prunes_stay_on_the_desktop(home, pair):
    """--retention-days deletes an old file on the server; the desktop (ignoreDelete) keeps its copy."""
    old = "hits-st2-2001-01-01.csv"
    (pair.server.folder / old).write_bytes(b"\xef\xbb\xbfhit_id,time,tag,method,client,user_agent,referer\r\n")
    wait_for(lambda: (pair.desktop.folder / old).exists(), timeout=10, what="the old file on the desktop")
    server = PixelServer(home, "--server-id", "st2", "--retention-days", "1", hits_dir=pair.server.folder)
    server.stop()
    assert not (pair.server.folder / old).exists()

    def deletion_seen_and_settled():
        info = pair.desktop.api(f"/rest/db/file?folder={FOLDER_ID}&file={old}")
        status = pair.desktop.api(f"/rest/db/status?folder={FOLDER_ID}")
        return info["global"]["deleted"] and status["state"] == "idle" and status["needTotalItems"] == 0

    wait_for(deletion_seen_and_settled, timeout=10, interval=0.1, what="the desktop to learn of the deletion")
    assert (pair.desktop.folder / old).exists()
