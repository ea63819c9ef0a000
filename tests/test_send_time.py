"""The send time, not the mint time (issue 23, item 12): the add-on's ``sent`` carries when
Thunderbird sent the mail; tags.csv keeps it, and register.csv, the host's answers, the report
and 'mailtracker list/show' show it. A log from before it was noted shows the mint time, labelled;
a mail minted but never sent says so, with no time."""

import time
from datetime import datetime

from mailtracker.core.files import append_rows
from mailtracker.core.secret import read_secret
from mailtracker.core.timestamps import utc_timestamp
from mailtracker.core.tokens import mint_token, short_id
from mailtracker.desktop.fold import fold
from mailtracker.desktop.register import read_register
from mailtracker.desktop.report import write_report
from mailtracker.desktop.tags import TAG_COLUMNS
from tests.conftest import HostProcess, row_of, run_cli
from tests.test_report import _Table

# The mint happens at onBeforeSend; a mail may leave much later (a slow server, Send Later).
SENT_LATER_S = 40 * 60


def _local(stamp: str) -> str:
    """A UTC timestamp as the report shows it (local time, to the minute)."""
    return datetime.fromtimestamp(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()) \
        .strftime("%Y-%m-%d %H:%M")


def test_the_send_time_reaches_every_view(home):
    """Minted now, reported sent 40 minutes later (the at of 'sent'): register.csv's sent_at, the
    host's list, the report's Sent cell and 'list'/'show' all give the send time, not the mint's."""
    host = HostProcess(home)
    try:
        tag = host.call("mint", subject="Offer", recipients=["ann@example.org"], identity="me@x")["data"]
        at_ms = int(time.time() * 1000)
        assert host.call("sent", tag_id=tag["id"], message_id="m1@x", at=at_ms)["ok"]
    finally:
        host.close()
    # The host believes an 'at' within the last hour only: "sent 40 minutes after the mint" is
    # made by moving the mint back (a later tags.csv row's field wins, as for any change).
    minted = utc_timestamp(time.time() - SENT_LATER_S)
    append_rows(home.tags_path, TAG_COLUMNS, [[tag["id"], minted] + [""] * (len(TAG_COLUMNS) - 2)])
    fold(home)
    sent_at = utc_timestamp(at_ms / 1000)

    row = row_of(home, tag["id"])
    assert (row["created"], row["sent_at"], row["sent_time"], row["sent_how"]) == (minted, sent_at, sent_at, "sent")
    (csv_row,) = read_register(home.register_path)
    assert csv_row["sent_at"] == sent_at

    host = HostProcess(home)
    try:
        (listed,) = host.call("list")["data"]["tags"]
    finally:
        host.close()
    assert (listed["sent_time"], listed["sent_how"]) == (sent_at, "sent")

    table = _Table()
    table.feed(write_report(home).read_text(encoding="utf-8"))
    (cells,) = table.rows
    assert cells[3] == _local(sent_at) != _local(minted)

    shown = run_cli("show", tag["short_id"], home=home).stdout
    assert f"sent: {sent_at[:10]} {sent_at[11:16]} UTC\n" in shown
    listing = run_cli("list", home=home).stdout
    assert "SENT" in listing.splitlines()[0] and f"{sent_at[:10]} {sent_at[11:16]} UTC" in listing
    assert f"{minted[11:16]} UTC" not in listing


OLD_MINT = "2026-11-24T09:00:00.000Z"


def old_sent_row(home, subject: str) -> str:
    """A mail marked sent by a writer from before sent_at (its row without it), minted at OLD_MINT."""
    tag_id = mint_token(read_secret(home.secret_path))
    append_rows(home.tags_path, TAG_COLUMNS[:11], [[tag_id, OLD_MINT, "Old", subject, "old@example.net",
                                                    "", "old@x", "sent", "", "", ""]])
    return tag_id


def never_sent(home, subject: str) -> dict:
    """A tag minted at Send through a real host, then reported not sent (a draft discarded)."""
    host = HostProcess(home)
    try:
        tag = host.call("mint", subject=subject, recipients=["draft@example.net"])["data"]
        assert host.call("unsent", tag_id=tag["id"], reason="the compose window closed without sending")["ok"]
    finally:
        host.close()
    return tag


def test_an_older_log_shows_the_mint_time_labelled_as_such(home):
    """A mail sent before send times were noted: the mint time, said to be one, in every view."""
    tag_id = old_sent_row(home, "Before")
    fold(home)
    row = row_of(home, tag_id)
    assert (row["sent_time"], row["sent_how"]) == (OLD_MINT, "minted")
    table = _Table()
    table.feed(write_report(home).read_text(encoding="utf-8"))
    assert table.rows[0][3] == f"{_local('2026-11-24T09:00:00.000Z')} (minted)"
    assert "2026-11-24 09:00 UTC (minted)" in run_cli("list", home=home).stdout
    assert "sent: 2026-11-24 09:00 UTC (minted)" in run_cli("show", short_id(tag_id), home=home).stdout


def test_a_mail_never_sent_says_so_with_no_time(home):
    """Minted at Send, then the draft discarded (the add-on's 'unsent'): 'not sent', never a time."""
    tag = never_sent(home, "Draft")
    fold(home)
    row = row_of(home, tag["id"])
    assert (row["sent_time"], row["sent_how"]) == ("", "unsent")
    line = next(line for line in run_cli("list", home=home).stdout.splitlines() if line.startswith(tag["short_id"]))
    assert "not sent" in line and row["created"][11:16] not in line
    assert "\nnot sent\n" in run_cli("show", tag["short_id"], home=home).stdout


def test_a_send_time_far_from_now_is_taken_as_now(home):
    """An 'at' a day old (a wrong clock, a forgery) is not believed: the host's own time is kept."""
    host = HostProcess(home)
    try:
        tag = host.call("mint", subject="Clock")["data"]
        before = utc_timestamp()
        assert host.call("sent", tag_id=tag["id"], message_id="m2@x", at=int((time.time() - 86400) * 1000))["ok"]
        after = utc_timestamp()
    finally:
        host.close()
    fold(home)
    assert before <= row_of(home, tag["id"])["sent_at"] <= after
