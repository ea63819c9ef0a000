"""The desktop's append-only logs about tags: tags.csv (minting a tag — a new token,
its row, its pixel URL and HTML — and later rows that change it), self-fetches.csv
(the moments the sender's own Thunderbird may fetch a pixel) and links.csv (the
tracked links of each mail); writing them and reading them back. The one owner of
these formats. Each is written to this computer's own file (``Home.log_path``) and
read from every computer's (``Home.log_paths``).

Every field is bounded when it is written (a field of more than 131,072 characters
is more than Python's csv module reads, and would make the whole log unreadable),
and read back by the file's header, so a log whose columns a spreadsheet reordered
still maps right. A field may hold a newline: records are split where a newline
falls outside quotes, not at every line end.
"""

import csv
import html
import logging
import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from mailtracker.core.csvcodec import neutralise, restore, strip_bom
from mailtracker.core.files import append_rows
from mailtracker.core.paths import Home
from mailtracker.core.secret import read_secret
from mailtracker.core.settings import Config
from mailtracker.core.timestamps import parse_timestamp, utc_timestamp
from mailtracker.core.tokens import TOKEN_LENGTH, is_token_shaped, mint_token, short_id

log = logging.getLogger(__name__)

# group: the mail a tag is one recipient's copy of ("send individually"); empty otherwise.
# remind_at: when to remind the sender if nobody has opened the mail by then.
# remind_if: what the reminder waits for: "" or "not_opened" (an open, a click or a reply), "no_reply".
# sent_at: when Thunderbird sent the mail (the add-on's onAfterSend), on the row that marks it sent.
TAG_COLUMNS = ("id", "created", "name", "subject", "recipients", "identity", "message_id", "status",
               "group", "remind_at", "remind_if", "sent_at")
# Columns are only ever added at the end of TAG_COLUMNS: a row of an older writer (or a
# new row under an older file's header) is read by position, down to this many fields.
TAG_COLUMNS_FIRST = 8
# Moments the sender's own Thunderbird may fetch a pixel (sending, showing the Sent copy).
SELF_FETCH_COLUMNS = ("tag", "time", "reason")
# One row per tracked link of a mail: its number in the mail, where it goes, what it says.
LINK_COLUMNS = ("tag", "link", "target", "text")

# What one field may hold: far beyond any real name, subject, Message-ID or list of
# recipients, far below the csv module's limit. Longer text is cut, never refused:
# a tag is minted whatever the add-on sends.
MAX_FIELD = 2_000
MAX_RECIPIENTS = 500
MAX_RECIPIENTS_FIELD = 20_000
MAX_REASON = 200
MAX_GROUP = 64
_LIMITS = {"recipients": MAX_RECIPIENTS_FIELD, "reason": MAX_REASON, "time": 64, "target": 4096,
           "text": 200, "group": MAX_GROUP}
# No record written within those bounds comes near this: a quote that runs longer
# without closing was left by a torn write, not opened by a field.
MAX_RECORD_BYTES = 1 << 20
# The start of a row of either log (an id, then a time or nothing): a line that starts
# so inside an open quote shows that the quote was a torn field's, not a real one.
_ROW_START = re.compile(rb"[a-z2-7]{32},(?:\d{4}-\d\d-\d\dT[0-9:.]+Z)?,|id,created,|tag,time,")
_FIELD = re.compile(r'"([^"]*(?:""[^"]*)*)"?([^,]*)|([^,]*)')
_LINE = re.compile(rb"[^\n]*\n")
# Lines read at once, by one csv reader (a record that is not one line costs a second
# read of the rest of its window): up to _WINDOW bytes, from _FIRST_WINDOW after such a record.
_WINDOW = 64 << 10
_FIRST_WINDOW = 256


@dataclass(frozen=True)
class Tag:
    id: str
    short_id: str
    created: str
    name: str
    subject: str
    recipients: str
    identity: str
    url: str
    html: str
    group: str = ""

    def to_json(self) -> dict:
        return asdict(self)


def pixel_html(url: str) -> str:
    """The <img> that carries the pixel: 1x1, no border, no alt text to show."""
    src = html.escape(url, quote=True)
    return (f'<img src="{src}" width="1" height="1" alt="" '
            'style="border:0;width:1px;height:1px;display:block" />')


