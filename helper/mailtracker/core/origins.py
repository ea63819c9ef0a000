"""Where a hit comes from: the network origin of an IP address.

One responsibility: map an address to a short, stable origin name ("microsoft-eop",
"google", "apple-relay", "proofpoint", "" for a residential or unknown network) using
the address ranges that providers publish themselves, and own the dated snapshot file
those ranges ship in (``origins-snapshot.csv``) together with the parsers for each
provider's native format, which ``mailtracker ranges update`` feeds.

Pure: nothing is read, fetched or started at import. Each pixel server worker loads
one ``OriginTable`` (the lookup alone, as arrays of numbers, read from the table file
made from the snapshot) and calls ``lookup`` per new client, before it truncates or
hashes the address; the desktop builds an ``Origins`` (the rows too) to label older
lines. The dated snapshot and its table ship in the package (``core/data/``), so
origins work offline from the first run; ``mailtracker ranges update`` writes a
fresher snapshot and its table beside it.
"""

import bisect
import csv
import gzip
import hashlib
import heapq
import io
import ipaddress
import json
import re
import socket
import sys
from array import array
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from mailtracker.core.untrusted import is_number

# Origin name -> (priority, what a person reads). Where ranges nest, the higher
# priority wins: Apple's relays sit inside Akamai's, Cloudflare's and Fastly's
# networks, Exchange Online Protection inside Microsoft's AS8075, Google Cloud
# customers inside Google's own published block. Names are stored in hits lines,
# so they never change; a new origin gets a new name.
ORIGINS: Dict[str, Tuple[int, str]] = {
    "apple-relay": (100, "Apple relay (iCloud Private Relay, Mail Privacy Protection)"),
    "microsoft-eop": (90, "Microsoft 365 (Exchange Online Protection)"),
    "microsoft-365": (80, "Microsoft 365 (Exchange Online, Outlook on the web, Teams)"),
    "google-cloud": (75, "Google Cloud (a customer's server)"),
    "google": (70, "Google"),
    "mimecast": (60, "Mimecast"),
    "proofpoint": (60, "Proofpoint"),
    "barracuda": (60, "Barracuda"),
    "cisco": (60, "Cisco Secure Email (IronPort)"),
    "trendmicro": (60, "Trend Micro"),
    "forcepoint": (60, "Forcepoint"),
    "symantec": (60, "Symantec (Broadcom) Email Security"),
    "yahoo": (50, "Yahoo"),
    "microsoft": (40, "Microsoft (Azure and other Microsoft networks)"),
    "apple": (40, "Apple (Apple's own network, not a relay)"),
    "aws": (30, "Amazon Web Services (a customer's server)"),
}
UNKNOWN = ""
SHIPPED_SNAPSHOT = Path(__file__).resolve().parent / "data" / "origins-snapshot.csv.gz"
# The lookup table made from it, so that a pixel server worker reads a few hundred kilobytes
# of numbers instead of building them from twenty thousand rows (which costs it 10 MiB).
SHIPPED_TABLE = SHIPPED_SNAPSHOT.with_name("origins-table.bin")
_TABLE_MAGIC = b"mailtracker origins table 1\n"
_U32 = next(code for code in "ILH" if array(code).itemsize == 4)
_CACHE_SIZE = 1 << 16


def describe(origin: str) -> str:
    """The origin in words, for `show`, the add-on and the report."""
    return ORIGINS[origin][1] if origin in ORIGINS else "a residential or unknown network"


# --- addresses -----------------------------------------------------------------------------

def address_key(address: str) -> Optional[Tuple[int, int]]:
    """(IP version, integer) of a textual address, or None when it is not one.

    inet_pton is strict (no '1.2.3' or octal forms) and ten times faster than
    ipaddress; an IPv4-mapped IPv6 address is looked up as the IPv4 it carries,
    since that is where the packet came from.
    """
    text = address.strip()
    if text.startswith("["):
        text = text[1:text.find("]")] if "]" in text else text[1:]
    if "\x00" in text:
        return None  # inet_pton raises ValueError, not OSError, on a NUL: no address holds one
    try:
        return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
    except (OSError, ValueError):  # ValueError: a NUL in the text
        pass
    text = text.split("%", 1)[0]  # a zone index names our interface, not theirs
    try:
        value = int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
    except (OSError, ValueError):  # ValueError: a NUL in the text
        return None
    if value >> 32 == 0xFFFF:
        return 4, value & 0xFFFFFFFF
    return 6, value


