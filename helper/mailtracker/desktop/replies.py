"""replies.csv: the replies and bounces the add-on found in the user's own mail for tracked
mails (one row per judged message, and for a bounce per recipient), appended by the native
host and folded like hits. The one owner of this format: what a row holds, how it is bounded
and written, read back, and how a reply is known again (its key).

A reply is outside input (its sender wrote its headers): every field is bounded and stripped
of control characters here, once, before it is written; the reply's text never reaches the
helper. The log is append-only; the fold counts a reply once however often it is reported
(by a restart's catch-up, or by another computer of the user), keyed by the reply's
Message-ID (and for a bounce its recipient).
"""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from mailtracker.core.csvcodec import neutralise
from mailtracker.core.files import append_rows
from mailtracker.core.paths import Home
from mailtracker.core.timestamps import parse_timestamp, utc_timestamp
from mailtracker.core.tokens import TOKEN_LENGTH
from mailtracker.core.untrusted import one_line
from mailtracker.desktop.register import Register
from mailtracker.desktop.tags import TAG_COLUMNS, parse_log_rows, parse_tag_records, read_columns

log = logging.getLogger(__name__)

REPLY_COLUMNS = ("tag", "reply_id", "from", "time", "verdict", "reason", "recipient")
# What the add-on judged (extension/modules/replies.mjs): a person's reply (counted), an
# automatic answer and the user's own message (kept, explained, not counted), a bounce.
VERDICTS = ("reply", "auto", "own", "bounce")
MAX_REPLY_ID = 998  # RFC 5322's longest line
MAX_ADDRESS = 320
MAX_REASON = 200


@dataclass(frozen=True)
class Reply:
    """One judged message about a tracked mail, as replies.csv keeps it."""

    tag: str
    reply_id: str
    sender: str
    time: str
    verdict: str
    reason: str
    recipient: str = ""

    @property
    def key(self) -> Tuple[str, str, str]:
        """What makes two reports the same reply: the tag, the reply's Message-ID, the recipient."""
        return (self.tag, self.reply_id, self.recipient.lower())

    @property
    def counted(self) -> bool:
        return self.verdict == "reply"


def clean(text: str, limit: int) -> str:
    """Outside text as kept: control characters and line breaks become one space, cut to ``limit``."""
    return one_line(text, limit)


def bare_message_id(text: str) -> str:
    """A Message-ID without its angle brackets and surrounding space."""
    return text.strip().strip("<>").strip()


def record_reply(home: Home, reply: Reply) -> None:
    """Append one judged reply or bounce (fields bounded and cleaned here)."""
    row = [reply.tag, neutralise(clean(reply.reply_id, MAX_REPLY_ID)), neutralise(clean(reply.sender, MAX_ADDRESS)),
           reply.time, reply.verdict, neutralise(clean(reply.reason, MAX_REASON)),
           neutralise(clean(reply.recipient, MAX_ADDRESS))]
    append_rows(home.replies_path, REPLY_COLUMNS, [row])


def parse_replies(data: bytes, columns: Sequence[str] = REPLY_COLUMNS) -> Iterator[Tuple[Reply, float]]:
    """(reply, its time in epoch seconds) for each readable row of replies.csv in ``data``."""
    for record in parse_log_rows(data, columns, REPLY_COLUMNS):
        if record is None or len(record["tag"]) != TOKEN_LENGTH or record["verdict"] not in VERDICTS:
            continue
        try:
            moment = parse_timestamp(record["time"])
        except ValueError:
            continue
        if not record["reply_id"]:
            continue
        yield Reply(tag=record["tag"], reply_id=record["reply_id"], sender=record["from"],
                    time=utc_timestamp(moment), verdict=record["verdict"], reason=record["reason"],
                    recipient=record["recipient"]), moment


def read_replies(path: Path) -> List[Tuple[Reply, float]]:
    """Every readable row of a replies.csv, in order; none for a missing file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    return list(parse_replies(data, read_columns(path, REPLY_COLUMNS)))


def already_recorded(home: Home, reply: Reply) -> bool:
    """True when a replies log already holds this reply: a restart's catch-up reports it again,
    or the user's other computer (whose log Syncthing brought) saw it first."""
    return any(known.key == reply.key and known.verdict == reply.verdict
               for path in home.log_paths("replies") for known, _ in read_replies(path))


