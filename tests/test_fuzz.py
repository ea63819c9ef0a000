"""The standing fuzz suite: property-based tests (hypothesis) of what reaches mailtracker
from outside: CSV fields, hit lines, the native host's frames, and the fold over
random mixes of valid and hostile lines and folder entries. Each property is bounded
(max_examples, no deadline) so the whole file stays well inside CI's time."""

import csv
import io
import json
import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailtracker.core.csvcodec import format_row, header_line, neutralise, restore
from mailtracker.core.errors import MailtrackerError, ProtocolError
from mailtracker.core.hitline import (HIT_COLUMNS, MAX_LINE_BYTES, format_hit_id, format_hit_line,
                                      split_hit_line, user_agent_of)
from mailtracker.core.paths import Home
from mailtracker.core.settings import init_home, load_config
from mailtracker.core.timestamps import utc_timestamp
from mailtracker.desktop.fold import fold
from mailtracker.desktop.host import Host, parse_request
from mailtracker.desktop.register import COLUMNS_FROM, REGISTER_COLUMNS, Row, _csv_lines_by_column, csv_lines
from mailtracker.desktop.tags import (MAX_FIELD, _split_fields, mint_tag, parse_tag_records,
                                      records_end)
from mailtracker.desktop.tail import Cursor, read_new_data
from mailtracker.server.app import _clean_text
from tests.conftest import row_of

# Text as it comes from outside: any character but lone surrogates (nothing can write
# those as UTF-8; the host refuses them), with control characters, quotes, separators
# and line breaks made likely.
_NASTY = st.sampled_from(list("\x00\x1b\x7f\x85\x9b\x9d\u2028\ufeff\t\r\n\"',;=+-@ "))
TEXT = st.lists(st.one_of(st.characters(exclude_categories=("Cs",)), _NASTY), max_size=40).map("".join)
# Now and then one field beyond the csv module's 131,072-character limit.
HUGE = st.builds(lambda char, n: char * n, st.sampled_from(["x", "\n", '"', "é"]),
                 st.integers(131_000, 140_000))
FIELD = st.one_of(TEXT, TEXT, TEXT, HUGE)
BOOT = st.text("abcdefghijklmnopqrstuvwxyz234567", min_size=8, max_size=8)
TAG = st.text("abcdefghijklmnopqrstuvwxyz234567", min_size=32, max_size=32)
MOMENT = st.floats(1_700_000_000, 1_900_000_000).map(utc_timestamp)
CLIENT = st.text("0123456789abcdef.:", max_size=39)
# Text that stays on one line of a log: anything but a line break.
ONE_LINE = TEXT.map(lambda text: text.replace("\r", " ").replace("\n", " "))


@settings(max_examples=150, deadline=None)
@given(st.lists(FIELD, min_size=2, max_size=6))
def test_csv_rows_round_trip_with_neutralising(fields):
    """Any fields, neutralised and written as a row, read back (csv or our own field splitter) as they were."""
    line = format_row([neutralise(field) for field in fields])
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in map(neutralise, fields))
    record = line.rstrip("\r\n")
    assert [restore(cell) for cell in _split_fields(record)] == fields
    if max(map(len, fields)) < 131_072:
        assert [restore(cell) for cell in next(csv.reader(io.StringIO(line, newline="")))] == fields


_TEXT_FIELDS = [name for name in REGISTER_COLUMNS if isinstance(getattr(Row("a" * 32, "a"), name), str)]
_COUNT_FIELDS = [name for name in REGISTER_COLUMNS if name not in _TEXT_FIELDS]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.lists(TEXT, min_size=len(_TEXT_FIELDS), max_size=len(_TEXT_FIELDS)),
                          st.lists(st.integers(0, 10**12), min_size=len(_COUNT_FIELDS), max_size=len(_COUNT_FIELDS))),
                min_size=1, max_size=8))
