"""Telling a person's open from a machine's: every hit gets a label and a reason.

Labels:
- ``open``: a person's mail client displayed the email.
- ``proxy``: an image proxy fetched it while a person opened the email (Gmail,
  Yahoo): an open, with the reader's device and place unknown.
- ``prefetch``: no person: Apple Mail Privacy Protection, security scanners,
  HEAD requests, fetches within seconds of the send.
- ``self``: the sender's own Thunderbird.
- ``click``: a person followed one of the mail's links (a click is also proof of an
  open). Gateways that follow every link on delivery, HEAD requests and scanner
  agents are ``prefetch``, as for the pixel.

This module owns all of "what counts": the per-hit rules (``decide``), the
context a tag's send and display moments give them, and the repeat rule (the
same client again within a minute is one open). The fold hands every new hit
to one ``Judge`` and only adds up what it says.
"""

import bisect
import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from mailtracker.core.hitline import HitFields, origin_of, parse_method, user_agent_of
from mailtracker.core.origins import ORIGINS, Origins
from mailtracker.core.origins import describe as describe_origin
from mailtracker.core.timestamps import parse_timestamp, utc_timestamp

PERSON_LABELS = ("open", "proxy")

# The user agent Apple's Mail Privacy Protection relays send, and nothing else sends.
APPLE_PRIVACY_AGENT = "Mozilla/5.0"
PROXY_AGENTS = (
    ("GoogleImageProxy", "Gmail's image proxy"),
    ("YahooMailProxy", "Yahoo Mail's image proxy"),
)
# Gateways that open every email on its way to the inbox, and generic HTTP tools; beyond
# these, every agent of the maintained list of bots, crawlers and scanners (the
# crawler-user-agents package, ``known_machine``) is a machine's.
SCANNER_AGENTS = (
    "barracuda", "mimecast", "proofpoint", "ironport", "ciscosecureemail", "trend micro",
    "tmes", "forcepoint", "fortimail", "sophos", "symantec", "zscaler", "safelinks",
    "bot", "crawler", "spider", "python-requests", "python-urllib", "go-http-client",
    "java/", "okhttp", "wget", "libwww", "headlesschrome", "phantomjs",
)
# Networks of mail providers and gateways whose fetches with a browser's (or any
# ordinary) user agent are their scanners, not a person: Defender / Safe Links from
# Exchange Online Protection and Microsoft's network, Google fetching on delivery,
# customers' servers in the clouds (Proofpoint runs on AWS), the gateways. Their
# documented person-facing proxies (GoogleImageProxy, YahooMailProxy) say so in
# their user agent and stay "proxy". Apple's relays carry people (Private Relay)
# and Outlook on the web's range (microsoft-365) is a known limit (README, "Where a fetch comes from").
MACHINE_ORIGINS = frozenset((
    "microsoft-eop", "microsoft", "google", "google-cloud", "aws", "mimecast", "proofpoint",
    "barracuda", "cisco", "trendmicro", "forcepoint", "symantec", "yahoo",
))
SELF_BEFORE_S = 5.0
SELF_AFTER_S = 120.0
# How many clients per tag the repeat rule remembers (the least recently seen is forgotten).
RECENT_CLIENTS = 16
# The key under which a tag's memory keeps the time of its first fetch (no client is named so).
FIRST_FETCH = "\x00first"


@dataclass(frozen=True)
class Rules:
    """The tunable parts of classification (``[counting]`` in config.toml)."""

    delivery_window_s: float = 10.0
    repeat_window_s: float = 60.0

    @classmethod
    def of(cls, config) -> "Rules":
        """The rules a home's config (``core.settings.Config``) sets."""
        return cls(delivery_window_s=config.delivery_window_s, repeat_window_s=config.repeat_window_s)

    def fingerprint(self) -> str:
        # The list of machines' agents is part of the rules: a new version of it recounts.
        return f"v2:{self.delivery_window_s}:{self.repeat_window_s}:{_machine_agents()[0]}"


