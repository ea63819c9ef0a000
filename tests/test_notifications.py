"""Notifications: the rules on real fold states, delivery to a real notification
service (dunst on a session D-Bus), and the daemon notifying through it."""

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from mailtracker.core.settings import load_config
from mailtracker.core.timestamps import utc_timestamp
from mailtracker.desktop.fold import fold
from mailtracker.desktop.marks import Marks, marks_path
from mailtracker.core.errors import NotificationUnavailable
from mailtracker.desktop.notifications import Delivery, Notice, Notifier
from mailtracker.desktop.platforms import Platform
from mailtracker.desktop.tags import mint_tag
from tests.conftest import OUTLOOK, rows_of, wait_for, write_hits
from tests.display import started_within

LINUX = replace(Platform.current(), key="linux")

COOLDOWN, GAP = 600.0, 20.0


@pytest.fixture
def mail(home):
    """Three tracked emails, their hits file, and a fold to read the register after hits."""
    config = load_config(home)
    tags = [mint_tag(home, config, name=name, subject=f"About {name}") for name in ("Ann", "Bob", "Cy")]
    hits = home.hits_dir(config) / "hits-a-2026-11-24.csv"

    def rows_after(*lines):
        write_hits(hits, lines, agent=OUTLOOK)
        fold(home)
        return rows_of(home)

    return tags, rows_after


def _notifier(rows) -> Notifier:
    notifier = Notifier(Marks(), cooldown_s=COOLDOWN, gap_s=GAP)
    notifier.observe(rows, 0.0)  # the first fold sets the baseline
    return notifier


def test_first_fold_is_a_baseline_not_a_flood(mail):
    """Opens already counted when the marks are new are taken as told: no notice."""
    (ann, _, _), rows_after = mail
    notifier = Notifier(Marks())
    assert notifier.observe(rows_after((1, ann.id, "GET", utc_timestamp())), 0.0)
    assert notifier.take(0.0) is None and notifier.marks.notified[ann.id] == 1


def test_a_person_open_notifies_once_and_a_refold_does_not(mail, home):
    """A new person open is one notice naming the email; the same counts again (a rebuild) are none."""
    (ann, _, _), rows_after = mail
    notifier = _notifier(rows_after())
    notifier.observe(rows_after((1, ann.id, "GET", utc_timestamp())), 1.0)
    notice = notifier.take(1.0)
    assert notice.title == "Ann opened “About Ann”" and notice.body.startswith("First open at ")
    fold(home, rebuild=True)
    notifier.observe(rows_of(home), 2.0)
    assert notifier.take(GAP + 2.0) is None


def test_machine_and_self_hits_never_notify(mail):
    """HEAD requests (machines) change hits, not person opens: no notice."""
    (ann, bob, _), rows_after = mail
    notifier = _notifier(rows_after())
    rows = rows_after((1, ann.id, "HEAD", utc_timestamp()), (2, bob.id, "HEAD", utc_timestamp()))
    assert not notifier.observe(rows, 1.0)
    assert notifier.due_at() is None


def test_reopens_within_the_cooldown_are_one_notice(mail):
    """Re-opens of one email right after its notice stay quiet; after the cooldown it notifies again."""
    (ann, _, _), rows_after = mail
    notifier = _notifier(rows_after())
    notifier.observe(rows_after((1, ann.id, "GET", "2026-11-24T10:00:00.000Z")), 10.0)
    assert notifier.take(10.0) is not None
    notifier.observe(rows_after((2, ann.id, "GET", "2026-11-24T10:05:00.000Z"),
                                (3, ann.id, "GET", "2026-11-24T10:09:00.000Z")), 60.0)
    assert notifier.due_at() is None
    notifier.observe(rows_after((4, ann.id, "GET", "2026-11-24T11:00:00.000Z")), 10.0 + COOLDOWN)
    notice = notifier.take(10.0 + COOLDOWN)
    assert notice.body.startswith("Opened 4 times; last at ")


def test_opens_within_the_gap_go_out_together(mail):
    """Opens of other emails shortly after a notice wait for the gap and make one grouped notice."""
    (ann, bob, cy), rows_after = mail
    notifier = _notifier(rows_after())
    notifier.observe(rows_after((1, ann.id, "GET", utc_timestamp())), 100.0)
    assert notifier.take(100.0).tag_ids == (ann.id,)
    notifier.observe(rows_after((2, bob.id, "GET", utc_timestamp())), 105.0)
    notifier.observe(rows_after((3, cy.id, "GET", utc_timestamp())), 110.0)
    assert notifier.take(110.0) is None and notifier.due_at() == 100.0 + GAP
    notice = notifier.take(100.0 + GAP)
    assert notice.title == "2 tracked emails opened"
    assert set(notice.body.splitlines()) == {"Bob: About Bob", "Cy: About Cy"}


