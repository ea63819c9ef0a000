"""End to end with a real Thunderbird: the follow-up of a tracked mail. A reminder "if no reply"
(the identity's default in the options) comes due unanswered: its notification names whom the
follow-up goes to, and a click on it opens Thunderbird's reply to the Sent copy, "Re: …",
addressed to the recipients in their own fields and threaded on the original. On the Tracked
mail page, a mail one of three answered offers "Write a follow-up" to the other two. The compose
windows are read back through the add-on's compose API, as the add-on sees them."""

import json
import os
import time

import pytest

from mailtracker.core.timestamps import utc_timestamp
from mailtracker.desktop.replies import Reply, record_reply
from tests.conftest import row_of, wait_for
from tests.display import XDisplay
from tests.e2e.test_sent_list import click_alert, in_add_on, record_alerts, shown_alerts
from tests.e2e.test_thunderbird import pixels_in, sent_row, tag_rows, token_of
from tests.e2e.thunderbird import wait_until

pytestmark = pytest.mark.slow

ANN, BOB, CY = "Ann Example <ann@example.net>", "Bob Example <bob@example.net>", "cy@example.net"
# Set by a developer to take the README's picture (needs Thunderbird under Xvfb, see conftest).
SCREENSHOT = os.environ.get("MAILTRACKER_E2E_SCREENSHOT")

# The open compose window of this subject, through the add-on's APIs: its details, and the
# References Thunderbird will send (read in the window, which the API does not show).
COMPOSE_OF = """
const [subject, bound] = args;
const until = Date.now() + bound;
while (Date.now() < until) {
  for (const tab of plain(await api.tabs.query(obj({ type: "messageCompose" })))) {
    const details = plain(await api.compose.getComposeDetails(tab.id));
    if (details.subject === subject) {
      return JSON.stringify({ tabId: tab.id, to: details.to, cc: details.cc, bcc: details.bcc,
        subject: details.subject, individually: plain(await api.storage.session.get("compose:" + tab.id)) });
    }
  }
  await sleep(50);
}
throw new Error("no compose window " + subject + " within " + bound + " ms");
"""

# The References of the compose window of this subject, and then it is closed unsent and unsaved.
REFERENCES_AND_CLOSE = """
const [subject] = args;
for (const win of Services.wm.getEnumerator("msgcompose")) {
  if (win.document.getElementById("msgSubject")?.value === subject) {
    const references = win.gMsgCompose.compFields.references;
    win.gContentChanged = false;
    win.gMsgCompose.bodyModified = false;
    win.gAutoSaveKickedIn = false;
    win.close();
    resolve(references);
    return;
  }
}
throw new Error("no compose window " + subject);
"""


def show_compose(desktop, subject: str, path: str) -> None:
    """Bring the compose window of this subject to the front and take a picture of the screen."""
    desktop.tb.js("""
        for (const win of Services.wm.getEnumerator("msgcompose")) {
          if (win.document.getElementById("msgSubject")?.value === args[0]) {
            win.moveTo(0, 0); win.resizeTo(1000, 640); win.focus();
          }
        }
        await new Promise(r => setTimeout(r, 1500));  // painted: only for the picture
        resolve(null);
    """, [subject])
    # The compose window alone, not the main window beside it.
    XDisplay(os.environ["DISPLAY"]).screenshot().crop((0, 0, 1000, 640)).save(path)


def compose_of(desktop, subject: str, timeout_s: float = 30.0) -> dict:
    return json.loads(in_add_on(desktop, COMPOSE_OF, [subject, timeout_s * 1000], timeout_s=timeout_s + 30))


def references_and_close(desktop, subject: str) -> str:
    references = desktop.tb.js(REFERENCES_AND_CLOSE, [subject])
    wait_until(lambda: subject not in desktop.tb.compose_windows(), 20, "the follow-up closed")
    return references


def send_to_three(desktop, subject: str):
    """A tracked mail to Ann and Bob, Cc Cy, from the default identity: its Message-ID and tag."""
    desktop.tb.compose_and_send(subject, f"{ANN}, {BOB}", cc=CY)
    received = desktop.sink.wait_for_message(subject)
    (pixel,) = pixels_in(received, desktop)
    tag_id = token_of(pixel)
    wait_for(lambda: sent_row(desktop.home, tag_id), timeout=20, what="the tag marked sent")
    return received["Message-ID"].strip("<>"), tag_id


