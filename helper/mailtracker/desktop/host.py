"""The native messaging host: Thunderbird's extension talks to the helper here.

Frames are a 4-byte native-endian length and UTF-8 JSON, on stdin and stdout.
Requests are ``{"id", "command", "protocol", ...}``; replies are
``{"id", "ok": true, "data"}`` or ``{"id", "ok": false, "code", "message"}``.
stdout belongs to the protocol: nothing else may ever be written to it.
"""

import json
import logging
import os
import re
import struct
import sys
import threading
import time
from typing import BinaryIO, Callable, Dict, Optional

from mailtracker import __version__
from mailtracker.core.errors import MailtrackerError, ProtocolError, TrackingPausedError, UnknownTagError
from mailtracker.core.hints import hint_for
from mailtracker.core.paths import Home
from mailtracker.core.settings import load_config
from mailtracker.core.clicks import MAX_LINKS, click_url
from mailtracker.core.weburl import browser_href
from mailtracker.core.secret import read_secret
from mailtracker.core.timestamps import utc_timestamp
from mailtracker.core.tokens import is_token_shaped, short_id
from mailtracker.desktop.marks import tracking_paused
from mailtracker.desktop.counts import Counts
from mailtracker.desktop.register import Register, Row
from mailtracker.desktop.tags import find_tag, mint_tag, record_links, record_self_fetch, update_tag

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
HOST_NAME = "mailtracker.helper"
EXTENSION_ID = "mailtracker@mailtracker.invalid"
# Thunderbird never sends big requests; a bigger frame is a bug or an attack.
MAX_REQUEST_BYTES = 1 << 20
MAX_REPLY_BYTES = 1 << 20
MAX_ID_LENGTH = 200
MAX_REASON = 200
# A group id names one "send individually" mail; the add-on makes it (a UUID).
_GROUP_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# The mails a reply names (In-Reply-To, References): the add-on sends at most this many.
MAX_REPLY_CANDIDATES = 50
# What a reminder waits for: no open (an open, a click or a reply ends it), or no reply.
REMIND_IF = ("not_opened", "no_reply")
# A display the extension reports this long ago is not believed (see _moment).
MAX_MOMENT_AGE_S = 3600.0
# A reminder is for a mail sent this century and due within ten years: anything else is a
# wrong clock or a forgery (and a year past 9999 cannot even be written).
EARLIEST_REMINDER = 946684800.0  # 2000-01-01T00:00:00Z
MAX_REMINDER_AHEAD_S = 10 * 366 * 86400.0
_DISCARD_LIMIT = 64 << 20


def read_frame(stream: BinaryIO) -> Optional[bytes]:
    """One frame's payload, or None at a clean end of input."""
    header = stream.read(4)
    if not header:
        return None
    if len(header) < 4:
        raise ProtocolError("the input ended inside a frame header")
    (length,) = struct.unpack("=I", header)
    if length > MAX_REQUEST_BYTES:
        if length > _DISCARD_LIMIT:
            raise ProtocolError(f"a frame of {length} bytes is far over the limit; closing")
        _discard(stream, length)
        raise FrameTooLarge(length)
    payload = stream.read(length)
    if len(payload) < length:
        raise ProtocolError("the input ended inside a frame")
    return payload


class FrameTooLarge(ProtocolError):
    def __init__(self, length: int):
        super().__init__(f"request of {length} bytes is over the {MAX_REQUEST_BYTES}-byte limit")


def _discard(stream: BinaryIO, length: int) -> None:
    while length:
        chunk = stream.read(min(length, 1 << 16))
        if not chunk:
            raise ProtocolError("the input ended inside a frame")
        length -= len(chunk)


def _frame_payload(message: dict) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def write_frame(stream: BinaryIO, message: dict) -> None:
    payload = _frame_payload(message)
    if len(payload) > MAX_REPLY_BYTES:
        payload = json.dumps(error_reply(message.get("id"), ProtocolError(
            "the reply would be over Thunderbird's 1 MB limit; ask for less"))).encode("utf-8")
    stream.write(struct.pack("=I", len(payload)) + payload)
    stream.flush()


