"""End to end with a real Thunderbird and a real IMAP server (Dovecot on loopback): the answers
to a tracked mail arrive in the INBOX as another client delivers them (IMAP APPEND), Thunderbird
is asked to check mail as Get Messages does, and the add-on judges them. An out-of-office and the
sender's own note in the thread are not counted; the recipient's reply is, though their mail
program never loaded the pixel; the Sent copy on the server carries the Replied keyword. A bounce
for a second mail marks it not delivered. A third mail to the recipient who answered without
loading the pixel shows "opens not visible" (the Opens not visible tag, the Tracked mail page)."""

import imaplib
import json
import os
import threading
import time
from types import SimpleNamespace

import pytest

from tests.conftest import row_of
from tests.display import XDisplay
from tests.e2e.imap import PASSWORD, USER
from tests.e2e.test_sent_copy import IMAP_EMAIL, dovecot, start_device  # noqa: F401 (a fixture)
from tests.e2e.test_sent_list import SCREENSHOT, in_add_on, show_sent_folder, wait_for_tag
from tests.e2e.test_thunderbird import pixels_in, sent_row, token_of
from tests.e2e.thunderbird import wait_until

pytestmark = pytest.mark.slow

REPLIED, UNDELIVERED, NOT_VISIBLE = "$mt_replied", "$mt_undelivered", "$mt_notvisible"

# Thunderbird's Get Messages for the IMAP account's Inbox.
GET_MESSAGES = """
const [email] = args;
const identity = MailServices.accounts.allIdentities.find(i => i.email == email);
const server = MailServices.accounts.getServersForIdentity(identity)[0];
const inbox = server.rootFolder.getFolderWithFlags(Ci.nsMsgFolderFlags.Inbox);
inbox.getNewMessages(null, null);
resolve(true);
"""


def send_tracked_imap(desktop, dovecot, identity, subject, to="Ann Example <ann@example.net>"):
    """A tracked mail from the IMAP identity; returns its Message-ID and tag once its clean copy is in Sent."""
    desktop.tb.compose_and_send(subject, to, identity_key=identity)
    received = desktop.sink.wait_for_message(subject)
    (pixel,) = pixels_in(received, desktop)
    tag_id = token_of(pixel)
    wait_until(lambda: sent_row(desktop.home, tag_id), 20, "the tag marked sent")
    message_id = received["Message-ID"]
    wait_until(lambda: any(m["Message-ID"] == message_id for m in dovecot.messages("Sent")), 30,
               "the clean copy in IMAP Sent")
    return message_id, tag_id


def answer(message_id, sender, subject, extra="", message_name="a"):
    """An answer to ``message_id`` as another mail program writes it; its own Message-ID is
    <message_name.…@example.net>."""
    return (f"From: {sender}\r\nTo: IMAP Sender <{IMAP_EMAIL}>\r\nSubject: {subject}\r\n"
            f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}\r\n"
            f"Message-ID: <{message_name}.{time.time_ns()}@example.net>\r\nIn-Reply-To: {message_id}\r\n"
            f"References: {message_id}\r\n{extra}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "\r\nThe text of the answer stays in Thunderbird.\r\n").encode()


def bounce_of(message_id, recipient):
    """A Postfix delivery report (as tests/data/replies … postfix-dsn.eml), naming the mail only in the returned part."""
    boundary = "B.1/mx.example.org"
    return (f"From: MAILER-DAEMON@mx.example.org (Mail Delivery System)\r\nTo: {IMAP_EMAIL}\r\n"
            "Subject: Undelivered Mail Returned to Sender\r\nAuto-Submitted: auto-replied\r\n"
            f"Message-Id: <dsn.{time.time_ns()}@mx.example.org>\r\nMIME-Version: 1.0\r\n"
            f'Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary="{boundary}"\r\n\r\n'
            f"--{boundary}\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\r\n"
            f"--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n\r\n"
            f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
            f"Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address rejected: User unknown\r\n\r\n"
            f"--{boundary}\r\nContent-Type: message/rfc822\r\n\r\nFrom: {IMAP_EMAIL}\r\nTo: {recipient}\r\n"
            f"Subject: Offer\r\nMessage-ID: {message_id}\r\n\r\nHello\r\n\r\n--{boundary}--\r\n").encode()


