"""What the tray shows, as plain data: the title and the menu entries, from the
register's rows and the user's marks. No GUI library here.
"""

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from mailtracker.core.timestamps import ago
from mailtracker.desktop.marks import Marks
from mailtracker.desktop.register import Row, display_name, grouped

APP_NAME = "mailtracker"


RECENT_LIMIT = 8


@dataclass(frozen=True)
class MenuEntry:
    """One line of the tray menu; ``action`` names what choosing it does."""

    text: str = ""
    action: Optional[Tuple[str, ...]] = None
    enabled: bool = True
    default: bool = False
    separator: bool = False


SEPARATOR = MenuEntry(separator=True)


@dataclass(frozen=True)
class View:
    """What the icon, its title and its menu show, from one fold state and the marks."""

    rows: Tuple[Row, ...]
    unseen: int
    paused: bool
    title: str
    entries: Tuple[MenuEntry, ...]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def recent_rows(rows: Sequence[Row], limit: int = RECENT_LIMIT) -> List[Row]:
    """The emails with the latest activity (last open or reply, else sending) first."""
    live = [row for row in rows if row.status != "unsent"]
    live.sort(key=lambda row: (max(row.last_open, row.last_reply) or row.created, row.created), reverse=True)
    return live[:limit]


def describe_row(row: Row, unseen: int, now: float) -> str:
    """'Ann — Offer · 3 opens · last opened 2 h ago', '… · replied', '… · not delivered', marked
    when some opens are new. A reply proves a mail was read: such a mail is never 'not opened yet'."""
    text = f"{_clip(display_name(row), 24)} — {_clip(row.subject or '(no subject)', 32)}"
    opens = row.opens
    if opens:
        text += f" · {_plural(opens, 'open')} · last opened {ago(row.last_open, now)}"
    elif not row.replies and not row.undelivered:
        text += f" · {row.not_seen_words}" if row.not_seen else " · not opened yet"
    if row.replies:
        text += f" · replied {ago(row.last_reply, now)}" if row.last_reply else " · replied"
    if row.undelivered:
        text += " · not delivered"
    return f"● {text} ({unseen} new)" if unseen else text


def build_view(rows: Sequence[Row], marks: Marks, now: float, problem: str = "") -> View:
    unseen = sum(marks.unseen(row) for row in rows)
    recent = recent_rows(rows)
    if problem:
        # The counts are stale until this is fixed: say it first, not a quiet icon.
        headline = _clip(f"Not counting: {problem}", 90)
    elif marks.paused:
        headline = "Tracking paused: new emails get no pixel"
    elif unseen:
        headline = f"{_plural(unseen, 'new open')}"
    else:
        headline = "No new opens"
    entries = [MenuEntry(headline, enabled=False), SEPARATOR]
    if not recent:
        entries.append(MenuEntry("No tracked emails yet", enabled=False))
    for members in grouped(recent):
        group = members[0].group
        if group:
            # An email sent individually: a line for it, then one per recipient's copy.
            copies = [row for row in rows if row.group == group and row.status != "unsent"]
            opened = sum(1 for row in copies if row.opened)
            subject = _clip(members[0].subject or "(no subject)", 32)
            entries.append(MenuEntry(f"{subject} — sent individually · {opened} of {len(copies)} opened",
                                     enabled=False))
        for row in members:
            text = describe_row(row, marks.unseen(row), now)
            entries.append(MenuEntry(f"    {text}" if group else text, action=("show", row.id)))
    entries += [
        SEPARATOR,
        MenuEntry("Mark all as seen", ("mark_seen",), enabled=bool(unseen)),
        MenuEntry("Resume tracking" if marks.paused else "Pause tracking",
                  ("resume",) if marks.paused else ("pause",)),
        MenuEntry("Open register in spreadsheet", ("open_register",)),
        MenuEntry("Open report", ("open_report",), default=True),
        SEPARATOR,
        MenuEntry("Quit mailtracker", ("quit",)),
    ]
    title = f"{APP_NAME}: {'paused' if marks.paused else headline.lower()}"
    opened = [row for row in recent if row.last_open]
    if opened:
        latest = opened[0]
        title += f"; {display_name(latest)} opened \"{latest.subject or '(no subject)'}\" " \
                 f"{ago(latest.last_open, now)}"
    return View(rows=tuple(rows), unseen=unseen, paused=marks.paused, title=_clip(title, 120),
                entries=tuple(entries))

