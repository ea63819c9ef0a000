"""The register row: one type, written to register.csv and to JSON in one place each."""

from dataclasses import fields, replace

import pytest

from mailtracker.desktop.counts import Counts
from mailtracker.desktop.register import REGISTER_COLUMNS, Link, Row, read_register, write_register
from mailtracker.desktop.view import compact_json, loads


def _full_row() -> Row:
    """A row with a value in every field that is not its default, outside text that a
    spreadsheet would run included."""
    return Row("a" * 32, "aaaaaaa", name="=Ann", subject="+1 offer, now", recipients="ann@x.org; bob@x.org",
               created="2026-11-24T09:00:00.000Z", status="sent", message_id="-m@x.org", opens=3,
               first_open="2026-11-24T10:00:00.000Z", last_open="2026-11-24T12:00:00.000Z", hits=9,
               self_hits=2, machine_hits=1, clicks=2, first_click="2026-11-24T10:30:00.000Z",
               last_click="2026-11-24T11:30:00.000Z", group="g1", remind_at="2026-11-30T09:00:00.000Z",
               replies=2, first_reply="2026-11-24T13:00:00.000Z", last_reply="2026-11-25T08:00:00.000Z",
               replied_by="=ann@x.org; bob@x.org", undelivered="carl@x.org",
               undelivered_reason="-550 5.1.1 User unknown", remind_if="no_reply", sent_at="2026-11-24T09:00:02.000Z",
               not_seen="no_images", not_seen_by="=dan@x.org",
               not_seen_reason="-dan@x.org does not load images: replied to “Offer”",
               identity="me@example.org", opened_elsewhere="2026-11-24T12:00:00.000Z",
               links=(Link(1, "https://x.org/", "the offer", 2, "2026-11-24T10:30:00.000Z",
                           "2026-11-24T11:30:00.000Z"),))


def test_every_field_survives_json_and_every_column_survives_the_csv(tmp_path):
    """to_json/from_json give the row back whole; register.csv holds each CSV column in the
    field order, neutralised outside text read back as it was."""
    row = _full_row()
    defaults = Row(row.id, row.short_id)
    assert all(getattr(row, f.name) != getattr(defaults, f.name) for f in fields(Row) if f.name not in ("id", "short_id"))
    assert Row.from_json(row.to_json()) == row
    assert row.to_json()["opened"] is True and row.to_json()["read"] is True
    # As the read model keeps it (its values, in JSON) and reads it back, with the keys in order.
    stored = Row.from_stored(loads(compact_json(row.stored_values())))
    assert stored == row and list(stored.to_json().items()) == list(row.to_json().items())
    path = tmp_path / "register.csv"
    write_register(path, [row])
    assert path.read_text(encoding="utf-8-sig").splitlines()[0] == ",".join(REGISTER_COLUMNS)
    assert "'=Ann" in path.read_text(encoding="utf-8-sig")
    (read,) = read_register(path)
    assert read == {name: str(getattr(row, name)) for name in REGISTER_COLUMNS}


def test_a_row_the_fold_makes_is_the_row_its_fields_say():
    """Row.of (which skips the dataclass's __init__ for speed) gives the same row as the
    constructor, in JSON and CSV too, and it takes replace() like any other."""
    full = _full_row()
    tag = {name: getattr(full, name) for name in ("name", "subject", "recipients", "created", "status",
                                                   "message_id", "group", "remind_at", "remind_if", "sent_at",
                                                   "identity")}
    counts = Counts(full.hits, full.opens, full.first_open, full.last_open, full.self_hits, full.machine_hits,
                    full.clicks, full.first_click, full.last_click, {"1": [2, full.first_click, full.last_click]})
    replies = {name: getattr(full, name) for name in ("replies", "first_reply", "last_reply", "replied_by",
                                                       "undelivered", "undelivered_reason")}
    made = Row.of(full.id, tag, counts, {"1": ["https://x.org/", "the offer"]}, replies)
    expected = replace(full, not_seen="", not_seen_by="", not_seen_reason="", opened_elsewhere="")
    assert made == expected
    assert made.to_json() == expected.to_json() and list(made.to_json()) == list(expected.to_json())
    assert made.csv_line() == expected.csv_line()
    assert replace(made, not_seen="no_images").not_seen == "no_images" and made.not_seen == ""
    changed = made.but(not_seen="no_images", opened_elsewhere="2026-11-24T12:00:00.000Z")
    assert changed == replace(made, not_seen="no_images", opened_elsewhere="2026-11-24T12:00:00.000Z")
    assert changed.to_json() == replace(changed).to_json() and made.not_seen == ""
    with pytest.raises(TypeError):
        made.but(not_a_field="x")
    bare = Row.of("c" * 32, {}, Counts(), {})
    assert bare == Row("c" * 32, "ccccccc") and bare.to_json() == Row("c" * 32, "ccccccc").to_json()


def test_a_row_an_older_fold_stored_reads_with_defaults():
    """A stored row without the columns added since (clicks, links, reminders) reads as zero and empty."""
    row = Row.from_json({"id": "b" * 32, "short_id": "bbbbbbb", "name": "Bob", "opens": 1,
                         "last_open": "2026-11-24T10:00:00.000Z", "retired": "a key no longer known"})
    assert (row.clicks, row.links, row.remind_at, row.group, row.opened) == (0, (), "", "", True)


def test_group_totals_take_the_earliest_first_and_the_latest_last():
    """with_counts_of: counts summed, first times the earliest of any copy, last the latest."""
    stamp = "2026-11-24T{:02d}:00:00.000Z".format
    members = [Row("a" * 32, "a", opens=1, hits=2, first_open=stamp(9), last_open=stamp(9), clicks=1,
                   first_click=stamp(11), last_click=stamp(11)),
               Row("b" * 32, "b", opens=2, hits=2, first_open=stamp(5), last_open=stamp(7)),
               Row("c" * 32, "c", hits=1, self_hits=1, clicks=2, first_click=stamp(6), last_click=stamp(8))]
    total = members[0].with_counts_of(members)
    assert (total.id, total.opens, total.hits, total.self_hits, total.clicks) == ("a" * 32, 3, 5, 1, 3)
    assert (total.first_open, total.last_open, total.first_click, total.last_click) == (
        stamp(5), stamp(9), stamp(6), stamp(11))


def test_a_group_says_which_copies_bounced_and_why():
    """A mail sent individually whose second copy bounced: the group row names that recipient
    and that copy's reason (not the first copy's empty one)."""
    members = [Row("a" * 32, "a", replies=1, replied_by="ann@x.org"),
               Row("b" * 32, "b", undelivered="bob@x.org", undelivered_reason="550 5.1.1 User unknown")]
    total = members[0].with_counts_of(members)
    assert (total.undelivered, total.undelivered_reason) == ("bob@x.org", "550 5.1.1 User unknown")
    assert (total.replies, total.replied_by) == (1, "ann@x.org")


def test_a_reply_makes_a_mail_read_though_no_open_was_seen():
    """read = opened, clicked or replied: a reply alone makes it read, and opened stays the pixel's."""
    row = Row("c" * 32, "ccccccc", replies=1, replied_by="ann@x.org")
    assert (row.opened, row.read, row.to_json()["read"]) == (False, True, True)
    assert not Row("d" * 32, "ddddddd").read
