"""The pixel server: every ``<prefix>/<token>.gif`` gets a 43-byte transparent
GIF; a hit whose token verifies is first appended to the hits log.

Optionally it also serves its hits files to the desktop (``/hits/``, behind a
bearer token, see ``pull``), keeps the device logs a person's computers push and
pull (``/devices/``, see ``devicelogs``), and deletes its own hits files once they
are older than a retention period.

``create_app`` builds the ASGI application from settings and the secret;
``mailtracker.server.run`` runs it under granian, a production HTTP server (the
HTTP parsing, limits and keep-alive are granian's, not ours).
"""

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import re
import secrets
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Dict, Optional, Tuple, Union
from urllib.parse import parse_qs

from mailtracker.core.clicks import CLICK_SEGMENT, ClickVerifier
from mailtracker.core.contract import CHUNK_BYTES, DEVICES_ROUTE, GIF, HITS_ROUTE, MAX_PUSH_BYTES, pull_token
from mailtracker.core.csvcodec import neutralise
from mailtracker.core.hitline import click_method, hit_line_tail, join_hit_line
from mailtracker.core.memory import Memory
from mailtracker.core.errors import ServerError
from mailtracker.core.origins import OriginTable
from mailtracker.core.paths import is_device_log_name
from mailtracker.core.timestamps import utc_timestamp
from mailtracker.core.tokens import TokenVerifier
from mailtracker.core.untrusted import printable
from mailtracker.server.devicelogs import PushAnswer, append_device_log, devices_folder
from mailtracker.server.hitfiles import HitsResponse, ServedFolder, answer_files_request, hits_folder, refused_token
from mailtracker.server.hitlog import GroupedWrites, HitLog
from mailtracker.server.livewatch import (WAIT_HEADER, FolderChanges, held_answer, release_on_signals,
                                          requested_wait)
from mailtracker.server.retention import prune_old_hits
from mailtracker.server.settings import ServerSettings

log = logging.getLogger(__name__)

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]



PRUNE_EVERY_S = 3600.0


MAX_TEXT = 512




# C0, DEL and C1: a C1 byte (CSI U+009B, OSC U+009D...) drives a terminal as its
# ESC form does, and the text reaches one through 'mailtracker show'.
# What the client column holds for a peer that names no address (a Unix socket, a
# malformed X-Forwarded-For). The fold splits that column off unparsed.
UNKNOWN_CLIENT = "unknown"
_STORED_CLIENT = re.compile(r"[0-9A-Za-z.:]{1,64}")