def keywords_in_sent(dovecot, message_id):
    """The IMAP flags of the Sent copy with this Message-ID, read as another device would."""
    client = imaplib.IMAP4("127.0.0.1", dovecot.port, timeout=10)
    try:
        client.login(USER, PASSWORD)
        client.select('"Sent"', readonly=True)
        _, found = client.search(None, "HEADER", "Message-ID", message_id)
        flags = []
        for number in found[0].split():
            _, data = client.fetch(number, "(FLAGS)")
            flags.append(imaplib.ParseFlags(data[0]))
        return [{flag.decode() for flag in each} for each in flags]
    finally:
        client.logout()


def test_a_reply_counts_an_out_of_office_and_an_own_note_do_not(desktop, dovecot, tmp_path):
    """OOO, the sender's own note and the recipient's reply reach the INBOX: replies = 1, opens = 0,
    Replied on the Sent copy on the server; a bounce of a second mail marks it not delivered.
    In a Thunderbird of its own (its profile holds the IMAP account): the session's Thunderbird,
    which other tests send IMAP mail from, is left as it was."""
    tb = start_device(desktop, tmp_path / "device", dovecot, headless=not SCREENSHOT)
    try:
        check_replies_and_bounces(SimpleNamespace(tb=tb, sink=desktop.sink, home=desktop.home,
                                                  server=desktop.server), dovecot)
    finally:
        tb.stop()


def check_replies_and_bounces(desktop, dovecot, identity="id2"):
    message_id, tag_id = send_tracked_imap(desktop, dovecot, identity, "Replies e2e")
    dovecot.append("INBOX", answer(message_id, "Ann Example <ann@example.net>", "Automatic reply: Replies e2e",
                                   "Auto-Submitted: auto-replied\r\nX-Auto-Response-Suppress: All\r\n", "ooo"))
    dovecot.append("INBOX", answer(message_id, f"IMAP Sender <{IMAP_EMAIL}>", "Re: Replies e2e", "", "own"))
    reply = answer(message_id, "Ann Example <ann@example.net>", "Re: Replies e2e", "", "reply")
    moments = {}

    def watch_the_helper():
        # When the reply's row reached replies.csv, and when the fold counted it (polled every 5 ms).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "counted" not in moments:
            if "logged" not in moments and desktop.home.replies_path.exists() and \
                    b"reply." in desktop.home.replies_path.read_bytes():
                moments["logged"] = time.time() * 1000
            if row_of(desktop.home, tag_id).get("replies"):
                moments["counted"] = time.time() * 1000
            time.sleep(0.005)

    watcher = threading.Thread(target=watch_the_helper)
    watcher.start()
    dovecot.append("INBOX", reply)
    in_inbox = time.time() * 1000
    desktop.tb.js(GET_MESSAGES, [IMAP_EMAIL])
    # The reference, measured in the same run: when Thunderbird has the reply (the IMAP fetch).
    reply_id = reply.split(b"Message-ID: <")[1].split(b">")[0].decode()
    arrived = float(in_add_on(desktop, """
        const [id] = args;
        for (let i = 0; i < 3000; i++) {
          const page = plain(await api.messages.query(obj({ headerMessageId: id })));
          if (page.messages.length) return String(Date.now());
          await sleep(20);
        }
        throw new Error("Thunderbird never had the reply " + id);
    """, [reply_id]))
    try:
        tagged = wait_for_tag(desktop, message_id.strip("<>"), REPLIED, timeout_s=60)
    finally:
        watcher.join()
    print(f"\na reply APPENDed to the INBOX: in Thunderbird after {arrived - in_inbox:.0f} ms (Get Messages), "
          f"in replies.csv after {moments.get('logged', 0) - in_inbox:.0f} ms (new-mail event, judging, the "
          f"helper's reply), counted after {moments.get('counted', 0) - in_inbox:.0f} ms (fold), Replied in the "
          f"Sent list after {tagged['at'] - in_inbox:.0f} ms (list, tag)")
    row = row_of(desktop.home, tag_id)
    assert (row["replies"], row["opens"], row["replied_by"]) == (1, 0, "ann@example.net")
    # Each judgement is kept with its reason, the automatic answer and the own note not counted.
    log = desktop.home.replies_path.read_text(encoding="utf-8-sig")
    assert "automatic answer (Auto-Submitted: auto-replied): not counted" in log
    assert "your own message: not counted" in log
    assert "The text of the answer" not in log
    wait_until(lambda: any(REPLIED in flags for flags in keywords_in_sent(dovecot, message_id)), 30,
               "the Replied keyword on the server's Sent copy")

    bounced_id, bounced_tag = send_tracked_imap(desktop, dovecot, identity, "Bounce e2e",
                                                to="Nobody <nobody@example.net>")
    dovecot.append("INBOX", bounce_of(bounced_id, "nobody@example.net"))
    desktop.tb.js(GET_MESSAGES, [IMAP_EMAIL])
    wait_for_tag(desktop, bounced_id.strip("<>"), UNDELIVERED, timeout_s=60)
    row = row_of(desktop.home, bounced_tag)
    assert row["undelivered"] == "nobody@example.net" and row["replies"] == 0
    assert "550 5.1.1" in row["undelivered_reason"]
    # Ann answered without loading the pixel: a later mail to her says "opens not visible", not "not opened".
    follow_id, follow_tag = send_tracked_imap(desktop, dovecot, identity, "Not visible e2e")
    wait_for_tag(desktop, follow_id.strip("<>"), NOT_VISIBLE, timeout_s=60)
    row = row_of(desktop.home, follow_tag)
    assert (row["not_seen"], row["not_seen_by"], row["opens"]) == ("no_images", "ann@example.net", 0)
    # The Tracked mail page: a Replies column, "not delivered" for the bounce, "not visible" for Ann's follow-up.
    picture = threading.Timer(2.5, lambda: XDisplay(os.environ["DISPLAY"]).screenshot().save(
        SCREENSHOT.replace(".png", "-tracked.png"))) if SCREENSHOT else None
    if picture:
        picture.start()
    shown = json.loads(desktop.tb.in_extension_tab("tracked/tracked.html", """
        const [subjects, linger] = args;
        const row = (d, s) => [...d.querySelectorAll("#tags tr.mail")].find(tr => tr.textContent.includes(s));
        await waitFor(d => subjects.every(s => row(d, s)), "the mails on the Tracked mail page");
        if (linger) await new Promise(r => setTimeout(r, 4000));
        return JSON.stringify(subjects.map(s => [...row(doc(), s).cells].map(td => td.textContent)));
    """, [["Replies e2e", "Bounce e2e", "Not visible e2e"], bool(SCREENSHOT)]))
    if picture:
        picture.join()
    assert [cells[5] for cells in shown] == ["1", "not delivered", "0"]
    assert [cells[3] for cells in shown] == ["0", "0", "not visible"]
    if SCREENSHOT:
        show_sent_folder(desktop, SCREENSHOT, IMAP_EMAIL)