def error_reply(request_id, exc: MailtrackerError) -> dict:
    return {"id": request_id, "ok": False, "code": exc.code, "message": sentence(str(exc)),
            "hint": hint_for(exc.code)}


def sentence(text: str) -> str:
    """A message as the add-on shows it: capitalised (unless it starts with a name such as
    remind_at, which keeps its spelling), ending with a full stop."""
    text = text.strip()
    first = text.split(" ", 1)[0]
    if not ("_" in first or first[:1] in "'\"`"):
        text = text[:1].upper() + text[1:]
    return text + ("" if text.endswith((".", "!", "?")) else ".")


def mint_problem(home: Home) -> Optional[dict]:
    """Why a mint would fail now (code, message, hint), or None: what the Track button shows before Send."""
    try:
        read_secret(home.secret_path)
        if tracking_paused(home):
            raise TrackingPausedError("tracking is paused from the tray")
    except MailtrackerError as exc:
        return {"code": exc.code, "message": sentence(str(exc)), "hint": hint_for(exc.code)}
    return None


class Host:
    """Answers requests; one instance per host process (Thunderbird starts it).

    It only reads and appends: answers come from the read model (``Register``) at
    once, and what the extension reports (a mint, a send, a display) is appended
    to the logs for the fold to take in. It never folds on the way.
    """

    def __init__(self, home: Home):
        self.home = home
        self.commands: Dict[str, Callable[[dict], dict]] = {
            "ping": self.ping, "config": self.config, "mint": self.mint, "sent": self.sent,
            "unsent": self.unsent, "self_fetch": self.self_fetch, "status": self.status,
            "list": self.list, "links": self.links, "remind": self.remind, "reply": self.reply,
        }

    def handle(self, payload: bytes) -> dict:
        request_id = None
        try:
            request = parse_request(payload)
            request_id = request.get("id")
            command = self.commands.get(request["command"])
            if command is None:
                raise ProtocolError(f"unknown command {request['command']!r}")
            return {"id": request_id, "ok": True, "data": command(request)}
        except MailtrackerError as exc:
            return error_reply(getattr(exc, "request_id", request_id), exc)
        except OSError as exc:
            return error_reply(request_id, MailtrackerError(
                f"the helper could not read or write its files: {exc.strerror or exc}"))
        except Exception as exc:  # a bug must cost one reply, never the host
            log.exception("the helper failed on a request")
            return error_reply(request_id, MailtrackerError(f"the helper failed unexpectedly: {exc!r}"))

    def ping(self, request: dict) -> dict:
        return {"version": __version__, "protocol": PROTOCOL_VERSION}

    def config(self, request: dict) -> dict:
        from mailtracker.core.reach import unreachable_problem
        from mailtracker.desktop.install import read_fold_problem
        from mailtracker.desktop.reachability import server_seen

        config = load_config(self.home)
        problem = read_fold_problem(self.home)
        return {"pixel_base": config.pixel_base(), "server_url": config.server_url,
                "path_prefix": config.path_prefix, "paused": tracking_paused(self.home),
                # Counts are not being kept current: the add-on's options page says so.
                "problem": problem.get("error", "") if problem else "",
                # A loopback or private server URL: no recipient can load the pixel.
                "unreachable": unreachable_problem(config.server_url),
                # Why a mint would fail now (no secret, paused), for the Track button before Send.
                "mint_problem": mint_problem(self.home),
                # How the pixel server answered this desktop's pulls when last seen.
                "server_seen": server_seen(self.home, config)}

    def mint(self, request: dict) -> dict:
        recipients = request.get("recipients") or []
        if not isinstance(recipients, list) or not all(isinstance(r, str) for r in recipients):
            raise ProtocolError("recipients must be a list of strings")
        if tracking_paused(self.home):
            raise TrackingPausedError(
                "tracking is paused from the tray: this email is sent without a pixel")
        subject, identity = _text(request, "subject"), _text(request, "identity")
        name = _text(request, "name") or (recipients[0] if recipients else "")
        group = _text(request, "group")
        if group and not _GROUP_ID.fullmatch(group):
            raise ProtocolError("group must be 1 to 64 letters, digits, '-' or '_'")
        tag = mint_tag(self.home, load_config(self.home), name=name, subject=subject,
                       recipients=recipients, identity=identity, status="pending", group=group)
        # The pixel enters the body now: Thunderbird may fetch it while sending.
        record_self_fetch(self.home, tag.id, "compose")
        return tag.to_json()

    def sent(self, request: dict) -> dict:
        tag_id = self._known_tag_id(request)
        message_id = _text(request, "message_id").strip().strip("<>")
        # When Thunderbird sent it (``at``, epoch ms), shown instead of the mint time.
        update_tag(self.home, tag_id, message_id=message_id, status="sent", sent_at=_moment(request))
        record_self_fetch(self.home, tag_id, "send")
        return {"tag_id": tag_id}

    def links(self, request: dict) -> dict:
        """Click URLs for a mail's links, in order; ``null`` for a link that cannot be
        tracked (not http(s), or not read the same by every browser). Each target is
        signed and noted (links.csv, for the views) as the href a browser makes of it."""
        tag_id = self._known_tag_id(request)
        links = request.get("links")
        if not isinstance(links, list) or len(links) > MAX_LINKS or not all(
                isinstance(link, dict) and isinstance(link.get("target"), str)
                and isinstance(link.get("text", ""), str) for link in links):
            raise ProtocolError(f"links must be a list of at most {MAX_LINKS} objects with a "
                                "string target and text")
        base = load_config(self.home).pixel_base()
        secret = read_secret(self.home.secret_path)
        urls, noted = [], []
        for number, link in enumerate(links):
            href = browser_href(link["target"])
            if href is not None:
                urls.append(click_url(base, secret, tag_id, number, href))
                noted.append((number, href, link.get("text", "")))
            else:
                urls.append(None)
        answer = {"urls": urls}
        # Checked before links.csv is written: a refused reply must leave no links behind.
        if len(_frame_payload({"id": request.get("id"), "ok": True, "data": answer})) > MAX_REPLY_BYTES:
            raise ProtocolError(f"the click URLs of these {len(links)} links would be over Thunderbird's "
                                "1 MB limit; nothing was noted, and the mail goes out with its links as written")
        record_links(self.home, tag_id, noted)
        return answer

    def remind(self, request: dict) -> dict:
        """A follow-up reminder for a sent mail: due at ``remind_at`` (a UTC timestamp) if no
        person has opened it by then. Kept with the tag, so every view shows it."""
        tag_id = self._known_tag_id(request)
        remind_at = _text(request, "remind_at")
        try:
            moment = parse_iso_utc(remind_at)
        except ValueError:
            raise ProtocolError("remind_at must be an ISO 8601 time with its offset, such as "
                                "2026-12-01T09:00:00.000Z or 2026-12-01T10:00:00+01:00") from None
        if not EARLIEST_REMINDER <= moment <= time.time() + MAX_REMINDER_AHEAD_S:
            raise ProtocolError(f"remind_at {remind_at[:40]!r} is not between 2000 and ten years from now")
        stamp = utc_timestamp(moment)
        remind_if = _text(request, "remind_if") or "not_opened"
        if remind_if not in REMIND_IF:
            raise ProtocolError(f"remind_if must be one of {', '.join(REMIND_IF)}")
        update_tag(self.home, tag_id, remind_at=stamp, remind_if=remind_if)
        return {"tag_id": tag_id, "remind_at": stamp, "remind_if": remind_if}

    def reply(self, request: dict) -> dict:
        """A reply or bounce the add-on found for a tracked mail (replies.mjs judged it):
        appended to replies.csv once, for the fold to count. ``message_ids`` are the mails it
        names, likeliest first; the first that is tracked is the one it answers."""
        from mailtracker.desktop import replies

        verdict = _text(request, "verdict")
        if verdict not in replies.VERDICTS:
            raise ProtocolError(f"verdict must be one of {', '.join(replies.VERDICTS)}")
        candidates = request.get("message_ids", [])
        if not isinstance(candidates, list) or len(candidates) > MAX_REPLY_CANDIDATES or not all(
                isinstance(mid, str) and len(mid) <= replies.MAX_REPLY_ID for mid in candidates):
            raise ProtocolError(f"message_ids must be a list of at most {MAX_REPLY_CANDIDATES} Message-IDs")
        reply_id = replies.bare_message_id(_text(request, "reply_id"))
        if not reply_id or len(reply_id) > replies.MAX_REPLY_ID:
            raise ProtocolError("reply_id must be the Message-ID of the reply")
        if request.get("tag_id"):
            tag_id = self._known_tag_id(request)
        else:
            tag_id = replies.tag_for_message_ids(self.home, candidates)
            if tag_id is None:
                return {"tracked": False}
        entry = replies.Reply(tag=tag_id, reply_id=reply_id, sender=_text(request, "from"),
                              time=_reply_time(_text(request, "time")), verdict=verdict,
                              reason=_text(request, "reason"), recipient=_text(request, "recipient"))
        recorded = not replies.already_recorded(self.home, entry)
        if recorded:
            replies.record_reply(self.home, entry)
        return {"tracked": True, "tag_id": tag_id, "short_id": short_id(tag_id), "recorded": recorded}

    def unsent(self, request: dict) -> dict:
        tag_id = self._known_tag_id(request)
        update_tag(self.home, tag_id, status="unsent")
        return {"tag_id": tag_id}

    def self_fetch(self, request: dict) -> dict:
        """The sender's Thunderbird shows a tracked mail (or is about to): note the moment
        the extension gives, so a fetch then is labelled ``self`` however late the fold runs."""
        when = _moment(request)
        if request.get("tag_id"):
            tag_id = self._known_tag_id(request)
        else:
            message_id = _text(request, "message_id").strip().strip("<>")
            found = self._row(request)
            if found is not None:
                tag_id = found.id
            else:
                # Sent a moment ago: in tags.csv, not yet in the read model.
                tagged = find_tag(self.home, message_id=message_id) if message_id else None
                if tagged is None:
                    raise UnknownTagError("no tracked email with that tag id or Message-ID")
                tag_id = tagged[0]
        record_self_fetch(self.home, tag_id, _text(request, "reason")[:MAX_REASON] or "display", when)
        return {}

    def status(self, request: dict) -> dict:
        from mailtracker.desktop.classify import explain

        with Register.load(self.home) as register:
            row = self._row(request, register)
            timeline = register.timeline(row.id) if row is not None else []
            members = register.group(row.group) if row is not None else []
            timelines = {member.id: register.timeline(member.id) for member in members}
        if row is None:
            row = self._unfolded_row(request)
            if row is None:
                return {"tracked": False}
        if not row.group:
            return self._status_of(row, timeline, explain)
        # One Sent copy stands for every recipient's own copy ("send individually"):
        # the totals are the group's, and each recipient has a row of their own.
        members = members or [row]
        merged = sorted((event for member in members for event in timelines.get(member.id, [])),
                        key=lambda event: event[0])
        answer = self._status_of(row.with_counts_of(members), merged, explain)
        answer["group"] = row.group
        answer["recipients"] = [_recipient_status(member, timelines.get(member.id, []))
                                for member in members]
        return answer

    @staticmethod
    def _status_of(row: Row, timeline, explain) -> dict:
        answer = {"tracked": True, **row.to_json(), "timeline": [
            {"time": when, "label": label, "counted": bool(counted), "reason": explain(reason), "client": client}
            for when, label, counted, reason, client in timeline]}
        # A status has "group" and "recipients" (the list of its copies) only for a mail sent
        # individually (the add-on tells the two kinds apart so).
        del answer["recipients"], answer["group"]
        return answer

    def list(self, request: dict) -> dict:
        limit = request.get("limit", 50)
        if type(limit) is not int or limit < 1:
            raise ProtocolError("limit must be a positive integer")
        with Register.load(self.home) as register:
            rows = register.rows()
        rows.sort(key=lambda row: row.created, reverse=True)
        return {"tags": [_listed(row) for row in rows[:limit]]}

    def _unfolded_row(self, request: dict) -> Optional[Row]:
        """A tag the fold has not taken in yet (sent a moment ago), from tags.csv, with no hits."""
        message_id = _text(request, "message_id").strip().strip("<>")
        found = find_tag(self.home, tag_id=request.get("tag_id") or "", message_id=message_id)
        if found is None:
            return None
        tag_id, fields = found
        return Row.of(tag_id, fields, Counts(), {})

    def _known_tag_id(self, request: dict) -> str:
        """The request's tag id, checked: of the token alphabet, and minted here."""
        tag_id = _text(request, "tag_id")
        if not is_token_shaped(tag_id):
            raise ProtocolError("tag_id must be a 32-character tag id")
        with Register.load(self.home) as register:
            if register.get(tag_id) is not None:
                return tag_id
        if find_tag(self.home, tag_id=tag_id) is None:
            raise UnknownTagError(f"no tag {tag_id[:7]}… was minted in this home")
        return tag_id

    def _row(self, request: dict, register: Optional[Register] = None) -> Optional[Row]:
        tag_id = request.get("tag_id")
        if tag_id is not None and not (isinstance(tag_id, str) and (not tag_id or is_token_shaped(tag_id))):
            raise ProtocolError("tag_id must be a 32-character tag id")
        message_id = _text(request, "message_id").strip().strip("<>")
        if register is None:
            with Register.load(self.home) as own:
                return self._row(request, own)
        if tag_id:
            row = register.get(tag_id)
            if row is not None:
                return row
        return register.find(message_id) if message_id else None