def mint_tag(home: Home, config: Config, name: str = "", subject: str = "",
             recipients: Sequence[str] = (), identity: str = "", status: str = "minted",
             group: str = "") -> Tag:
    """Mint a tag and append it to tags.csv before anyone can see its URL."""
    secret = read_secret(home.secret_path)
    token = mint_token(secret)
    created = utc_timestamp()
    name, subject = _bounded("name", name), _bounded("subject", subject)
    identity, status = _bounded("identity", identity), _bounded("status", status)
    group = _bounded("group", group)
    joined = _joined_recipients(recipients)
    row = {
        "id": token, "created": created, "name": name, "subject": subject,
        "recipients": joined, "identity": identity, "message_id": "", "status": status,
        "group": group, "remind_at": "", "remind_if": "", "sent_at": "",
    }
    append_rows(home.tags_path, TAG_COLUMNS, [[neutralise(row[col]) for col in TAG_COLUMNS]])
    url = config.pixel_url(token)
    return Tag(id=token, short_id=short_id(token), created=created, name=name,
               subject=subject, recipients=joined, identity=identity, url=url,
               html=pixel_html(url), group=group)


def update_tag(home: Home, tag_id: str, **fields: str) -> None:
    """Append a row that changes some fields of a tag (the log stays append-only)."""
    row = {col: "" for col in TAG_COLUMNS}
    row.update({col: _bounded(col, value) for col, value in fields.items()}, id=tag_id)
    append_rows(home.tags_path, TAG_COLUMNS, [[neutralise(row[col]) for col in TAG_COLUMNS]])


def record_self_fetch(home: Home, tag_id: str, reason: str, when: str = "") -> None:
    """Note a moment the sender's own Thunderbird may fetch this tag's pixel."""
    append_rows(home.self_fetches_path, SELF_FETCH_COLUMNS,
                [[tag_id, _bounded("time", when) or utc_timestamp(), neutralise(_bounded("reason", reason))]])


def _bounded(column: str, value: str) -> str:
    """``value`` cut to the column's bound, with a warning when it had to be cut."""
    limit = _LIMITS.get(column, MAX_FIELD)
    if len(value) <= limit:
        return value
    log.warning("a %s of %d characters was cut to its first %d", column, len(value), limit)
    return value[:limit]


def _joined_recipients(recipients: Sequence[str]) -> str:
    kept = [r.strip() for r in recipients if r.strip()]
    if len(kept) > MAX_RECIPIENTS:
        log.warning("a tag for %d recipients keeps the first %d in tags.csv", len(kept), MAX_RECIPIENTS)
        kept = kept[:MAX_RECIPIENTS]
    return _bounded("recipients", "; ".join(kept))


def split_records(data: bytes) -> Tuple[List[bytes], int]:
    """The complete records at the start of ``data``, and where they end (``_split_records``)."""
    records, end, _ = _split_records(data)
    return records, end


def _split_records(data: bytes, start: int = 0) -> Tuple[List[bytes], int, bool]:
    """The complete records of ``data`` from ``start`` (a record's start) on, each with its
    line end; where they end; whether one was torn (``_record_end``)."""
    records: List[bytes] = []
    torn_any = False
    quote = -2  # the next quote at or after start, found again once start has passed it
    while True:
        if -1 != quote < start:
            quote = data.find(b'"', start)
        # No quote opens a field before the next quote's line: the lines before it are whole records.
        plain = data.rfind(b"\n", start, quote if quote >= 0 else len(data)) + 1
        if plain > start:
            records += _LINE.findall(data, start, plain)
            start = plain
        if quote < 0:
            break
        end, torn = _record_end(data, start)
        if end < 0:
            break
        records.append(data[start:end])
        start, torn_any = end, torn_any or torn
    return records, start, torn_any


