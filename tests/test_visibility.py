"""The honest "not seen": per-recipient knowledge learned by the fold from real log files
(tags.csv, hits files, replies.csv), shown in register.csv, and the same after a rebuild."""

import random

import pytest

from mailtracker.core.csvcodec import format_row, header_line
from mailtracker.core.hitline import HIT_COLUMNS
from mailtracker.core.settings import load_config
from mailtracker.core.timestamps import utc_timestamp
from mailtracker.desktop.fold import fold
from mailtracker.desktop.register import read_register
from mailtracker.desktop.replies import Reply, record_reply
from mailtracker.desktop.tags import mint_tag, update_tag
from mailtracker.desktop.visibility import addresses
from tests.conftest import BASE_TIME, THUNDERBIRD

OUTLOOK = "Mozilla/4.0 (compatible; ms-office; MSOffice 16)"
APPLE_PROXY = "Mozilla/5.0"
SCANNER = "Mimecast/1.0 (link and image scanner)"


def _sent(home, subject, recipients, day):
    """A tracked mail sent on ``day`` (days after BASE_TIME) to ``recipients``."""
    tag = mint_tag(home, load_config(home), subject=subject, recipients=recipients)
    update_tag(home, tag.id, message_id=f"{tag.id}@sender.example.org", status="sent")
    return tag.id


def _hits(home, hits, boot="bootaaaa"):
    """Hits in the server's exact format: (seq, tag, seconds after BASE_TIME, client, agent),
    Apple's relay named as the server names its network."""
    path = home.hits_dir(load_config(home)) / "hits-a-2026-11-24.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as handle:
        if handle.tell() == 0:
            handle.write(header_line(HIT_COLUMNS))
        for seq, tag, after, client, agent in hits:
            handle.write(format_row([f"{boot}.{seq:x}", utc_timestamp(BASE_TIME + after), tag, "GET", client,
                                     agent, "", "apple-relay" if agent == APPLE_PROXY else ""]).encode())


def _reply(home, tag, sender, after):
    record_reply(home, Reply(tag=tag, reply_id=f"r{after}@example.net", sender=sender,
                             time=utc_timestamp(BASE_TIME + after), verdict="reply", reason="a reply from a person"))


def _rows(home):
    return {row["id"]: row for row in read_register(home.register_path)}


DAY = 86400