def parse_span(text: str) -> Tuple[int, int, int]:
    """(version, first, last) of a CIDR ('40.92.0.0/15'), a range ('a-b') or an address.

    inet_pton and bit arithmetic rather than ipaddress: a snapshot has some 20,000
    rows, and this keeps reading it to a few tens of milliseconds."""
    text = text.strip()
    if "-" in text:
        low, high = (_address_value(part.strip()) for part in text.split("-", 1))
        if low[0] != high[0] or high[1] < low[1]:
            raise ValueError(f"{text!r} is not an address range")
        return low[0], low[1], high[1]
    address, slash, prefix = text.partition("/")
    version, value = _address_value(address)
    bits = 32 if version == 4 else 128
    length = int(prefix) if slash else bits
    if not 0 <= length <= bits or (slash and not prefix.isdigit()):
        raise ValueError(f"{text!r} is not an IP network")
    host = (1 << (bits - length)) - 1
    return version, value & ~host, (value & ~host) | host


def _address_value(text: str) -> Tuple[int, int]:
    for version, family in ((4, socket.AF_INET), (6, socket.AF_INET6)):
        try:
            return version, int.from_bytes(socket.inet_pton(family, text), "big")
        except (OSError, ValueError):
            continue
    raise ValueError(f"{text!r} is not an IP address")


def format_span(version: int, first: int, last: int) -> str:
    """The shortest text for a span: a CIDR where it is one, else 'first-last'."""
    make = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    nets = list(ipaddress.summarize_address_range(make(first), make(last)))
    return str(nets[0]) if len(nets) == 1 else f"{make(first)}-{make(last)}"


# --- the lookup ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Source:
    """One published list in the snapshot: where it came from and how old it is."""

    id: str
    url: str
    date: str        # the publisher's own date for the data (ISO 8601 day)
    licence: str
    via: str = ""    # where this snapshot's copy was taken from, if not the URL itself


