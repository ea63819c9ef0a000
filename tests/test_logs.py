"""The CSV logs: Excel-safe encoding, durable appends, reading only what is new."""

import csv
import io

from mailtracker.core.csvcodec import format_row, neutralise, restore
from mailtracker.core.files import append_rows
from mailtracker.desktop.tags import TAG_COLUMNS
from mailtracker.desktop.tail import MAX_RECORD_BYTES, Cursor, read_new_lines

TRICKY = ["plain", "a,b", 'say "hi"', "line\nbreak", "cr\rhere", "", " spaced ", "ünïcödé", "x" * 300]


def test_format_row_matches_the_csv_module_excel_dialect():
    """Our fast writer produces exactly what csv.writer(dialect='excel') writes."""
    buffer = io.StringIO()
    csv.writer(buffer, dialect="excel").writerow(TRICKY)
    assert format_row(TRICKY) == buffer.getvalue()
    assert list(csv.reader(io.StringIO(format_row(TRICKY), newline="")))[0] == TRICKY


def test_formula_starts_are_neutralised_and_restored_exactly():
    """Cells starting with = + - @ tab CR are made inert; restore gives back the original."""
    for text in ["=1+1", "+SUM(A1)", "-2", "@cmd", "\tx", "\rx", "'quoted", "''", "safe", ""]:
        cell = neutralise(text)
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
        assert restore(cell) == text


def test_append_rows_writes_bom_header_once(tmp_path):
    """A new log starts with a UTF-8 BOM and one header row; later appends add rows only."""
    path = tmp_path / "tags.csv"
    append_rows(path, TAG_COLUMNS, [["a"] * 8])
    append_rows(path, TAG_COLUMNS, [["b"] * 8])
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfid,created,")
    assert raw.count(b"id,created") == 1
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert rows[1:] == [["a"] * 8, ["b"] * 8]


def test_append_after_a_cut_line_starts_a_new_line(tmp_path):
    """A row appended after a writer died mid-line is not glued to the fragment."""
    path = tmp_path / "tags.csv"
    append_rows(path, TAG_COLUMNS, [["a"] * 8])
    with open(path, "ab") as handle:
        handle.write(b"half,a,li")
    append_rows(path, TAG_COLUMNS, [["b"] * 8])
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"), newline="")))
    assert rows[-1] == ["b"] * 8


def _lines(path, cursor):
    return [line for batch in read_new_lines(path, cursor) for line in batch]


def test_reader_returns_only_new_complete_lines(tmp_path):
    """Each read returns what was appended since; a half-written line waits."""
    path = tmp_path / "hits-a.csv"
    path.write_bytes(b"one\r\ntwo\r\nthr")
    cursor = Cursor()
    assert _lines(path, cursor) == [b"one", b"two"]
    assert _lines(path, cursor) == []
    with open(path, "ab") as handle:
        handle.write(b"ee\r\nfour\r\n")
    assert _lines(path, cursor) == [b"three", b"four"]


def test_reader_rereads_a_truncated_or_replaced_file(tmp_path):
    """A file that shrank or whose start changed is read again from the start."""
    path = tmp_path / "hits-a.csv"
    path.write_bytes(b"one\r\ntwo\r\n")
    cursor = Cursor()
    _lines(path, cursor)
    path.write_bytes(b"new\r\n")
    assert _lines(path, cursor) == [b"new"]
    path.write_bytes(b"NEW\r\nmore\r\n")
    assert _lines(path, cursor) == [b"NEW", b"more"]


def test_reader_continues_after_a_same_content_replace(tmp_path):
    """A sync tool's rename-replace with the same start plus more is read from the offset."""
    path = tmp_path / "hits-a.csv"
    path.write_bytes(b"one\r\n")
    cursor = Cursor()
    _lines(path, cursor)
    tmp = tmp_path / ".tmp"
    tmp.write_bytes(b"one\r\ntwo\r\n")
    tmp.replace(path)
    assert _lines(path, cursor) == [b"two"]


def test_reader_cursor_survives_json_round_trip(tmp_path):
    """The cursor is saved and loaded as JSON without losing its place."""
    path = tmp_path / "hits-a.csv"
    path.write_bytes(b"one\r\n")
    cursor = Cursor()
    _lines(path, cursor)
    loaded = Cursor.from_json(cursor.to_json())
    with open(path, "ab") as handle:
        handle.write(b"two\r\n")
    assert _lines(path, loaded) == [b"two"]


def test_a_semicolon_is_quoted_for_semicolon_locale_spreadsheets():
    """A field with ';' is quoted, so a ';'-separated spreadsheet keeps it whole; it reads back the same."""
    row = ["a;b", "plain", "x; =1"]
    line = format_row(row)
    assert line == '"a;b",plain,"x; =1"\r\n'
    assert next(csv.reader(io.StringIO(line, newline=""))) == row
    assert next(csv.reader(io.StringIO(line, newline=""), delimiter=";"))[0].startswith("a;b")


def test_reader_skips_a_run_of_bytes_without_a_line_end_and_goes_on(tmp_path):
    """More bytes without a newline than any record holds are skipped: memory stays bounded, later lines are read."""
    path = tmp_path / "hits-a.csv"
    path.write_bytes(b"one\r\n" + b"x" * (MAX_RECORD_BYTES + (3 << 20)) + b"\r\ntwo\r\n")
    cursor = Cursor()
    batches = list(read_new_lines(path, cursor, chunk_bytes=1 << 20))
    assert batches[0] == [b"one"] and batches[-1][-1] == b"two"
    assert max(len(line) for batch in batches for line in batch) < (3 << 20)
    assert cursor.offset == path.stat().st_size
