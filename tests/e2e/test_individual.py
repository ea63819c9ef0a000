"""End to end: "Send individually" with a real Thunderbird: one mail per recipient, each
with its own verifying pixel, one pixel-free copy in Sent, and an open of one copy marks
only that recipient."""

import json
import time
from datetime import datetime

import pytest
import requests

from mailtracker.core.secret import read_secret
from mailtracker.core.tokens import verify_token
from mailtracker.core.settings import load_config
from mailtracker.desktop.register import Register
from mailtracker.desktop.tags import mint_tag
from tests.e2e.test_sent_copy import ATTACHMENT_BYTES, BODY, attachment_of, local_folder, text_of
from tests.e2e.test_thunderbird import html_part, pixels_in, tag_rows, token_of
from tests.e2e.thunderbird import wait_until

pytestmark = pytest.mark.slow

SUBJECT = "Individually e2e"
TO = "Ann <ann@example.net>, bob@example.net"
BCC = "Cy <cy@example.net>"
RECIPIENTS = ("ann@example.net", "bob@example.net", "cy@example.net")


def choose_individually(tb, subject: str) -> dict:
    """In the compose window's Track popup, tick "Send individually", as a user would."""
    tab_id = tb.compose_tab_id(subject)
    return json.loads(tb.in_extension_tab(f"compose_popup/popup.html?tab={tab_id}", """
        const box = await waitFor(d => d.body.dataset.ready && !d.getElementById("individual").hidden
                                  && d.getElementById("individually"), "the Send individually choice");
        const explain = doc().getElementById("individualExplain").textContent;
        box.click();
        const browser = doc().defaultView.wrappedJSObject.browser;
        for (let i = 0; i < 100; i++) {
            const state = (await browser.storage.session.get("compose:" + args[0]))["compose:" + args[0]];
            if (state?.individually) return JSON.stringify({ explain, state });
            await new Promise(r => setTimeout(r, 50));
        }
        throw new Error("the choice was not stored");
    """, [tab_id]))


def choose_reminder(tb, subject: str, days: int, remind_if: str) -> dict:
    """In the Track popup's reminder row, "remind me in ``days`` days ``remind_if``", as a user would."""
    tab_id = tb.compose_tab_id(subject)
    return json.loads(tb.in_extension_tab(f"compose_popup/popup.html?tab={tab_id}", """
        const box = await waitFor(d => d.body.dataset.ready && !d.getElementById("remindRow").hidden
                                  && d.getElementById("remind"), "the reminder row");
        box.click();
        const days = doc().getElementById("remindDays"), condition = doc().getElementById("remindIf");
        days.value = String(args[1]);
        days.dispatchEvent(new (doc().defaultView.Event)("change"));
        condition.value = args[2];
        condition.dispatchEvent(new (doc().defaultView.Event)("change"));
        const browser = doc().defaultView.wrappedJSObject.browser;
        for (let i = 0; i < 100; i++) {
            const state = (await browser.storage.session.get("remind:" + args[0]))["remind:" + args[0]];
            if (state?.choice === args[1] && state?.remindIf === args[2]) return JSON.stringify(state);
            await new Promise(r => setTimeout(r, 50));
        }
        throw new Error("the reminder was not stored");
    """, [tab_id, days, remind_if]))


def native_status(tb, message_id: str) -> dict:
    """The add-on's status of a Sent copy: what the Opens popup asks the helper."""
    return json.loads(tb.in_extension_tab("options/options.html", """
        await waitFor(d => d.getElementById("cleanSentCopy"), "the options page");
        const browser = doc().defaultView.wrappedJSObject.browser;
        const request = Cu.cloneInto({ id: "e2e", command: "status", protocol: 1, message_id: args[0] },
                                     doc().defaultView);
        const reply = await browser.runtime.sendNativeMessage("mailtracker.helper", request);
        return JSON.stringify(reply);
    """, [message_id]))["data"]


def bare(address: str) -> str:
    return address.rsplit("<", 1)[-1].strip(" >").lower()


def register_has(home, tag_id: str) -> bool:
    with Register.load(home) as register:
        return register.get(tag_id) is not None


