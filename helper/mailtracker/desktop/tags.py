"""Minting tracking tags: a new token, its row in tags.csv, its pixel URL and HTML.
"""

import html
from dataclasses import asdict, dataclass
from typing import Sequence

from mailtracker.core.csvcodec import neutralise
from mailtracker.core.files import append_rows
from mailtracker.core.paths import Home
from mailtracker.core.secret import read_secret
from mailtracker.core.settings import Config
from mailtracker.core.timestamps import utc_timestamp
from mailtracker.core.tokens import mint_token, short_id

TAG_COLUMNS = ("id", "created", "name", "subject", "recipients", "identity", "message_id", "status")
# Moments the sender's own Thunderbird may fetch a pixel (sending, showing the Sent copy).
SELF_FETCH_COLUMNS = ("tag", "time", "reason")


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