def test_a_reply_without_the_pixel_makes_later_mails_not_visible_and_a_rebuild_says_the_same(home):
    """Ann replied to a mail whose image she never loaded: her other mails say "opens not
    visible" (with the rule and the mail), not "not opened"; a mail to Ann and Bob stays "not
    opened" while Bob could still be seen opening it, and is not seen once he has answered; a
    rebuild gives the same register; an open of Ann's with images makes her visible again."""
    first = _sent(home, "Offer", ["Ann <ann@example.net>"], 0)
    second = _sent(home, "Follow-up", ["ann@example.net"], 1)
    to_bob = _sent(home, "Bob's", ["bob@example.net"], 1)
    both = _sent(home, "To both", ["ann@example.net", "Bob <bob@example.net>"], 1)
    fold(home)
    assert all(row["not_seen"] == "" for row in _rows(home).values())
    _reply(home, first, "ANN@example.net", DAY // 2)
    result = fold(home)
    assert {second, both} <= result.touched  # rows of mails the reply did not name, written anew
    rows = _rows(home)
    assert rows[first]["replies"] == "1" and rows[first]["not_seen"] == ""  # answered: nothing left to see
    assert rows[second]["not_seen"] == "no_images" and rows[second]["not_seen_by"] == "ann@example.net"
    assert rows[second]["opens"] == "0"
    assert rows[second]["not_seen_reason"] == (
        f"ann@example.net does not load images: replied to “Offer” (tag {first[:7]}) without its image being loaded")
    assert rows[to_bob]["not_seen"] == "" and rows[both]["not_seen"] == ""
    _reply(home, both, "bob@example.net", DAY)
    fold(home)
    rows = _rows(home)
    # Bob answered "To both", no image loaded: he too does not load images; only Ann is waited for.
    assert rows[both]["not_seen"] == "no_images" and rows[both]["not_seen_by"] == "ann@example.net"
    assert rows[to_bob]["not_seen"] == "no_images"
    before = home.register_path.read_bytes()
    fold(home, rebuild=True)
    assert home.register_path.read_bytes() == before
    # Ann opens the follow-up with images: her opens show again, the register says so at once.
    _hits(home, [(1, second, 2 * DAY, "203.0.113.0", OUTLOOK)])
    fold(home)
    rows = _rows(home)
    assert rows[second]["opens"] == "1" and rows[second]["not_seen"] == ""
    third = _sent(home, "Third", ["ann@example.net"], 3)
    fold(home)
    assert _rows(home)[third]["not_seen"] == ""


def test_only_apple_proxy_fetches_make_opens_not_measurable_with_the_reason(home):
    """Every fetch of Cleo's mail is Apple Mail Privacy Protection's relay: her mails say
    "opens not measurable" and why; a scanner's fetches need two mails before saying so;
    a rebuild from the logs says the same."""
    cleo = _sent(home, "Invoice", ["cleo@icloud.example"], 0)
    dan_first = _sent(home, "Agenda", ["dan@corp.example"], 0)
    fold(home)
    _hits(home, [(1, cleo, 3600, "17.58.0.0", APPLE_PROXY), (2, dan_first, 3600, "198.51.100.0", SCANNER)])
    fold(home)
    rows = _rows(home)
    assert rows[cleo]["not_seen"] == "not_measurable" and rows[cleo]["opens"] == "0"
    assert rows[cleo]["not_seen_reason"].startswith(
        f"cleo@icloud.example opens not measurable: every fetch of “Invoice” (tag {cleo[:7]}) was a machine's: "
        "Apple Mail Privacy Protection")
    assert rows[dan_first]["not_seen"] == ""  # one scanned mail: the person may still open it
    dan_second = _sent(home, "Minutes", ["dan@corp.example"], 2)
    fold(home)
    _hits(home, [(3, dan_second, 2 * DAY + 3600, "198.51.100.0", SCANNER)])
    fold(home)
    rows = _rows(home)
    assert rows[dan_first]["not_seen"] == rows[dan_second]["not_seen"] == "not_measurable"
    assert "an automated fetch ('mimecast' in the user agent) (and 1 earlier mails alike)" in rows[dan_second][
        "not_seen_reason"]
    together = _sent(home, "For you both", ["cleo@icloud.example", "dan@corp.example"], 2)
    fold(home)
    assert _rows(home)[together]["not_seen"] == "not_measurable"
    assert _rows(home)[together]["not_seen_by"] == "cleo@icloud.example; dan@corp.example"
    _hits(home, [(4, together, 2 * DAY + 7200, "203.0.113.0", OUTLOOK)])  # one of them opened it: seen
    fold(home)
    assert _rows(home)[together]["not_seen"] == "" and _rows(home)[cleo]["not_seen"] == "not_measurable"
    before = home.register_path.read_bytes()
    fold(home, rebuild=True)
    assert home.register_path.read_bytes() == before
    # Dan opens one with images: measurable after all.
    _hits(home, [(5, dan_second, 3 * DAY, "203.0.113.0", OUTLOOK)])
    fold(home)
    assert _rows(home)[dan_first]["not_seen"] == ""


@pytest.mark.parametrize("undone_by", ["her open", "a second recipient"])
def test_what_makes_the_opens_measurable_again_after_the_one_mail_apple_fetched(home, undone_by):
    """Cleo's one fetched mail was fetched by Apple's relay alone: her other mail says "opens
    not measurable". Once she opens that same mail with images, or once tags.csv says it went
    to Dan too (a mail to two people says nothing of either), her other mail is "not opened"
    again (its row written anew in that pass), and a rebuild says the same."""
    invoice = _sent(home, "Invoice", ["cleo@icloud.example"], 0)
    reminder = _sent(home, "Reminder", ["cleo@icloud.example"], 1)
    fold(home)
    _hits(home, [(1, invoice, 3600, "17.58.0.0", APPLE_PROXY)])
    fold(home)
    assert _rows(home)[reminder]["not_seen"] == "not_measurable"
    if undone_by == "her open":
        _hits(home, [(2, invoice, 2 * DAY, "203.0.113.0", OUTLOOK)])
    else:
        update_tag(home, invoice, recipients="cleo@icloud.example; Dan <dan@corp.example>")
    assert reminder in fold(home).touched
    rows = _rows(home)
    assert rows[invoice]["opens"] == ("1" if undone_by == "her open" else "0")
    assert rows[reminder]["not_seen"] == rows[invoice]["not_seen"] == ""
    before = home.register_path.read_bytes()
    fold(home, rebuild=True)
    assert home.register_path.read_bytes() == before


def test_recipients_fields_give_their_addresses_once():
    """Display names, angle brackets, case and separators as tags.csv keeps them."""
    assert addresses('Ann Example <Ann@Example.net>; bob@example.net, "Ann" <ann@example.net>; nobody') == (
        "ann@example.net", "bob@example.net")
    assert addresses(" 'Cleo@Example.NET'\t") == ("cleo@example.net",) and addresses("nobody") == addresses("") == ()
    # A field of one address, read the quick way, gives what the field read part by part gives.
    rng = random.Random(3)
    for _ in range(3000):
        field = "".join(rng.choice("aZ@. \t\"'>\u00c9\u2028") for _ in range(rng.randrange(8)))
        assert addresses(field) == addresses(field + ";"), field


def test_list_show_report_and_tray_say_not_visible_and_the_reminder_waits_for_a_reply(home):
    """Where "not opened" was shown, a mail to a recipient who does not load images says "not
    visible" with the rule; its "if not opened" reminder is one "if no reply", due while no reply came."""
    import time as clock

    from mailtracker.desktop.register import Register
    from mailtracker.desktop.report import write_report
    from mailtracker.desktop.tray.menu import describe_row
    from tests.conftest import run_cli

    first = _sent(home, "Offer", ["ann@example.net"], 0)
    second = _sent(home, "<b>Follow-up</b>", ["ann@example.net"], 1)
    update_tag(home, second, remind_at="2026-01-01T00:00:00.000Z")
    _reply(home, first, "ann@example.net", 3600)
    fold(home)
    listed = run_cli("list", home=home).stdout
    line = next(line for line in listed.splitlines() if line.startswith(second[:7]))
    assert "0, not visible" in line and "if no reply (not visible) (due)" in line
    shown = run_cli("show", second[:7], home=home).stdout
    assert f"opens not visible for this recipient: ann@example.net does not load images: replied to “Offer” (tag {first[:7]})" in shown
    html = write_report(home).read_text(encoding="utf-8")
    assert '<span class="notseen" title="ann@example.net does not load images: replied to “Offer”' in html
    assert "<b>Follow-up</b>" not in html
    with Register.load(home) as register:
        row = register.get(second)
    assert describe_row(row, 0, clock.time()).endswith("· opens not visible for this recipient")


IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"


def test_an_open_from_a_new_network_and_program_is_hinted_in_show_and_report_and_a_rebuild_agrees(home):
    """Ann opens in Outlook at the office, then in Outlook at home (same program: no hint), then
    an iPhone on a third network opens it: the timeline says "opened on another device or by
    someone else (forwarded?)" for that open only (Thunderbird at the office later: not); opens
    stay 4; a mail to two people never hints."""
    from mailtracker.desktop.register import Register
    from mailtracker.desktop.report import write_report
    from tests.conftest import run_cli

    tag = _sent(home, "Offer", ["ann@example.net"], 0)
    both = _sent(home, "To both", ["ann@example.net", "bob@example.net"], 0)
    fold(home)
    _hits(home, [(1, tag, 3600, "203.0.113.0", OUTLOOK), (2, both, 3600, "203.0.113.0", OUTLOOK)])
    fold(home)
    _hits(home, [(3, tag, 7200, "198.51.100.0", OUTLOOK), (4, tag, 4 * 3600, "192.0.2.0", IPHONE),
                 (5, both, 4 * 3600, "192.0.2.0", IPHONE),
                 (6, tag, 6 * 3600, "203.0.113.0", THUNDERBIRD)])  # a new program, but from the office: no hint
    fold(home)
    with Register.load(home) as register:
        row = register.get(tag)
        assert row.opens == 4
        assert row.opened_elsewhere.split() == [utc_timestamp(BASE_TIME + 4 * 3600)]
        assert register.get(both).opens == 2 and register.get(both).opened_elsewhere == ""
    shown = run_cli("show", tag[:7], home=home).stdout.splitlines()
    hinted = [line for line in shown if "opened on another device or by someone else (forwarded?)" in line]
    assert len(hinted) == 1 and utc_timestamp(BASE_TIME + 4 * 3600) in hinted[0]
    html = write_report(home).read_text(encoding="utf-8")
    assert html.count('class="hit open elsewhere"') == 1
    assert "1 opened on another device or by someone else (forwarded?)" in html
    fold(home, rebuild=True)
    with Register.load(home) as register:
        assert register.get(tag).opened_elsewhere == row.opened_elsewhere


def test_what_was_learned_is_kept_for_the_next_process(home):
    """The knowledge rests in the fold's store with each mail's evidence: a fold in a new
    process (the CLI after the daemon stopped) still knows that Ann does not load images,
    for a mail minted since."""
    from tests.conftest import run_cli

    first = _sent(home, "Offer", ["ann@example.net"], 0)
    _reply(home, first, "ann@example.net", DAY // 2)
    fold(home)
    later = _sent(home, "Later", ["ann@example.net"], 2)
    run_cli("fold", home=home)
    assert _rows(home)[later]["not_seen"] == "no_images"
