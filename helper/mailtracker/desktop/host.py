"""The native messaging host: Thunderbird's extension talks to the helper here.

Frames are a 4-byte native-endian length and UTF-8 JSON, on stdin and stdout.
Requests are ``{"id", "command", "protocol", ...}``; replies are
``{"id", "ok": true, "data"}`` or ``{"id", "ok": false, "code", "message"}``.
stdout belongs to the protocol: nothing else may ever be written to it.
"""

import json
import logging
import struct
import sys
from typing import BinaryIO, Callable, Dict, Optional

from mailtracker import __version__
from mailtracker.core.errors import MailtrackerError, ProtocolError, TrackingPausedError, UnknownTagError
from mailtracker.core.paths import Home
from mailtracker.core.settings import load_config
from mailtracker.core.tokens import TOKEN_LENGTH, short_id
from mailtracker.desktop.marks import tracking_paused
from mailtracker.desktop.tags import mint_tag, record_self_fetch, update_tag

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
HOST_NAME = "mailtracker.helper"
EXTENSION_ID = "mailtracker@mailtracker.invalid"
# Thunderbird never sends big requests; a bigger frame is a bug or an attack.
MAX_REQUEST_BYTES = 1 << 20
MAX_REPLY_BYTES = 1 << 20
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


def write_frame(stream: BinaryIO, message: dict) -> None:
    payload = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if len(payload) > MAX_REPLY_BYTES:
        payload = json.dumps(error_reply(message.get("id"), ProtocolError(
            "the reply would be over Thunderbird's 1 MB limit; ask for less"))).encode("utf-8")
    stream.write(struct.pack("=I", len(payload)) + payload)
    stream.flush()


def error_reply(request_id, exc: MailtrackerError) -> dict:
    return {"id": request_id, "ok": False, "code": exc.code, "message": str(exc)}