def received_copies(sink):
    return [m for m in sink.messages() if m["Subject"] == SUBJECT]


def test_send_individually_one_mail_per_recipient_one_clean_sent_copy(desktop, tmp_path):
    """Three recipients (two To, one Bcc) -> three mails, each to one of them with its own pixel,
    the same text and attachment, and the reminder chosen in the window; Sent holds one copy,
    without a pixel, listing all three; one recipient's open marks only that recipient, in the
    register and in the add-on's status."""
    attachment = tmp_path / "data.bin"
    attachment.write_bytes(ATTACHMENT_BYTES)
    desktop.tb.compose_and_send(SUBJECT, TO, BODY, attachments=[attachment], command=None, bcc=BCC)
    chosen = choose_individually(desktop.tb, SUBJECT)
    assert "3 recipients" in chosen["explain"] and "separate threads" in chosen["explain"]
    choose_reminder(desktop.tb, SUBJECT, 4, "no_reply")
    sent_at = time.time()
    desktop.tb.press_send(SUBJECT)

    mails = wait_until(lambda: len(received_copies(desktop.sink)) >= 3 and received_copies(desktop.sink),
                       60, "three mails at the SMTP sink")
    by_rcpt = {}
    for mail in mails:
        rcpt = mail["X-RcptTo"].strip().lower()
        assert rcpt in RECIPIENTS and "," not in rcpt, mail["X-RcptTo"]
        assert mail["To"] and rcpt in mail["To"].lower() and mail["Cc"] is None and mail["Bcc"] is None
        by_rcpt[rcpt] = mail
    assert sorted(by_rcpt) == sorted(RECIPIENTS)
    secret = read_secret(desktop.home.secret_path)
    tokens = {}
    for rcpt, mail in by_rcpt.items():
        (pixel,) = pixels_in(mail, desktop)
        tokens[rcpt] = token_of(pixel)
        assert verify_token(secret, tokens[rcpt])
        assert attachment_of(mail) == ATTACHMENT_BYTES
        assert [p.get_content_type() for p in mail.walk()].count("image/png") == 1  # the inline image
    assert len(set(tokens.values())) == 3
    texts = {text_of(html_part(mail)) for mail in mails}
    assert len(texts) == 1 and "Hello there" in texts.pop()
    assert len({mail["Message-ID"] for mail in mails}) == 3

    # Each copy keeps the reminder chosen in the window (the identity has none by default).
    def reminders_kept():
        rows = [next((row for row in tag_rows(desktop.home, token) if row["remind_at"]), None)
                for token in tokens.values()]
        return all(rows) and rows
    for row in wait_until(reminders_kept, 30, "each copy's reminder in tags.csv"):
        assert row["remind_if"] == "no_reply", row
        due = datetime.fromisoformat(row["remind_at"].replace("Z", "+00:00")).timestamp()
        assert abs(due - (sent_at + 4 * 86400)) < 120, row

    # Sent: one copy, no pixel, every recipient listed; the original window closed.
    def sent_copies():
        return [m for m in local_folder(desktop.tb, "Sent") if m["Subject"] == SUBJECT]
    (copy,) = wait_until(lambda: len(sent_copies()) == 1 and all(
        desktop.server.base.encode() not in m.as_bytes() for m in sent_copies()) and sent_copies(),
        30, "one clean copy in Sent")
    listed = " ".join(copy.get_all("To", []) + copy.get_all("Cc", []) + copy.get_all("Bcc", [])).lower()
    assert all(rcpt in listed for rcpt in RECIPIENTS), listed
    for token in tokens.values():
        assert token.encode() not in copy.as_bytes()
    wait_until(lambda: SUBJECT not in desktop.tb.compose_windows(), 20, "the original compose window to close")

    # Bob opens his copy: only Bob is opened, in the register the daemon folds and in the add-on.
    # A tag of another email is in the register too: it is no recipient of this one.
    lone = mint_tag(desktop.home, load_config(desktop.home), name="Someone else", subject="Other")
    reply = requests.get(f"{desktop.server.base}/p/{tokens['bob@example.net']}.gif",
                         headers={"User-Agent": "Mozilla/5.0 (Windows NT 10.0) Outlook/16.0"}, timeout=10)
    assert reply.status_code == 200

    def register_opens():
        with Register.load(desktop.home) as register:
            rows = {bare(row.recipients): row for row in register.rows() if row.id in tokens.values()}
        folded_lone = register_has(desktop.home, lone.id)
        return len(rows) == 3 and rows["bob@example.net"].opens == 1 and folded_lone and rows
    rows = wait_until(register_opens, 30, "Bob's open folded by the helper's daemon")
    assert [rows[r].opens for r in RECIPIENTS] == [0, 1, 0]
    assert len({row.group for row in rows.values()}) == 1 and rows["ann@example.net"].group

    status = native_status(desktop.tb, copy["Message-ID"].strip("<>"))
    assert len(status["recipients"]) == 3, status["recipients"]
    opened = {bare(row["recipient"]): row["opened"] for row in status["recipients"]}
    assert opened == {"ann@example.net": False, "bob@example.net": True, "cy@example.net": False}, status


