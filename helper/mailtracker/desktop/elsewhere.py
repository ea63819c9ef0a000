"""Opened somewhere new: the hint that a person's open of a mail came from a different network
*and* a different mail program than every earlier open of it — "opened on another device or
by someone else (forwarded?)". A hint in the timeline, never a count of people.

Only for a mail to one recipient (a copy of a mail sent individually, or a mail to one
person): on a mail to several, a new place is most likely another recipient. The network of
an open is its stored client address (as the server keeps it: truncated or hashed), read
from the repeat rule's memory of the tag (``Counts.recent``: each recent client's address
and mail program); the program is the open's client description. Worked out by the fold after
its hits pass from what that pass added, never inside it. An open whose network the memory no
longer names (beyond ``classify.RECENT_CLIENTS`` clients) gives no hint: it is never guessed.
"""

from typing import Dict, Iterable, List, Sequence, Tuple

from mailtracker.desktop.classify import FIRST_FETCH

HINT = "opened on another device or by someone else (forwarded?)"


def program_of(described: str) -> str:
    """The mail program part of an event's client description ('Outlook on Windows · Google')."""
    return described.split(" · ", 1)[0]


def networks_by_program(recent: Dict[str, float]) -> Dict[str, List[str]]:
    """Each mail program in a tag's repeat memory with the networks (stored addresses) it was seen from."""
    found: Dict[str, List[str]] = {}
    for key in recent:
        if key == FIRST_FETCH or key.startswith("click"):
            continue
        network, _, program = key.partition(" ")
        networks = found.get(program)
        if networks is None:
            found[program] = [network]
        elif network not in networks:
            networks.append(network)
    return found


def note_opens(kept: Sequence, events: Iterable[Tuple], recent: Dict[str, float]) -> list:
    """A tag's places (as the fold state keeps them: [programs seen, networks seen, times of
    the opens from somewhere new]) after this pass's ``events``, in time order. An open is from
    somewhere new when earlier opens were seen, its program is none of theirs, and every
    network its program was seen from is none of theirs either."""
    programs, networks, hints = (list(part) for part in kept) if kept else ([], [], [])
    by_program = None
    # A program's second open in these events changes nothing: its networks are in already.
    noted = set()
    for stamp, _, _, _, described in sorted(event for event in events if event[1] == "open" and event[2]):
        program = program_of(described)
        if program in noted:
            continue
        noted.add(program)
        if by_program is None:
            by_program = networks_by_program(recent)
        candidates = by_program.get(program, [])
        if programs and program not in programs and candidates and not set(candidates) & set(networks):
            hints.append(stamp)
        if program not in programs:
            programs.append(program)
        networks.extend(network for network in candidates if network not in networks)
    return [programs, networks, hints]
