"""The desktop's append-only logs about tags: tags.csv (minting a tag — a new token,
its row, its pixel URL and HTML — and later rows that change it), self-fetches.csv
(the moments the sender's own Thunderbird may fetch a pixel) and links.csv (the
tracked links of each mail, with their click URLs' targets); writing them and
reading them back. The one owner of these formats.
"""

import csv
import html
import io
import logging
from dataclasses import asdict, dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from mailtracker.core.csvcodec import neutralise, restore, strip_bom
from mailtracker.core.files import append_rows
from mailtracker.core.paths import Home
from mailtracker.core.secret import read_secret
from mailtracker.core.settings import Config
from mailtracker.core.timestamps import parse_timestamp, utc_timestamp
from mailtracker.core.tokens import TOKEN_LENGTH, mint_token, short_id

log = logging.getLogger(__name__)

TAG_COLUMNS = ("id", "created", "name", "subject", "recipients", "identity", "message_id", "status")
# Moments the sender's own Thunderbird may fetch a pixel (sending, showing the Sent copy).
SELF_FETCH_COLUMNS = ("tag", "time", "reason")
# One row per tracked link of a mail: its number in the mail, where it goes, what it says.
LINK_COLUMNS = ("tag", "link", "target", "text")
MAX_LINK_TEXT = 200


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

    def to_json(self) -> dict:
        return asdict(self)


def pixel_html(url: str) -> str:
    """The <img> that carries the pixel: 1x1, no border, no alt text to show."""
    src = html.escape(url, quote=True)
    return (f'<img src="{src}" width="1" height="1" alt="" '
            'style="border:0;width:1px;height:1px;display:block" />')


def mint_tag(home: Home, config: Config, name: str = "", subject: str = "",
             recipients: Sequence[str] = (), identity: str = "", status: str = "minted") -> Tag:
    """Mint a tag and append it to tags.csv before anyone can see its URL."""
    secret = read_secret(home.secret_path)
    token = mint_token(secret)
    created = utc_timestamp()
    joined = "; ".join(r.strip() for r in recipients if r.strip())
    row = {
        "id": token, "created": created, "name": name, "subject": subject,
        "recipients": joined, "identity": identity, "message_id": "", "status": status,
    }
    append_rows(home.tags_path, TAG_COLUMNS, [[_cell(col, row[col]) for col in TAG_COLUMNS]])
    url = config.pixel_url(token)
    return Tag(id=token, short_id=short_id(token), created=created, name=name,
               subject=subject, recipients=joined, identity=identity, url=url,
               html=pixel_html(url))


def update_tag(home: Home, tag_id: str, **fields: str) -> None:
    """Append a row that changes some fields of a tag (the log stays append-only)."""
    row = {col: "" for col in TAG_COLUMNS}
    row.update(fields, id=tag_id)
    append_rows(home.tags_path, TAG_COLUMNS, [[_cell(col, row[col]) for col in TAG_COLUMNS]])


def _cell(column: str, value: str) -> str:
    return value if column in ("id", "created") else neutralise(value)


def record_self_fetch(home: Home, tag_id: str, reason: str, when: str = "") -> None:
    """Note a moment the sender's own Thunderbird may fetch this tag's pixel."""
    append_rows(home.self_fetches_path, SELF_FETCH_COLUMNS,
                [[tag_id, when or utc_timestamp(), neutralise(reason)]])




def _rows(batch: List[bytes]) -> Iterator[Optional[List[str]]]:
    """The CSV rows of a batch of complete lines; None for a row the csv module refuses."""
    text = "\n".join(strip_bom(line).decode("utf-8", "replace") for line in batch)
    reader = csv.reader(io.StringIO(text))
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            log.warning("skipped an unreadable row: %s", exc)
            yield None
            continue
        yield row


def parse_tag_records(batch: List[bytes]) -> Iterator[Optional[Tuple[str, Dict[str, str]]]]:
    """(tag id, fields) for each row of tags.csv in ``batch``; None for an unreadable row."""
    for row in _rows(batch):
        if row is not None and (not row or row[0] == "id"):
            continue
        if row is None or len(row) != len(TAG_COLUMNS) or len(row[0]) != TOKEN_LENGTH:
            if row is not None:
                log.warning("skipped an unreadable line in tags.csv: %.80r", ",".join(row))
            yield None
            continue
        record = dict(zip(TAG_COLUMNS, (restore(value) for value in row)))
        yield record.pop("id"), record


def parse_self_fetches(batch: List[bytes]) -> Iterator[Tuple[str, float, str]]:
    """(tag id, epoch seconds, reason) for each readable row of self-fetches.csv in ``batch``."""
    for row in _rows(batch):
        if row is None or len(row) < 3 or len(row[0]) != TOKEN_LENGTH:
            continue
        try:
            moment = parse_timestamp(row[1])
        except ValueError:
            continue
        yield row[0], moment, restore(row[2])


def find_tag(home: Home, tag_id: str = "", message_id: str = "") -> Optional[Tuple[str, Dict[str, str]]]:
    """The tag with this id, or the latest one whose email has this Message-ID, straight
    from tags.csv (a tag minted a moment ago is there before any fold has run)."""
    found: Dict[str, Dict[str, str]] = {}
    best = ""
    try:
        with open(home.tags_path, "rb") as handle:
            for record in parse_tag_records(handle.read().splitlines()):
                if record is None:
                    continue
                rid, fields = record
                if rid == tag_id or (message_id and fields.get("message_id") == message_id) or rid in found:
                    merged = found.setdefault(rid, {})
                    merged.update({key: value for key, value in fields.items() if value or key not in merged})
                    if rid == tag_id or fields.get("message_id") == message_id:
                        best = rid
    except FileNotFoundError:
        return None
    return (best, found[best]) if best else None


def record_links(home: Home, tag_id: str, links: Sequence[Tuple[int, str, str]]) -> None:
    """Note the tracked links of a mail: (number, target, visible text). A later row for the
    same number (the mail was sent again, changed) replaces the earlier one."""
    rows = [[tag_id, str(link), neutralise(target), neutralise(" ".join(text.split())[:MAX_LINK_TEXT])]
            for link, target, text in links]
    if rows:
        append_rows(home.links_path, LINK_COLUMNS, rows)


def parse_links(batch: List[bytes]) -> Iterator[Tuple[str, int, str, str]]:
    """(tag id, link number, target, text) for each readable row of links.csv in ``batch``."""
    for row in _rows(batch):
        if row is None or len(row) < 4 or len(row[0]) != TOKEN_LENGTH or not row[1].isdigit():
            continue
        yield row[0], int(row[1]), restore(row[2]), restore(row[3])