class OriginTable:
    """The lookup alone: disjoint, sorted spans per IP version, each with the origin that
    wins there, kept as arrays of numbers rather than objects. What the pixel server holds
    in each worker (``read`` it from a snapshot's text, nothing more is kept), and what
    ``Origins`` looks up with."""

    def __init__(self, spans: Dict[int, Sequence[Tuple[int, int, int, str]]], cache: int = _CACHE_SIZE):
        """``spans``: per IP version, (first, last, priority, origin), overlapping as published;
        ``cache``: addresses whose answer is remembered (0: none, for a caller that caches)."""
        self._names = tuple(ORIGINS)
        code = {name: i for i, name in enumerate(self._names)}
        self._starts: Dict[int, Sequence[int]] = {}
        self._ends: Dict[int, Sequence[int]] = {}
        self._codes: Dict[int, array] = {}
        for version in (4, 6):
            flat = _flatten(spans.get(version, ()))
            # An IPv4 bound fits 32 bits; IPv6 ones stay ints (a few thousand of them).
            numbers = (lambda values: array(_U32, values)) if version == 4 else list
            self._starts[version] = numbers(first for first, _, _ in flat)
            self._ends[version] = numbers(last for _, last, _ in flat)
            self._codes[version] = array("B", (code[name] for _, _, name in flat))
        # Per instance, not per class: a cache on the method would keep old
        # snapshots alive after `ranges update` swaps in a new one.
        self.lookup = lru_cache(maxsize=cache)(self._lookup) if cache else self._lookup

    @classmethod
    def of_rows(cls, rows: Iterable[Tuple[str, int, int, int, str]], cache: int = _CACHE_SIZE) -> "OriginTable":
        """The table of a snapshot's rows (source, version, first, last, origin)."""
        spans: Dict[int, List[Tuple[int, int, int, str]]] = {4: [], 6: []}
        for _, version, first, last, origin in rows:
            spans[version].append((first, last, ORIGINS[origin][0], origin))
        return cls(spans, cache)

    @classmethod
    def read(cls, text: str, cache: int = _CACHE_SIZE) -> "OriginTable":
        """The table of a snapshot's text, read row by row: no row is kept."""
        return cls.of_rows(_snapshot_rows(text, _snapshot_sources(text)), cache)

    @classmethod
    def load(cls, path: Optional[Path] = None, cache: int = _CACHE_SIZE) -> "OriginTable":
        """The table of the snapshot ``ranges update`` wrote at ``path``, else of the shipped
        one: from the table file beside it when that was made from this very snapshot (read
        as it is, with nothing to build), else from the snapshot's rows."""
        if path is not None and path.exists():
            text, table_path = path.read_bytes(), table_path_of(path)
        else:
            text, table_path = gzip.decompress(SHIPPED_SNAPSHOT.read_bytes()), SHIPPED_TABLE
        try:
            table = cls.from_bytes(table_path.read_bytes(), hashlib.sha256(text).digest(), cache)
        except OSError:
            table = None
        return table if table is not None else cls.read(text.decode("utf-8"), cache)

    def to_bytes(self, snapshot_digest: bytes) -> bytes:
        """The table as a file (``from_bytes``): the digest of the snapshot it was made from,
        the origin names, then per IP version its bounds (big-endian) and origin codes."""
        parts = [_TABLE_MAGIC, snapshot_digest, ",".join(self._names).encode("ascii") + b"\n"]
        for version, width in ((4, 4), (6, 16)):
            parts.append(len(self._starts[version]).to_bytes(4, "big"))
            for bounds in (self._starts[version], self._ends[version]):
                parts.append(b"".join(value.to_bytes(width, "big") for value in bounds))
            parts.append(self._codes[version].tobytes())
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes, snapshot_digest: bytes, cache: int = _CACHE_SIZE) -> Optional["OriginTable"]:
        """The table ``to_bytes`` wrote, or None when it was made from another snapshot or is damaged."""
        head = len(_TABLE_MAGIC) + len(snapshot_digest)
        if data[:len(_TABLE_MAGIC)] != _TABLE_MAGIC or data[len(_TABLE_MAGIC):head] != snapshot_digest:
            return None
        table = cls({}, cache)
        try:
            end = data.index(b"\n", head)
            table._names = tuple(data[head:end].decode("ascii").split(","))
            pos = end + 1
            for version, width in ((4, 4), (6, 16)):
                count = int.from_bytes(data[pos:pos + 4], "big")
                pos += 4
                bounds = []
                for _ in range(2):
                    chunk = data[pos:pos + count * width]
                    if len(chunk) != count * width:
                        return None
                    if version == 4:
                        values = array(_U32)
                        values.frombytes(chunk)
                        if sys.byteorder == "little":
                            values.byteswap()
                    else:
                        values = [int.from_bytes(chunk[i:i + width], "big") for i in range(0, len(chunk), width)]
                    bounds.append(values)
                    pos += count * width
                codes = array("B", data[pos:pos + count])
                pos += count
                if len(codes) != count or (count and max(codes) >= len(table._names)):
                    return None
                table._starts[version], table._ends[version] = bounds
                table._codes[version] = codes
        except (ValueError, UnicodeDecodeError):
            return None
        return table if pos == len(data) else None

    def _lookup(self, address: str) -> str:
        """The origin of one full IPv4/IPv6 address ('' when no published range holds it)."""
        key = address_key(address)
        if key is None:
            return UNKNOWN
        version, value = key
        i = bisect.bisect_right(self._starts[version], value) - 1
        if i >= 0 and self._ends[version][i] >= value:
            return self._names[self._codes[version][i]]
        return UNKNOWN

    def __len__(self) -> int:
        return sum(len(starts) for starts in self._starts.values())


