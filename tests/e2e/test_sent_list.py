"""End to end with a real Thunderbird: a recipient's open puts the Opened tag on the
Sent copy and a number on the toolbar badge; a reminder that comes due unopened tags
the mail "Not opened yet" and raises a notification. Read back through the add-on's own
WebExtension APIs, as the add-on sees Thunderbird."""

import json
import os
import subprocess
import threading
import time

import pytest
import requests

from mailtracker.core.csvcodec import header_line
from mailtracker.core.hitline import HIT_COLUMNS, format_hit_line
from mailtracker.core.timestamps import parse_timestamp, utc_timestamp
from tests.conftest import row_of, run_cli, wait_for
from tests.display import XDisplay
from tests.e2e.test_thunderbird import send_tracked, tag_rows
from tests.e2e.thunderbird import wait_until

pytestmark = pytest.mark.slow

OPENED, NOT_OPENED = "$mt_opened", "$mt_notopened"
OUTLOOK = "Mozilla/5.0 (Windows NT 10.0) Outlook/16.0"
# Set by a developer to take the README's picture (needs Thunderbird under Xvfb, see conftest).
SCREENSHOT = os.environ.get("MAILTRACKER_E2E_SCREENSHOT")

# Runs in an extension page: `api` is the add-on's `browser`, `obj` makes an argument of the page's.
API = """
const win = doc().defaultView.wrappedJSObject;
const api = win.browser;
const obj = (value) => win.JSON.parse(JSON.stringify(value));
const plain = (value) => JSON.parse(win.JSON.stringify(value));
const sleep = (ms) => new Promise(r => setTimeout(r, ms));
async function copies(id) {
  const page = plain(await api.messages.query(obj({ headerMessageId: id })));
  return page.messages.filter(m => m.folder.name !== "mailtracker-staging");
}
"""


def in_add_on(desktop, script: str, args=None, timeout_s: float = 60.0):
    """Run ``script`` (with API's helpers) in the add-on's options page; its return value comes back."""
    return desktop.tb.in_extension_tab("options/options.html", """
        await waitFor(d => d.getElementById("cleanSentCopy"), "the options page");
    """ + API + script, args, timeout_s=timeout_s)


def badge(desktop) -> str:
    return in_add_on(desktop, "return await api.action.getBadgeText(obj({}));")


def wait_for_tag(desktop, message_id: str, key: str, timeout_s: float = 30.0) -> dict:
    """Polls the Sent copy's tags (every 20 ms, bounded) until ``key`` is on it: when it was seen
    (epoch ms) and the copy's tags and folder."""
    return json.loads(in_add_on(desktop, """
        const [id, key, bound] = args;
        const until = Date.now() + bound;
        while (Date.now() < until) {
          const found = (await copies(id)).find(m => m.tags.includes(key));
          if (found) return JSON.stringify({ at: Date.now(), tags: found.tags, folder: found.folder.name });
          await sleep(20);
        }
        throw new Error("no copy of " + id + " was tagged " + key + " within " + bound + " ms");
    """, [message_id, key, timeout_s * 1000], timeout_s=timeout_s + 30))


def test_an_open_tags_the_sent_copy_and_counts_on_the_badge(desktop):
    """A recipient's fetch: the clean Sent copy gets the Opened tag (the user's own tags kept),
    the badge goes from nothing to 1, and the Tracked mail page clears it."""
    desktop.tb.in_extension_tab("tracked/tracked.html", "await waitFor(d => d.getElementById('tags'), 'the page');")
    assert badge(desktop) == ""
    message, tag_id = send_tracked(desktop, "Sent list e2e")
    message_id = message["Message-ID"].strip("<>")
    # The user's own tag on the Sent copy, once the clean copy is there.
    in_add_on(desktop, """
        const [id] = args;
        for (let i = 0; i < 400; i++) {
          const [copy] = await copies(id);
          if (copy && copy.folder.name === "Sent") {
            await api.messages.update(copy.id, obj({ tags: ["$label1"] }));
            return true;
          }
          await sleep(25);
        }
        throw new Error("no Sent copy of " + id);
    """, [message_id])

    reached = {}

    def watch_register():
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "at" not in reached:
            if row_of(desktop.home, tag_id)["opens"] >= 1:
                reached["at"] = time.time() * 1000
            time.sleep(0.005)

    watcher = threading.Thread(target=watch_register)
    watcher.start()
    reply = requests.get(f"{desktop.server.base}/p/{tag_id}.gif", headers={"User-Agent": OUTLOOK})
    assert reply.status_code == 200
    try:
        tagged = wait_for_tag(desktop, message_id, OPENED)
    finally:
        watcher.join()
    assert "at" in reached, "the open never reached the register"
    print(f"\nan open reached the register and showed in the Sent list {tagged['at'] - reached['at']:.0f} ms later")
    assert tagged["folder"] == "Sent" and sorted(tagged["tags"]) == ["$label1", OPENED]
    assert badge(desktop) == "1"
    shown = desktop.tb.in_extension_tab("tracked/tracked.html", """
        const [subject] = args;
        const rows = d => [...d.querySelectorAll("#tags tr.mail")].filter(tr => tr.textContent.includes(subject));
        await waitFor(d => rows(d).length, "the mail on the Tracked mail page");
        const choose = (value) => {
          const select = doc().getElementById("filter");
          select.value = value;
          const change = doc().createEvent("HTMLEvents");
          change.initEvent("change", true, true);
          select.dispatchEvent(change);
        };
        choose("notOpened");
        await waitFor(d => !rows(d).length, "the opened mail filtered out");
        choose("opened");
        const [row] = await waitFor(d => rows(d).length && rows(d), "the opened mail filtered in");
        row.click();
        const open = await waitFor(d => d.querySelector("#tags tr.details li"), "its opens");
        return open.textContent;
    """, ["Sent list e2e"])
    print(f"the Tracked mail page lists the open as: {shown}")
    assert "Windows" in shown, shown  # the device and client of the open
    deadline = time.monotonic() + 10
    while badge(desktop) != "" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert badge(desktop) == ""