RETRY_SUBJECT = "Individually retry e2e"
RETRY_TO = ("ann2@example.net", "bob2@example.net", "cy2@example.net")


def test_a_failed_copy_is_named_and_a_retry_sends_only_to_the_rest(desktop):
    """The server refuses one recipient: the others get their copy, the user is told who did
    not, the email stays open; Send again (the server now takes it) reaches only that one."""
    from tests.e2e.test_sent_copy import console_warnings, extension_storage

    tb, sink = desktop.tb, desktop.sink
    sink.refuse(["bob2@example.net"])
    try:
        tb.compose_and_send(RETRY_SUBJECT, ", ".join(RETRY_TO), "<p>Hello <b>each</b></p>", command=None)
        choose_individually(tb, RETRY_SUBJECT)
        tb.press_send(RETRY_SUBJECT)
        # Thunderbird itself says the send failed, in a modal dialog; compose.sendMessage
        # settles only once the user has pressed OK there.
        assert "bob2@example.net" in tb.accept_dialog("Send Message Error")
        warning = wait_until(lambda: console_warnings(tb, "copies not sent individually to"), 30,
                             "the add-on to say which copies were not sent")
        assert warning == ["mailtracker: copies not sent individually to bob2@example.net"], warning
    finally:
        sink.refuse([])
    got = sorted(bare(m["X-RcptTo"]) for m in sink.messages() if m["Subject"] == RETRY_SUBJECT)
    assert got == ["ann2@example.net", "cy2@example.net"]
    assert RETRY_SUBJECT in tb.compose_windows()
    (group,) = [g for g in extension_storage(tb)["individualGroups"].values() if g["subject"] == RETRY_SUBJECT]
    assert sorted(group["sent"]) == ["ann2@example.net", "cy2@example.net"]

    tb.press_send(RETRY_SUBJECT)
    wait_until(lambda: RETRY_SUBJECT not in tb.compose_windows(), 60, "the retry to finish and close the email")
    got = sorted(bare(m["X-RcptTo"]) for m in sink.messages() if m["Subject"] == RETRY_SUBJECT)
    assert got == sorted(RETRY_TO)  # nobody twice
    # The first copy's Sent copy is replaced by a clean one (finished, with its time):
    # exactly one copy is left, without a pixel, listing all three.
    keeper = group["keeper"]

    def one_clean_copy():
        sent = [m for m in local_folder(tb, "Sent") if m["Subject"] == RETRY_SUBJECT]
        state = (extension_storage(tb).get("sentCopyStatus") or {}).get(keeper, {})
        return state.get("state") == "clean" and "ms" in state and len(sent) == 1 and sent
    (copy,) = wait_until(one_clean_copy, 30, "the one clean Sent copy")
    assert desktop.server.base.encode() not in copy.as_bytes()
    assert copy["Message-ID"].strip("<>") == keeper
    listed = " ".join(copy.get_all("To", [])).lower()
    assert all(rcpt in listed for rcpt in RETRY_TO), listed
