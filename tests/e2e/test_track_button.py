"""End to end: the Track button, its tooltip and its popup tell the truth before Send in a real
Thunderbird, with the helper removed, with the secret removed and with the pixel server stopped,
each with the one fix; the options page says how the pixel server was last seen."""

import json
import os
import signal
import threading
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Optional

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


@contextmanager
def pulling_from_a_stopped_server(desktop):
    """config.toml names a public pixel address (else "no recipient can reach it" is what the
    add-on says) and pulls hits from a server on loopback that is not running yet; yields its
    URL and port. The add-on's helpers are restarted to take it, and again at the end."""
    tb, home = desktop.tb, desktop.home
    before = load_config(home)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    save_config(home, replace(before, server_url="https://t.example.org", pull_urls=(url,)))
    restart_helpers(tb)
    try:
        yield url, port
    finally:
        save_config(home, before)
        restart_helpers(tb)


def wait_for_sighting(home, url: str, outcome: str) -> None:
    """Until the helper's daemon notes ``outcome`` for ``url`` in servers-seen.json."""
    wait_until(lambda: url in read_sightings(home) and read_sightings(home)[url].outcome == outcome,
               60, f"the helper's daemon to note the server as {outcome}")


def screenshot_later(name: str, box=None) -> Optional[threading.Timer]:
    """With MAILTRACKER_E2E_SCREENSHOT set: a picture of the display in 2.5 s (while the page
    lingers), saved beside that path with ``name``; else None."""
    if not SCREENSHOT:
        return None
    picture = threading.Timer(2.5, lambda: XDisplay(os.environ["DISPLAY"]).screenshot(box).save(
        SCREENSHOT.replace(".png", f"-{name}.png")))
    picture.start()
    return picture


def test_track_button_with_the_pixel_server_stopped_says_it_did_not_answer(desktop, tmp_path):
    """The add-on's helper pulls from a pixel server that is not running: before Send the popup
    and the tooltip say the mail is tracked but the server did not answer (when, why, and
    'doctor --server'); the server started, the popup says plainly tracked."""
    tb, home = desktop.tb, desktop.home
    with pulling_from_a_stopped_server(desktop) as (url, port):
        tab_id = open_compose(tb, "Server stopped e2e")
        try:
            # The popup's question reaches the add-on's new helper, whose daemon pulls and fails.
            track_state(tb, tab_id)
            wait_for_sighting(home, url, UNREACHABLE)
            picture = screenshot_later("server-down")
            state = track_state(tb, tab_id, linger=bool(picture))
            if picture:
                picture.join()
            assert state["headline"] == "This email will be tracked, but opens are not arriving from your pixel server", state
            assert "the pixel server did not answer at" in state["problem"], state
            assert "(connection refused)" in state["problem"] and "mailtracker doctor --server" in state["problem"], state
            assert "not arriving" in state["title"], state

            server = PixelServer(home, "--serve-hits", "--port", str(port), hits_dir=tmp_path / "served")
            try:
                wait_for_sighting(home, url, REACHABLE)
                state = track_state(tb, tab_id)
                assert state["headline"] == "This email will be tracked" and state["problem"] == "", state
            finally:
                server.stop()
        finally:
            close_compose(tb, "Server stopped e2e")


def options_server_seen(tb, linger: bool = False) -> list:
    """The options page's lines under "Pixel server" saying how it was last seen: [text, class]
    each (``linger``: the page stays up 4 s more, for a screenshot)."""
    return json.loads(tb.in_extension_tab("options/options.html", """
        await waitFor(d => !d.getElementById("serverSeen").hidden, "the pixel server as last seen");
        if (args[0]) await new Promise(r => setTimeout(r, 4000));
        return JSON.stringify([...doc().querySelectorAll("#serverSeen li")].map(li => [li.textContent, li.className]));
    """, [linger]))


def test_options_page_says_how_the_pixel_server_was_last_seen(desktop, tmp_path):
    """The options page under "Pixel server": hits brought by a sync tool say when they last
    arrived, never an alarm; a pull server that is not running 'did not answer at <time>
    (connection refused)' with 'doctor --server', as the problem it is; started, it 'has answered
    this computer's pulls since <time>'."""
    tb, home = desktop.tb, desktop.home
    (synced,) = options_server_seen(tb)
    assert synced[0].startswith("Opens arrive through your sync tool;") and synced[1] == "note", synced
    with pulling_from_a_stopped_server(desktop) as (url, port):
        options_server_seen(tb)  # the add-on's new helper starts, and its daemon pulls
        wait_for_sighting(home, url, UNREACHABLE)
        picture = screenshot_later("options-server-down")
        (down,) = options_server_seen(tb, linger=bool(picture))
        if picture:
            picture.join()
        assert down[1] == "problem", down
        assert down[0].startswith("Last seen: the pixel server did not answer at "), down
        assert "(connection refused); opens will show once it is back." in down[0], down
        assert "mailtracker doctor --server" in down[0], down

        server = PixelServer(home, "--serve-hits", "--port", str(port), hits_dir=tmp_path / "served")
        try:
            wait_for_sighting(home, url, REACHABLE)
            (back,) = options_server_seen(tb)
        finally:
            server.stop()
        assert back[0].startswith("Last seen: the pixel server has answered this computer's pulls since "), back
        assert back[1] == "note", back
