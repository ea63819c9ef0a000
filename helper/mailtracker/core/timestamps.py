"""Timestamps as every log writes them (UTC ISO 8601 with milliseconds and a Z),
parsed fast, and said the way people read them ('5 min ago').
"""

import calendar
import math
import re
import time
from datetime import datetime, timezone
from typing import Optional, Tuple

_LAST_SECOND = (None, "")
_LAST_MILLI = (None, "")


def _second_and_micros(when: float) -> Tuple[int, int]:
    second = math.floor(when)
    # Rounded to microseconds first, as datetime does, so 15.573 stays .573.
    micros = round((when - second) * 1_000_000)
    if micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    return second, micros


def stamped(when: float) -> float:
    """The moment as its timestamp says it (to the millisecond): what ``parse_timestamp``
    gives for ``utc_timestamp(when)``, without the text."""
    second, micros = _second_and_micros(when)
    return second + micros // 1000 / 1000


def utc_timestamp(when: Optional[float] = None) -> str:
    """UTC ISO 8601 with milliseconds and a Z; sorts as text in time order."""
    global _LAST_SECOND, _LAST_MILLI
    if when is None:
        # Now, in whole integers (the pixel server stamps every hit): no float to round.
        milli = time.time_ns() // 1_000_000
        last_milli, stamp = _LAST_MILLI  # one tuple: safe to share between threads
        if milli == last_milli:
            return stamp  # under load, many hits share a millisecond
        second, millis = divmod(milli, 1000)
    else:
        second, micros = _second_and_micros(when)
        millis = micros // 1000
    cached_second, prefix = _LAST_SECOND  # one tuple: safe to share between threads
    if cached_second != second:
        prefix = datetime.fromtimestamp(second, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.")
        _LAST_SECOND = (second, prefix)
    stamp = f"{prefix}{millis:03d}Z"
    if when is None:
        _LAST_MILLI = (milli, stamp)
    return stamp


_STAMP_RE = re.compile(r"\d{4}-\d\d-\d\dT([01]\d|2[0-3]):[0-5]\d:[0-6]\d\.\d{3}Z")


_MINUTES: dict = {}


_DAYS: dict = {}


def _minute_of(stamp: str) -> int:
    day = _DAYS.get(stamp[:10])
    if day is None:
        if not _STAMP_RE.fullmatch(stamp):
            raise ValueError(f"not a mailtracker timestamp: {stamp!r}")
        day = _DAYS[stamp[:10]] = calendar.timegm((int(stamp[0:4]), int(stamp[5:7]), int(stamp[8:10]), 0, 0, 0))
    hours, minutes = stamp[11:13], stamp[14:16]
    if stamp[10] != "T" or stamp[13] != ":" or not (hours.isdigit() and minutes.isdigit()) \
            or hours > "23" or minutes > "59":
        raise ValueError(f"not a mailtracker timestamp: {stamp!r}")
    return day + int(hours) * 3600 + int(minutes) * 60


def parse_timestamp(stamp: str) -> float:
    """Seconds since the epoch of a ``utc_timestamp`` string; ValueError if it is not one.

    The fold calls this for most hits: the minute is looked up in a cache instead
    of going through strptime (14 µs) every time.
    """
    minute = _MINUTES.get(stamp[:16])
    if minute is None:
        if len(_MINUTES) > 100_000:
            _MINUTES.clear()
        minute = _MINUTES[stamp[:16]] = _minute_of(stamp)
    if len(stamp) != 24 or stamp[16] != ":" or stamp[19] != "." or stamp[23] != "Z":
        raise ValueError(f"not a mailtracker timestamp: {stamp!r}")
    return minute + int(stamp[17:19]) + int(stamp[20:23]) / 1000


def ago(stamp: str, now: float) -> str:
    """How long before ``now`` (epoch seconds) a timestamp was: 'just now', '5 min ago',
    '2 h ago', '3 d ago'."""
    seconds = max(0, int(now - parse_timestamp(stamp)))
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


def clock_time(stamp: str, now: float) -> str:
    """A timestamp as the local clock read it: '14:02' on ``now``'s day, '5 Dec 14:02' before."""
    moment = datetime.fromtimestamp(parse_timestamp(stamp))
    if moment.date() == datetime.fromtimestamp(now).date():
        return moment.strftime("%H:%M")
    return f"{moment.day} {moment.strftime('%b %H:%M')}"
