"""Replies and bounces: the host's ``reply`` command (a real host process) and replies.csv."""

import csv

import pytest

from mailtracker.desktop.replies import REPLY_COLUMNS, Reply, count_replies, read_replies
from tests.conftest import HostProcess


@pytest.fixture
def host(home):
    process = HostProcess(home)
    yield process
    process.close()


def _sent(host, message_id, recipients=("ann@example.net",)):
    tag = host.call("mint", subject="Offer", recipients=list(recipients), identity="sam@example.org")["data"]
    host.call("sent", tag_id=tag["id"], message_id=f"<{message_id}>")
    return tag["id"]


def _rows(home):
    with open(home.replies_path, newline="", encoding="utf-8-sig") as handle:
        return list(csv.reader(handle))


def test_a_reply_names_its_tracked_mail_and_is_appended_once(host, home):
    """The first tracked mail among the candidates is the one answered; reported twice, it is written once."""
    tag_id = _sent(host, "tracked-1@sender.example.org")
    request = dict(message_ids=["reply-2@example.net", "<tracked-1@sender.example.org>", "older@x"],
                   reply_id="<r1@example.net>", verdict="reply", reason="a reply from a person",
                   time="2026-12-01T09:14:02.000Z")
    request["from"] = "ann@example.net"
    first = host.call("reply", **request)["data"]
    assert first == {"tracked": True, "tag_id": tag_id, "short_id": tag_id[:7], "recorded": True}
    again = host.call("reply", **request)["data"]
    assert again["recorded"] is False
    rows = _rows(home)
    assert rows[0] == list(REPLY_COLUMNS)
    assert rows[1:] == [[tag_id, "r1@example.net", "ann@example.net", "2026-12-01T09:14:02.000Z", "reply",
                         "a reply from a person", ""]]


def test_a_message_that_names_no_tracked_mail_leaves_no_trace(host, home):
    """An answer to untracked mail: tracked false, and nothing about it is written."""
    _sent(host, "tracked-1@sender.example.org")
    answer = host.call("reply", message_ids=["someone-else@example.net"], reply_id="r@x", verdict="reply",
                       reason="", time="")["data"]
    assert answer == {"tracked": False}
    assert not home.replies_path.exists()


def test_hostile_header_text_is_bounded_cleaned_and_inert_in_a_spreadsheet(host, home):
    """A sender's address and a bounce reason come from outside: no line breaks, no formula, bounded."""
    tag_id = _sent(host, "t2@sender.example.org")
    request = dict(message_ids=["t2@sender.example.org"], reply_id="<bounce-1@mx.example.net>", verdict="bounce",
                   reason="=HYPERLINK(\"http://evil\")\r\nnot delivered " + "x" * 5000,
                   recipient="-nobody@example.net\u2028", time="2099-01-01T00:00:00.000Z")
    request["from"] = "@MAILER-DAEMON\n@x"
    assert host.call("reply", **request)["data"]["recorded"]
    row = _rows(home)[1]
    assert row[2] == "'@MAILER-DAEMON @x"
    assert row[5].startswith("'=HYPERLINK(\"http://evil\") not delivered") and len(row[5]) == 201
    assert row[6] == "'-nobody@example.net"
    assert row[3] < "2099"  # a time in the future is taken as now
    (reply, _), = read_replies(home.replies_path)
    assert reply.tag == tag_id and reply.sender == "@MAILER-DAEMON @x" and reply.recipient == "-nobody@example.net"


@pytest.mark.parametrize("bad, message", [
    (dict(verdict="maybe"), "Verdict must be one of"),
    (dict(message_ids="t@x"), "message_ids must be a list"),
    (dict(message_ids=["t@x"] * 51), "message_ids must be a list"),
    (dict(reply_id=""), "reply_id must be"),
    (dict(reply_id="x" * 1000), "reply_id must be"),
])
def test_a_malformed_reply_is_refused_with_code_60(host, home, bad, message):
    """Each argument is checked; nothing is written for a refused request."""
    request = dict(message_ids=["t@x"], reply_id="r@x", verdict="reply", reason="", time="", **{"from": "a@x"})
    request.update(bad)
    answer = host.call("reply", **request)
    assert answer["ok"] is False and answer["code"] == 60 and message in answer["message"]
    assert not home.replies_path.exists()


