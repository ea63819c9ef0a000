"""The server's side of HTTP pull: its hits files, read-only, behind a bearer token.

``GET /hits/`` lists the ``hits-*.csv`` files directly in the hits folder with
their sizes and an ETag (a pull that finds nothing new is answered 304);
``GET /hits/<name>`` sends one, or one ``Range`` of it. The device logs the
person's computers push (``devicelogs.py``) are listed and sent the same way at
``/devices/``: a ``ServedFolder`` says which folder, route and names. The token is derived from
the secret both sides share: ``HMAC-SHA256(secret, "mailtracker-pull-token-v1")``,
unpadded base64url. The desktop's side is ``pull.py``; this module stays free of
HTTP client libraries so the pixel server's workers stay small.
"""

import hashlib
import hmac
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from mailtracker.core.contract import HITS_NAME_RE, HITS_ROUTE

_RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)")


@dataclass
class HitsResponse:
    """What the server answers to a ``/hits/`` request; ``fd`` is streamed from ``start``."""

    status: int
    headers: List[Tuple[bytes, bytes]]
    body: bytes = b""
    fd: Optional[int] = None
    start: int = 0
    length: int = 0


def bearer_matches(authorization: Optional[bytes], token: str) -> bool:
    """A constant-time check of ``Authorization: Bearer <token>``."""
    scheme, _, given = (authorization or b"").partition(b" ")
    return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), token.encode("ascii"))


@dataclass(frozen=True)
class ServedFolder:
    """A folder served read-only: its files named as ``name_ok`` accepts, directly in it."""

    folder: Path
    route: str
    name_ok: Callable[[str], bool]


def hits_folder(hits_dir: Path) -> ServedFolder:
    return ServedFolder(hits_dir, HITS_ROUTE, lambda name: HITS_NAME_RE.fullmatch(name) is not None)


def list_files(served: ServedFolder) -> List[Tuple[str, int]]:
    """(name, size) of each regular file directly in the folder with a name it serves."""
    found = []
    try:
        with os.scandir(served.folder) as entries:
            for entry in entries:
                if served.name_ok(entry.name) and entry.is_file(follow_symlinks=False):
                    found.append((entry.name, entry.stat(follow_symlinks=False).st_size))
    except FileNotFoundError:
        pass
    return sorted(found)


def parse_range(header: Optional[str], size: int) -> Optional[Tuple[int, int]]:
    """The (start, end) byte span one ``Range`` asks for, end exclusive.

    None means "send the whole file": no header, or one we ignore as RFC 9110
    allows (malformed, several ranges). ValueError: nothing of the file is asked.
    """
    match = _RANGE_RE.fullmatch((header or "").strip())
    if not match or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if not first:
        length = int(last)
        if length == 0 or size == 0:
            raise ValueError("empty suffix range")
        return max(0, size - length), size
    start = int(first)
    end = min(size, int(last) + 1) if last else size
    if last and int(last) < start:
        return None
    if start >= size:
        raise ValueError("range starts past the end")
    return start, end


def answer_files_request(served: ServedFolder, token: str, method: str, path: str,
                         headers: Dict[bytes, bytes]) -> HitsResponse:
    """Answer ``GET``/``HEAD`` of the folder's route (the list) or ``<route><name>`` (a file)."""
    if method not in ("GET", "HEAD"):
        return plain_answer(405, b"only GET and HEAD\n", [(b"allow", b"GET, HEAD")])
    refused = refused_token(headers, token)
    if refused is not None:
        return refused
    name = path[len(served.route):]
    if not name:
        return _listing(served, headers.get(b"if-none-match"))
    if not served.name_ok(name):
        return plain_answer(404, b"not found\n")
    return _file(served.folder / name, headers.get(b"range"))


def refused_token(headers: Dict[bytes, bytes], token: str) -> Optional[HitsResponse]:
    """The 401 for a request without the bearer token; None when it has it."""
    if bearer_matches(headers.get(b"authorization"), token):
        return None
    return plain_answer(401, b"a valid bearer token is needed\n",
                  [(b"www-authenticate", b'Bearer realm="mailtracker hits"')])


def plain_answer(status: int, body: bytes, extra=()) -> HitsResponse:
    return HitsResponse(status, [(b"content-type", b"text/plain"),
                                 (b"content-length", str(len(body)).encode()),
                                 (b"cache-control", b"no-store"), *extra], body)


def _listing(served: ServedFolder, if_none_match: Optional[bytes]) -> HitsResponse:
    files = [{"name": name, "size": size} for name, size in list_files(served)]
    body = json.dumps({"files": files}, separators=(",", ":")).encode() + b"\n"
    etag = b'"' + hashlib.sha256(body).hexdigest()[:24].encode() + b'"'
    if if_none_match and etag in [tag.strip() for tag in if_none_match.split(b",")]:
        return HitsResponse(304, [(b"etag", etag), (b"cache-control", b"no-store")])
    return HitsResponse(200, [(b"content-type", b"application/json"),
                              (b"content-length", str(len(body)).encode()),
                              (b"etag", etag), (b"cache-control", b"no-store")], body)


def _file(path: Path, range_header: Optional[bytes]) -> HitsResponse:
    # O_NONBLOCK: opening a FIFO named like a hits file would otherwise wait for a
    # writer, inside the event loop, and stall every request; S_ISREG then refuses it.
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError:  # missing, a symlink (ELOOP), unreadable
        return plain_answer(404, b"not found\n")
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError("not a regular file")
        size = info.st_size
        span = parse_range(range_header.decode("latin-1") if range_header else None, size)
    except ValueError:
        os.close(fd)
        return plain_answer(416, b"range not satisfiable\n", [(b"content-range", f"bytes */{size}".encode())])
    except OSError:
        os.close(fd)
        return plain_answer(404, b"not found\n")
    headers = [(b"content-type", b"text/csv; charset=utf-8"), (b"accept-ranges", b"bytes"),
               (b"cache-control", b"no-store")]
    start, end = span or (0, size)
    if span is not None:
        headers.append((b"content-range", f"bytes {start}-{end - 1}/{size}".encode()))
    headers.append((b"content-length", str(end - start).encode()))
    return HitsResponse(206 if span is not None else 200, headers, fd=fd, start=start, length=end - start)