def test_paused_counts_quietly_and_resuming_does_not_flood(mail):
    """While paused, opens are told to nobody; after resuming only newer opens notify."""
    (ann, bob, _), rows_after = mail
    notifier = _notifier(rows_after())
    notifier.marks.paused = True
    notifier.observe(rows_after((1, ann.id, "GET", utc_timestamp())), 1.0)
    assert notifier.due_at() is None
    notifier.marks.paused = False
    notifier.observe(rows_after(), 2.0)
    assert notifier.due_at() is None
    notifier.observe(rows_after((2, bob.id, "GET", utc_timestamp())), 3.0)
    assert notifier.take(3.0).tag_ids == (bob.id,)


def test_no_session_bus_is_said_once(monkeypatch, caplog):
    """Without a session D-Bus the delivery says why, once, and then stays quiet."""
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    delivery = Delivery(platform=LINUX)
    notice = Notice("Ann opened “Offer”", "First open at 10:00.", ("x",))
    with pytest.raises(NotificationUnavailable, match=r"\$DBUS_SESSION_BUS_ADDRESS is not set"):
        delivery(notice)
    delivery(notice)  # the second time only at debug level


@pytest.mark.slow
def test_a_notice_reaches_a_real_notification_service(notification_service, monkeypatch):
    """Delivery over the session D-Bus: dunst shows the title and body."""
    before = notification_service.shown()
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", notification_service.address)
    Delivery(platform=LINUX)(Notice("Ann opened “Offer”", "First open at 10:00.", ("x",)))
    wait_for(lambda: notification_service.shown() == before + 1, what="dunst to show the notification")
    shown = notification_service.history(since=before)
    assert [(item["summary"], item["body"]) for item in shown] == [("Ann opened “Offer”", "First open at 10:00.")]
    assert shown[0]["appname"] == "mailtracker"


@pytest.mark.slow
def test_the_daemon_notifies_a_person_open_once(home, notification_service, tmp_path):
    """'mailtracker tray' without a tray still notifies: a HEAD is quiet, a person's open is one notification."""
    tag = mint_tag(home, load_config(home), name="Ann", subject="Offer")
    hits = home.hits_dir(load_config(home)) / "hits-a-2026-11-24.csv"
    before = notification_service.shown()
    env = {**notification_service.env}
    env.pop("DISPLAY")
    log_path = tmp_path / "tray.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "mailtracker", "--home", str(home.data_dir), "tray"],
                                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            started_within(proc, lambda: marks_path(home).exists(), 10, "the first fold's baseline")
            # A scanner's HEAD on delivery, the person two minutes later (a hand-minted tag's
            # delivery window starts at its first fetch).
            write_hits(hits, [(1, tag.id, "HEAD", utc_timestamp(time.time() - 120))], agent=OUTLOOK)
            write_hits(hits, [(2, tag.id, "GET", utc_timestamp())], agent=OUTLOOK)
            started_within(proc, lambda: notification_service.shown() > before, 10, "a notification")
            write_hits(hits, [(3, tag.id, "HEAD", utc_timestamp())], agent=OUTLOOK)
            started_within(proc, lambda: rows_of(home)[0].machine_hits == 2, 10,
                           "the second HEAD folded")
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            code = proc.wait(timeout=15)
    assert code == 0, log_path.read_text()
    assert [item["summary"] for item in notification_service.history(since=before)] == ["Ann opened “Offer”"]


def test_a_click_notifies_with_the_link_it_followed():
    """'Ann clicked “the offer”': a click is told once, with the words of its link."""
    from dataclasses import replace

    from mailtracker.desktop.marks import Marks
    from mailtracker.desktop.register import Link, Row

    row = Row("t" * 32, "ttttttt", name="Ann", subject="Offer")
    notifier = Notifier(Marks(), gap_s=0)
    notifier.observe([row], 1.0)
    clicked = replace(row, clicks=1, last_click="2026-11-24T12:00:00.000Z", links=(
        Link(0, "https://shop.example.org/", "the offer", 1, "2026-11-24T12:00:00.000Z", "2026-11-24T12:00:00.000Z"),))
    assert notifier.observe([clicked], 2.0)
    notice = notifier.take(2.0)
    assert notice.title == "Ann clicked “the offer”" and "Offer" in notice.body
    assert not notifier.observe([clicked], 3.0) and notifier.take(3.0) is None


def test_an_open_of_another_day_names_its_day():
    """An open that arrives late (a computer back online) says its day, not a time that reads as
    today's; one of today says its time alone."""
    from mailtracker.core.timestamps import parse_timestamp
    from mailtracker.desktop.notifications import describe_opens
    from mailtracker.desktop.register import Row

    days_ago = utc_timestamp(time.time() - 3 * 86400)
    row = Row("t" * 32, "ttttttt", name="Ann", subject="Offer", opens=1, first_open=days_ago, last_open=days_ago)
    moment = time.localtime(parse_timestamp(days_ago))
    assert describe_opens([row]).body == f"First open at {moment.tm_mday} {time.strftime('%b %H:%M', moment)}."
    now = utc_timestamp()
    today = Row("t" * 32, "ttttttt", name="Ann", subject="Offer", opens=1, first_open=now, last_open=now)
    clock = time.strftime("%H:%M", time.localtime(parse_timestamp(now)))
    assert describe_opens([today]).body == f"First open at {clock}."