def test_counts_take_each_reply_once_and_bounces_apart():
    """Two reports of one reply count once; automatic answers and own messages are not counted;
    a bounce names its recipient; first and last reply are ordered by time, not by log order."""
    tag = "a" * 32
    rows = [
        (Reply(tag, "r2@x", "bob@example.net", "2026-12-02T10:00:00.000Z", "reply", ""), 2.0),
        (Reply(tag, "r1@x", "Ann@example.net", "2026-12-01T10:00:00.000Z", "reply", ""), 1.0),
        (Reply(tag, "r1@x", "ann@example.net", "2026-12-01T10:00:00.000Z", "reply", ""), 1.0),
        (Reply(tag, "ooo@x", "ann@example.net", "2026-12-01T09:00:00.000Z", "auto", "automatic"), 0.5),
        (Reply(tag, "own@x", "sam@example.org", "2026-12-03T09:00:00.000Z", "own", "own"), 3.0),
        (Reply(tag, "b@x", "mailer-daemon@x", "2026-12-01T08:00:00.000Z", "bounce", "not delivered: 550",
               "Nobody@example.net"), 0.1),
    ]
    counts = count_replies(rows)[tag]
    assert counts.replies == 2
    assert (counts.first_reply, counts.last_reply) == ("2026-12-01T10:00:00.000Z", "2026-12-02T10:00:00.000Z")
    assert counts.replied_by == ("bob@example.net", "ann@example.net")
    assert counts.undelivered == ("nobody@example.net",) and counts.undelivered_reason == "not delivered: 550"


def _reply(tag, reply_id, sender, stamp, verdict="reply", reason="", recipient=""):
    return Reply(tag=tag, reply_id=reply_id, sender=sender, time=stamp, verdict=verdict, reason=reason,
                 recipient=recipient)


def test_the_fold_counts_replies_once_and_a_rebuild_gives_the_same_register(home):
    """replies.csv folds into the register: a reply reported twice (a catch-up, a second computer)
    counts once, opens stay what the pixel saw, a bounce marks the recipient undelivered; rebuilding
    from the logs gives the same register."""
    from mailtracker.desktop.fold import fold
    from mailtracker.desktop.register import read_register
    from mailtracker.desktop.replies import record_reply
    from mailtracker.desktop.tags import mint_tag, update_tag
    from mailtracker.core.settings import load_config

    answered = mint_tag(home, load_config(home), name="Ann", subject="Offer", recipients=["ann@example.net"])
    bounced = mint_tag(home, load_config(home), name="Nobody", subject="Offer", recipients=["nobody@example.net"])
    update_tag(home, answered.id, message_id="t1@x", status="sent")
    update_tag(home, bounced.id, message_id="t2@x", status="sent")
    fold(home)
    record_reply(home, _reply(answered.id, "r1@x", "ann@example.net", "2026-12-01T09:00:00.000Z"))
    record_reply(home, _reply(answered.id, "ooo@x", "ann@example.net", "2026-12-01T08:00:00.000Z", "auto",
                              "automatic answer (Auto-Submitted: auto-replied): not counted"))
    first = fold(home)
    assert first.new_replies == 1 and "1 new replies" in first.summary()
    record_reply(home, _reply(answered.id, "r1@x", "ann@example.net", "2026-12-01T09:00:00.000Z"))
    record_reply(home, _reply(answered.id, "r2@x", "bob@example.net", "2026-12-02T09:00:00.000Z"))
    record_reply(home, _reply(bounced.id, "dsn@x", "mailer-daemon@x", "2026-12-01T07:00:00.000Z", "bounce",
                              "not delivered: 550 5.1.1 user unknown", "nobody@example.net"))
    assert fold(home).new_replies == 1
    rows = {row["id"]: row for row in read_register(home.register_path)}
    assert rows[answered.id]["replies"] == "2" and rows[answered.id]["opens"] == "0"
    assert rows[answered.id]["replied_by"] == "ann@example.net; bob@example.net"
    assert (rows[answered.id]["first_reply"], rows[answered.id]["last_reply"]) == (
        "2026-12-01T09:00:00.000Z", "2026-12-02T09:00:00.000Z")
    assert rows[bounced.id]["replies"] == "0" and rows[bounced.id]["undelivered"] == "nobody@example.net"
    assert rows[bounced.id]["undelivered_reason"] == "not delivered: 550 5.1.1 user unknown"
    before = home.register_path.read_bytes()
    fold(home, rebuild=True)
    assert home.register_path.read_bytes() == before


def test_a_replaced_replies_log_counts_nothing_twice(home):
    """A sync tool or an editor that rewrites replies.csv whole: the fold reads it again, counts nothing twice."""
    from mailtracker.desktop.fold import fold
    from mailtracker.desktop.register import read_register
    from mailtracker.desktop.replies import record_reply
    from mailtracker.desktop.tags import mint_tag
    from mailtracker.core.settings import load_config

    tag = mint_tag(home, load_config(home), name="Ann", subject="Offer", recipients=["ann@example.net"])
    record_reply(home, _reply(tag.id, "r1@x", "ann@example.net", "2026-12-01T09:00:00.000Z"))
    fold(home)
    data = home.replies_path.read_bytes()
    home.replies_path.unlink()
    home.replies_path.write_bytes(data.replace(b"\r\n", b"\r\n", 1) + b"")
    record_reply(home, _reply(tag.id, "r1@x", "ann@example.net", "2026-12-01T09:00:00.000Z"))
    fold(home)
    (row,) = read_register(home.register_path)
    assert row["replies"] == "1"