FETCH_INBOX = """
const [replyId] = args;
const inbox = MailServices.accounts.getIncomingServer("server3").rootFolder
  .getFolderWithFlags(Ci.nsMsgFolderFlags.Inbox);
for (let i = 0; i < 400; i++) {
  if (i % 20 == 0) inbox.updateFolder(null);
  if (inbox.msgDatabase?.getMsgHdrForMessageID(replyId)) {
    // Past Thunderbird's new-mail event (200 ms after the header came), and no longer new:
    // nothing but the add-on's own look at start can find it.
    await new Promise(r => setTimeout(r, 1000));
    inbox.clearNewMessages();
    resolve(true);
    return;
  }
  await new Promise(r => setTimeout(r, 50));
}
throw new Error("Thunderbird did not fetch " + replyId);
"""


def test_a_reply_that_arrived_while_the_add_on_was_not_running_is_found_at_its_start(desktop, dovecot, tmp_path):
    """Thunderbird stopped after the send; the reply arrives; at the next start Thunderbird has it
    before the add-on runs (no new-mail event for it): the add-on's start-up look finds it."""
    root = tmp_path / "device"
    tb = start_device(desktop, root, dovecot)
    try:
        subject = "Catch-up e2e"
        tb.compose_and_send(subject, "Ann Example <ann@example.net>", identity_key="id2")
        received = desktop.sink.wait_for_message(subject)
        (pixel,) = pixels_in(received, desktop)
        tag_id = token_of(pixel)
        message_id = received["Message-ID"]
        wait_until(lambda: any(m["Message-ID"] == message_id for m in dovecot.messages("Sent")), 30,
                   "the clean copy in IMAP Sent")
    finally:
        tb.stop()
    reply = answer(message_id, "Ann Example <ann@example.net>", f"Re: {subject}", "", "late")
    dovecot.append("INBOX", reply)
    reply_id = reply.split(b"Message-ID: <")[1].split(b">")[0].decode()
    tb = start_device(desktop, root, dovecot, before_add_on=(FETCH_INBOX, [reply_id]))
    try:
        wait_until(lambda: row_of(desktop.home, tag_id).get("replies") == 1, 60, "the reply counted")
        assert row_of(desktop.home, tag_id)["opens"] == 0
    finally:
        tb.stop()