_GIF_HEADERS = [
    (b"content-type", b"image/gif"),
    (b"content-length", str(len(GIF)).encode()),
    (b"cache-control", b"no-store, no-cache, must-revalidate, max-age=0"),
    (b"pragma", b"no-cache"),
    (b"expires", b"Thu, 01 Jan 1970 00:00:00 GMT"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


_GIF_START = {"type": "http.response.start", "status": 200, "headers": _GIF_HEADERS}
_GIF_BODY = {"type": "http.response.body", "body": GIF}
_EMPTY_BODY = {"type": "http.response.body", "body": b""}
# Line tails remembered per worker: a bounded number of bounded entries.
_REMEMBERED_TAILS = 1024
_REMEMBERED_HEADER_BYTES = 1024
# Tokens that verified, remembered per worker (about 100 bytes each).
_REMEMBERED_TOKENS = 4096
# Click URLs that verified, remembered per worker (at most 2 KiB each, with their target).
_REMEMBERED_CLICKS = 256


_CLICK_PATH = f"/{CLICK_SEGMENT}/"
_REDIRECT_HEADERS = [
    (b"content-length", b"0"),
    (b"cache-control", b"no-store, max-age=0"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
]
_NOT_FOUND_PAGE = (b"<!doctype html><html><head><meta charset=\"utf-8\"><title>Link not found</title></head>"
                   b"<body><h1>Link not found</h1><p>This link is not valid. If you copied it from an "
                   b"email, check that all of it was copied.</p></body></html>\n")


def normalise_address(text: str) -> Optional[IPAddress]:
    """The address a peer or an X-Forwarded-For entry names, in one form; None if none.

    An IPv6 scope id names an interface of the receiving host, not the reader, and is
    outside text that address parsing lets through (``fe80::1%a\tb``): it is dropped.
    A dual-stack socket (``--host ::``) reports IPv4 peers as ``::ffff:a.b.c.d``: they
    are IPv4 addresses, so that truncation and --trusted-proxies treat them as such.
    """
    text = text.strip()
    # Some proxies add the peer's port: "203.0.113.9:51234", "[2001:db8::1]:443".
    if text.startswith("[") and "]" in text:
        text = text[1:text.index("]")]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if ip.version == 6:
        if ip.scope_id is not None:
            ip = ipaddress.IPv6Address(ip.packed)
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
    return ip


def _client_address_formatter(mode: str, secret: bytes):
    if mode == "full":
        return str
    if mode == "hash":
        salt = hmac.new(secret, b"mailtracker-client-address-v1", hashlib.sha256).digest()
        return lambda ip: "h" + hmac.new(salt, str(ip).encode(), hashlib.sha256).hexdigest()[:20]

    def truncate(ip: IPAddress) -> str:
        bits = 24 if ip.version == 4 else 48
        return str(ipaddress.ip_network((ip, bits), strict=False).network_address)

    return truncate


def _stored_address_function(formatter):
    def stored(address: str) -> str:
        ip = normalise_address(address)
        if ip is None:
            return UNKNOWN_CLIENT
        text = formatter(ip)
        # The column must never hold a separator or a control character, whatever the mode.
        return text if _STORED_CLIENT.fullmatch(text) else UNKNOWN_CLIENT
    return stored


def _clean_text(raw: Optional[bytes]) -> str:
    if not raw:
        return ""
    text = raw[: MAX_TEXT * 4].decode("utf-8", "replace")
    return neutralise(printable(text)[:MAX_TEXT])


class PixelApp:
    """The ASGI application. Every request is answered; only verified hits are logged."""

    def __init__(self, settings: ServerSettings, secret: bytes, hit_log: HitLog):
        self.settings = settings
        self.secret = secret
        self.hit_log = hit_log
        self._writes = GroupedWrites(hit_log)
        self.boot = base64.b32encode(secrets.token_bytes(5)).decode("ascii").lower()
        self.seq = 0
        self.invalid = 0
        # A peer sends many hits: its stored form is worked out once.
        stored = _stored_address_function(_client_address_formatter(settings.client_address, secret))
        # The lookup alone, compactly (each worker holds one); the cache below remembers answers.
        origins = OriginTable.load(Path(settings.origins_file) if settings.origins_file else None, cache=0)

        def client_forms(address: str) -> Tuple[str, str]:
            # The network is judged on the full address, before the privacy setting
            # truncates or hashes it: every setting then classifies as well as 'full'.
            ip = normalise_address(address)
            return stored(address), origins.lookup(str(ip)) if ip is not None else ""

        self._client_forms = lru_cache(maxsize=8192)(client_forms)
        self._tails = Memory(_REMEMBERED_TAILS)
        self._verify = TokenVerifier(secret, remember=_REMEMBERED_TOKENS)
        self._verify_click = ClickVerifier(secret, remember=_REMEMBERED_CLICKS)
        self._trusted = [ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxies]
        self._pull_token = pull_token(secret) if settings.serve_hits else ""
        self.refused_pulls = 0
        self._pruner: Optional[asyncio.Task] = None
        # The live pull (made at start, in the worker's event loop): the folder each route lists.
        self._changes: Dict[str, FolderChanges] = {}
        self._stopping: Optional[asyncio.Event] = None

    async def __call__(self, scope, receive, send):
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            method = scope["method"]
            # The pixel, inline: it is nearly every request the server answers.
            if path.endswith(".gif") and (method == "GET" or method == "HEAD"):
                token = path[path.rfind("/") + 1:-4]
                if self._verify(token):
                    await self._log_hit(scope, token, method)
                else:
                    self.invalid += 1
                await send(_GIF_START)
                await send(_GIF_BODY if method == "GET" else _EMPTY_BODY)
            else:
                await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.settings.serve_hits:
                    self._prepare_held_pulls()
                if self.settings.retention_days:
                    # The first pass runs before any request is served.
                    self._prune()
                    self._pruner = asyncio.get_running_loop().create_task(self._prune_periodically())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._pruner is not None:
                    self._pruner.cancel()
                self._release_held_pulls()
                self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def close(self) -> None:
        log.info("pixel server %s stopping: %d hits logged, %d requests with invalid tokens, "
                 "%d hits requests refused", self.hit_log.writer_id, self.hit_log.written,
                 self.invalid, self.refused_pulls)
        self._writes.write()
        self.hit_log.close()

    def _prune(self) -> None:
        try:
            pruned = prune_old_hits(Path(self.settings.hits_dir), self.settings.server_id,
                                    self.settings.retention_days,
                                    datetime.now(timezone.utc).date())
        except OSError as exc:
            log.error("cannot prune old hits files in %s: %s", self.settings.hits_dir, exc.strerror or exc)
            return
        if pruned:
            log.info("deleted %d hits files older than %d days: %s", len(pruned),
                     self.settings.retention_days, ", ".join(pruned))

    async def _prune_periodically(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_EVERY_S)
            self._prune()

    async def _http(self, scope, receive, send):
        path = scope["path"]
        method = scope["method"]
        if path.endswith(".gif"):  # GET and HEAD were answered by __call__
            await _respond(send, 405, b"text/plain", b"only GET and HEAD\n", [(b"allow", b"GET, HEAD")])
        elif _CLICK_PATH in path:
            await self._click(scope, send, path, method)
        elif self.settings.serve_hits and (path == "/hits" or path.startswith(HITS_ROUTE)):
            await self._send_hits(scope, send, HITS_ROUTE if path == "/hits" else path)
        elif self.settings.serve_hits and (path == "/devices" or path.startswith(DEVICES_ROUTE)):
            await self._devices(scope, receive, send, DEVICES_ROUTE if path == "/devices" else path)
        elif path == "/healthz":
            healthy = self.hit_log.flush_pending(check_file=True)
            body = {"status": "ok" if healthy else "cannot write hits",
                    "pending_hits": len(self.hit_log.pending)}
            await _respond(send, 200 if healthy else 503, b"application/json",
                           json.dumps(body).encode() + b"\n")
        else:
            await _respond(send, 404, b"text/plain", b"not found\n")

    async def _click(self, scope, send, path: str, method: str) -> None:
        """A click on a tracked link: log it, then redirect to the signed target, as the
        URL a browser would have opened from the mail's link (core/weburl.py).

        A URL that does not verify gets a plain 404 page, never a redirect: the
        server cannot be used to send anyone anywhere else."""
        if method not in ("GET", "HEAD"):
            await _respond(send, 405, b"text/plain", b"only GET and HEAD\n", [(b"allow", b"GET, HEAD")])
            return
        click = self._verify_click(path, scope.get("query_string", b""))
        if click is None:
            self.invalid += 1
            await _respond(send, 404, b"text/html; charset=utf-8", _NOT_FOUND_PAGE)
            return
        tag, link, href = click
        # Written before the answer, as every hit: a redirect the reader saw is never lost.
        await self._log_hit(scope, tag, click_method(link, method))
        await send({"type": "http.response.start", "status": 302,
                    "headers": [(b"location", href.encode("ascii")), *_REDIRECT_HEADERS]})
        await send({"type": "http.response.body", "body": b""})

    async def _send_hits(self, scope, send, path: str) -> None:
        """A hits list or file for the desktop's puller; files are streamed in chunks."""
        method = scope["method"]
        answer = await self._listing_answer(scope, method, path, hits_folder(Path(self.settings.hits_dir)))
        await self._send_answer(send, method, answer)

    async def _devices(self, scope, receive, send, path: str) -> None:
        """The device logs: listed and sent as the hits files are; a POST appends to one."""
        method = scope["method"]
        if method == "POST":
            answer = await self._push(scope, receive, path)
            if answer.status == 413:  # its body may be left unread: the connection cannot go on
                answer.headers.append((b"connection", b"close"))
        elif method in ("GET", "HEAD"):
            answer = await self._listing_answer(scope, method, path, devices_folder(
                Path(self.settings.device_logs_dir)))
        else:
            answer = HitsResponse(405, [(b"content-length", b"0"), (b"allow", b"GET, HEAD, POST")])
        await self._send_answer(send, method, answer)

    async def _push(self, scope, receive, path: str) -> HitsResponse:
        """``POST /devices/<name>?at=<offset>``: checked before the body is read, which is read
        only up to its bound, then appended in a thread (it is fsynced)."""
        headers = dict(scope["headers"])
        refused = refused_token(headers, self._pull_token)
        return refused or (await self._pushed(scope, receive, path, headers)).response()

    async def _pushed(self, scope, receive, path: str, headers) -> PushAnswer:
        name = path[len(DEVICES_ROUTE):]
        if not is_device_log_name(name):
            return PushAnswer(404, message=f"{name[:80]!r} is not the name of a device log")
        at = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("at", [""])
        if len(at) != 1 or not at[0].isdigit() or len(at[0]) > 18:
            return PushAnswer(400, message="a push names where its lines go: ?at=<the byte offset>")
        length = headers.get(b"content-length", b"")
        if length and (not length.isdigit() or int(length) > MAX_PUSH_BYTES):
            return PushAnswer(413, message=f"a push carries at most {MAX_PUSH_BYTES} bytes")
        body = await _read_body(receive, MAX_PUSH_BYTES)
        if body is None:
            return PushAnswer(413, message=f"a push carries at most {MAX_PUSH_BYTES} bytes")
        return await asyncio.to_thread(append_device_log, Path(self.settings.device_logs_dir), name,
                                       int(at[0]), body)

    async def _send_answer(self, send, method: str, answer: HitsResponse) -> None:
        """Send a hits or devices answer; a file is streamed in chunks."""
        if answer.status == 401:
            self.refused_pulls += 1
            if self.refused_pulls == 1:
                log.warning("refused a hits request without the right bearer token (more are only "
                            "counted): a desktop with another secret, or someone probing")
        await send({"type": "http.response.start", "status": answer.status, "headers": answer.headers})
        if answer.fd is None:
            await send({"type": "http.response.body", "body": answer.body if method != "HEAD" else b""})
            return
        try:
            position, remaining = answer.start, answer.length if method == "GET" else 0
            while remaining:
                chunk = _read_at(answer.fd, min(CHUNK_BYTES, remaining), position)
                if not chunk:
                    break  # the file shrank: the client sees a short body and asks again
                position += len(chunk)
                remaining -= len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": remaining > 0})
            if remaining or method != "GET" or not answer.length:
                await send({"type": "http.response.body", "body": b""})
        finally:
            os.close(answer.fd)

    async def _listing_answer(self, scope, method: str, path: str, served: ServedFolder):
        """The answer to a hits (or devices) request; a listing asked with ``?wait=N`` that would
        be 304 is held until a file of the folder changes, N seconds pass, or the server stops
        (see livewatch)."""
        headers = dict(scope["headers"])

        def answer():
            return answer_files_request(served, self._pull_token, method, path, headers)

        wait_s = requested_wait(scope.get("query_string", b"")) if path == served.route and method == "GET" else 0
        if not wait_s:
            return answer()
        if not self._changes:
            self._prepare_held_pulls()
        reply = await held_answer(answer, lambda reply: reply.status == 304, self._changes[served.route],
                                  wait_s, self._stopping)
        if reply.status in (200, 304):
            reply.headers.append((WAIT_HEADER, str(wait_s).encode()))
        if self._stopping.is_set():
            # The desktop's next request must not keep this worker's connection (and its stop) going.
            reply.headers.append((b"connection", b"close"))
        return reply

    def _prepare_held_pulls(self) -> None:
        """At start (before any request: a stop signal may come at any time), in the worker's loop."""
        self._changes = {HITS_ROUTE: FolderChanges(Path(self.settings.hits_dir)),
                         DEVICES_ROUTE: FolderChanges(Path(self.settings.device_logs_dir))}
        self._stopping = asyncio.Event()
        release_on_signals(asyncio.get_running_loop(), self._release_held_pulls)

    def _release_held_pulls(self) -> None:
        """Answer every held listing now: a stopping server must not wait out its long polls."""
        if self._stopping is not None and not self._stopping.is_set():
            self._stopping.set()
            for changes in self._changes.values():
                changes.close()

    def _log_hit(self, scope, token: str, method: str) -> "asyncio.Future":
        """Keep the hit's line for this turn's write; done once it is written."""
        headers = dict(scope["headers"])
        key = (method, (scope.get("client") or ("", 0))[0], headers.get(b"user-agent"),
               headers.get(b"referer"), headers.get(b"x-forwarded-for") if self._trusted else None)
        tail = self._tails.get(key)
        if tail is None:
            tail = self._tail(key)
        self.seq += 1
        when = utc_timestamp()
        return self._writes.add(join_hit_line(self.boot, self.seq, when, token, tail), when[:10])

    def _tail(self, key: tuple) -> str:
        """The line's part after the tag for a (method, peer, user agent, referer, forwarded)
        key, remembered: most hits come from a few clients. A bounded number of entries, each
        of bounded size."""
        method, peer, agent, referer, forwarded = key
        client, origin = self._client(peer, forwarded)
        tail = hit_line_tail(method, client, _clean_text(agent), _clean_text(referer), origin)
        if sum(len(raw) for raw in key[2:] if raw) <= _REMEMBERED_HEADER_BYTES:
            self._tails.keep(key, tail)
        return tail

    def _client(self, peer: str, forwarded: Optional[bytes]) -> Tuple[str, str]:
        """The client's stored form and its network origin."""
        address = peer
        if forwarded and self._trusted and self._is_trusted(peer):
            # The right-most address that is not one of our proxies is the client.
            for candidate in reversed(forwarded.decode("latin-1").split(",")):
                candidate = candidate.strip()
                if not self._is_trusted(candidate):
                    address = candidate
                    break
        return self._client_forms(address)

    def _is_trusted(self, address: str) -> bool:
        ip = normalise_address(address)
        return ip is not None and any(ip in network for network in self._trusted)


async def _read_body(receive, limit: int) -> Optional[bytes]:
    """The request's body; None as soon as it is longer than ``limit`` (the rest is not read)."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += message.get("body", b"")
        if len(body) > limit:
            return None
        if not message.get("more_body", False):
            return bytes(body)


def _read_at(fd: int, size: int, position: int) -> bytes:
    if hasattr(os, "pread"):
        return os.pread(fd, size, position)
    os.lseek(fd, position, os.SEEK_SET)  # pragma: no cover - Windows only
    return os.read(fd, size)


async def _respond(send, status: int, content_type: bytes, body: bytes, extra=()):
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()),
               (b"cache-control", b"no-store"), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def open_hit_log(settings: ServerSettings) -> HitLog:
    """Claim a writer id: the server id, or one slot of it per worker process."""
    hits_dir = Path(settings.hits_dir)
    if settings.workers == 1:
        return HitLog(hits_dir, settings.server_id)
    for slot in range(1, settings.workers + 1):
        try:
            return HitLog(hits_dir, f"{settings.server_id}.w{slot}")
        except ServerError:
            continue
    raise ServerError(f"all {settings.workers} writer slots of {settings.server_id!r} are taken")


def create_app(settings: ServerSettings, secret: bytes) -> PixelApp:
    settings.validated()
    return PixelApp(settings, secret, open_hit_log(settings))

