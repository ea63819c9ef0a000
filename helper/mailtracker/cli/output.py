"""How commands speak: the ok/BROKEN check lines, capitalised messages, text safe for a terminal."""

from datetime import datetime
from typing import Iterable, List

from mailtracker.core.untrusted import printable


def say(line: str, **print_options) -> None:
    """Print a message that a library wrote in lower case as a sentence."""
    print(line[:1].upper() + line[1:], **print_options)


def say_all(lines: Iterable[str]) -> None:
    for line in lines:
        say(line)


def print_checks(checks) -> List:
    """One ``ok``/``BROKEN`` line per check (anything with name, ok and detail); returns the broken ones."""
    for check in checks:
        print(f"{'ok ' if check.ok else 'BROKEN'}  {check.name}: {check.detail}")
    return [check for check in checks if not check.ok]


def clip(text: str, width: int) -> str:
    text = printable(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def describe_time(stamp: str, now: datetime) -> str:
    """'2026-11-24 22:31 UTC (5 min ago)', or 'never'."""
    if not stamp:
        return "never"
    from mailtracker.core.timestamps import ago

    return f"{stamp[:10]} {stamp[11:16]} UTC ({ago(stamp, now.timestamp())})"


def describe_sending(row) -> str:
    """When the mail went out: '2026-11-24 22:31 UTC' (Thunderbird's send time), the mint time
    with what it is ('… UTC (minted)' for a log from before send times were noted), or 'not sent'."""
    from mailtracker.desktop.register import SENDING_NOTES

    stamp, how = row.sending
    when = f"{stamp[:10]} {stamp[11:16]} UTC" if stamp else ""
    if how == "sent":
        return when or "-"
    short = SENDING_NOTES[how][0]
    return f"{when} ({short})" if when else short


def describe_reminder(row, now: datetime) -> str:
    """'-', or when the follow-up reminder is (or was) due, with 'due' once it passed unopened."""
    stamp = row.remind_at
    if not stamp:
        return "-"
    from mailtracker.core.timestamps import parse_timestamp

    try:
        passed = parse_timestamp(stamp) <= now.timestamp()
    except ValueError:
        passed = False
    if row.undelivered:
        return f"{stamp[:10]} {stamp[11:16]} UTC (cancelled: not delivered)"
    if row.replies:
        return f"{stamp[:10]} {stamp[11:16]} UTC (cancelled: replied)"
    if row.remind_if == "no_reply":
        return f"{stamp[:10]} {stamp[11:16]} UTC if no reply" + (" (due)" if passed else "")
    due = passed and not row.opened
    return f"{stamp[:10]} {stamp[11:16]} UTC" + (" (due)" if due else "")
