"""Minting tags: a row in tags.csv before the pixel exists, never lost or doubled."""

import csv
import io
import json
import subprocess
import sys

from mailtracker.core.csvcodec import format_row
from mailtracker.core.secret import read_secret
from mailtracker.core.settings import load_config
from mailtracker.core.timestamps import utc_timestamp
from mailtracker.core.tokens import mint_token, verify_token
from mailtracker.desktop import tail as tail_module
from mailtracker.desktop.fold import fold
from mailtracker.desktop.register import Row, read_register, write_register
from mailtracker.desktop.tags import (TAG_COLUMNS, MAX_FIELD, MAX_RECIPIENTS, MAX_RECIPIENTS_FIELD, find_tag, mint_tag,
                                      parse_tag_records, record_self_fetch, records_end, update_tag)
from mailtracker.desktop.tail import Cursor, read_new_data
from tests.conftest import row_of, run_cli


def _tag_rows(home):
    return list(csv.DictReader(io.StringIO(home.tags_path.read_text(encoding="utf-8-sig"), newline="")))


def test_mint_appends_a_row_and_returns_a_verifying_pixel(home):
    """A minted tag is in tags.csv, and its URL carries a token the server accepts."""
    tag = mint_tag(home, load_config(home), name="John", subject="Offer", recipients=["j@x.org", "k@y.org"])
    rows = _tag_rows(home)
    assert [r["id"] for r in rows] == [tag.id]
    assert rows[0]["name"] == "John" and rows[0]["recipients"] == "j@x.org; k@y.org"
    assert verify_token(read_secret(home.secret_path), tag.id)
    assert tag.url == f"http://127.0.0.1:56789/p/{tag.id}.gif"
    assert f'src="{tag.url}"' in tag.html and 'width="1"' in tag.html


def test_tag_command_prints_json_with_id_url_html(home):
    """`mailtracker tag --json` prints an object with at least id, url and html."""
    out = json.loads(run_cli("tag", "--name", "Ann", "--to", "a@x.org", "--json", home=home).stdout)
    assert {"id", "url", "html"} <= set(out)
    assert out["url"].endswith(out["id"] + ".gif")


def test_formula_in_a_name_is_neutralised_in_tags_csv(home):
    """A name or subject typed as a formula is stored inert and read back unchanged."""
    mint_tag(home, load_config(home), name="=HYPERLINK(\"http://evil\")", subject="+1")
    row = _tag_rows(home)[0]
    assert row["name"].startswith("'=") and row["subject"] == "'+1"