def _listed(row: Row) -> dict:
    """A tag as ``list`` gives it: the row without its links (fifty rows of a hundred links
    each would not fit a reply)."""
    listed = row.to_json()
    del listed["links"]
    return listed


def _device_of(timeline) -> str:
    """The client of the latest counted open in a timeline, as classify describes it."""
    for when, label, counted, reason, client in reversed(timeline):
        if label == "open" and counted:
            return client
    return ""


def _recipient_status(row: Row, timeline) -> dict:
    """One recipient's copy of a "send individually" mail, as the Opens popup shows it."""
    return {**_listed(row), "tag_id": row.id, "recipient": row.recipients, "device": _device_of(timeline)}


def parse_request(payload: bytes) -> dict:
    """A request frame as a dict with a string command; ProtocolError for anything else."""
    try:
        request = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"the request is not UTF-8 JSON: {exc}") from None
    except RecursionError:
        raise ProtocolError("the request is nested too deeply") from None
    if not isinstance(request, dict):
        raise ProtocolError("the request must be a JSON object")
    request_id = request.get("id")
    if not (request_id is None or type(request_id) in (str, int)) or len(str(request_id)) > MAX_ID_LENGTH:
        raise ProtocolError(f"the request id must be a string or integer of at most {MAX_ID_LENGTH} characters")
    try:
        # JSON may carry lone surrogates ("\ud800"); nothing could write them as UTF-8.
        json.dumps(request, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ProtocolError("the request holds text that is not valid Unicode (a lone surrogate)") from None
    protocol = request.get("protocol", PROTOCOL_VERSION)
    if type(protocol) is not int or protocol != PROTOCOL_VERSION:
        raise _answerable(ProtocolError(
            f"the extension speaks protocol {protocol!r}, this helper {PROTOCOL_VERSION}; "
            "update both to the same version"), request_id)
    if not isinstance(request.get("command"), str):
        raise _answerable(ProtocolError("the request needs a command (a string)"), request_id)
    return request


def _answerable(exc: MailtrackerError, request_id) -> MailtrackerError:
    """An error for a request whose id is sound: the reply can name it."""
    exc.request_id = request_id
    return exc


def _text(request: dict, key: str) -> str:
    value = request.get(key, "")
    if not isinstance(value, str):
        raise ProtocolError(f"{key} must be a string")
    return value


def parse_iso_utc(text: str) -> float:
    """Epoch seconds of an ISO 8601 time with its offset: a Z (JavaScript's toISOString, or
    ours) or ±HH:MM, which is honoured. ValueError for a time without one (a local time
    cannot be placed) or with two."""
    from datetime import datetime

    if len(text) > 40:
        raise ValueError(text)
    moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    if moment.tzinfo is None:
        raise ValueError(text)
    return moment.timestamp()


def _reply_time(text: str) -> str:
    """When a reply was written, as the add-on read it (UTC ISO 8601); a time that cannot be
    read, or one in the future (a sender's wrong clock, a forgery), is taken as now."""
    now = time.time()
    try:
        moment = parse_iso_utc(text)
    except ValueError:
        return utc_timestamp(now)
    return utc_timestamp(min(moment, now))


def _moment(request: dict) -> str:
    """When the extension says it happened (``at``: epoch milliseconds), else now; a moment
    far from now is a wrong clock or a forgery, and now is the safer guess."""
    at = request.get("at")
    now = time.time()
    # Compared before dividing: an integer of 400 digits cannot be made a float.
    if type(at) in (int, float) and (now - MAX_MOMENT_AGE_S) * 1000 <= at <= (now + 60) * 1000:
        return utc_timestamp(at / 1000)
    return utc_timestamp(now)


class FrameWriter:
    """Writes frames to stdout; replies and pushed events come from two threads."""

    def __init__(self, stream: BinaryIO):
        self.stream = stream
        self._lock = threading.Lock()

    def __call__(self, message: dict) -> None:
        with self._lock:
            write_frame(self.stream, message)


class Subscription:
    """What ``subscribe`` starts, for a port Thunderbird keeps open: the home's daemon
    (leading, or following another one) and a pushed ``changed`` event whenever the
    counts changed. Ends with the port."""

    def __init__(self, home: Home, write: FrameWriter):
        from mailtracker.desktop.daemon import Daemon

        self.home = home
        self.daemon = Daemon(home, load_config(home), on_change=self._changed)
        self._write = write

    def _changed(self, result) -> None:
        # Who folds and who notifies can change (a tray started or stopped): say so each time.
        self._write({"event": "changed", "data": self.state()})

    def state(self) -> dict:
        """``folding``: this host runs the fold; ``tray``: a tray runs, and notifies of opens."""
        from mailtracker.desktop.daemon import tray_running

        return {"folding": self.daemon.leading.is_set(), "tray": tray_running(self.home)}

    def start(self) -> dict:
        self.daemon.start()
        return self.state()

    def stop(self) -> None:
        self.daemon.stop()


def serve_stdio(home: Home, stdin: BinaryIO, stdout: BinaryIO) -> int:
    """Answer frames until the extension closes the pipe."""
    host = Host(home)
    write = FrameWriter(stdout)
    subscription: Optional[Subscription] = None

    def subscribe(request: dict) -> dict:
        nonlocal subscription
        if subscription is None:
            subscription = Subscription(home, write)
            return subscription.start()
        return subscription.state()

    host.commands["subscribe"] = subscribe
    try:
        while True:
            try:
                payload = read_frame(stdin)
            except FrameTooLarge as exc:
                write(error_reply(None, exc))
                continue
            except ProtocolError as exc:
                log.error("%s", exc)
                return exc.code
            if payload is None:
                return 0
            write(host.handle(payload))
    finally:
        if subscription is not None:
            subscription.stop()


def run_host(home: Home, argv_tail) -> int:
    """Entry point Thunderbird starts: ``<launcher> <manifest path> <extension id>``."""
    caller = argv_tail[1] if len(argv_tail) >= 2 else None
    if caller is not None and caller != EXTENSION_ID:
        log.error("refusing to serve extension %r: only %s may use this helper", caller, EXTENSION_ID)
        return ProtocolError.code
    binary_stdio()
    stdout = sys.stdout.buffer
    # Anything printed by mistake must not corrupt the protocol stream.
    sys.stdout = sys.stderr
    return serve_stdio(home, sys.stdin.buffer, stdout)


def binary_stdio() -> None:
    """On Windows, stdin and stdout without newline translation: a frame's length bytes may
    be 0x0a or 0x1a. (Python 3 sets this at start-up already; said again so it never depends
    on that.)"""
    if sys.platform == "win32":  # pragma: no cover - Windows only
        import msvcrt

        for stream in (sys.stdin, sys.stdout):
            msvcrt.setmode(stream.fileno(), os.O_BINARY)