def test_status_and_list_say_replied_and_read(host, home):
    """The add-on's status and list carry the replies, who replied, and read = opened or replied."""
    from mailtracker.desktop.fold import fold

    tag_id = _sent(host, "t1@sender.example.org")
    request = dict(message_ids=["t1@sender.example.org"], reply_id="r1@x", verdict="reply", reason="a reply",
                   time="2026-12-01T09:00:00.000Z", **{"from": "ann@example.net"})
    host.call("reply", **request)
    fold(home)
    status = host.call("status", message_id="t1@sender.example.org")["data"]
    assert (status["replies"], status["replied_by"], status["opens"], status["opened"], status["read"]) == (
        1, "ann@example.net", 0, False, True)
    (listed,) = host.call("list", limit=5)["data"]["tags"]
    assert listed["id"] == tag_id and listed["replies"] == 1 and listed["read"] is True


def test_mailtracker_list_and_show_say_replied_and_not_delivered(home):
    """'mailtracker list' has a REPLIES column ('not delivered' for a bounce); 'show' names who
    replied and why a mail was not delivered; a reminder ends with a reply or a bounce."""
    from mailtracker.core.settings import load_config
    from mailtracker.desktop.fold import fold
    from mailtracker.desktop.replies import record_reply
    from mailtracker.desktop.tags import mint_tag, update_tag
    from tests.conftest import run_cli

    answered = mint_tag(home, load_config(home), name="Ann", subject="Offer", recipients=["ann@example.net"])
    bounced = mint_tag(home, load_config(home), name="Nobody", subject="Offer 2", recipients=["nobody@example.net"])
    for tag in (answered, bounced):
        update_tag(home, tag.id, status="sent", remind_at="2026-01-01T00:00:00.000Z")
    record_reply(home, _reply(answered.id, "r1@x", "ann@example.net", "2026-12-01T09:00:00.000Z"))
    record_reply(home, _reply(bounced.id, "d@x", "mailer-daemon@x", "2026-12-01T07:00:00.000Z", "bounce",
                              "not delivered: 550 5.1.1 user unknown", "nobody@example.net"))
    fold(home)
    listed = run_cli("list", home=home).stdout
    header, *lines = listed.splitlines()
    assert "REPLIES" in header
    ann = next(line for line in lines if line.startswith(answered.short_id))
    nobody = next(line for line in lines if line.startswith(bounced.short_id))
    assert " 1 " in ann and "(cancelled: replied)" in ann and "(due)" not in ann
    assert "not delivered" in nobody and "(cancelled: not delivered)" in nobody
    shown = run_cli("show", answered.short_id, home=home).stdout
    assert "1 replies from ann@example.net (first 2026-12-01T09:00:00.000Z" in shown
    shown = run_cli("show", bounced.short_id, home=home).stdout
    assert "not delivered to nobody@example.net: not delivered: 550 5.1.1 user unknown" in shown


def test_a_reminder_if_no_reply_is_kept_and_only_a_reply_ends_it(host, home):
    """remind with remind_if=no_reply: kept with the tag; 'mailtracker list' says 'if no reply'
    and (due) even though the mail was opened; a reply cancels it; an unknown kind is refused."""
    from mailtracker.desktop.fold import fold
    from tests.conftest import run_cli

    tag_id = _sent(host, "t9@sender.example.org")
    answer = host.call("remind", tag_id=tag_id, remind_at="2026-01-02T03:04:05.678Z", remind_if="no_reply")
    assert answer["data"]["remind_if"] == "no_reply"
    assert host.call("remind", tag_id=tag_id, remind_at="2026-01-02T03:04:05.678Z", remind_if="never")["code"] == 60
    fold(home)
    assert host.call("status", tag_id=tag_id)["data"]["remind_if"] == "no_reply"
    assert "if no reply (due)" in run_cli("list", home=home).stdout
    host.call("reply", message_ids=["t9@sender.example.org"], reply_id="r9@x", verdict="reply", reason="",
              time="2026-12-01T09:00:00.000Z", **{"from": "ann@example.net"})
    fold(home)
    assert "(cancelled: replied)" in run_cli("list", home=home).stdout