@dataclass
class ReplyCounts:
    """What the replies of one tag add to its row: people's replies (once each), who replied,
    when, and the recipients it did not reach."""

    replies: int = 0
    first_reply: str = ""
    last_reply: str = ""
    replied_by: Tuple[str, ...] = ()
    undelivered: Tuple[str, ...] = ()
    undelivered_reason: str = ""

    def as_columns(self) -> Dict[str, object]:
        return {"replies": self.replies, "first_reply": self.first_reply, "last_reply": self.last_reply,
                "replied_by": "; ".join(self.replied_by), "undelivered": "; ".join(self.undelivered),
                "undelivered_reason": self.undelivered_reason}


def count_replies(rows: Sequence[Tuple[Reply, float]]) -> Dict[str, ReplyCounts]:
    """Each tag's ReplyCounts from replies.csv's rows: a reply reported twice counts once."""
    seen = set()
    counts: Dict[str, ReplyCounts] = {}
    firsts: Dict[str, float] = {}
    lasts: Dict[str, float] = {}
    for reply, moment in rows:
        if reply.key in seen or reply.verdict not in ("reply", "bounce"):
            continue
        seen.add(reply.key)
        entry = counts.setdefault(reply.tag, ReplyCounts())
        if reply.verdict == "bounce":
            recipient = reply.recipient.lower() or reply.sender.lower()
            if recipient not in entry.undelivered:
                entry.undelivered += (recipient,)
                entry.undelivered_reason = entry.undelivered_reason or reply.reason
            continue
        entry.replies += 1
        sender = reply.sender.lower()
        if sender and sender not in entry.replied_by:
            entry.replied_by += (sender,)
        if reply.tag not in firsts or moment < firsts[reply.tag]:
            firsts[reply.tag], entry.first_reply = moment, reply.time
        if reply.tag not in lasts or moment > lasts[reply.tag]:
            lasts[reply.tag], entry.last_reply = moment, reply.time
    return counts


def packed_reply(reply: Reply, moment: float) -> list:
    """A reply as the fold state keeps it under its tag (a list: the state is JSON)."""
    return [reply.reply_id, reply.sender, reply.time, moment, reply.verdict, reply.reason, reply.recipient]


def reply_of(tag: str, packed: Sequence) -> Reply:
    reply_id, sender, stamp, _, verdict, reason, recipient = packed
    return Reply(tag=tag, reply_id=reply_id, sender=sender, time=stamp, verdict=verdict, reason=reason,
                 recipient=recipient)


def replies_columns(packed_rows: Sequence[Sequence]) -> Dict[str, object]:
    """The register columns of one tag's replies (packed as the fold state keeps them)."""
    if not packed_rows:
        return ReplyCounts().as_columns()
    tag = ""
    counts = count_replies([(reply_of(tag, packed), packed[3]) for packed in packed_rows])
    return counts.get(tag, ReplyCounts()).as_columns()


def tag_for_message_ids(home: Home, message_ids: Sequence[str]) -> Optional[str]:
    """The tag of the first of ``message_ids`` that names a tracked mail (the read model
    first, then tags.csv for a mail sent a moment ago); None when none does."""
    wanted = [bare_message_id(mid) for mid in message_ids if bare_message_id(mid)]
    if not wanted:
        return None
    with Register.load(home) as register:
        for message_id in wanted:
            row = register.find(message_id) if "@" in message_id else None
            if row is not None:
                return row.id
    found: Dict[str, str] = {}
    wanted_set = set(wanted)
    for path in home.log_paths("tags", copies=False):  # every computer's tags log
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue
        for record in parse_tag_records(data, read_columns(path, TAG_COLUMNS)):
            if record is not None and record[1].get("message_id") in wanted_set:
                found[record[1]["message_id"]] = record[0]
    return next((found[mid] for mid in wanted if mid in found), None)