def test_a_reminder_if_no_reply_due_unanswered_opens_the_follow_up_on_its_click(desktop):
    """The identity's default reminder is "if no reply" (chosen in the options page) after 2 'days'
    (a test-only day of one second): the mail is kept so; once due, the notification says whom the follow-up goes to and
    its click opens a reply to the Sent copy: "Re: …", To Ann and Bob, Cc Cy, threaded on it."""
    record_alerts(desktop)
    # The condition as a user picks it in the options, for the default identity (listed first).
    assert desktop.tb.in_extension_tab("options/options.html", """
        const select = await waitFor(d => d.querySelector("#remindIdentities select.remindIf"), "the condition");
        select.value = "no_reply";
        const change = doc().createEvent("HTMLEvents");
        change.initEvent("change", true, true);
        select.dispatchEvent(change);
        await waitFor(d => !d.getElementById("saved").hidden, "the setting to be saved");
        return select.closest("li").textContent;
    """).endswith(desktop.tb.js("resolve(MailServices.accounts.defaultAccount.defaultIdentity.email);") + ">")
    in_add_on(desktop, "await api.storage.local.set(obj({ reminderDayMs: 1000, remindDefaults: { id1: 2 } }));")
    try:
        message_id, tag_id = send_to_three(desktop, "Follow-up e2e")
        kept = wait_for(lambda: next((row for row in tag_rows(desktop.home, tag_id) if row["remind_at"]), None),
                        timeout=20, what="the reminder kept in tags.csv")
    finally:
        in_add_on(desktop, "await api.storage.local.remove(obj(['reminderDayMs', 'remindDefaults', 'remindIfDefaults']));")
    assert kept["remind_if"] == "no_reply", "the identity's default condition"
    (notice,) = wait_until(lambda: [alert for alert in shown_alerts(desktop)
                                    if alert["name"].startswith(f"mailtracker-mail:reminder:{tag_id}")],
                           40, "the reminder's notification")
    assert notice["title"] == "No reply yet: “Follow-up e2e”"
    assert notice["text"].endswith(f"Click to write a follow-up.\nFollow-up to: {ANN}, {BOB}, {CY}"), notice["text"]
    clicked = time.monotonic()
    click_alert(desktop, notice["name"])
    follow_up = compose_of(desktop, "Re: Follow-up e2e")
    print(f"\nthe follow-up's compose window was ready {time.monotonic() - clicked:.1f} s after the click")
    assert (follow_up["to"], follow_up["cc"], follow_up["bcc"]) == ([ANN, BOB], [CY], [])
    assert follow_up["individually"] == {}, "an ordinary compose: tracked as the identity's default says"
    assert message_id in references_and_close(desktop, "Re: Follow-up e2e")
    assert row_of(desktop.home, tag_id)["replies"] == 0


def test_the_tracked_mail_page_writes_the_follow_up_to_the_two_of_three_who_did_not_answer(desktop):
    """Bob answered (recorded in replies.csv as the host records a reply the add-on judged; the
    judging is test_replies.py's): the Tracked mail page's "Write a follow-up" opens the reply To
    Ann, Cc Cy; its tooltip names Bob as left out."""
    message_id, tag_id = send_to_three(desktop, "Partly answered e2e")
    record_reply(desktop.home, Reply(tag=tag_id, reply_id=f"bob.{time.time_ns()}@example.net",
                                     sender="bob@example.net", time=utc_timestamp(), verdict="reply",
                                     reason="a person's reply"))
    wait_for(lambda: row_of(desktop.home, tag_id).get("replies") == 1, timeout=30, what="Bob's reply folded")
    title = desktop.tb.in_extension_tab("tracked/tracked.html", """
        const [subject] = args;
        const row = d => [...d.querySelectorAll("#tags tr.mail")].find(tr => tr.textContent.includes(subject));
        const button = await waitFor(d => row(d)?.querySelector("button.followUp"), "Write a follow-up");
        button.click();
        // The page stays open until the follow-up is (a user's would): its message must leave it.
        const opened = () => [...Services.wm.getEnumerator("msgcompose")].some(
          w => w.document.getElementById("msgSubject")?.value === "Re: " + subject);
        await waitFor(opened, "the follow-up's compose window");
        return button.title;
    """, ["Partly answered e2e"], timeout_s=60)
    assert f"Follow-up to: {ANN}, {CY}" in title and f"Left out: {BOB} (replied)" in title, title
    follow_up = compose_of(desktop, "Re: Partly answered e2e")
    assert (follow_up["to"], follow_up["cc"]) == ([ANN], [CY])
    if SCREENSHOT:
        show_compose(desktop, "Re: Partly answered e2e", SCREENSHOT.replace(".png", "-follow-up.png"))
    assert message_id in references_and_close(desktop, "Re: Partly answered e2e")