def _record_end(data: bytes, start: int) -> Tuple[int, bool]:
    """Where the record that starts at ``start`` ends (after its line end), and whether it
    was torn; -1 while it is incomplete. A newline ends a record only outside a quoted field.

    A quote that opens a field and does not close within ``MAX_RECORD_BYTES``, or
    inside which a new row starts, came from a torn write: its record ends at its
    line end, so that one damaged row never swallows the rows after it.
    """
    size = len(data)
    pos = start
    newline = -2  # the next newline at or after pos, found again once pos has passed it
    while True:
        if -1 != newline < pos:
            newline = data.find(b"\n", pos)
        quote = data.find(b'"', pos, newline if newline >= 0 else size)
        if quote < 0:
            return newline + 1 if newline >= 0 else -1, False
        if quote > start and data[quote - 1] != 0x2C:  # ','
            pos = quote + 1  # a quote inside an unquoted field is only a character
            continue
        close = _closing_quote(data, quote + 1)
        torn = _row_start_within(data, quote, close if close >= 0 else size)
        if torn < 0 and close < 0 and size - quote > MAX_RECORD_BYTES:
            torn = data.find(b"\n", quote) + 1 or -1
        if torn >= 0:
            return torn, True
        if close < 0:
            return -1, False  # still being written, or its end is in the next block
        pos = close + 1


def records_end(data: bytes) -> int:
    """Where the complete records of ``data`` end (for ``tail.read_new_data``)."""
    return _split_records(data, _last_row_start(data))[1]


def _last_row_start(data: bytes, lines: int = 64) -> int:
    """The start of the last of the last ``lines`` lines of ``data`` that starts as a row
    does (``_ROW_START``), else 0: a record starts there, for a quote left open above it
    is a torn field's, whose record ``_record_end`` cuts at that line."""
    end = len(data)
    for _ in range(lines):
        start = data.rfind(b"\n", 0, end) + 1
        if start == 0 or _ROW_START.match(data, start):
            return start
        end = start - 1
    return 0


def _closing_quote(data: bytes, pos: int) -> int:
    """The quote that closes a quoted field from ``pos`` on; -1 if not (yet) in ``data``."""
    while True:
        quote = data.find(b'"', pos)
        if quote < 0 or quote + 1 >= len(data):
            return -1  # a last quote may be the first of an escaped pair: wait for more
        if data[quote + 1] != 0x22:
            return quote
        pos = quote + 2


def _row_start_within(data: bytes, start: int, end: int) -> int:
    newline = data.find(b"\n", start, end)
    while newline >= 0:
        if _ROW_START.match(data, newline + 1):
            return newline + 1
        newline = data.find(b"\n", newline + 1, end)
    return -1


def _parse_record(text: str) -> List[str]:
    try:
        return next(csv.reader([text]), [])
    except csv.Error as exc:
        # A field beyond the csv module's limit, left by an older writer: read the
        # record here instead, so the tag is kept (its fields are cut to their bounds).
        log.warning("a row with %s: read it field by field", exc)
        return _split_fields(text.rstrip("\r\n"))


def _split_fields(text: str) -> List[str]:
    """The fields of one Excel-dialect record, as the csv module reads them, without its field limit."""
    fields = []
    pos = 0
    while True:
        match = _FIELD.match(text, pos)
        quoted, after, plain = match.groups()
        fields.append(quoted.replace('""', '"') + after if quoted is not None else plain)
        pos = match.end()
        if pos >= len(text):
            return fields
        pos += 1  # the comma


def _rows(data: bytes) -> List[List[str]]:
    """The CSV row of each complete record in ``data`` (``_split_records``), as the record
    read alone gives it (``_parse_record``). Most records are one line each: those are read
    a window of lines at a time, by one reader; any other record on its own."""
    data = strip_bom(data)
    stop = data.rfind(b"\n") + 1  # every record ends at a line end
    rows: List[List[str]] = []
    start = 0
    window = _WINDOW
    while start < stop:
        end = data.find(b"\n", min(start + window, stop - 1)) + 1
        start = _line_rows(data, start, end, rows)
        if start == end:
            window = min(2 * window, _WINDOW)
            continue
        # After a record that is not one line, a small window: in a log of many such
        # records, each would cost the reading of a whole window otherwise.
        window = _FIRST_WINDOW
        record_end, _ = _record_end(data, start)
        if record_end < 0:
            break
        rows.append(_parse_record(data[start:record_end].decode("utf-8", "replace")))
        start = record_end
    return rows


