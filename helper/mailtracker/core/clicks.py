"""Signed click URLs: a tracked mail's link goes out as a URL of the user's own
pixel server, which redirects to exactly the original target.

A click URL is ``<server><prefix>/c/<tag>/<link>/<sig>?u=<target>``: the tag, the
link's index in the mail, and the target, authenticated by an HMAC under the
secret the desktop and the server share. The server redirects without knowing
the register, and only to a target whose signature verifies, so it can never
be used as an open redirect. Only http and https targets are ever signed or
followed.
"""

import base64
import hashlib
import hmac
from typing import Optional, Tuple
from urllib.parse import quote, unquote_plus, urlsplit

from mailtracker.core.tokens import KeyedHmac, is_token_shaped

CLICK_SEGMENT = "c"
MAX_LINKS = 500
MAX_TARGET_LENGTH = 4096
_SIG_BYTES = 12
_SIG_LENGTH = 20  # 12 bytes in unpadded base32
_LABEL = b"mailtracker-click-v1\x00"
# Characters that stay as they are in a Location header; everything else is percent-encoded.
_HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"<>\\^`{|}')


def is_trackable_target(target: str) -> bool:
    """Whether a link may be signed: an absolute http(s) URL with a host, of bounded length."""
    if not target or len(target) > MAX_TARGET_LENGTH or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target):
        return False
    try:
        parts = urlsplit(target)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def _signature(secret: bytes, tag: str, link: int, target: str, keyed: Optional[KeyedHmac] = None) -> str:
    message = f"{tag}\x00{link}\x00".encode("ascii") + target.encode("utf-8")
    mac = keyed.digest(message) if keyed is not None else hmac.new(secret, _LABEL + message, hashlib.sha256).digest()
    return base64.b32encode(mac[:_SIG_BYTES]).decode("ascii").lower().rstrip("=")


def click_url(base: str, secret: bytes, tag: str, link: int, target: str) -> str:
    """The click URL for one link; ``base`` is the pixel base (server URL and prefix, ending in /)."""
    if not is_trackable_target(target):
        raise ValueError(f"not an http(s) link: {target[:80]!r}")
    return (f"{base}{CLICK_SEGMENT}/{tag}/{link}/{_signature(secret, tag, link, target)}"
            f"?u={quote(target, safe='')}")


class ClickVerifier:
    """Checks a click request for one secret: the server's side, constant time in the MAC."""

    def __init__(self, secret: bytes):
        self._secret = secret
        # Keyed once: each click then costs two copies of a hash state (the server's hot path).
        self._keyed = KeyedHmac(secret, _LABEL)

    def __call__(self, path: str, query: bytes) -> Optional[Tuple[str, int, str]]:
        """(tag, link, target) of a genuine click URL, else None.

        ``path`` is the request path, ``query`` the raw query string: anything but
        exactly one ``u`` parameter, a changed target, index or tag, or a shortened
        signature is refused.
        """
        parts = path.rstrip("/").split("/")
        if len(parts) < 5 or parts[-4] != CLICK_SEGMENT:
            return None
        tag, link_text, sig = parts[-3], parts[-2], parts[-1]
        if not is_token_shaped(tag) or not link_text.isdigit() or len(link_text) > 4 or len(sig) != _SIG_LENGTH:
            return None
        # Exactly one parameter, u: anything else (a second u, a 'next=') is not ours.
        if not query.startswith(b"u=") or b"&" in query or b";" in query:
            return None
        try:
            target = unquote_plus(query[2:].decode("ascii"), errors="strict")
        except (UnicodeDecodeError, ValueError):
            return None
        link = int(link_text)
        if link >= MAX_LINKS or not is_trackable_target(target):
            return None
        if not hmac.compare_digest(sig, _signature(self._secret, tag, link, target, self._keyed)):
            return None
        return tag, link, target


def location_header(target: str) -> bytes:
    """The target as a Location header value: the same URL, with any character that a
    header cannot carry (non-ASCII, spaces) percent-encoded."""
    return quote(target, safe=_HEADER_SAFE + "%").encode("ascii")
