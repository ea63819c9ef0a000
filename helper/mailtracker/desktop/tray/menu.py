"""What the tray shows, as plain data: the title and the menu entries, from the
register's rows and the user's marks. No GUI library here.
"""

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from mailtracker.core.errors import PullAuthError
from mailtracker.core.hints import hint_for
from mailtracker.core.timestamps import ago, clock_time
from mailtracker.desktop.marks import Marks
from mailtracker.desktop.notifications import Notice
from mailtracker.desktop.pull import UNREACHABLE
from mailtracker.desktop.register import Row, display_name, grouped
from mailtracker.desktop.troubles import NO_TROUBLES, ServerTrouble, Troubles

APP_NAME = "mailtracker"


RECENT_LIMIT = 8
# A problem's line is a sentence with a host name and a reason: wider than an email's.
PROBLEM_WIDTH = 120


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
    # The headline is a problem (not counting, or opens not arriving): the icon shows a warning.
    trouble: bool = False


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


def describe_server_trouble(trouble: ServerTrouble, now: float) -> str:
    """'pixel.example.org not answering since 14:02 (connection refused)', or for a refused
    token what to run."""
    if trouble.code == PullAuthError.code:
        return f"{trouble.host} refused this computer's token (401): run mailtracker doctor --server"
    since = clock_time(trouble.since, now)
    if trouble.outcome == UNREACHABLE:
        return f"{trouble.host} not answering since {since} ({trouble.reason or 'no answer'})"
    if trouble.reason:
        return f"{trouble.host} failing since {since} ({trouble.reason})"
    return f"{trouble.host} failing since {since}: run mailtracker doctor --server"


def describe_pull_troubles(troubles: Troubles, now: float) -> str:
    """The headline when pull servers fail, naming the first; '' when none does. With one of
    several failing, opens still come from the others: it says how many fail, not 'not receiving'."""
    if not troubles.servers:
        return ""
    first = describe_server_trouble(troubles.servers[0], now)
    failing, count = len(troubles.servers), troubles.server_count
    if failing < count:
        return f"{failing} of {count} servers failing: {first}"
    if count > 1:
        return f"Not receiving opens from any of {count} servers: {first}"
    return f"Not receiving opens: {first}"


def trouble_notice(before: Troubles, after: Troubles, now: float) -> Optional[Notice]:
    """The notification when a pull server starts failing past the grace ('Not receiving opens'),
    and when the last one answers again; None for any other change (a reason's new words, a
    second server of two, the device sync's line: the menu says those). A notification, not
    only the menu's first line: a user who believes nobody opened their mail does not look."""
    was = {trouble.host for trouble in before.servers}
    now_failing = [trouble for trouble in after.servers if trouble.host not in was]
    if now_failing:
        pulling = describe_pull_troubles(after, now)
        title, _, body = pulling.partition(": ")
        return Notice(title=title, body=f"{body}\nNothing is lost: the opens it keeps arrive once pulling works again.",
                      tag_ids=())
    if was and not after.servers:
        hosts = ", ".join(sorted(was))
        return Notice(title="Receiving opens again", body=f"{hosts} answers again: the opens it kept arrive now.",
                      tag_ids=())
    return None


def describe_sync_troubles(troubles: Troubles) -> str:
    """The quieter line when the device logs do not meet the other computers' ('' when they do)."""
    if not troubles.device_sync:
        return ""
    first = troubles.device_sync[0]
    through = f" through {first.host}" if len(troubles.device_sync) < troubles.sync_count else ""
    return _clip(f"Not syncing with your other computers{through}: {first.problem}", PROBLEM_WIDTH)


def _headline(unseen: int, paused: bool, problem: str, pulling: str) -> str:
    # A fold problem comes first: until it is fixed no count moves, not even from the opens
    # that do arrive, and its fix is on this computer (close register.csv...). A pull trouble
    # then has a line of its own under it.
    if problem:
        return _clip(f"Not counting: {problem}", PROBLEM_WIDTH)
    if pulling:
        # Before 'paused': pausing is the user's choice, opens not arriving is not.
        return _clip(pulling, PROBLEM_WIDTH)
    if paused:
        return "Tracking paused: new emails get no pixel"
    return _plural(unseen, "new open") if unseen else "No new opens"


def _top_entries(headline: str, problem: str, pulling: str, syncing: str) -> List[MenuEntry]:
    """The headline, and under it the lines that tell what else is wrong (none when all is well).
    The pull trouble's line, the headline or under a fold problem, can be chosen: it says the
    failure in full with what to do (``trouble_explained``), where the line has room for a few words."""
    pull = MenuEntry(_clip(pulling, PROBLEM_WIDTH), action=("explain_trouble",)) if pulling else None
    entries = [pull if pull is not None and not problem else MenuEntry(headline, enabled=False)]
    if pull is not None and problem:
        entries.append(pull)
    if syncing:
        entries.append(MenuEntry(syncing, enabled=False))
    return entries


def trouble_explained(troubles: Troubles) -> Optional[Notice]:
    """What the pull servers' failures are, in full, with what to do: a notice for the problem line
    chosen in the menu (None when no server fails)."""
    if not troubles.servers:
        return None
    lines = []
    for trouble in troubles.servers:
        lines.append(trouble.message or f"{trouble.host}: {trouble.reason or trouble.outcome}")
        lines.append(hint_for(trouble.code) if trouble.code else "")
    return Notice(title="Why opens are not arriving", body="\n".join(line for line in lines if line), tag_ids=())


def build_view(rows: Sequence[Row], marks: Marks, now: float, problem: str = "",
               troubles: Troubles = NO_TROUBLES) -> View:
    """The view of the rows; ``problem`` is the fold's ('' when it went well), ``troubles`` what
    keeps opens from arriving."""
    unseen = sum(marks.unseen(row) for row in rows)
    recent = recent_rows(rows)
    pulling = describe_pull_troubles(troubles, now)
    headline = _headline(unseen, marks.paused, problem, pulling)
    entries = [*_top_entries(headline, problem, pulling, describe_sync_troubles(troubles)), SEPARATOR]
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
    alarming = bool(problem or pulling)
    title = f"{APP_NAME}: {'paused' if marks.paused and not alarming else headline[:1].lower() + headline[1:]}"
    opened = [row for row in recent if row.last_open]
    # A problem's title is the whole sentence: the last open would cut its reason off.
    if opened and not alarming:
        latest = opened[0]
        title += f"; {display_name(latest)} opened \"{latest.subject or '(no subject)'}\" " \
                 f"{ago(latest.last_open, now)}"
    return View(rows=tuple(rows), unseen=unseen, paused=marks.paused, title=_clip(title, 120),
                entries=tuple(entries), trouble=alarming)
