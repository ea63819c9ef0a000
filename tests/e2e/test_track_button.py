"""End to end: the Track button, its tooltip and its popup tell the truth before Send in a real
Thunderbird, with the helper removed and with the secret removed, each with the one fix."""

import json
import os
import signal
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from mailtracker.core.settings import load_config, save_config
from mailtracker.desktop.pull import REACHABLE, UNREACHABLE
from mailtracker.desktop.reachability import read_sightings
from tests.conftest import PixelServer, free_port
from tests.display import XDisplay
from tests.e2e.test_sent_list import SCREENSHOT
from tests.e2e.thunderbird import wait_until

pytestmark = pytest.mark.slow


def open_compose(tb, subject: str) -> int:
    """An HTML compose window left open (as a user writing), and its tab id."""
    tb.compose_and_send(subject, "rcpt@example.net", command=None)
    return tb.compose_tab_id(subject)


def track_state(tb, tab_id: int, linger: bool = False) -> dict:
    """What a user sees: the Track popup's headline and problem, then the button's tooltip
    (``linger``: the popup stays up 4 s more, for a screenshot)."""
    return json.loads(tb.in_extension_tab(f"compose_popup/popup.html?tab={tab_id}", """
        await waitFor(d => d.body.dataset.ready, "the Track popup");
        if (args[1]) {
          // The compose window out of the way (no window manager raises the main one).
          for (const win of Services.wm.getEnumerator("msgcompose")) win.moveTo(4000, 0);
          await new Promise(r => setTimeout(r, 4000));
        }
        const browser = doc().defaultView.wrappedJSObject.browser;
        const title = await browser.composeAction.getTitle(Cu.cloneInto({ tabId: args[0] }, doc().defaultView));
        return JSON.stringify({
            headline: doc().getElementById("headline").textContent,
            problem: doc().getElementById("helperProblem").hidden ? "" : doc().getElementById("helperProblem").textContent,
            title,
        });
    """, [tab_id, linger]))


def close_compose(tb, subject: str) -> None:
    tb.js("""
    for (const win of Services.wm.getEnumerator("msgcompose")) {
      if (win.document.getElementById("msgSubject")?.value === args[0]) {
        win.gContentChanged = false;
        win.gMsgCompose.bodyModified = false;
        win.close();
      }
    }
    resolve(null);
    """, [subject])


def helper_processes(tb):
    """The helpers this Thunderbird started (its process group), by pid."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        pgrp = int(stat.rsplit(")", 1)[1].split()[2])
        if pgrp == tb.proc.pid and b"mailtracker" in b" ".join(cmdline) and b"host" in cmdline:
            found.append(int(entry.name))
    return found


def test_track_button_with_the_helper_removed_says_not_tracked_and_install_host(desktop):
    tb = desktop.tb
    manifest = Path(desktop.env["HOME"]) / ".mozilla" / "native-messaging-hosts" / "mailtracker.helper.json"
    away = manifest.with_name("mailtracker.helper.json.away")
    tab_id = open_compose(tb, "Helper removed e2e")
    try:
        assert "will be tracked" in track_state(tb, tab_id)["headline"]  # the helper is there
        manifest.rename(away)
        for pid in helper_processes(tb):  # the add-on's open port to it dies, as on an uninstall
            os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not helper_processes(tb), 20, "the helper to end")
        state = track_state(tb, tab_id)
        assert state["headline"] == "This email will not be tracked", state
        assert "cannot find the mailtracker helper" in state["problem"] and "mailtracker install-host" in state["problem"]
        assert "will be tracked" not in state["title"] and "does not answer" in state["title"], state
    finally:
        away.rename(manifest)
        close_compose(tb, "Helper removed e2e")
    tab_id = open_compose(tb, "Helper back e2e")
    try:
        wait_until(lambda: "will be tracked" in track_state(tb, tab_id)["headline"], 30, "the helper to answer again")
    finally:
        close_compose(tb, "Helper back e2e")


def test_track_button_with_the_secret_removed_says_not_tracked_and_names_the_secret(desktop):
    tb = desktop.tb
    secret = desktop.home.secret_path
    away = secret.with_name("secret.away")
    tab_id = open_compose(tb, "Secret removed e2e")
    try:
        secret.rename(away)
        state = track_state(tb, tab_id)
        assert state["headline"] == "This email will not be tracked", state
        assert "No secret at" in state["problem"] and "need the same secret" in state["problem"], state
        assert "install-host" not in state["problem"]
        assert "cannot add the tracking image" in state["title"], state
    finally:
        away.rename(secret)
        close_compose(tb, "Secret removed e2e")


def restart_helpers(tb) -> None:
    """End the helpers Thunderbird started: the add-on starts a new one (with the home's config as
    it is now) at its next request."""
    for pid in helper_processes(tb):
        os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not helper_processes(tb), 20, "the helper to end")


def test_track_button_with_the_pixel_server_stopped_says_it_did_not_answer(desktop, tmp_path):
    """The add-on's helper pulls from a pixel server that is not running: before Send the popup
    and the tooltip say the mail is tracked but the server did not answer (when, why, and
    'doctor --server'); the server started, the popup says plainly tracked."""
    tb, home = desktop.tb, desktop.home
    before = load_config(home)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # A public pixel address (else "no recipient can reach it" is what the button says), and
    # hits pulled from a server on loopback, not running yet.
    save_config(home, replace(before, server_url="https://t.example.org", pull_urls=(url,)))
    restart_helpers(tb)
    tab_id = open_compose(tb, "Server stopped e2e")
    try:
        # The popup's question reaches the add-on's new helper, whose daemon pulls and fails.
        track_state(tb, tab_id)
        wait_until(lambda: url in read_sightings(home) and read_sightings(home)[url].outcome == UNREACHABLE,
                   60, "the helper's daemon to note the server does not answer")
        picture = threading.Timer(2.5, lambda: XDisplay(os.environ["DISPLAY"]).screenshot().save(
            SCREENSHOT.replace(".png", "-server-down.png"))) if SCREENSHOT else None
        if picture:
            picture.start()
        state = track_state(tb, tab_id, linger=bool(picture))
        if picture:
            picture.join()
        assert state["headline"] == "This email will be tracked, but opens are not arriving from your pixel server", state
        assert "the pixel server did not answer at" in state["problem"], state
        assert "(connection refused)" in state["problem"] and "mailtracker doctor --server" in state["problem"], state
        assert "not arriving" in state["title"], state

        server = PixelServer(home, "--serve-hits", "--port", str(port), hits_dir=tmp_path / "served")
        try:
            wait_until(lambda: read_sightings(home)[url].outcome == REACHABLE, 60,
                       "the helper's daemon to note the server answers again")
            state = track_state(tb, tab_id)
            assert state["headline"] == "This email will be tracked" and state["problem"] == "", state
        finally:
            server.stop()
    finally:
        save_config(home, before)
        restart_helpers(tb)
        close_compose(tb, "Server stopped e2e")
