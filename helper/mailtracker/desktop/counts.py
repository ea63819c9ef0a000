"""One tag's counts as the fold keeps them: its hits by kind, when its opens and clicks
came first and last, each clicked link's clicks, and the repeat rule's memory of the
clients it saw lately.

Both ways the fold counts (the per-line loop in ``fold`` and the columns in ``fastfold``)
change a tag's counts only through ``Counts``; the fold state stores each as
``Counts.packed()`` and reads it back with ``Counts.unpacked``.
"""

from operator import attrgetter
from typing import Dict, List, Optional, Sequence, Tuple, Union

from mailtracker.desktop.view import compact_json, loads


def widened(first: str, last: str, low: str, high: str) -> Tuple[str, str]:
    """The span ``first``..``last`` of UTC times ("" before the first) made to hold ``low``..``high``."""
    return (low if not first or low < first else first), (high if high > last else last)


class Counts:
    """A tag's counts. ``links``: each clicked link's [clicks, first, last], by its number as
    a string. The memory (``recent()``) rests packed as JSON text until a pass needs it: a
    pass decodes only the memories of the tags it touches."""

    # The per-line loop updates one per hit: slots keep that as quick as a list's items.
    __slots__ = ("hits", "opens", "first_open", "last_open", "self_hits", "machine_hits",
                 "clicks", "first_click", "last_click", "links", "_recent")

    # What ``packed_apart`` gives where the memory is (the store keeps it in a column of its own).
    memory_apart = None

    def __init__(self, hits: int = 0, opens: int = 0, first_open: str = "", last_open: str = "",
                 self_hits: int = 0, machine_hits: int = 0, clicks: int = 0, first_click: str = "",
                 last_click: str = "", links: Optional[Dict[str, list]] = None, recent=None):
        self.hits = hits
        self.opens = opens
        self.first_open = first_open
        self.last_open = last_open
        self.self_hits = self_hits
        self.machine_hits = machine_hits
        self.clicks = clicks
        self.first_click = first_click
        self.last_click = last_click
        self.links = {} if links is None else links
        self._recent = {} if recent is None else recent

    @property
    def opened(self) -> bool:
        """Whether a person read the mail: an open, or a click (which proves it even when no
        image was loaded)."""
        return bool(self.opens or self.clicks)

    def add_open(self, stamp: str) -> None:
        self.add_opens(1, stamp, stamp)

    def add_opens(self, n: int, first: str, last: str) -> None:
        self.opens += n
        self.first_open, self.last_open = widened(self.first_open, self.last_open, first, last)

    def add_click(self, stamp: str, link: str) -> None:
        self.add_clicks(link, 1, stamp, stamp)

    def add_clicks(self, link: str, n: int, first: str, last: str) -> None:
        """``n`` clicks on link number ``link`` (a string), from ``first`` to ``last``."""
        self.clicks += n
        self.first_click, self.last_click = widened(self.first_click, self.last_click, first, last)
        per_link = self.links.get(link)
        if per_link is None:
            self.links[link] = [n, first, last]
        else:
            per_link[0] += n
            per_link[1], per_link[2] = widened(per_link[1], per_link[2], first, last)

    def merge(self, other: "Counts") -> None:
        """Add ``other``'s counts (a batch of later hits) to these; the memory stays."""
        self.hits += other.hits
        self.self_hits += other.self_hits
        self.machine_hits += other.machine_hits
        if other.opens:
            self.add_opens(other.opens, other.first_open, other.last_open)
        for link, (n, first, last) in other.links.items():
            self.add_clicks(link, n, first, last)

    def recent(self) -> Dict[str, float]:
        """The repeat rule's memory, which ``classify.Judge.judge`` reads and updates: each
        recent client's key -> the time of its last counted hit."""
        recent = self._recent
        if recent.__class__ is str:
            recent = self._recent = dict(loads(recent)) if recent else {}
        return recent

    def remember(self, recent: Union[Dict[str, float], str]) -> None:
        """Replace the memory (the fast path works it out for a whole batch): a dict, or the
        JSON text ``packed`` keeps it as."""
        self._recent = recent

    def packed(self) -> list:
        """As the fold state stores it: a list in a fixed order, the memory as JSON text (and
        kept so until a pass needs it, for the next pass of this process too)."""
        packed = list(_PACKED_APART(self))
        packed[MEMORY_AT] = self.memory()
        return packed

    def memory(self) -> str:
        """The memory as ``packed`` keeps it, JSON text (kept so until a pass needs it)."""
        recent = self._recent
        if recent.__class__ is not str:
            recent = self._recent = compact_json(list(recent.items()))
        return recent

    @classmethod
    def unpacked(cls, packed: List) -> "Counts":
        """``packed()``'s list back; TypeError or ValueError when it is not one."""
        hits, opens, first_open, last_open, self_hits, machine_hits, recent, clicks, first_click, \
            last_click, links = packed
        if not isinstance(recent, str) or not isinstance(links, dict):
            raise TypeError("not a tag's packed counts")
        return cls(hits, opens, first_open, last_open, self_hits, machine_hits, clicks, first_click,
                   last_click, links, recent)


# ``packed()``'s items in their order, ``memory_apart`` (None) where the memory is.
_PACKED_FIELDS = ("hits", "opens", "first_open", "last_open", "self_hits", "machine_hits", "memory_apart", "clicks",
                  "first_click", "last_click", "links")
_PACKED_APART = attrgetter(*_PACKED_FIELDS)
MEMORY_AT = _PACKED_FIELDS.index("memory_apart")


def packed_apart(counts: Sequence[Optional[Counts]]) -> Tuple[list, list]:
    """``packed()`` of many tags' counts at once (a first fold's 50,000), with the memory taken out
    as the fold state stores it: each one's items with None where its memory was (as a tuple, which
    JSON writes as the list), and the memories' texts; None for a tag without counts, in both."""
    memories = [None if each is None else each.memory() for each in counts]
    packs = [None if each is None else _PACKED_APART(each) for each in counts]
    return packs, memories