def test_register_lines_written_by_the_column_are_the_lines_written_row_by_row(cells):
    """A first fold writes register.csv by the column (polars); each line is exactly the row's
    own csv_line, whatever its cells hold: formula starts, separators, quotes, line breaks."""
    rows = [Row(**dict(zip(_TEXT_FIELDS, texts)), **dict(zip(_COUNT_FIELDS, counts)))
            for texts, counts in cells]
    many = (rows * (COLUMNS_FROM // len(rows) + 1))[:COLUMNS_FROM]
    expected = [row.csv_line() for row in many]
    assert _csv_lines_by_column(many) == expected  # itself, not a fallback to the row by row
    assert csv_lines(many) == expected


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(TAG, FIELD, FIELD), min_size=1, max_size=5), st.integers(5, 300))
def test_tag_rows_read_back_whole_through_any_read_chunk(rows, chunk):
    """tags.csv rows with any text, read through the tail reader at any chunk size: every row, in order, cut to its bound."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tags.csv"
        path.write_bytes(b"".join(
            format_row([tag, "2026-01-01T00:00:00.000Z", neutralise(name), neutralise(subject),
                        "", "", "", "sent"]).encode("utf-8") for tag, name, subject in rows))
        # The reader rescans an incomplete record with each chunk: tiny chunks only for small files.
        chunk = max(chunk, path.stat().st_size // 4)
        found = [record for data in read_new_data(path, Cursor(), record_end=records_end, chunk_bytes=chunk)
                 for record in parse_tag_records(data)]
    assert [(tag, fields["name"], fields["subject"]) for tag, fields in found] == \
        [(tag, name[:MAX_FIELD], subject[:MAX_FIELD]) for tag, name, subject in rows]


@settings(max_examples=300, deadline=None)
@given(BOOT, st.integers(1, 2**40), MOMENT, TAG, st.sampled_from(["GET", "HEAD"]), CLIENT,
       st.binary(max_size=600), st.binary(max_size=600))
def test_hit_lines_round_trip(boot, seq, when, tag, method, client, agent, referer):
    """A line as the server writes it splits back into the same fields, its user agent included."""
    user_agent, ref = _clean_text(agent), _clean_text(referer)
    line = format_hit_line(format_hit_id(boot, seq), when, tag, method, client, user_agent, ref)
    assert line.endswith(b"\r\n") and line.count(b"\n") == 1
    hit = split_hit_line(line[:-2])
    assert (hit.boot, hit.seq, hit.time, hit.tag, hit.method, hit.client) == \
        (boot, seq, when, tag, method.encode(), client)
    assert user_agent_of(hit.rest) == restore(user_agent)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=300),
                 st.lists(st.sampled_from([b"a", b",", b".", b'"', b"Z", b"0", b"\xff", b"2026-01-01T00:00:00.000Z",
                                           b"x" * 32, b"f" * 9000]), max_size=12).map(b"".join)))
def test_split_hit_line_raises_only_value_error(line):
    """Any bytes: a hit, or ValueError, nothing else; what it accepts, the user agent reader reads."""
    try:
        hit = split_hit_line(line)
    except ValueError:
        return
    assert len(line) <= MAX_LINE_BYTES
    assert isinstance(user_agent_of(hit.rest), str)


_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=20)
_REQUEST = st.fixed_dictionaries({}, optional={
    "id": st.one_of(st.integers(), TEXT, _JSON), "command": st.one_of(TEXT, _JSON),
    "protocol": st.one_of(st.just(1), _JSON), "tag_id": _JSON, "recipients": _JSON, "subject": _JSON})


def _frames():
    as_json = st.one_of(_JSON, _REQUEST).map(lambda value: json.dumps(value).encode())
    nested = st.integers(1, 100_000).map(lambda depth: b"[" * depth + b"]" * depth)
    surrogate = st.sampled_from([b'{"id": "\\ud800", "command": "status"}', b'{"command": "\\udfff"}'])
    return st.one_of(as_json, nested, surrogate, st.binary(max_size=200),
                     as_json.flatmap(lambda raw: st.integers(0, len(raw)).map(lambda cut: raw[:cut])))


@settings(max_examples=400, deadline=None)
@given(_frames())
def test_host_parse_request_raises_only_protocol_errors(payload):
    """Any frame: a request with a string command, or ProtocolError, nothing else."""
    try:
        request = parse_request(payload)
    except ProtocolError:
        return
    assert isinstance(request, dict) and isinstance(request["command"], str)


_HOSTILE_LINE = st.one_of(
    st.binary(max_size=200).map(lambda raw: raw.replace(b"\n", b" ").replace(b"\r", b" ")),
    st.just(b'"unclosed quote, a, b'), st.just(b"hit_id,time,tag,method,client,user_agent,referer"),
    st.just(b"a.1,2026-01-01T00:00:00.000Z," + b"x" * 32 + b",GET,1.2.3.4," + b"u" * 20_000),
    st.just(b"\xef\xbb\xbf"), st.just(b"a.zz,2026-01-01T00:00:00.000Z," + b"y" * 31 + b",GET,,,"))
_ENTRY = st.sampled_from(["fifo", "dir", "zero", "outside"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 2), st.integers(0, 2), ONE_LINE, ONE_LINE),
                min_size=1, max_size=40),
       st.lists(_HOSTILE_LINE, max_size=10), st.lists(_ENTRY, max_size=2, unique=True),
       st.lists(st.tuples(TEXT, TEXT), min_size=1, max_size=3), st.randoms(use_true_random=False))
def test_the_fold_counts_every_valid_hit_once_whatever_else_is_there(hits, hostile, entries, tagged, rnd):
    """Valid hits among hostile lines and odd folder entries: each counted once, no exception, the next fold still works."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Home.locate(str(Path(tmp) / "home"))
        init_home(home)
        config = load_config(home)
        tags = [mint_tag(home, config, name=name, subject=subject) for name, subject in tagged]
        with open(home.tags_path, "ab") as handle:
            handle.write(b'tok,"never closed\r\n')  # a torn row: the tags after it still count
        tags.append(mint_tag(home, config, name="after the torn row"))
        hits_dir = home.hits_dir(config)
        hits_dir.mkdir(parents=True, exist_ok=True)
        files = [hits_dir / f"hits-s{n}-2026-01-01.csv" for n in range(3)]
        lines = {path: [] for path in files}
        for seq, (counted_tag, tag_index, file_index, client, agent) in enumerate(hits, start=1):
            # A hits file from anywhere: any client column, any user agent, as long as the
            # line is one the server could have written (its fixed fields sound).
            tag = tags[tag_index % len(tags)].id if counted_tag else "u" * 32
            lines[files[file_index]].append(format_hit_line(
                format_hit_id("fuzzboot", seq), utc_timestamp(1_795_000_000 + seq * 300), tag, "GET",
                client.replace(",", ""), agent, ""))
        for raw in hostile:
            target = lines[rnd.choice(files)]
            target.insert(rnd.randrange(len(target) + 1), raw + rnd.choice([b"\r\n", b"\n"]))
        for path in files:
            first, second = lines[path][: len(lines[path]) // 2], lines[path][len(lines[path]) // 2:]
            path.write_bytes(header_line(HIT_COLUMNS) + b"".join(first))
            lines[path] = second
        _odd_entries(hits_dir, entries, Path(tmp))
        unknown = fold(home).unknown_tag_hits
        for path in files:  # the second half arrives later, as a sync tool brings it
            with open(path, "ab") as handle:
                handle.write(b"".join(lines[path]))
        unknown += fold(home).unknown_tag_hits
        assert sum(row_of(home, tag.id)["hits"] for tag in tags) + unknown == len(hits)
        assert unknown == sum(1 for counted_tag, *_ in hits if not counted_tag)
        assert [row_of(home, tag.id)["name"] for tag in tags] == [name for name, _ in tagged] + ["after the torn row"]
        again = fold(home)
        assert again.new_hits == 0
        with open(files[0], "ab") as handle:
            handle.write(format_hit_line(format_hit_id("fuzzlast", 1), utc_timestamp(1_796_000_000),
                                         tags[0].id, "GET", "10.0.0.0", "Thunderbird/128.0", ""))
        assert fold(home).new_hits == 1


def _odd_entries(hits_dir: Path, entries, tmp: Path) -> None:
    for kind in entries:
        path = hits_dir / f"hits-odd{kind}-2026-01-01.csv"
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "dir":
            path.mkdir()
        elif kind == "zero":
            os.symlink("/dev/zero", path)
        else:
            outside = tmp / "outside.csv"
            outside.write_bytes(format_hit_line("outside.1", utc_timestamp(1_795_000_000), "o" * 32,
                                                "GET", "", "x", ""))
            os.symlink(outside, path)


_COMMANDS = ["ping", "config", "mint", "sent", "unsent", "self_fetch", "status", "list", "nope"]


def _field(known_ids):
    token_shaped = st.text("abcdefghijklmnopqrstuvwxyz234567", min_size=32, max_size=32)
    return st.one_of(TEXT, HUGE, _JSON, token_shaped, st.sampled_from(known_ids),
                     st.lists(st.one_of(TEXT, _JSON), max_size=700))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_every_host_command_answers_any_fields_with_a_reply_never_a_bug(data):
    """Each command with any values in its fields: a reply (ok, or an error with its code), never the bug path;
    what reaches tags.csv is bounded and the fold still works."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Home.locate(str(Path(tmp) / "home"))
        init_home(home)
        host = Host(home)
        known = [mint_tag(home, load_config(home), name="Known").id]
        for _ in range(data.draw(st.integers(1, 6))):
            request = {"id": data.draw(st.one_of(st.integers(0, 10**6), TEXT)), "protocol": 1,
                       "command": data.draw(st.sampled_from(_COMMANDS))}
            for key in data.draw(st.lists(st.sampled_from(
                    ["tag_id", "message_id", "subject", "recipients", "name", "identity", "reason", "at",
                     "limit"]), unique=True, max_size=5)):
                request[key] = data.draw(_field(known))
            reply = host.handle(json.dumps(request).encode())
            assert reply["id"] == request["id"] and isinstance(reply["ok"], bool)
            if not reply["ok"]:
                assert reply["code"] != MailtrackerError.code and "unexpectedly" not in reply["message"], reply
            json.dumps(reply, ensure_ascii=False).encode("utf-8")
            if reply["ok"] and request["command"] == "mint":
                known.append(reply["data"]["id"])
        result = fold(home)
        assert result.skipped_lines == 0
        assert all(row_of(home, tag_id)["id"] == tag_id for tag_id in known)
        assert max(map(len, home.tags_path.read_text(encoding="utf-8-sig").split(","))) < 30_000


# Link targets made of what confuses URL parsers: separators, encodings, controls, non-ASCII.
_URL_PIECES = st.sampled_from(["https://", "http:", "HTTPS:\\\\", "good.example", "evil.example", "@",
                               "\\", "/", "//", ":", ":443", "?", "#", "%", "%2e", "%2F", "%40", "%5C",
                               "%C3%A9", "..", ".", "\t", "\n", "\r", " ", "\x00", "\x7f", "é", "\u3002",
                               "ß", "xn--caf-dma", "[", "]", "0x7f", "1.2.3.4", "'", '"', "<", "`", "{",
                               "^", "|", "a", "Z"])
URL_TEXT = st.lists(_URL_PIECES, max_size=16).map("".join)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(URL_TEXT, min_size=150, max_size=150))
def test_a_signed_target_is_read_by_a_browser_as_the_link_was(targets):
    """Whatever a link holds, the helper signs nothing, or an ASCII href that the WHATWG parser
    (Node's URL) reads as the very URL it made of the link; signing it again changes nothing."""
    from mailtracker.core.weburl import browser_href
    from tests.test_clicks import whatwg

    # Half start as a web link, so that most get as far as the host and the path.
    originals = ["https://" + target if index % 2 else target for index, target in enumerate(targets)]
    kept = [(original, browser_href(original)) for original in originals]
    kept = [(original, href) for original, href in kept if href is not None]
    seen = whatwg([original for original, _ in kept] + [href for _, href in kept])
    for (original, href), by_browser, again in zip(kept, seen, seen[len(kept):]):
        assert href.isascii() and href.isprintable() and " " not in href, original
        assert browser_href(href) == href, original
        assert (by_browser and by_browser["href"]) == (again and again["href"]), original


@settings(max_examples=150, deadline=None)
@given(st.lists(TEXT, min_size=len(REGISTER_COLUMNS), max_size=len(REGISTER_COLUMNS)))
def test_no_register_cell_is_ever_a_live_formula(values):
    """Any text in any column of a register row is written inert and read back as it was."""
    row = dict(zip(REGISTER_COLUMNS, values))
    cells = next(csv.reader(io.StringIO(Row(**row).csv_line(), newline="")))
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in cells)
    assert [restore(cell) for cell in cells] == values
