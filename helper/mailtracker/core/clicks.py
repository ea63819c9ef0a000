"""Signed click URLs: a tracked mail's link goes out as a URL of the user's own
pixel server, which redirects to where the original link leads.

A click URL is ``<server><prefix>/c/<tag>/<link>/<sig>?u=<target>``: the tag, the
link's index in the mail, and the target, authenticated by an HMAC under the
secret the desktop and the server share. The server redirects without knowing
the register, and only to a target whose signature verifies, so it can never
be used as an open redirect. Only http and https targets are ever signed or
followed, and both sides take a target as a browser reads it (core/weburl.py): what
is signed is the href the reader's browser would have opened, and the redirect
leads to that very URL, whatever backslashes, tabs or encodings the link held.
"""

import base64
import hashlib
import hmac
from typing import Optional, Tuple
from urllib.parse import quote, unquote_plus

from mailtracker.core.memory import Memory
from mailtracker.core.tokens import KeyedHmac, base32_value, is_token_shaped
from mailtracker.core.untrusted import is_number
from mailtracker.core.weburl import browser_href

CLICK_SEGMENT = "c"
MAX_LINKS = 500
_SIG_BYTES = 12
_SIG_LENGTH = 20  # 12 bytes in unpadded base32
_SIG_PADDING_BITS = _SIG_LENGTH * 5 - _SIG_BYTES * 8
_SIG_VALUE_BYTES = (_SIG_LENGTH * 5 + 7) // 8
_LABEL = b"mailtracker-click-v1\x00"
MAX_REMEMBERED_URL = 2048


def is_trackable_target(target: str) -> bool:
    """Whether a link may be signed: an http(s) URL with a host that a browser reads as we do."""
    return browser_href(target) is not None


def _message(tag: str, link: int, target: str) -> bytes:
    return f"{tag}\x00{link}\x00".encode("ascii") + target.encode("utf-8")


def _signature(secret: bytes, tag: str, link: int, target: str) -> str:
    mac = hmac.new(secret, _LABEL + _message(tag, link, target), hashlib.sha256).digest()
    return base64.b32encode(mac[:_SIG_BYTES]).decode("ascii").lower().rstrip("=")


def click_url(base: str, secret: bytes, tag: str, link: int, target: str) -> str:
    """The click URL for one link; ``base`` is the pixel base (server URL and prefix, ending in /).
    What is signed is the href a browser makes of ``target``."""
    href = browser_href(target)
    if href is None:
        raise ValueError(f"not an http(s) link: {target[:80]!r}")
    return (f"{base}{CLICK_SEGMENT}/{tag}/{link}/{_signature(secret, tag, link, href)}"
            f"?u={quote(href, safe='')}")


class ClickVerifier:
    """Checks a click request for one secret: the server's side, constant time in the MAC.

    With ``remember``, up to that many click URLs that verified (of at most
    ``MAX_REMEMBERED_URL`` characters) are remembered with their answer and not checked
    again; the memory is emptied when full. Only URLs whose signature checked are ever
    remembered, keyed on the exact path and query: any other URL is checked in full.
    """

    def __init__(self, secret: bytes, remember: int = 0):
        # Keyed once: each click then costs two copies of a hash state (the server's hot path).
        self._keyed = KeyedHmac(secret, _LABEL)
        self._verified = Memory(remember)

    def __call__(self, path: str, query: bytes) -> Optional[Tuple[str, int, str]]:
        """(tag, link, href) of a genuine click URL, else None: ``href`` is where the
        signed target leads in a browser, plain ASCII for the Location header.

        ``path`` is the request path, ``query`` the raw query string: anything but
        exactly one ``u`` parameter, a changed target, index or tag, or a shortened
        signature is refused. A target signed as written (before targets were signed
        as a browser reads them) still leads where the mail's link led.
        """
        click = self._verified.get((path, query))
        if click is None:
            click = self._check(path, query)
            if click is not None and len(path) + len(query) <= MAX_REMEMBERED_URL:
                self._verified.keep((path, query), click)
        return click

    def _check(self, path: str, query: bytes) -> Optional[Tuple[str, int, str]]:
        parts = path.rstrip("/").split("/")
        if len(parts) < 5 or parts[-4] != CLICK_SEGMENT:
            return None
        tag, link_text, sig = parts[-3], parts[-2], parts[-1]
        if not is_token_shaped(tag) or not is_number(link_text) or len(link_text) > 4 or len(sig) != _SIG_LENGTH:
            return None
        # Exactly one parameter, u: anything else (a second u, a 'next=') is not ours.
        if not query.startswith(b"u=") or b"&" in query or b";" in query:
            return None
        try:
            target = unquote_plus(query[2:].decode("ascii"), errors="strict")
        except (UnicodeDecodeError, ValueError):
            return None
        link = int(link_text)
        if link >= MAX_LINKS:
            return None
        # The signature first: a forged URL costs no parse of its target.
        if not self._signed(sig, tag, link, target):
            return None
        href = browser_href(target)
        return None if href is None else (tag, link, href)

    def _signed(self, sig: str, tag: str, link: int, target: str) -> bool:
        """Whether ``sig`` is ``_signature``'s text for this click, compared as numbers: the
        20 base32 characters write the MAC's 96 bits and 4 zero bits, one text per value."""
        value = base32_value(sig)
        if value is None:
            return False
        mac = self._keyed.digest(_message(tag, link, target))
        expected = int.from_bytes(mac[:_SIG_BYTES], "big") << _SIG_PADDING_BITS
        return hmac.compare_digest(value.to_bytes(_SIG_VALUE_BYTES, "big"),
                                   expected.to_bytes(_SIG_VALUE_BYTES, "big"))