def test_a_reminder_due_unopened_tags_the_mail_and_notifies(desktop):
    """A reminder of 2 'days' (a test-only day of one second): once due with no open, the Sent copy
    is tagged Not opened yet, a notification names the mail, and 'mailtracker list' says it is due."""
    record_alerts(desktop)
    in_add_on(desktop, "await api.storage.local.set(obj({ reminderDayMs: 1000, remindDefaults: { id1: 2 } }));")
    try:
        message, tag_id = send_tracked(desktop, "Reminder e2e")
        wait_for(lambda: any(row["remind_at"] for row in tag_rows(desktop.home, tag_id)), timeout=20,
                 what="the reminder kept in tags.csv")
    finally:
        in_add_on(desktop, "await api.storage.local.remove(obj(['reminderDayMs', 'remindDefaults']));")
    message_id = message["Message-ID"].strip("<>")
    tagged = wait_for_tag(desktop, message_id, NOT_OPENED, timeout_s=40)
    assert tagged["folder"] == "Sent" and OPENED not in tagged["tags"]
    notices = wait_until(lambda: [alert for alert in shown_alerts(desktop)
                                  if alert["name"].startswith(f"mailtracker-mail:reminder:{tag_id}")],
                         20, "the reminder's notification")
    assert len(notices) == 1 and notices[0]["name"].endswith(":" + message_id)
    assert notices[0]["title"] == "Not opened yet: “Reminder e2e”"
    row = row_of(desktop.home, tag_id)
    assert row["remind_at"] and row["opens"] == 0
    assert "(due)" in run_cli("list", home=desktop.home).stdout
    if SCREENSHOT:
        show_sent_folder(desktop, SCREENSHOT)


def test_opens_that_arrive_together_are_one_notification(desktop):
    """Two recipients' opens that the helper counts in one pass: Thunderbird shows one
    notification naming both mails, not two (the lines land in one write, so one fold sees both)."""
    record_alerts(desktop)
    mails = [send_tracked(desktop, subject) for subject in ("Together e2e one", "Together e2e two")]
    hits = desktop.server.hits_dir / f"hits-e2e-{utc_timestamp()[:10]}.csv"
    lines = b"".join(format_hit_line(f"together.{n + 1:x}", utc_timestamp(), tag_id, "GET", "203.0.113.0",
                                     OUTLOOK, "") for n, (_, tag_id) in enumerate(mails))
    hits.write_bytes(header_line(HIT_COLUMNS) + lines)
    notices = wait_until(lambda: [alert for alert in shown_alerts(desktop)
                                  if "Together e2e" in (alert["text"] or "")], 30, "the notification of the opens")
    assert len(notices) == 1, notices
    assert notices[0]["name"].startswith("mailtracker-group:group:2:")
    assert notices[0]["title"] == "2 tracked emails opened"
    assert "“Together e2e one”" in notices[0]["text"] and "“Together e2e two”" in notices[0]["text"]
    assert all(row_of(desktop.home, tag_id)["opens"] == 1 for _, tag_id in mails)


