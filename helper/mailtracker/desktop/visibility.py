"""What the product can see of each recipient's opens, learned from the user's own history:
an honest "not seen" instead of "not opened" where no open can show.

Per recipient address, from the mails that went to it (their counts, replies and the machine
fetches the fold saw), the latest evidence decides:

- a reply to a mail whose pixel no person fetched (no open, no click) means the address's
  mail program **does not load images** (``NO_IMAGES``), unless Apple's proxy fetched that
  mail (then its opens are not measurable, see below);
- a person's open of a mail that went to this address alone means its opens **are** seen:
  it undoes the above (the recipient allowed images since);
- without either, an address whose mails sent to it alone were fetched by proxies or
  machines only has opens **not measurable** (``NOT_MEASURABLE``), with the reason of the
  latest such fetch: at once for Apple Mail Privacy Protection (its proxy fetches every mail
  on arrival, so a person's open never shows), from the second such mail for other machines
  (a gateway's scanner fetches on delivery, before the person may still open it).

Each address's knowledge says which rule and which mail made it so. A mail that nobody has
opened shows "not seen" only when every recipient who has neither replied nor bounced is in
such a state (``mail_columns``): if one of them could still be seen opening it, it is "not
opened". Everything here is derived from the logs through the fold's state: a rebuild
learns the same.
"""

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from mailtracker.desktop.classify import explain

# What a person's open of a mail to one address says of it (its opens show): no state.
SEEN = "seen"
NO_IMAGES = "no_images"
NOT_MEASURABLE = "not_measurable"
STATES = (NO_IMAGES, NOT_MEASURABLE)
# What a mail shows for each state, everywhere ("not opened" would claim what cannot be known),
# and in a narrow column.
WORDS = {NO_IMAGES: "opens not visible for this recipient", NOT_MEASURABLE: "opens not measurable"}
SHORT_WORDS = {NO_IMAGES: "not visible", NOT_MEASURABLE: "not measurable"}
# The reason codes of Apple Mail Privacy Protection's fetches (``classify.REASONS``): the proxy
# loads the images, so a reply says nothing of the reader's own program.
APPLE_CODES = ("apple-agent", "apple-range", "bare-agent")
_ANGLED = re.compile(r"<([^<>\s]+@[^<>\s]+)>")


@lru_cache(maxsize=1 << 16)
def addresses(recipients: str) -> Tuple[str, ...]:
    """The lower-cased mail addresses in a recipients field ("Ann <ann@x.org>; bob@y.org"), each
    once. Remembered: a fold asks it of each mail's recipients several times."""
    if "<" not in recipients and ";" not in recipients and "," not in recipients:  # one address alone (quicker)
        address = recipients.strip().strip("<>\"'").lower()
        return (address,) if "@" in address else ()
    found: List[str] = []
    for part in recipients.replace(",", ";").split(";"):
        angled = _ANGLED.search(part) if "<" in part else None
        address = (angled.group(1) if angled else part).strip().strip("<>\"'").lower()
        if "@" in address and address not in found:
            found.append(address)
    return tuple(found)


def by_apple(code: str) -> bool:
    """Whether a fetch's reason code says Apple's proxy made it."""
    return code.partition(":")[0] in APPLE_CODES


def note_machine_fetches(kept: Optional[list], events: Iterable[Sequence]) -> Optional[list]:
    """A tag's memory of its machine fetches (as the fold state keeps it: [time of the latest,
    its reason code, whether Apple's proxy was among them]) after these timeline events (time,
    label, counted, reason, client): only its "prefetch" ones count."""
    for stamp, label, _, code, _ in events:
        if label != "prefetch":
            continue
        apple = by_apple(code)
        if kept is None:
            kept = [stamp, code, apple]
            continue
        if stamp >= kept[0]:
            kept[0], kept[1] = stamp, code
        kept[2] = bool(kept[2]) or apple
    return kept


@dataclass(frozen=True)
class Knowledge:
    """What one address's history says: its state ("" when its opens can show), the rule
    and mail that made it so, in words, the mail's tag and when."""

    state: str = ""
    why: str = ""
    tag: str = ""
    time: str = ""

    def packed(self) -> list:
        return [self.state, self.why, self.tag, self.time]

    @classmethod
    def unpacked(cls, packed: Sequence) -> "Knowledge":
        state, why, tag, time = packed
        return cls(str(state), str(why), str(tag), str(time))


# The knowledge of an address whose opens can show.
NOTHING = Knowledge()


@dataclass(frozen=True)
class Evidence:
    """One mail's say about one address: SEEN, NO_IMAGES or NOT_MEASURABLE, at a time."""

    kind: str
    time: str
    why: str
    tag: str
    # Apple's proxy fetched the mail (one such mail makes the opens not measurable).
    proxy: bool = False

    def packed(self) -> list:
        """As the fold state keeps it, under its address and tag."""
        return [self.kind, self.time, self.why, self.proxy]

    @classmethod
    def unpacked(cls, tag: str, packed: Sequence) -> "Evidence":
        kind, time, why, proxy = packed
        return cls(str(kind), str(time), str(why), tag, bool(proxy))