def _line_rows(data: bytes, start: int, end: int, rows: List[List[str]]) -> int:
    """Adds to ``rows`` the rows of the lines of ``data[start:end]`` (a record's start, a
    line end) that are each one whole record, up to the first that may not be; returns
    where that one starts (``end`` when there is none).

    A line the csv module reads as one whole row is one record as ``_record_end`` splits
    them (a quote opens a field at the same places, and closes at the same quote), and
    gives the row it gives alone, with or without its line end.
    """
    lines = data[start:end].decode("utf-8", "replace").split("\n")
    # The "" after the last line end is read as a line too: a quote that the last line
    # leaves open runs on into it, and the row takes two lines, as a row of a record that
    # does not end at its line end does; every other line gives one row.
    reader = csv.reader(lines)
    try:
        found = list(reader)
    except csv.Error:
        found = []
    if len(found) == len(lines):
        rows += found[:-1]
        return end
    reader = csv.reader(lines)
    read = 0
    try:
        for row in reader:
            if reader.line_num != read + 1 or read == len(lines) - 1:
                break
            rows.append(row)
            read += 1
    except csv.Error:
        pass  # a line the csv module refuses (a field beyond its limit, a CR in an unquoted field)
    for _ in range(read):
        start = data.index(b"\n", start) + 1
    return start


def _header_of(row: List[str], known: Sequence[str]) -> Optional[List[str]]:
    """The columns a header row names, or None when ``row`` is not a header."""
    if row and is_token_shaped(row[0]):
        return None  # a tag's id, as every data row of these logs starts: no column is named so
    names = [name.strip().lstrip("\ufeff").lower() for name in row]
    # Every column the log had from the start (a data row always holds an id, which no
    # column is named); columns added since may be missing from an older file's header.
    required = known[:TAG_COLUMNS_FIRST] if tuple(known) == TAG_COLUMNS else known
    return names if set(required) <= set(names) else None


def read_columns(path: Path, known: Sequence[str]) -> Sequence[str]:
    """The columns of a log by its header (a spreadsheet may have reordered them);
    ``known`` for a file without a header, or none yet."""
    try:
        with open(path, "rb") as handle:
            first = handle.readline(64 << 10)
    except (FileNotFoundError, IsADirectoryError):
        return known
    header = _header_of(_parse_record(strip_bom(first).decode("utf-8", "replace")), known)
    return header or known


def _mapped(row: List[str], columns: Sequence[str], known: Sequence[str],
            shortest: Optional[int] = None) -> Optional[Dict[str, str]]:
    if len(row) != len(columns) and shortest is not None:
        # Columns added at the end since this file's header (or this row) was written:
        # those the header does not name follow it, in the known order.
        columns = list(columns) + [name for name in known if name not in columns]
        if len(row) < shortest or len(row) > len(columns) or any(
                name in known[:shortest] for name in columns[len(row):]):
            return None
        columns = columns[:len(row)]
    if len(row) != len(columns):
        return None
    record = dict.fromkeys(known, "")
    limit = _LIMITS.get
    for column, value in zip(columns, row):
        if column in record:
            if value[:1] == "'":
                value = restore(value)
            record[column] = value if len(value) <= limit(column, MAX_FIELD) else _bounded(column, value)
    return record


def _records(data: bytes, columns: Sequence[str], known: Sequence[str], shortest: Optional[int] = None
             ) -> Iterator[Tuple[List[str], Optional[List[str]]]]:
    """(row, its fields in the ``known`` order) for each data row of a log in ``data``;
    the fields are None for a row of the wrong length (``shortest``: rows may lack the
    columns added since). A header row changes the columns that follow."""
    width = len(known)
    in_order = tuple(columns) == tuple(known)
    bounds = _bounds_of(tuple(known))
    for row in _rows(data):
        if not row or row == [""]:
            continue
        if not is_token_shaped(row[0]):  # a data row's id, never a header's
            header = _header_of(row, known)
            if header is not None:
                columns, in_order = header, tuple(header) == tuple(known)
                continue
        if in_order and len(row) == width and _as_written(row, bounds):
            yield row, row  # most rows: their fields are the row's, as they are
            continue
        record = _mapped(row, columns, known, shortest=shortest)
        yield row, None if record is None else list(record.values())


@lru_cache(maxsize=None)
def _bounds_of(known: Tuple[str, ...]) -> Tuple[Tuple[int, int], ...]:
    """(bound, position) of each of the ``known`` columns, the tightest bound first."""
    return tuple(sorted((_LIMITS.get(name, MAX_FIELD), index) for index, name in enumerate(known)))