def test_eight_processes_minting_at_once_lose_and_duplicate_nothing(home):
    """8 processes x 40 tags at once: 320 distinct, well-formed rows, one header."""
    script = (
        "import sys\nfrom mailtracker.core.paths import Home\nfrom mailtracker.core.settings import load_config\nfrom mailtracker.desktop.tags import mint_tag\n"
        "home = Home.locate(sys.argv[1]); config = load_config(home)\n"
        "for i in range(40): mint_tag(home, config, name=f'p{sys.argv[2]}-{i}', subject='s, with \"quotes\"')\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(home.data_dir), str(n)]) for n in range(8)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    rows = _tag_rows(home)
    assert len(rows) == 320
    assert len({r["id"] for r in rows}) == 320
    assert {r["name"] for r in rows} == {f"p{n}-{i}" for n in range(8) for i in range(40)}
    assert home.tags_path.read_text(encoding="utf-8-sig").count("id,created") == 1


def test_oversized_fields_are_cut_at_the_writer_and_the_tag_is_minted(home, caplog):
    """A 200,000-character subject, 6,000 recipients, a huge Message-ID and reason: cut with a warning, never refused."""
    config = load_config(home)
    with caplog.at_level("WARNING", logger="mailtracker.desktop.tags"):
        tag = mint_tag(home, config, name="n" * 150_000, subject="s" * 200_000,
                       recipients=[f"r{i}@example.org" for i in range(6000)], identity="i" * 150_000)
        update_tag(home, tag.id, message_id="m" * 200_000, status="sent")
        record_self_fetch(home, tag.id, "r" * 200_000)
    later = mint_tag(home, config, name="Later")
    assert len(tag.subject) == MAX_FIELD and tag.recipients.count("@") == MAX_RECIPIENTS
    assert any("cut to its first" in r.getMessage() for r in caplog.records)
    assert max(len(field) for row in _tag_rows(home) for field in row.values()) <= MAX_RECIPIENTS_FIELD
    result = fold(home)
    assert result.skipped_lines == 0 and result.new_moments == 1
    row = row_of(home, tag.id)
    assert row["subject"] == "s" * MAX_FIELD and row["message_id"] == "m" * MAX_FIELD
    assert row_of(home, later.id)["name"] == "Later"
    for command in ("list", "report", "rebuild"):
        proc = run_cli(command, home=home, check=False)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, (command, proc.stderr)


def test_a_huge_field_left_by_an_older_writer_costs_no_tag(home):
    """tags.csv rows with a 300,000-character field (one with newlines) are read, cut to the bound; later rows too."""
    config = load_config(home)
    first = mint_tag(home, config, name="First")
    big, bigger = mint_token(read_secret(home.secret_path)), mint_token(read_secret(home.secret_path))
    with open(home.tags_path, "ab") as handle:
        handle.write(format_row([big, utc_timestamp(), "Big", "x" * 300_000, "", "", "", "sent"]).encode())
        handle.write(format_row([bigger, utc_timestamp(), "Bigger", "y\n" * 150_000, "", "", "", "sent"]).encode())
    last = mint_tag(home, config, name="Last")
    fold(home)
    assert [row_of(home, t)["name"] for t in (first.id, big, bigger, last.id)] == ["First", "Big", "Bigger", "Last"]
    assert row_of(home, big)["subject"] == "x" * MAX_FIELD
    assert find_tag(home, tag_id=last.id)[1]["name"] == "Last"
    proc = run_cli("list", home=home, check=False)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr


def test_read_register_skips_only_a_row_with_an_oversized_field(tmp_path, caplog):
    """A register.csv row beyond the csv field limit is skipped with a warning; the rows after it are read."""
    path = tmp_path / "register.csv"
    write_register(path, [Row("a" * 32, "aaaaaaa", name="Ann")])
    with open(path, "ab") as handle:
        handle.write(format_row(["b" * 32, "bbbbbbb", "Huge", "z" * 200_000]).encode())
        handle.write(format_row(["c" * 32, "ccccccc", "Cid"]).encode())
    with caplog.at_level("WARNING", logger="mailtracker.desktop.register"):
        rows = read_register(path)
    assert [row["name"] for row in rows] == ["Ann", "Cid"]
    assert any("field larger than field limit" in r.getMessage() for r in caplog.records)


def test_newlines_in_fields_survive_a_write_read_round_trip(home):
    """A subject and name with LF, CRLF and CR read back exactly, by the fold and by find_tag."""
    subject, name = "first\nsecond\r\nthird\rfourth", 'a "quoted"\nname, too'
    tag = mint_tag(home, load_config(home), name=name, subject=subject)
    update_tag(home, tag.id, message_id="<id@x>", status="sent")
    fold(home)
    row = row_of(home, tag.id)
    assert (row["subject"], row["name"], row["message_id"]) == (subject, name, "<id@x>")
    assert find_tag(home, tag_id=tag.id)[1]["subject"] == subject


def test_a_record_straddling_a_read_chunk_is_not_lost(home, monkeypatch):
    """With a 61-byte read chunk every record straddles one: each minted tag is read whole, none lost."""
    config = load_config(home)
    minted = [mint_tag(home, config, name=f"n{i}", subject=f"line {i}\r\n" * (i % 7) + '"q", x')
              for i in range(40)]
    for chunk in (7, 61, 1000):
        cursor, found = Cursor(), {}
        for data in read_new_data(home.tags_path, cursor, record_end=records_end, chunk_bytes=chunk):
            found.update(record for record in parse_tag_records(data) if record is not None)
        assert {tag_id: fields["subject"] for tag_id, fields in found.items()} == \
            {tag.id: tag.subject for tag in minted}, chunk
    monkeypatch.setattr(tail_module, "_READ_CHUNK", 61)
    result = fold(home)
    assert result.skipped_lines == 0 and result.new_tags == 40
    assert [row_of(home, tag.id)["subject"] for tag in minted] == [tag.subject for tag in minted]


def test_a_torn_quoted_field_swallows_no_later_tag(home):
    """A writer cut off inside a quoted field leaves an open quote: the rows after it are still read."""
    config = load_config(home)
    mint_tag(home, config, name="Before")
    with open(home.tags_path, "ab") as handle:
        handle.write(b'abcdefghijklmnopqrstuvwxyzabcdef,2026-01-01T00:00:00.000Z,Torn,"half a sub')
    after = [mint_tag(home, config, name=f"After {i}", subject="has, comma") for i in range(3)]
    result = fold(home)
    assert [row_of(home, tag.id)["name"] for tag in after] == ["After 0", "After 1", "After 2"]
    assert result.skipped_lines == 1


def test_tags_csv_with_reordered_columns_is_read_by_header(home):
    """A spreadsheet that reordered the columns: rows map by the header, and new rows follow its order."""
    config = load_config(home)
    old = mint_tag(home, config, name="Ann", subject="Offer", recipients=["a@x.org"])
    rows = _tag_rows(home)
    order = ["subject", "status", "id", "recipients", "name", "created", "message_id", "identity"]
    buffer = io.StringIO()
    # The header of a file begun before the group column was added (its rows have none).
    writer = csv.DictWriter(buffer, fieldnames=order, lineterminator="\r\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    home.tags_path.write_text("\ufeff" + buffer.getvalue(), encoding="utf-8")
    new = mint_tag(home, config, name="Bob", subject="Hello", recipients=["b@y.org"], group="g-2")
    update_tag(home, new.id, message_id="<m@y>", status="sent")
    fold(home)
    assert row_of(home, new.id)["group"] == "g-2"
    assert [(row_of(home, t)["name"], row_of(home, t)["subject"], row_of(home, t)["recipients"])
            for t in (old.id, new.id)] == [("Ann", "Offer", "a@x.org"), ("Bob", "Hello", "b@y.org")]
    assert row_of(home, new.id)["message_id"] == "<m@y>" and row_of(home, new.id)["status"] == "sent"
    assert [r["name"] for r in _tag_rows(home)] == ["Ann", "Bob", ""]


def test_tags_csv_without_a_header_is_read_by_position(home):
    """A tags.csv without its header row (an older or hand-made file) is read in the documented order."""
    token = mint_token(read_secret(home.secret_path))
    home.tags_path.write_bytes(format_row([token, utc_timestamp(), "Ann", "Offer", "a@x.org", "", "", "sent"]).encode())
    fold(home)
    assert (row_of(home, token)["name"], row_of(home, token)["subject"]) == ("Ann", "Offer")


def test_a_row_whose_fields_are_column_names_is_data_not_a_header(home):
    """A tag named "id" with the subject "name" and recipients "created" stays a tag, and the rows after it map right."""
    config = load_config(home)
    odd = mint_tag(home, config, name="id", subject="name", recipients=["created"], identity="status")
    after = mint_tag(home, config, name="Bob", subject="Hello")
    fold(home)
    assert (row_of(home, odd.id)["name"], row_of(home, odd.id)["subject"]) == ("id", "name")
    assert (row_of(home, after.id)["name"], row_of(home, after.id)["subject"]) == ("Bob", "Hello")


def test_a_column_added_at_the_end_reads_old_and_new_rows(home):
    """A tags.csv begun before the group column (8-column header and rows) keeps being read,
    and the new 9-field rows appended under that old header carry their group."""
    from mailtracker.core.csvcodec import header_line

    config = load_config(home)
    old = mint_token(read_secret(home.secret_path))
    home.tags_path.parent.mkdir(parents=True, exist_ok=True)
    home.tags_path.write_bytes(header_line(TAG_COLUMNS[:8]) + format_row(
        [old, utc_timestamp(), "Old", "s", "", "", "", "sent"]).encode())
    new = mint_tag(home, config, name="New", group="g-1")
    fold(home)
    assert row_of(home, old)["name"] == "Old" and row_of(home, old).get("group", "") == ""
    assert row_of(home, new.id)["group"] == "g-1"
    assert find_tag(home, tag_id=new.id)[1]["group"] == "g-1"


def test_a_column_added_at_the_end_reads_in_older_and_newer_files(home):
    """tags.csv grows columns only at its end: a newer row under an older file's header, and an
    older writer's shorter row under a newer header, both read by name; other widths do not."""
    from mailtracker.desktop.tags import TAG_COLUMNS, TAG_COLUMNS_FIRST as OLDEST_TAG_WIDTH

    secret = read_secret(home.secret_path)
    old, new, odd = (mint_token(secret) for _ in range(3))
    older_header = format_row(TAG_COLUMNS[:OLDEST_TAG_WIDTH])
    home.tags_path.write_bytes(("\ufeff" + older_header).encode() + format_row(
        [old, utc_timestamp(), "Ann", "Offer", "a@x.org", "", "", "sent"]).encode())
    update_tag(home, old, remind_at="2026-12-04T09:00:00.000Z")
    fold(home)
    assert (row_of(home, old)["name"], row_of(home, old)["remind_at"]) == ("Ann", "2026-12-04T09:00:00.000Z")
    home.tags_path.write_bytes(("\ufeff" + format_row(TAG_COLUMNS)).encode()
                               + format_row([new, utc_timestamp(), "Bob", "Hi", "b@y.org", "", "", "sent"]).encode()
                               + format_row([odd, utc_timestamp(), "Cy"]).encode())
    records = [record for record in parse_tag_records(home.tags_path.read_bytes())]
    assert records[0][0] == new and records[0][1]["name"] == "Bob" and records[0][1]["remind_at"] == ""
    assert records[1] is None  # three fields is no writer's row


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _live_formulas(path):
    """The cells of a CSV file (read as a spreadsheet reads it) that a spreadsheet would run."""
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"), newline="")))
    return [(rows[0][index], cell) for row in rows[1:] for index, cell in enumerate(row)
            if cell.startswith(FORMULA_STARTS)]


def test_formula_prefixes_in_every_column_from_every_input_never_reach_the_register_live(home):
    """From the add-on (through the real host), the CLI and a crafted tags.csv row, a formula in
    any column (name, subject, recipients, identity, group, message_id, status, created,
    remind_at) is inert in tags.csv and in register.csv; the views read it back as it was."""
    from tests.conftest import HostProcess

    host = HostProcess(home)
    try:
        tag = host.call("mint", name="=HYPERLINK(\"http://evil\",\"x\")", subject="+SUM(1)",
                        recipients=["-2+3@example.org"], identity="@id", group="-A1")["data"]
        assert host.call("sent", tag_id=tag["id"], message_id="=cmd|' /C calc'!A0@x")["ok"]
    finally:
        host.close()
    run_cli("tag", "--name", "@SUM(A1)", "--subject", "\t=1", "--to", "=x@example.org", home=home)
    crafted = mint_token(read_secret(home.secret_path))
    fields = {"id": crafted, "created": "=HYPERLINK(\"http://evil\")", "name": "=1", "subject": "+1",
              "recipients": "-1", "identity": "@1", "message_id": "=m", "status": "=HYPERLINK(\"s\")",
              "group": "-g", "remind_at": "=NOW()", "remind_if": "=no_reply", "sent_at": "=NOW()+1"}
    with open(home.tags_path, "a", encoding="utf-8", newline="") as log:
        log.write(format_row([fields[column] for column in TAG_COLUMNS]))
    fold(home)
    assert _live_formulas(home.tags_path) == [(column, value) for column, value in fields.items()
                                              if value.startswith(FORMULA_STARTS)]  # only the crafted row
    assert _live_formulas(home.register_path) == []
    rows = {row["id"]: row for row in read_register(home.register_path)}
    assert rows[tag["id"]]["group"] == "-A1" and rows[tag["id"]]["name"].startswith("=HYPERLINK")
    assert rows[tag["id"]]["message_id"] == "=cmd|' /C calc'!A0@x"
    assert rows[crafted]["status"] == "=HYPERLINK(\"s\")" and rows[crafted]["remind_at"] == "=NOW()"


def test_a_link_number_of_other_digits_in_links_csv_is_skipped_not_a_stopped_fold(home):
    """A links.csv row whose number is '²' (a digit to str.isdigit, no number to int) is skipped;
    the fold goes on and reads the links around it."""
    from mailtracker.desktop.tags import record_links

    tag = mint_tag(home, load_config(home), name="Ann")
    record_links(home, tag.id, [(0, "https://example.org/a", "first")])
    with open(home.links_path, "ab") as handle:
        handle.write(format_row([tag.id, "\u00b2", "https://example.org/odd", "odd"]).encode())
    record_links(home, tag.id, [(1, "https://example.org/b", "second")])
    fold(home)
    assert [link["text"] for link in row_of(home, tag.id)["links"]] == ["first", "second"]