class MailFacts(NamedTuple):
    """What ``evidence_of`` reads of a mail (a register ``Row`` has them all; the fold builds
    these from its state without the rest of a row)."""

    id: str
    short_id: str
    subject: str
    name: str
    recipients: str
    opened: bool
    first_open: str
    first_click: str
    replied_by: str
    first_reply: str
    undelivered: str


def _mail_words(row) -> str:
    return f"“{row.subject or row.name or '(no subject)'}” (tag {row.short_id})"


def opened_evidence(first_open: str, first_click: str) -> list:
    """What a person's open (or click) of a mail to one address that did not bounce says of
    it, packed (``Evidence.packed``): its words are never shown (it makes the opens visible,
    no state)."""
    return [SEEN, first_open or first_click, "", False]


def evidence_of(row: MailFacts, machine: Optional[Sequence]) -> Dict[str, list]:
    """What one mail (its facts and its machine-fetch memory) says of each address it went to
    or was answered from, packed as the fold state keeps it (``Evidence.packed``)."""
    recipients = addresses(row.recipients)
    undelivered = set(addresses(row.undelivered))
    alone = len(recipients) == 1
    said: Dict[str, Evidence] = {}
    if row.opened:
        if alone and recipients[0] not in undelivered:
            return {recipients[0]: opened_evidence(row.first_open, row.first_click)}
        return {}
    apple = bool(machine) and bool(machine[2])
    for address in addresses(row.replied_by):
        if apple and alone:
            said[address] = Evidence(
                NOT_MEASURABLE, row.first_reply,
                f"replied to {_mail_words(row)}, whose only fetches were {explain(machine[1])}", row.id, True)
        else:
            said[address] = Evidence(
                NO_IMAGES, row.first_reply,
                f"replied to {_mail_words(row)} without its image being loaded", row.id)
    if alone and machine and recipients[0] not in said and recipients[0] not in undelivered:
        said[recipients[0]] = Evidence(
            NOT_MEASURABLE, machine[0],
            f"every fetch of {_mail_words(row)} was a machine's: {explain(machine[1])}", row.id, apple)
    return {address: evidence.packed() for address, evidence in said.items()}


def learned(said: Mapping[str, Sequence]) -> Knowledge:
    """``learn`` from an address's evidence as the fold keeps it (by tag, packed). Mails that
    each say a person opened them (most) teach no state: then nothing is unpacked."""
    for packed in said.values():
        if packed[0] != SEEN:
            return learn(Evidence.unpacked(tag, packed) for tag, packed in said.items())
    return NOTHING


def learn(evidence: Iterable[Evidence]) -> Knowledge:
    """An address's knowledge from what its mails say: the latest reply-without-image or
    person's open decides; without one, machine-only fetches make it not measurable (Apple's
    proxy on one mail, another machine on two)."""
    decisive: Optional[Evidence] = None
    machine: Optional[Evidence] = None
    machine_mails = 0
    proxy = False
    for item in evidence:
        if item.kind == NOT_MEASURABLE:
            machine_mails += 1
            proxy = proxy or item.proxy
            if machine is None or item.time > machine.time:
                machine = item
        elif decisive is None or item.time > decisive.time:
            decisive = item
    if decisive is not None:
        if decisive.kind == NO_IMAGES:
            return Knowledge(NO_IMAGES, f"does not load images: {decisive.why}", decisive.tag, decisive.time)
        return Knowledge()
    if machine is not None and (proxy or machine_mails >= 2):
        more = f" (and {machine_mails - 1} earlier mails alike)" if machine_mails > 1 else ""
        return Knowledge(NOT_MEASURABLE, f"opens not measurable: {machine.why}{more}", machine.tag, machine.time)
    return Knowledge()


EMPTY_COLUMNS = {"not_seen": "", "not_seen_by": "", "not_seen_reason": ""}


def mail_columns(row, known: Mapping[str, Knowledge]) -> Dict[str, str]:
    """The register columns ``not_seen`` (NO_IMAGES when every recipient still to open it
    does not load images, NOT_MEASURABLE when each is in one of the two states and one is
    not measurable, else ""), ``not_seen_by`` (those addresses) and ``not_seen_reason``
    (each one's rule and mail). A mail opened, or with no recipient left who has neither
    replied nor bounced, has none."""
    if row.opened:
        return dict(EMPTY_COLUMNS)
    done = set(addresses(row.replied_by)) | set(addresses(row.undelivered))
    waiting = [address for address in addresses(row.recipients) if address not in done]
    states = [known.get(address) for address in waiting]
    if not waiting or any(k is None or k.state not in STATES for k in states):
        return dict(EMPTY_COLUMNS)
    state = NO_IMAGES if all(k.state == NO_IMAGES for k in states) else NOT_MEASURABLE
    return {"not_seen": state, "not_seen_by": "; ".join(waiting),
            "not_seen_reason": "; ".join(f"{address} {k.why}" for address, k in zip(waiting, states))}


def group_state(members: Sequence) -> str:
    """The state of a mail sent individually, from its copies' rows: not seen when each copy
    still waiting (not opened, replied to or bounced) is, as ``mail_columns`` says of one mail."""
    if any(m.opened for m in members):
        return ""
    waiting = [m for m in members if not m.replies and not m.undelivered]
    if not waiting or any(m.not_seen not in STATES for m in waiting):
        return ""
    return NO_IMAGES if all(m.not_seen == NO_IMAGES for m in waiting) else NOT_MEASURABLE