# Thunderbird shows an add-on's notification through its alerts service; a headless one has
# nowhere to show it, so the test puts a recording one in its place (only in this test run).
# Each alert's listener is kept: click_alert tells it the user clicked, as the real service does.
RECORD_ALERTS = """
const win = Services.wm.getMostRecentWindow("mail:3pane");
if (!win.mailtrackerAlerts) {
  const shown = win.mailtrackerAlerts = [];
  const listeners = win.mailtrackerAlertListeners = new Map();
  const recorder = {
    QueryInterface: ChromeUtils.generateQI(["nsIAlertsService"]),
    showAlert(alert, listener) {
      shown.push({ name: alert.name, title: alert.title, text: alert.text });
      listeners.set(alert.name, { listener, cookie: alert.cookie });
      listener?.observe(null, "alertshow", alert.cookie);
    },
    showAlertNotification() {},
    closeAlert() {},
  };
  const factory = { createInstance: (iid) => recorder.QueryInterface(iid) };
  Components.manager.QueryInterface(Ci.nsIComponentRegistrar).registerFactory(
    Components.ID("{5a8e1f3e-3c1b-4f39-9f55-7e0c3a1d2b64}"), "mailtracker test alerts",
    "@mozilla.org/alerts-service;1", factory);
}
resolve(null);
"""


def record_alerts(desktop) -> None:
    desktop.tb.js(RECORD_ALERTS)


def shown_alerts(desktop) -> list:
    return desktop.tb.js('resolve(Services.wm.getMostRecentWindow("mail:3pane").mailtrackerAlerts || []);')


def click_alert(desktop, name: str) -> None:
    """The user clicks the notification of this name (as the alerts service reports a click)."""
    desktop.tb.js("""
        const shown = Services.wm.getMostRecentWindow("mail:3pane").mailtrackerAlertListeners?.get(args[0]);
        if (!shown) throw new Error("no notification " + args[0]);
        shown.listener.observe(null, "alertclickcallback", shown.cookie);
        resolve(null);
    """, [name])


def show_sent_folder(desktop, path: str, identity_email: str = "") -> None:
    """Select Local Folders › Sent (or the Sent folder of the account of ``identity_email``) in the
    main window and take a picture of the screen."""
    desktop.tb.js("""
        const win = Services.wm.getMostRecentWindow("mail:3pane");
        win.moveTo(0, 0);
        win.resizeTo(1280, 720);
        win.focus();
        const identity = MailServices.accounts.allIdentities.find(i => args[0] && i.email == args[0]);
        const sent = identity
          ? MailServices.accounts.getServersForIdentity(identity)[0].rootFolder.getFolderWithFlags(
              Ci.nsMsgFolderFlags.SentMail)
          : MailServices.accounts.localFoldersServer.rootFolder.getChildNamed("Sent");
        // The classic table of messages, with its Tags column shown.
        Services.prefs.setIntPref("mail.pane_config.dynamic", 0);
        Services.prefs.setIntPref("mail.threadpane.listview", 1);
        const about3Pane = win.document.getElementById("tabmail").currentAbout3Pane;
        about3Pane.displayFolder(sent.URI);
        await new Promise(r => setTimeout(r, 500));
        const pane = about3Pane.threadPane;
        const tags = pane.columns?.find(column => column.id === "tagsCol");
        if (tags) {
          tags.hidden = false;
          pane.updateColumns?.();
          // Rows drawn before the column was there are drawn again.
          about3Pane.threadTree.reset?.();
        }
        await new Promise(r => setTimeout(r, 1000));
        resolve(null);
    """, [identity_email])
    # Through the X protocol (tests/display.py): ImageMagick's import is not among the packages.
    XDisplay(os.environ["DISPLAY"]).screenshot().save(path)


def test_a_reminder_default_set_in_the_options_reaches_tags_csv(desktop):
    """The options page's reminder days for the identity: the next tracked mail is kept with a
    reminder that many (real) days after its send."""
    set_days = """
        const box = await waitFor(d => d.querySelector("#remindIdentities input[type=number]"), "the reminder days");
        box.value = String(args[0]);
        const change = doc().createEvent("HTMLEvents");
        change.initEvent("change", true, true);
        box.dispatchEvent(change);
        await waitFor(d => !d.getElementById("saved").hidden, "the setting to be saved");
        return box.value;
    """
    assert desktop.tb.in_extension_tab("options/options.html", set_days, [3]) == "3"
    try:
        sent_at = time.time()
        _, tag_id = send_tracked(desktop, "Default reminder e2e")
        row = wait_for(lambda: next((r for r in tag_rows(desktop.home, tag_id) if r["remind_at"]), None),
                       timeout=20, what="the reminder kept in tags.csv")
    finally:
        desktop.tb.in_extension_tab("options/options.html", set_days, [0])
    due = parse_timestamp(row["remind_at"]) - sent_at
    assert 3 * 86400 - 60 < due < 3 * 86400 + 60, due
