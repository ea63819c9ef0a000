"""The hits log's line: its columns, how the pixel server writes one, and how the
desktop reads one back. The one owner of that format and of the hit id.

A line is Excel-dialect CSV: ``hit_id,time,tag,method,client,user_agent,referer,origin``.
The five fields the fold needs come first and never hold a comma, so the fold
splits them off without a CSV parser; the free text from the request follows, and
last the network the request came from (``core.origins``: a short name, or empty),
judged by the server before the address was truncated or hashed. Lines from servers
that predate the origin column end at the referer.
The method column says what was requested: ``GET`` or ``HEAD`` of the pixel, or
``click:<link>:<GET|HEAD>`` for a click on link number ``<link>`` of the mail
(a desktop that predates clicks sees an unknown method and counts no open).
A hit id is ``<boot>.<seq in hex>``: each server process names itself with a random
boot id and numbers its hits from 1, so ids never repeat across restarts and the
ids a process wrote collapse into one run.
"""

import csv
from typing import NamedTuple

from mailtracker.core.csvcodec import csv_field, restore

HIT_COLUMNS = ("hit_id", "time", "tag", "method", "client", "user_agent", "referer", "origin")
HITS_GLOB = "hits-*.csv"
TIME_LENGTH = len("2026-01-01T00:00:00.000Z")
TAG_LENGTH = 32
# The server writes at most 512 characters of user agent and of referer: a longer
# line was not written by it, and parsing it would only cost time under the fold lock.
MAX_LINE_BYTES = 8 << 10
_HEADER_START = b"hit_id,"


def format_hit_id(boot: str, seq: int) -> str:
    return f"{boot}.{seq:x}"


def click_method(link: int, method: str) -> str:
    """The method column of a click on link number ``link``."""
    return f"click:{link}:{method}"


def parse_method(field: bytes):
    """(HTTP method, link number or None) of a method column."""
    if not field.startswith(b"click:"):
        return field, None
    _, link, method = field.split(b":", 2)
    return method, int(link)


def format_hit_line(hit_id: str, when: str, tag: str, method: str, client: str,
                    user_agent: str, referer: str, origin: str = "") -> bytes:
    """One line as the server appends it. ``client`` is an address or its stored form
    (never a comma, quote or control character: the fold splits it off unparsed);
    ``user_agent`` and ``referer`` must already be cleaned (bounded, neutralised)."""
    return f"{hit_id},{when},{tag}{hit_line_tail(method, client, user_agent, referer, origin)}".encode("utf-8")


def hit_line_tail(method: str, client: str, user_agent: str, referer: str, origin: str = "") -> str:
    """What follows the tag in ``format_hit_line``'s line, newline included: the same for
    every hit with one method, client and headers, so the server can keep it."""
    return f",{method},{client},{csv_field(user_agent)},{csv_field(referer)},{origin}\r\n"


def join_hit_line(boot: str, seq: int, when: str, tag: str, tail: str) -> bytes:
    """``format_hit_line``'s line from ``format_hit_id``'s parts and a ``hit_line_tail``."""
    return f"{boot}.{seq:x},{when},{tag}{tail}".encode("utf-8")


class HitFields(NamedTuple):
    """The fixed fields of a line; ``rest`` is the raw user agent and referer, kept as
    bytes so that the fold can look a user agent's verdict up without decoding it."""

    boot: str
    seq: int
    time: str
    tag: str
    method: bytes
    client: str
    rest: bytes


def split_hit_line(line: bytes) -> HitFields:
    """The fields of one line (without its newline); ValueError if it is not a hit line."""
    if len(line) > MAX_LINE_BYTES:
        raise ValueError(f"a line of {len(line)} bytes: longer than any the server writes")
    parts = line.split(b",", 5)
    if len(parts) != 6:
        raise ValueError("too few fields")
    boot, dot, seq = parts[0].partition(b".")
    stamp = parts[1].decode("ascii")
    tag = parts[2].decode("ascii")
    if not dot or len(stamp) != TIME_LENGTH or stamp[-1] != "Z" or len(tag) != TAG_LENGTH:
        raise ValueError("not a hit line")
    return HitFields(boot.decode("ascii"), int(seq, 16), stamp, tag, parts[3],
                     parts[4].decode("ascii", "replace"), parts[5])


def is_header(line: bytes) -> bool:
    return line.lstrip(b"\xef\xbb\xbf").startswith(_HEADER_START)


def origin_of(rest: bytes, known) -> str:
    """The origin column, when the line has one naming a ``known`` origin, else ''."""
    last = rest[rest.rfind(b",") + 1:].decode("ascii", "replace")
    return last if last in known else ""


def user_agent_of(rest: bytes) -> str:
    """The user agent: the first CSV field of what follows the fixed fields."""
    if not rest.startswith(b'"'):
        text = rest.split(b",", 1)[0].decode("utf-8", "replace")
    elif b'""' not in rest:
        end = rest.find(b'"', 1)
        text = rest[1:end if end > 0 else len(rest)].decode("utf-8", "replace")
    else:
        text = next(csv.reader([rest.decode("utf-8", "replace")]))[0]
    return restore(text)