@dataclass
class Origins:
    """A snapshot: its sources, its rows as published, and the lookup they make."""

    sources: List[Source] = field(default_factory=list)
    rows: List[Tuple[str, int, int, int, str]] = field(default_factory=list)  # source, v, first, last, origin

    def __post_init__(self):
        self.table = OriginTable.of_rows(self.rows)
        self.lookup = self.table.lookup

    @classmethod
    def shipped(cls) -> "Origins":
        """The snapshot that ships in the package."""
        return parse_snapshot(_shipped_text())

    @classmethod
    def load(cls, path: Optional[Path] = None) -> "Origins":
        """A snapshot ``ranges update`` wrote at ``path``, else the shipped one."""
        if path is not None and path.exists():
            return cls.from_snapshot(path)
        return cls.shipped()

    @classmethod
    def from_snapshot(cls, source: Union[str, Path]) -> "Origins":
        """Read ``origins-snapshot.csv`` from a path or from its text."""
        if isinstance(source, Path) or ("\n" not in source and source.endswith(".csv")):
            source = Path(source).read_text(encoding="utf-8")
        return parse_snapshot(source)

    def lookup(self, address: str) -> str:  # replaced per instance by the table's
        return self.table.lookup(address)

    def __len__(self) -> int:
        return len(self.table)

    def fingerprint(self) -> str:
        """Names this snapshot's data: a changed source relabels the history."""
        return ",".join(f"{s.id}@{s.date}" for s in sorted(self.sources, key=lambda s: s.id)) + f"/{len(self)}"

    def replace_source(self, source: Source, spans: Iterable[Tuple[int, int, int, str]]) -> "Origins":
        """A new Origins with one source's rows replaced (what `ranges update` does)."""
        kept = [row for row in self.rows if row[0] != source.id]
        fresh = [(source.id, v, first, last, origin) for v, first, last, origin in spans]
        return Origins([s for s in self.sources if s.id != source.id] + [source], kept + fresh)


def _shipped_text() -> str:
    return gzip.decompress(SHIPPED_SNAPSHOT.read_bytes()).decode("utf-8")


def table_path_of(snapshot: Path) -> Path:
    """Where the lookup table made from a snapshot file is kept: beside it."""
    return snapshot.with_name(snapshot.name + ".table")


def table_bytes(snapshot_text: str) -> bytes:
    """The table file for a snapshot's text (``OriginTable.load`` reads it)."""
    data = snapshot_text.encode("utf-8")
    return OriginTable.read(snapshot_text).to_bytes(hashlib.sha256(data).digest())


def write_shipped_table() -> None:
    """Make the package's table from the package's snapshot (after the snapshot changes)."""
    SHIPPED_TABLE.write_bytes(table_bytes(_shipped_text()))


def _flatten(spans: Sequence[Tuple[int, int, int, str]]) -> List[Tuple[int, int, str]]:
    """Overlapping (first, last, priority, origin) spans -> disjoint (first, last, origin),
    the highest priority winning, neighbours with the same origin merged."""
    spans = sorted(spans)
    bounds = sorted({first for first, _, _, _ in spans} | {last + 1 for _, last, _, _ in spans})
    active: list = []  # heap of (-priority, last, origin); expired entries leave lazily
    out: List[Tuple[int, int, str]] = []
    i = 0
    for low, next_low in zip(bounds, bounds[1:]):
        while i < len(spans) and spans[i][0] == low:
            first, last, priority, origin = spans[i]
            heapq.heappush(active, (-priority, last, origin))
            i += 1
        while active and active[0][1] < low:
            heapq.heappop(active)
        if not active:
            continue
        origin = active[0][2]
        if out and out[-1][2] == origin and out[-1][1] + 1 == low:
            out[-1] = (out[-1][0], next_low - 1, origin)
        else:
            out.append((low, next_low - 1, origin))
    return out


# --- the snapshot file ---------------------------------------------------------------------

SNAPSHOT_COLUMNS = ("network", "origin", "source")
_SOURCE_PREFIX = "# source: "