class AddressRanges:
    """A set of IP networks (e.g. Apple's egress ranges) with fast overlap lookups."""

    def __init__(self, networks: Sequence[str] = ()):
        spans = sorted(
            (net.version, int(net.network_address), int(net.broadcast_address))
            for net in (ipaddress.ip_network(text, strict=False) for text in networks))
        self._starts = [(version, start) for version, start, _ in spans]
        # The furthest end among all spans up to each index, per IP version: a range
        # [low, high] overlaps some span iff that reach, at the last span starting
        # at or before high, is at least low.
        self._reach = []
        for i, (version, _, end) in enumerate(spans):
            same = i and spans[i - 1][0] == version
            self._reach.append(max(end, self._reach[-1]) if same else end)
        self._versions = [version for version, _, _ in spans]

    def __len__(self) -> int:
        return len(self._starts)

    def overlaps(self, address: str) -> bool:
        """True when the client (a full address, or one truncated to /24 or /48) meets a range."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        low = high = int(ip)
        if address.endswith((".0", "::")):  # truncated by the server's privacy setting
            net = ipaddress.ip_network(f"{address}/{24 if ip.version == 4 else 48}", strict=False)
            low, high = int(net.network_address), int(net.broadcast_address)
        i = bisect.bisect_right(self._starts, (ip.version, high)) - 1
        return i >= 0 and self._versions[i] == ip.version and self._reach[i] >= low


def parse_ranges_csv(text: str) -> List[str]:
    """Networks from a CSV whose first column is a CIDR (Apple's published format)."""
    networks = []
    for number, line in enumerate(text.splitlines(), start=1):
        first = line.split(",", 1)[0].strip().lstrip("\ufeff")
        if not first or first.startswith("#"):
            continue
        try:
            networks.append(str(ipaddress.ip_network(first, strict=False)))
        except ValueError:
            raise ValueError(f"line {number}: {first!r} is not an IP network") from None
    return networks


def load_ranges(path: Path) -> Optional[AddressRanges]:
    try:
        return AddressRanges(path.read_text(encoding="utf-8").split())
    except FileNotFoundError:
        return None


@dataclass
class Context:
    """What the fold knows about a tag when a hit arrives."""

    sent_at: Optional[float]            # epoch seconds of the send (or of the first fetch)
    self_moments: Sequence[float]       # moments the sender's Thunderbird may fetch the pixel
    sent: bool = True                   # False: sent_at is the first fetch (the send was not reported)


REASONS = {
    "method": "a {} request: nothing was displayed",
    "self": "your own Thunderbird, while sending or showing this email",
    "apple-agent": ("Apple Mail Privacy Protection (by its user agent; "
                    "'mailtracker ranges load' confirms it by address)"),
    "apple-range": "Apple Mail Privacy Protection (an Apple relay address)",
    "bare-agent": "a bare 'Mozilla/5.0' client: no mail client sends only that",
    "scanner": "an automated fetch ('{}' in the user agent)",
    "no-agent": "no user agent: mail clients always send one",
    "delivery": "fetched {} s after sending: a mail server or scanner on delivery, not a person",
    "first-fetch": "fetched {} s after the first fetch of a mail whose send time is unknown "
                   "(minted by hand): a mail server or scanner on delivery",
    "origin": "from {}'s network with an ordinary user agent: the provider's scanner, not a person",
    "proxy": "{}, fetching as the reader opened the email",
    "open": "a mail client displayed the email",
    "repeat": "the same client again within {} s: counted once",
    "click": "a person followed link {}",
    "click-delivery": "a link followed {} s after sending: a mail gateway checking links on delivery",
}


def explain(code: str) -> str:
    """The reason behind a label, in words, from its stored code ('scanner:bot')."""
    name, _, detail = code.partition(":")
    if name == "origin":
        detail = describe_origin(detail)
    return REASONS.get(name, code).format(detail)


@dataclass(frozen=True)
class Verdict:
    """What a user agent alone says about a hit; cached, since few agents recur a lot.

    ``kind`` is "fixed" (the agent settles it), "apple" (Apple's relay: the address
    decides the reason) or "candidate" (a person's client, unless the time says
    it was the sender's own Thunderbird or a fetch on delivery).
    """

    kind: str
    label: str
    code: str
    thunderbird: bool
    client: str


# Entries of that list left out: a person fetching a pixel with curl is how the quick start
# (make run) and the README show an open.
LISTED_BUT_A_PERSON = frozenset(("^curl",))


@lru_cache(maxsize=1)
def _machine_agents() -> Tuple[str, Optional["re.Pattern"]]:
    """(version, one pattern of every agent) of the maintained list of bots, crawlers and
    scanners; ("none", None) without the package (the hand-written markers still apply)."""
    try:
        from importlib.metadata import version

        from crawleruseragents import CRAWLER_USER_AGENTS_DATA
    except ImportError:
        return "none", None
    return (version("crawler-user-agents"),
            re.compile("|".join(f"(?:{entry['pattern']})" for entry in CRAWLER_USER_AGENTS_DATA
                                if entry["pattern"] not in LISTED_BUT_A_PERSON)))


def known_machine(agent: str) -> Optional[str]:
    """The part of ``agent`` by which the maintained list knows it as a bot or scanner, else None."""
    pattern = _machine_agents()[1]
    found = pattern.search(agent) if pattern is not None else None
    return (found.group(0) or "listed agent")[:60] if found else None


@lru_cache(maxsize=8192)
def judge_agent(agent: str) -> Verdict:
    client = describe_client(agent)
    if agent.strip() == APPLE_PRIVACY_AGENT:
        return Verdict("apple", "prefetch", "apple-agent", False, client)
    lowered = agent.lower()
    for marker in SCANNER_AGENTS:
        if marker in lowered:
            return Verdict("fixed", "prefetch", f"scanner:{marker}", False, client)
    if not agent.strip():
        return Verdict("fixed", "prefetch", "no-agent", False, client)
    for marker, name in PROXY_AGENTS:
        if marker in agent:  # before the list, which names the people's proxies too
            return Verdict("candidate", "proxy", f"proxy:{name}", False, client)
    marker = known_machine(agent)
    if marker is not None:
        return Verdict("fixed", "prefetch", f"scanner:{marker}", False, client)
    return Verdict("candidate", "open", "open", "Thunderbird/" in agent, client)


def decide(method: str, verdict: Verdict, client: str, when: float, context: Optional[Context],
           rules: Rules, apple: Optional[AddressRanges], origin: str = "") -> Tuple[str, str]:
    """The label of one hit and the code of its reason (see ``explain``)."""
    if method != "GET":
        return "prefetch", f"method:{method}"
    if verdict.kind == "fixed":
        return verdict.label, verdict.code
    if verdict.kind == "apple":
        if origin == "apple-relay" or (apple is not None and apple.overlaps(client)):
            return "prefetch", "apple-range"
        return "prefetch", "apple-agent" if apple is None and not origin else "bare-agent"
    if context is not None and verdict.thunderbird and any(
            -SELF_BEFORE_S <= when - moment <= SELF_AFTER_S for moment in context.self_moments):
        return "self", "self"
    if origin in MACHINE_ORIGINS and verdict.label != "proxy":
        return "prefetch", f"origin:{origin}"
    if context is not None and context.sent_at is not None:
        # Without a reported send, the first fetch marks the delivery: it is judged by
        # its agent and network alone, and what follows it within the window is on delivery.
        after = when - context.sent_at
        if (0 <= after if context.sent else 0 < after) and after < rules.delivery_window_s:
            return "prefetch", f"{'delivery' if context.sent else 'first-fetch'}:{after:.0f}"
    return verdict.label, verdict.code


def settled_by_agent(method: str, verdict: Verdict, origin: str) -> bool:
    """Whether ``decide`` answers the agent's own label for this hit, whatever its time: a GET
    by a person's client from no machine's network. The fold asks this first, per hit, and
    calls ``decide`` only when the time may matter."""
    return method == "GET" and verdict.kind == "candidate" and (
        origin not in MACHINE_ORIGINS or verdict.label == "proxy")


def click_verdict(method: bytes, verdict: Verdict) -> Tuple[str, str, Optional[int]]:
    """A click by its request and agent alone, before the timing and repeat rules: (label,
    reason code, the link number when a reader's browser may have followed it, else None)."""
    http, link = parse_method(method)
    if http != b"GET":
        return "prefetch", f"method:{http.decode('ascii', 'replace')}", None
    if verdict.kind != "candidate" or verdict.label == "proxy":
        # Scanners, bare agents, Apple's relay, image proxies: none of them is a reader's browser.
        return "prefetch", "bare-agent" if verdict.kind == "apple" else verdict.code, None
    return "click", f"click:{link}", link


def repeat_key(client: str, described: str, link: Optional[int] = None) -> str:
    """Who the repeat rule remembers: a client (its stored address and its agent's description),
    and for a click the link it followed."""
    return f"{client} {described}" if link is None else f"click{link} {client} {described}"




def describe_client(agent: str) -> str:
    """'Apple Mail on Mac OS X', 'Outlook', 'Gmail (image proxy)'… from a user agent."""
    for marker, name in PROXY_AGENTS:
        if marker in agent:
            return f"{name.split(chr(39))[0]} (device unknown)"
    if not agent:
        return "unknown client"
    try:
        from ua_parser import parse
    except ImportError:  # pragma: no cover - ua-parser is a dependency
        return agent[:60]
    result = parse(agent)
    client = result.user_agent.family if result.user_agent else ""
    system = result.os.family if result.os else ""
    device = result.device.family if result.device and result.device.family not in ("Other", "Mac") else ""
    if client in ("", "Other"):
        client = agent.split("/", 1)[0][:40] or "unknown client"
    where = " ".join(part for part in (device, system) if part and part != "Other")
    return f"{client} on {where}" if where else client


class Judgement(NamedTuple):
    """What the judge says of one hit: its label, the code of the reason, whether it
    counts as a new open, and the reader's client as people name it."""

    label: str
    reason: str
    counted: bool
    client: str


class Window(NamedTuple):
    """A tag's context, and the moments (epoch seconds) between which a hit's time can
    change its label: outside them, the user agent alone decides."""

    context: Context
    start: float
    end: float


class Judge:
    """Labels the hits of one fold pass with the rules and Apple ranges in force.

    ``moments`` maps a tag to its ``[epoch seconds, reason]`` moments (the send,
    Thunderbird showing the mail); ``recent`` (per tag, owned by the caller and
    kept between passes) maps a client to the time of its last counted open.
    """

    def __init__(self, rules: Rules, apple: Optional[AddressRanges], moments: Dict[str, List[list]],
                 origins: Optional[Origins] = None):
        self.rules = rules
        self.apple = apple
        self.moments = moments
        self.origins = origins
        self.fingerprint = (f"{rules.fingerprint()}:apple={len(apple) if apple else 'none'}"
                            f":origins={origins.fingerprint() if origins is not None else 'none'}")
        self._verdicts: Dict[bytes, Verdict] = {}
        # tag -> (context, start, end) as timestamp strings, which compare as the times do
        self._spans: Dict[str, Optional[tuple]] = {}
        self._reported: Dict[str, bool] = {}  # tag -> whether the add-on reported its send

    def forget_context(self, tag: str) -> None:
        """A tag's moments changed (a send or a display was recorded)."""
        self._spans.pop(tag, None)
        self._reported.pop(tag, None)

    def origin(self, hit: HitFields) -> str:
        """Where the hit came from: what the server wrote, else the client column's
        network (a full or truncated address; a hashed one tells nothing)."""
        written = origin_of(hit.rest, ORIGINS)
        if written or self.origins is None:
            return written
        return self.origins.lookup(hit.client)

    def send_reported(self, tag: str) -> bool:
        """Whether the add-on reported the tag's send (else its first fetch stands for it)."""
        reported = self._reported.get(tag)
        if reported is None:
            reported = self._reported[tag] = any(r == "send" for _, r in self.moments.get(tag) or ())
        return reported

    def _span(self, tag: str, first_fetch: Optional[float] = None) -> Optional[tuple]:
        """The tag's ``window`` with its moments as timestamp strings, as hit lines hold them."""
        window = self.window(tag, first_fetch)
        if window is None:
            return None
        return window.context, utc_timestamp(window.start), utc_timestamp(window.end)

    def window(self, tag: str, first_fetch: Optional[float] = None) -> Optional[Window]:
        """The tag's window (None when nothing is known of its send or displays). Without a
        reported send, the delivery window starts at the tag's first fetch."""
        moments = self.moments.get(tag) or []
        sends = [moment for moment, reason in moments if reason == "send"]
        if not moments and first_fetch is None:
            return None
        if not sends and first_fetch is not None:
            moments = [*moments, [first_fetch, "first-fetch"]]
        context = Context(sent_at=min(sends) if sends else first_fetch,
                          self_moments=[moment for moment, reason in moments if reason != "first-fetch"],
                          sent=bool(sends))
        ends = [moment + SELF_AFTER_S for moment, _ in moments]
        if context.sent_at is not None:
            ends.append(context.sent_at + self.rules.delivery_window_s)
        return Window(context, min(moment for moment, _ in moments) - SELF_BEFORE_S, max(ends) + 1)

    def judge(self, hit: HitFields, recent: Dict[str, float]) -> Judgement:
        """Label one new hit; raises ValueError for a time that is not a timestamp."""
        if hit.method.startswith(b"click:"):
            return self._judge_click(hit, recent)
        verdict = self._verdicts.get(hit.rest)
        if verdict is None:
            verdict = self._verdicts[hit.rest] = judge_agent(user_agent_of(hit.rest))
        span = self._spans.get(hit.tag, False)
        if span is False:
            first = recent.get(FIRST_FETCH)
            span = self._spans[hit.tag] = self._span(hit.tag, first)
        stamp = hit.time
        if not self.send_reported(hit.tag) and FIRST_FETCH not in recent:
            # A tag minted by hand: its first fetch opens the delivery window.
            recent[FIRST_FETCH] = parse_timestamp(stamp)
            span = self._spans[hit.tag] = self._span(hit.tag, recent[FIRST_FETCH])
        context = span[0] if span is not None and span[1] <= stamp <= span[2] else None
        when = parse_timestamp(stamp) if context is not None else 0.0
        origin = self.origin(hit) if verdict.kind != "fixed" else ""
        client = f"{verdict.client} · {describe_origin(origin)}" if origin else verdict.client
        method = hit.method.decode("ascii", "replace")
        if context is None and settled_by_agent(method, verdict, origin):
            label, reason = verdict.label, verdict.code
        else:
            label, reason = decide(method, verdict, hit.client, when, context, self.rules, self.apple, origin)
        if label not in PERSON_LABELS:
            return Judgement(label, reason, False, client)
        if context is None:
            when = parse_timestamp(stamp)
        key = repeat_key(hit.client, verdict.client)
        last = recent.pop(key, None)
        if last is not None and is_repeat(when, last, self.rules.repeat_window_s):
            recent[key] = last
            return Judgement(label, f"repeat:{self.rules.repeat_window_s:.0f}", False, client)
        # Re-inserted at the end: the first key is the least recently seen.
        recent[key] = when
        _forget_oldest(recent)
        return Judgement(label, reason, True, client)

    def _judge_click(self, hit: HitFields, recent: Dict[str, float]) -> Judgement:
        """A click: a person's unless the request, the agent or the timing says a machine
        checked the link; the same client on the same link within the repeat window is one."""
        verdict = self._verdicts.get(hit.rest)
        if verdict is None:
            verdict = self._verdicts[hit.rest] = judge_agent(user_agent_of(hit.rest))
        when = parse_timestamp(hit.time)
        label, reason, link = click_verdict(hit.method, verdict)
        if link is None:
            return Judgement(label, reason, False, verdict.client)
        moments = self.moments.get(hit.tag) or ()
        sends = [moment for moment, reason in moments if reason == "send"]
        if sends and 0 <= when - min(sends) < self.rules.delivery_window_s:
            return Judgement("prefetch", f"click-delivery:{when - min(sends):.0f}", False, verdict.client)
        key = repeat_key(hit.client, verdict.client, link)
        last = recent.pop(key, None)
        if last is not None and is_repeat(when, last, self.rules.repeat_window_s):
            recent[key] = last
            return Judgement("click", f"repeat:{self.rules.repeat_window_s:.0f}", False, verdict.client)
        recent[key] = when
        _forget_oldest(recent)
        return Judgement("click", reason, True, verdict.client)


def is_repeat(when: float, last: float, window_s: float) -> bool:
    """Whether a hit at ``when`` repeats the one that counted at ``last``: within the window
    either way, since a server clock stepping back puts a repeat before the hit it repeats."""
    return abs(when - last) < window_s


def _forget_oldest(recent: Dict[str, float]) -> None:
    """Keep RECENT_CLIENTS clients: forget the least recently seen (never the first fetch)."""
    clients = len(recent) - (FIRST_FETCH in recent)
    if clients > RECENT_CLIENTS:
        del recent[next(key for key in recent if key != FIRST_FETCH)]