def _as_written(row: List[str], bounds: Tuple[Tuple[int, int], ...]) -> bool:
    """Whether no field of ``row`` is neutralised (``restore``) or beyond its bound."""
    joined = "\n".join(row)
    if joined[:1] == "'" or "\n'" in joined:
        return False
    for bound, index in bounds:
        if len(joined) <= bound:
            return True  # no field is longer than the row
        if len(row[index]) > bound:
            return False
    return True


def parse_log_rows(data: bytes, columns: Sequence[str], known: Sequence[str]) -> Iterator[Optional[Dict[str, str]]]:
    """The fields by name of each data row of a desktop log in ``data`` (complete records, read
    as this module reads its own logs: by header, restored, bounded); None for a row of the
    wrong length. For the owners of other desktop logs (replies.csv)."""
    for _, values in _records(data, columns, known):
        yield None if values is None else dict(zip(known, values))


def parse_tag_records(data: bytes, columns: Sequence[str] = TAG_COLUMNS
                      ) -> Iterator[Optional[Tuple[str, Dict[str, str]]]]:
    """(tag id, fields) for each row of tags.csv in ``data`` (complete records);
    None for an unreadable row. ``columns`` is the file's order (``read_columns``)."""
    for row, values in _records(data, columns, TAG_COLUMNS, shortest=TAG_COLUMNS_FIRST):
        if values is None or len(values[0]) != TOKEN_LENGTH:
            log.warning("skipped an unreadable row in tags.csv: %.80r", ",".join(row))
            yield None
            continue
        fields = dict(zip(TAG_COLUMNS, values))
        yield fields.pop("id"), fields


def parse_self_fetches(data: bytes, columns: Sequence[str] = SELF_FETCH_COLUMNS
                       ) -> Iterator[Tuple[str, float, str]]:
    """(tag id, epoch seconds, reason) for each readable row of self-fetches.csv in ``data``."""
    for _, values in _records(data, columns, SELF_FETCH_COLUMNS):
        if values is None:
            continue
        tag, time, reason = values
        if len(tag) != TOKEN_LENGTH:
            continue
        try:
            moment = parse_timestamp(time)
        except ValueError:
            continue
        yield tag, moment, reason


def find_tag(home: Home, tag_id: str = "", message_id: str = "") -> Optional[Tuple[str, Dict[str, str]]]:
    """The tag with this id, or the latest one whose email has this Message-ID, straight
    from the tags logs (a tag minted a moment ago is there before any fold has run; one
    minted on another of the person's computers once its log has arrived)."""
    found: Dict[str, Dict[str, str]] = {}
    best = ""
    for path in home.log_paths("tags", copies=False):  # what a copy adds waits for the fold
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            continue
        for record in parse_tag_records(data, read_columns(path, TAG_COLUMNS)):
            if record is None:
                continue
            rid, fields = record
            if rid == tag_id or (message_id and fields.get("message_id") == message_id) or rid in found:
                merged = found.setdefault(rid, {})
                merged.update({key: value for key, value in fields.items() if value or key not in merged})
                if rid == tag_id or fields.get("message_id") == message_id:
                    best = rid
    return (best, found[best]) if best else None


def record_links(home: Home, tag_id: str, links: Sequence[Tuple[int, str, str]]) -> None:
    """Note the tracked links of a mail: (number, target, visible text). A later row for the
    same number (the mail was sent again, changed) replaces the earlier one."""
    rows = [[tag_id, str(link), neutralise(_bounded("target", target)),
             neutralise(_bounded("text", " ".join(text.split())))]
            for link, target, text in links]
    if rows:
        append_rows(home.links_path, LINK_COLUMNS, rows)


def parse_links(data: bytes, columns: Sequence[str] = LINK_COLUMNS) -> Iterator[Tuple[str, int, str, str]]:
    """(tag id, link number, target, text) for each readable row of links.csv in ``data``."""
    for _, values in _records(data, columns, LINK_COLUMNS):
        if values is None:
            continue
        tag, link, target, text = values
        if len(tag) != TOKEN_LENGTH or not link.isdecimal():  # "²" is a digit, not a number
            continue
        yield tag, int(link), target, text