def format_snapshot(origins: Origins, built: str) -> str:
    """The snapshot text: a header naming every source and its date, then one row per span."""
    lines = [
        "# mailtracker network origins snapshot: address ranges that providers publish,",
        "# one row per published span (overlaps resolved at load time by origin priority).",
        f"# built: {built}",
    ]
    for s in origins.sources:
        lines.append(_SOURCE_PREFIX + json.dumps(
            {"id": s.id, "url": s.url, "date": s.date, "licence": s.licence, "via": s.via},
            ensure_ascii=True, separators=(", ", ": ")))
    out = io.StringIO()
    out.write("\n".join(lines) + "\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(SNAPSHOT_COLUMNS)
    for source_id, version, first, last, origin in sorted(
            origins.rows, key=lambda row: (row[0], row[1], row[2], row[3])):
        writer.writerow((format_span(version, first, last), origin, source_id))
    return out.getvalue()


def parse_snapshot(text: str) -> Origins:
    """The inverse of format_snapshot; a row naming an unknown origin is refused with its line."""
    sources = _snapshot_sources(text)
    return Origins(sources, list(_snapshot_rows(text, sources)))


_SOURCE_LINE = re.compile("^" + re.escape(_SOURCE_PREFIX) + "(.*)$", re.M)


def _snapshot_sources(text: str) -> List[Source]:
    sources = []
    for match in _SOURCE_LINE.finditer(text):
        fields = json.loads(match.group(1))
        sources.append(Source(fields["id"], fields["url"], fields["date"], fields["licence"], fields.get("via", "")))
    return sources


def _snapshot_rows(text: str, sources: Sequence[Source]) -> Iterable[Tuple[str, int, int, int, str]]:
    """(source, version, first, last, origin) for each row of a snapshot's text, one at a time."""
    known = {s.id for s in sources}
    number = [0]

    def data_lines():
        for number[0], line in enumerate(io.StringIO(text.lstrip("\ufeff")), start=1):
            if line.strip() and not line.startswith("#"):
                yield line

    for row in csv.reader(data_lines()):
        if tuple(row) == SNAPSHOT_COLUMNS:
            continue
        try:
            if len(row) != 3 or row[1] not in ORIGINS or row[2] not in known:
                raise ValueError
            version, first, last = parse_span(row[0])
        except ValueError:
            raise ValueError(f"snapshot line {number[0]}: {','.join(row)!r} is not "
                             "network,origin,source with a known origin and source") from None
        yield row[2], version, first, last, row[1]


# --- the providers' native formats (for `ranges update`) -----------------------------------

def _cidr_spans(networks: Iterable[str], origin: str) -> List[Tuple[int, int, int, str]]:
    return [(*parse_span(text), origin) for text in networks]


def parse_google_ranges(text: str, origin: str) -> Tuple[str, List[Tuple[int, int, int, str]]]:
    """goog.json / cloud.json (https://www.gstatic.com/ipranges/): (creation day, spans)."""
    doc = json.loads(text)
    networks = [p.get("ipv4Prefix") or p.get("ipv6Prefix") for p in doc["prefixes"]]
    return doc.get("creationTime", "")[:10], _cidr_spans(filter(None, networks), origin)


def parse_m365_endpoints(text: str) -> List[Tuple[int, int, int, str]]:
    """The Microsoft 365 endpoints web service (endpoints.office.com/endpoints/worldwide).

    Exchange Online Protection is the endpoint set whose URLs are
    *.protection.outlook.com (mail in, and Defender's scanning); every other
    published range is the rest of Microsoft 365. Judged by URL, not by ID,
    since the service documents the URLs and not the numbering.
    """
    eop, rest = [], []
    for endpoint in json.loads(text):
        ips = endpoint.get("ips") or []
        if any(url.endswith("protection.outlook.com") for url in endpoint.get("urls") or []):
            eop.extend(ips)
        else:
            rest.extend(ips)
    return _cidr_spans(eop, "microsoft-eop") + _cidr_spans(rest, "microsoft-365")


def parse_apple_egress(text: str) -> List[Tuple[int, int, int, str]]:
    """Apple's egress-ip-ranges.csv (mask-api.icloud.com): the first column is a CIDR.

    The file has about 290,000 rows (one per relay and city); merged, about
    14,000 spans remain, which is what the snapshot keeps.
    """
    networks = {4: [], 6: []}
    for number, line in enumerate(text.lstrip("\ufeff").splitlines(), start=1):
        first = line.split(",", 1)[0].strip()
        if not first or first.startswith("#"):
            continue
        try:
            net = ipaddress.ip_network(first, strict=False)
        except ValueError:
            raise ValueError(f"line {number}: {first!r} is not an IP network") from None
        networks[net.version].append(net)
    return [(net.version, int(net.network_address), int(net.broadcast_address), "apple-relay")
            for nets in networks.values() for net in ipaddress.collapse_addresses(nets)]


def parse_asn_ranges(text: str, asn_origins: Dict[int, str]) -> List[Tuple[int, int, int, str]]:
    """An IP-to-ASN CSV of first,last,asn,organisation rows (DB-IP's free ip-to-asn-lite,
    and the ip-location-db builds of it): the spans of the ASNs asked for."""
    spans = []
    for row in csv.reader(io.StringIO(text)):
        if len(row) < 3 or not is_number(row[2]):
            continue
        origin = asn_origins.get(int(row[2]))
        if origin:
            spans.append((*parse_span(f"{row[0]}-{row[1]}"), origin))
    return _merge_adjacent(spans)


def _merge_adjacent(spans: List[Tuple[int, int, int, str]]) -> List[Tuple[int, int, int, str]]:
    merged: List[Tuple[int, int, int, str]] = []
    for span in sorted(spans):
        if merged and merged[-1][0] == span[0] and merged[-1][3] == span[3] and merged[-1][2] + 1 >= span[1]:
            merged[-1] = (span[0], merged[-1][1], max(merged[-1][2], span[2]), span[3])
        else:
            merged.append(span)
    return merged


# The ASNs whose operators publish no machine-readable list of their own; their
# spans come from an IP-to-ASN dataset. Chosen by hand from the organisation names
# (Google Fiber, Yahoo Japan and "Apple Broadband" are other companies).
ASN_ORIGINS: Dict[int, str] = {
    **dict.fromkeys((8075, 8068, 8069, 8070, 8071, 3598, 35106, 12076, 17144, 46182, 45139,
                     30520, 63314, 200517, 5761, 54396, 58862), "microsoft"),
    **dict.fromkeys((15169, 396982, 36040, 43515, 36384, 394089, 395973, 36492, 19527, 36411,
                     41264, 45566, 36383, 16550, 139190, 396178, 394507, 33715, 394639, 214611,
                     214609, 139070, 36385, 36987), "google"),
    **dict.fromkeys((714, 6185), "apple"),
    **dict.fromkeys((10310, 36647, 26101, 10229, 34010, 36646, 56173, 23879, 7280, 18293, 23926,
                     10880, 14778, 38072, 15635, 10230, 14780, 14779, 36088, 14777, 203220, 43428,
                     203219, 38032, 36229, 14776, 5779, 393245, 203070, 24376, 23880, 39995,
                     36752, 42173, 14196, 16515, 6992), "yahoo"),
    **dict.fromkeys((52129, 26211, 22843, 13916), "proofpoint"),
    **dict.fromkeys((30031, 42427, 39588, 136792, 60492, 37235, 397726, 208638, 33538), "mimecast"),
    15324: "barracuda",
    **dict.fromkeys((16417, 30238, 30215, 40427), "cisco"),
    **dict.fromkeys((16880, 132229), "trendmicro"),
    **dict.fromkeys((44444, 13448, 42465, 43251, 7598), "forcepoint"),
    7583: "symantec",
    **dict.fromkeys((16509, 14618, 8987), "aws"),
}


# What `ranges update` fetches. M365's service wants a client request id (any
# GUID, fixed per installation is fine) and says when it changed via /version.
UPDATE_URLS = {
    "apple-egress": "https://mask-api.icloud.com/egress-ip-ranges.csv",
    "google-goog": "https://www.gstatic.com/ipranges/goog.json",
    "google-cloud": "https://www.gstatic.com/ipranges/cloud.json",
    "m365": "https://endpoints.office.com/endpoints/worldwide?clientrequestid={client_id}",
    "dbip-asn": "https://download.db-ip.com/free/dbip-asn-lite-{month}.csv.gz",
}


@dataclass
class Fetched:
    """What one conditional GET brought: nothing new (304), or a body and its validators."""

    changed: bool
    text: str = ""
    etag: str = ""
    last_modified: str = ""


def fetch_conditional(session, url: str, etag: str = "", last_modified: str = "",
                      timeout: float = 30.0) -> Fetched:
    """GET with If-None-Match / If-Modified-Since through the helper's one requests.Session.

    The session is passed in, so this module never imports requests and tests use a fake.
    """
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    response = session.get(url, headers=headers, timeout=timeout)
    if response.status_code == 304:
        return Fetched(False, etag=etag, last_modified=last_modified)
    response.raise_for_status()
    content = response.content
    if url.endswith(".gz"):
        content = gzip.decompress(content)
    return Fetched(True, content.decode("utf-8-sig"), response.headers.get("ETag", ""),
                   response.headers.get("Last-Modified", ""))


# --- updating a snapshot from the providers' own lists -------------------------------------

@dataclass
class SourceUpdate:
    """What ``update_origins`` did for one source."""

    id: str
    url: str
    outcome: str      # "updated", "unchanged" or "failed"
    detail: str = ""


def _source_spans(source_id: str, text: str) -> Tuple[str, List[Tuple[int, int, int, str]]]:
    """(publisher's date or '', spans) of one fetched list, by the source it is."""
    if source_id in ("google-goog", "google-cloud"):
        return parse_google_ranges(text, "google" if source_id == "google-goog" else "google-cloud")
    if source_id == "m365":
        return "", parse_m365_endpoints(text)
    if source_id == "apple-egress":
        return "", parse_apple_egress(text)
    if source_id == "asn":
        return "", parse_asn_ranges(text, ASN_ORIGINS)
    raise ValueError(f"no parser for source {source_id!r}")


UPDATABLE = {
    "apple-egress": ("Apple", UPDATE_URLS["apple-egress"]),
    "google-goog": ("Google", UPDATE_URLS["google-goog"]),
    "google-cloud": ("Google", UPDATE_URLS["google-cloud"]),
    "m365": ("Microsoft", UPDATE_URLS["m365"]),
    "asn": ("DB-IP (CC BY 4.0)", UPDATE_URLS["dbip-asn"]),
}


def update_origins(current: Origins, session, validators: Dict[str, dict], today: str,
                   client_id: str, mirror: str = "") -> Tuple[Origins, List[SourceUpdate]]:
    """Fetch each provider's list (conditionally: an unchanged list is not downloaded) and
    replace that source's rows; a list that fails keeps its old rows. ``validators`` (the
    ETag and Last-Modified per source) is updated in place. ``mirror`` fetches every list
    by its file name from another base URL (an offline copy)."""
    reports = []
    for source_id, (publisher, template) in UPDATABLE.items():
        url = template.format(client_id=client_id, month=today[:7])
        if mirror:
            url = mirror.rstrip("/") + "/" + url.split("?", 1)[0].rsplit("/", 1)[1]
        known = validators.get(source_id, {})
        try:
            fetched = fetch_conditional(session, url, known.get("etag", ""), known.get("last_modified", ""))
            if not fetched.changed:
                reports.append(SourceUpdate(source_id, url, "unchanged"))
                continue
            published, spans = _source_spans(source_id, fetched.text)
            if not spans:
                raise ValueError("the list holds no address ranges")
        except Exception as exc:  # one provider's outage or format change costs only its list
            reports.append(SourceUpdate(source_id, url, "failed", str(exc)[:200]))
            continue
        old = next((s for s in current.sources if s.id == source_id), None)
        source = Source(source_id, url.split("?", 1)[0], published or today,
                        old.licence if old else f"published by {publisher}", "")
        current = current.replace_source(source, spans)
        validators[source_id] = {"etag": fetched.etag, "last_modified": fetched.last_modified}
        reports.append(SourceUpdate(source_id, url, "updated", f"{len(spans)} ranges"))
    return current, reports
