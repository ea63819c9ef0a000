"""A web link as a browser reads it: the WHATWG URL rules for http(s), on the desktop
(what is signed) and on the server (where a click is sent).

Python's ``urlsplit`` and a browser disagree on links a mail may carry: a browser
drops tabs and newlines anywhere in a URL, reads ``\\`` as ``/`` in an http(s) URL,
percent-decodes the host and resolves ``..`` in the path, so
``https://good.example\\@evil.example/`` opens good.example while its naive
re-encoding ``https://good.example%5C@evil.example/`` opens evil.example.
``browser_href`` follows the WHATWG parser (the one Node's ``URL`` implements) for
what a mail's link can hold and answers None for what it cannot be sure of: a
link with credentials (``user@``), an IPv6 host, an IPv4 address written in any
form but four decimal numbers. What it answers is plain ASCII that a browser reads
back as the very URL the original was (tests/data/url_targets.json, checked with
Node in the add-on's tests and in tests/test_clicks.py).
"""

import re
from typing import Optional

_SCHEMES = {"http": 80, "https": 443}
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_PERCENT_ENCODED_BYTES = re.compile(rb"%([0-9A-Fa-f]{2})")
# What ends a host (or a host:port) in a special URL.
_AUTHORITY_END = re.compile(r"[/\\?#]")
_FORBIDDEN_IN_DOMAIN = set("\x00\t\n\r #/:<>?@[\\]^|%\x7f") | {chr(c) for c in range(0x20)}
_DECIMAL_IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.?")
_ENDS_IN_NUMBER = re.compile(r"(?:^|\.)(?:\d+|0[xX][0-9A-Fa-f]*)\.?$")
# The WHATWG percent-encode sets (beyond C0 controls and non-ASCII, always encoded).
_PATH_SET = frozenset(' "#<>?`{}')
_QUERY_SET = frozenset(" \"#<>'")
_FRAGMENT_SET = frozenset(' "<>`')
_PORT = re.compile(r"[0-9]*")
_SINGLE_DOT = {".", "%2e"}
_DOUBLE_DOT = {"..", ".%2e", "%2e.", "%2e%2e"}
MAX_HREF_LENGTH = 4096
# What a browser strips from both ends of a URL: C0 controls and space.
_C0_AND_SPACE = "".join(chr(c) for c in range(0x21))
_SURROGATE = re.compile("[\ud800-\udfff]")


def _encode(text: str, extra: frozenset) -> str:
    if text.isascii() and text.isprintable() and extra.isdisjoint(text):
        return text  # nothing to encode: the common case
    out = []
    for char in text:
        if ord(char) < 0x20 or ord(char) > 0x7E or char in extra:
            out.extend(f"%{byte:02X}" for byte in char.encode("utf-8"))
        else:
            out.append(char)
    return "".join(out)


def _percent_decode(text: str) -> Optional[str]:
    """The host's percent-decoding read as UTF-8, as a browser does; None if not UTF-8."""
    data = _PERCENT_ENCODED_BYTES.sub(lambda m: bytes([int(m.group(1), 16)]), text.encode("utf-8"))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _host(text: str) -> Optional[str]:
    """The host as the browser will see it, in ASCII, or None (failure or not sure)."""
    if text.startswith("["):
        return None  # IPv6: not worth the risk in a mail link
    decoded = _percent_decode(text)
    if not decoded or any(char in _FORBIDDEN_IN_DOMAIN for char in decoded):
        return None
    if not decoded.isascii():
        # Non-ASCII (an IDN): the browser maps it (UTS 46) whether written as text or
        # percent-encoded, so it is handed over percent-encoded and mapped there.
        return _encode(decoded, frozenset())
    host = decoded.lower()
    if host.startswith("xn--") or ".xn--" in host:
        try:
            for label in host.rstrip(".").split("."):
                if label.startswith("xn--"):
                    label[4:].encode("ascii").decode("punycode")
        except UnicodeError:
            return None
    if _ENDS_IN_NUMBER.search(host) and not _DECIMAL_IPV4.fullmatch(host):
        return None  # 0x7f.1, 2130706433, 010.0.0.1: an address in disguise
    return host.rstrip(".") if _DECIMAL_IPV4.fullmatch(host) else host


def _path(text: str) -> str:
    segments = []
    pieces = re.split(r"[/\\]", text)
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        lowered = piece.lower()
        if lowered in _DOUBLE_DOT:
            if segments:
                segments.pop()
            if last:
                segments.append("")
        elif lowered in _SINGLE_DOT:
            if last:
                segments.append("")
        else:
            segments.append(_encode(piece, _PATH_SET))
    return "/" + "/".join(segments)


def browser_href(target: str) -> Optional[str]:
    """The href a browser makes of ``target``, if it is an http(s) URL with a host that
    can be handed on exactly; else None."""
    if not isinstance(target, str) or len(target) > MAX_HREF_LENGTH:
        return None
    text = target.strip(_C0_AND_SPACE).translate({9: None, 10: None, 13: None})
    scheme = _SCHEME.match(text)
    if scheme is None or scheme.group(1).lower() not in _SCHEMES:
        return None
    if _SURROGATE.search(text):
        return None  # a lone surrogate: the browser would replace it, we do not guess
    name = scheme.group(1).lower()
    rest = text[scheme.end():].lstrip("/\\")
    end = _AUTHORITY_END.search(rest)
    authority, rest = (rest[:end.start()], rest[end.start():]) if end else (rest, "")
    if "@" in authority:
        return None  # credentials in a link: never what a reader means to follow
    host_text, _, port_text = authority.partition(":")
    host = _host(host_text)
    if host is None or not _PORT.fullmatch(port_text):
        return None
    port = int(port_text) if port_text else None
    if port is not None and port > 65535:
        return None
    fragment = query = None
    if "#" in rest:
        rest, fragment = rest.split("#", 1)
    if "?" in rest:
        rest, query = rest.split("?", 1)
    href = f"{name}://{host}"
    if port is not None and port != _SCHEMES[name]:
        href += f":{port}"
    href += _path(rest[1:] if rest[:1] in ("/", "\\") else rest)
    if query is not None:
        href += "?" + _encode(query, _QUERY_SET)
    if fragment is not None:
        href += "#" + _encode(fragment, _FRAGMENT_SET)
    return href if len(href) <= MAX_HREF_LENGTH else None