def test_the_report_shows_replies_and_bounces_with_hostile_text_escaped(home):
    """The HTML report's Replies column: the count with who replied on hover; 'not delivered'
    with the server's reason; a sender's address cannot inject markup."""
    from mailtracker.core.settings import load_config
    from mailtracker.desktop.fold import fold
    from mailtracker.desktop.replies import record_reply
    from mailtracker.desktop.report import write_report
    from mailtracker.desktop.tags import mint_tag

    answered = mint_tag(home, load_config(home), name="Ann", subject="Offer", recipients=["ann@example.net"])
    bounced = mint_tag(home, load_config(home), name="Nobody", subject="Offer 2", recipients=["nobody@example.net"])
    record_reply(home, _reply(answered.id, "r1@x", "<script>alert(1)</script>@example.net", "2026-12-01T09:00:00.000Z"))
    record_reply(home, _reply(bounced.id, "d@x", "mailer-daemon@x", "2026-12-01T07:00:00.000Z", "bounce",
                              "not delivered: 550 <b>user</b> unknown", "nobody@example.net"))
    fold(home)
    html = write_report(home).read_text(encoding="utf-8")
    assert "<th>Replies</th>" in html
    assert 'title="&lt;script&gt;alert(1)&lt;/script&gt;@example.net">1</span>' in html
    assert "<script>alert" not in html
    assert 'title="nobody@example.net: not delivered: 550 &lt;b&gt;user&lt;/b&gt; unknown">not delivered</span>' in html


def test_the_tray_menu_says_replied_and_not_delivered():
    """A mail answered without an open is 'replied', never 'not opened yet'; a bounce says so."""
    import time as clock

    from mailtracker.core.timestamps import utc_timestamp
    from dataclasses import replace

    from mailtracker.desktop.register import Row
    from mailtracker.desktop.tray.menu import describe_row

    now = clock.time()
    base = Row(id="a" * 32, short_id="aaaaaaa", name="Ann", subject="Offer")
    assert describe_row(base, 0, now).endswith("· not opened yet")
    replied = describe_row(replace(base, replies=1, last_reply=utc_timestamp(now - 7200)), 0, now)
    assert replied == "Ann — Offer · replied 2 h ago"
    assert describe_row(replace(base, undelivered="ann@example.net"), 0, now) == "Ann — Offer · not delivered"


def test_a_reply_reported_by_two_computers_counts_once(home):
    """Each computer of the person writes its own replies log in the devices folder; the same
    reply found by both (each Thunderbird sees the Inbox) counts once, a second reply adds one."""
    from mailtracker.core.files import append_rows
    from mailtracker.core.settings import load_config
    from mailtracker.desktop.fold import fold
    from mailtracker.desktop.register import read_register
    from mailtracker.desktop.tags import mint_tag

    tag = mint_tag(home, load_config(home), name="Ann", subject="Offer", recipients=["ann@example.net"])
    row = [tag.id, "r1@x", "ann@example.net", "2026-12-01T09:00:00.000Z", "reply", "a reply from a person", ""]
    home.devices_dir.mkdir()
    append_rows(home.devices_dir / "replies-laptop-abcdef.csv", REPLY_COLUMNS, [row])
    append_rows(home.devices_dir / "replies-desk-ghijkl.csv", REPLY_COLUMNS, [row])
    fold(home)
    assert read_register(home.register_path)[0]["replies"] == "1"
    append_rows(home.devices_dir / "replies-desk-ghijkl.csv", REPLY_COLUMNS,
                [[tag.id, "r2@x", "bob@example.net", "2026-12-02T09:00:00.000Z", "reply", "", ""]])
    fold(home)
    (register_row,) = read_register(home.register_path)
    assert register_row["replies"] == "2" and register_row["replied_by"] == "ann@example.net; bob@example.net"


def test_a_reply_the_other_computer_recorded_first_is_not_new_here(host, home):
    """The laptop's Thunderbird reports a reply the desk's log (brought by Syncthing) already
    holds: it is not recorded again, so the add-on does not notify it a second time."""
    from mailtracker.core.files import append_rows

    tag_id = _sent(host, "tracked-2@sender.example.org")
    home.devices_dir.mkdir()
    append_rows(home.devices_dir / "replies-desk-ghijkl.csv", REPLY_COLUMNS,
                [[tag_id, "r9@example.net", "ann@example.net", "2026-12-01T09:00:00.000Z", "reply", "", ""]])
    request = dict(message_ids=["<tracked-2@sender.example.org>"], reply_id="<r9@example.net>",
                   verdict="reply", reason="a reply from a person", time="2026-12-01T09:00:00.000Z")
    request["from"] = "ann@example.net"
    assert host.call("reply", **request)["data"]["recorded"] is False
    assert not home.replies_path.exists() or len(_rows(home)) == 1
