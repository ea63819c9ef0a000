"""End to end: the Tracked mail page shows when Thunderbird sent a mail, not when its pixel was
minted (issue 23, item 12); a row from an older log says its time is the mint's, and a mail
minted but never sent says so, with no time."""

import json
import os
import threading

import pytest

from tests.conftest import rows_of
from tests.display import XDisplay
from tests.e2e.test_sent_list import SCREENSHOT
from tests.e2e.test_thunderbird import send_tracked, sent_row
from tests.e2e.thunderbird import wait_until
from tests.test_send_time import OLD_MINT, never_sent, old_sent_row

pytestmark = pytest.mark.slow


def test_the_tracked_mail_page_shows_the_send_time(desktop):
    """A mail sent from Thunderbird: its Sent cell is the send time the add-on reported (tags.csv's
    sent_at), in the page's own date format; an older log's sent mail shows its mint time marked
    'minted'; a mail minted and never sent shows 'not sent'."""
    home = desktop.home
    _, tag_id = send_tracked(desktop, "Send time e2e")
    sent_at = sent_row(home, tag_id)["sent_at"]
    assert sent_at.endswith("Z"), sent_row(home, tag_id)
    # A mail sent by an add-on from before send times were noted (no sent_at in its rows), and
    # one minted at Send and then not sent.
    old_sent_row(home, "Older log e2e")
    never_sent(home, "Never sent e2e")
    subjects = ["Send time e2e", "Older log e2e", "Never sent e2e"]
    # The add-on's helper folds what the logs got.
    wait_until(lambda: {row.subject for row in rows_of(home)} >= set(subjects), 60, "the three mails folded")

    picture = threading.Timer(2.5, lambda: XDisplay(os.environ["DISPLAY"]).screenshot().save(
        SCREENSHOT.replace(".png", "-send-times.png"))) if SCREENSHOT else None
    if picture:
        picture.start()
    shown = json.loads(desktop.tb.in_extension_tab("tracked/tracked.html", """
        const [subjects, stamps, linger] = args;
        const row = (d, s) => [...d.querySelectorAll("#tags tr.mail")].find(tr => tr.textContent.includes(s));
        await waitFor(d => subjects.every(s => row(d, s)), "the mails on the Tracked mail page");
        if (linger) await new Promise(r => setTimeout(r, 4000));
        const lang = doc().defaultView.wrappedJSObject.browser.i18n.getUILanguage();
        const format = new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeStyle: "short" });
        return JSON.stringify({
          cells: subjects.map(s => ({ text: row(doc(), s).cells[0].textContent, title: row(doc(), s).cells[0].title })),
          expected: stamps.map(stamp => format.format(new Date(stamp))),
        });
    """, [subjects, [sent_at, OLD_MINT], bool(picture)]))
    if picture:
        picture.join()
    sent, old, never = shown["cells"]
    assert sent == {"text": shown["expected"][0], "title": ""}, shown
    assert old["text"] == f"{shown['expected'][1]} (minted)" and "not recorded" in old["title"], shown
    assert never["text"] == "not sent" and "never sent" in never["title"], shown