class Host:
    """Answers requests; one instance per host process (Thunderbird starts it)."""

    def __init__(self, home: Home):
        self.home = home
        self.commands: Dict[str, Callable[[dict], dict]] = {
            "ping": self.ping, "config": self.config, "mint": self.mint, "sent": self.sent,
            "unsent": self.unsent, "self_fetch": self.self_fetch, "status": self.status,
            "list": self.list,
        }

    def handle(self, payload: bytes) -> dict:
        request_id = None
        try:
            try:
                request = json.loads(payload.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as exc:
                raise ProtocolError(f"the request is not UTF-8 JSON: {exc}") from None
            if not isinstance(request, dict):
                raise ProtocolError("the request must be a JSON object")
            request_id = request.get("id")
            protocol = request.get("protocol", PROTOCOL_VERSION)
            if protocol != PROTOCOL_VERSION:
                raise ProtocolError(
                    f"the extension speaks protocol {protocol!r}, this helper {PROTOCOL_VERSION}; "
                    "update both to the same version")
            command = self.commands.get(request.get("command"))
            if command is None:
                raise ProtocolError(f"unknown command {request.get('command')!r}")
            return {"id": request_id, "ok": True, "data": command(request)}
        except MailtrackerError as exc:
            return error_reply(request_id, exc)
        except OSError as exc:
            return error_reply(request_id, MailtrackerError(f"the helper could not read or write its files: {exc}"))

    def ping(self, request: dict) -> dict:
        return {"version": __version__, "protocol": PROTOCOL_VERSION}

    def config(self, request: dict) -> dict:
        config = load_config(self.home)
        return {"pixel_base": config.pixel_base(), "server_url": config.server_url,
                "path_prefix": config.path_prefix, "paused": tracking_paused(self.home)}

    def mint(self, request: dict) -> dict:
        recipients = request.get("recipients") or []
        if not isinstance(recipients, list) or not all(isinstance(r, str) for r in recipients):
            raise ProtocolError("recipients must be a list of strings")
        if tracking_paused(self.home):
            raise TrackingPausedError(
                "tracking is paused from the tray: this email is sent without a pixel")
        subject, identity = _text(request, "subject"), _text(request, "identity")
        name = _text(request, "name") or (recipients[0] if recipients else "")
        tag = mint_tag(self.home, load_config(self.home), name=name, subject=subject,
                       recipients=recipients, identity=identity, status="pending")
        # The pixel enters the body now: Thunderbird may fetch it while sending.
        record_self_fetch(self.home, tag.id, "compose")
        return tag.to_json()

    def sent(self, request: dict) -> dict:
        tag_id = self._tag_id(request)
        message_id = _text(request, "message_id").strip().strip("<>")
        update_tag(self.home, tag_id, message_id=message_id, status="sent")
        record_self_fetch(self.home, tag_id, "send")
        return {"tag_id": tag_id}

    def unsent(self, request: dict) -> dict:
        tag_id = self._tag_id(request)
        update_tag(self.home, tag_id, status="unsent")
        return {"tag_id": tag_id}

    def self_fetch(self, request: dict) -> dict:
        if request.get("tag_id"):
            tag_id = self._tag_id(request)
        else:
            tag_id = self._find(fold_quietly(self.home), request)[0]
        record_self_fetch(self.home, tag_id, _text(request, "reason") or "display")
        return {}

    def status(self, request: dict) -> dict:
        from mailtracker.desktop.classify import explain
        from mailtracker.desktop.fold import FIRST, HITS, LAST, MACHINE, OPENS, SELF, new_entry

        state = fold_quietly(self.home)
        try:
            tag_id, tag = self._find(state, request)
        except UnknownTagError:
            return {"tracked": False}
        entry = state.counts.get(tag_id) or new_entry()
        return {
            "tracked": True, "id": tag_id, "short_id": short_id(tag_id), "status": tag.get("status", ""),
            "opens": entry[OPENS], "first_open": entry[FIRST], "last_open": entry[LAST],
            "hits": entry[HITS], "self_hits": entry[SELF], "machine_hits": entry[MACHINE],
            "timeline": [
                {"time": when, "label": label, "counted": bool(counted), "reason": explain(reason),
                 "client": client}
                for when, label, counted, reason, client in state.timeline(tag_id)],
        }

    def list(self, request: dict) -> dict:
        limit = request.get("limit", 50)
        if not isinstance(limit, int) or limit < 1:
            raise ProtocolError("limit must be a positive integer")
        rows = fold_quietly(self.home).register_rows()
        rows.sort(key=lambda row: row["created"], reverse=True)
        keys = ("id", "short_id", "name", "subject", "recipients", "created", "opens",
                "first_open", "last_open", "status", "message_id")
        return {"tags": [{key: row[key] for key in keys} for row in rows[:limit]]}

    def _tag_id(self, request: dict) -> str:
        tag_id = _text(request, "tag_id")
        if len(tag_id) != TOKEN_LENGTH:
            raise ProtocolError("tag_id must be a 32-character tag id")
        return tag_id

    @staticmethod
    def _find(state, request: dict):
        tag_id = request.get("tag_id")
        if tag_id in state.tags:
            return tag_id, state.tags[tag_id]
        message_id = _text(request, "message_id").strip().strip("<>")
        if message_id:
            for candidate, tag in state.tags.items():
                if tag.get("message_id") == message_id:
                    return candidate, tag
        raise UnknownTagError("no tracked email with that tag id or Message-ID")


def _text(request: dict, key: str) -> str:
    value = request.get(key, "")
    if not isinstance(value, str):
        raise ProtocolError(f"{key} must be a string")
    return value


def fold_quietly(home: Home):
    """Bring the counts up to date before answering; a locked register is no error here."""
    # Imported here: Thunderbird starts a helper per message, and a mint, the one
    # request on the send path, needs none of the fold.
    from mailtracker.desktop.fold import fold, load_state

    fold(home)
    return load_state(home)


def serve_stdio(home: Home, stdin: BinaryIO, stdout: BinaryIO) -> int:
    """Answer frames until the extension closes the pipe."""
    host = Host(home)
    while True:
        try:
            payload = read_frame(stdin)
        except FrameTooLarge as exc:
            write_frame(stdout, error_reply(None, exc))
            continue
        except ProtocolError as exc:
            log.error("%s", exc)
            return exc.code
        if payload is None:
            return 0
        write_frame(stdout, host.handle(payload))


def run_host(home: Home, argv_tail) -> int:
    """Entry point Thunderbird starts: ``<launcher> <manifest path> <extension id>``."""
    caller = argv_tail[1] if len(argv_tail) >= 2 else None
    if caller is not None and caller != EXTENSION_ID:
        log.error("refusing to serve extension %r: only %s may use this helper", caller, EXTENSION_ID)
        return ProtocolError.code
    stdout = sys.stdout.buffer
    # Anything printed by mistake must not corrupt the protocol stream.
    sys.stdout = sys.stderr
    return serve_stdio(home, sys.stdin.buffer, stdout)
