"""End to end: the Track button, its tooltip and its popup tell the truth before Send in a real
Thunderbird, with the helper removed and with the secret removed, each with the one fix."""

import json
import os
import signal
from pathlib import Path

import pytest

from tests.e2e.thunderbird import wait_until

pytestmark = pytest.mark.slow


def open_compose(tb, subject: str) -> int:
    """An HTML compose window left open (as a user writing), and its tab id."""
    tb.compose_and_send(subject, "rcpt@example.net", command=None)
    return tb.compose_tab_id(subject)


def track_state(tb, tab_id: int) -> dict:
    """What a user sees: the Track popup's headline and problem, then the button's tooltip."""
    return json.loads(tb.in_extension_tab(f"compose_popup/popup.html?tab={tab_id}", """
        await waitFor(d => d.body.dataset.ready, "the Track popup");
        const browser = doc().defaultView.wrappedJSObject.browser;
        const title = await browser.composeAction.getTitle(Cu.cloneInto({ tabId: args[0] }, doc().defaultView));
        return JSON.stringify({
            headline: doc().getElementById("headline").textContent,
            problem: doc().getElementById("helperProblem").hidden ? "" : doc().getElementById("helperProblem").textContent,
            title,
        });
    """, [tab_id]))


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
