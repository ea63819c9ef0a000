"""Text from outside (user agents, subjects, names, a reply's sender and headers) made safe
to store and to show: the one owner of what counts as a control character, and of what counts
as a number written in digits.

C0, DEL and C1 go (CSI U+009B and OSC U+009D drive a terminal as ESC [ and ESC ] do), and
so do the Unicode line and paragraph separators, which break a line in editors and logs.
"""

import re

CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: str) -> str:
    """``text`` with every control character replaced by a space (its length unchanged)."""
    return CONTROL_CHARACTERS.sub(" ", text)


def one_line(text: str, limit: int) -> str:
    """``text`` as one line: control characters and runs of white space become one space,
    cut to ``limit`` characters."""
    return " ".join(printable(text).split())[:limit]


def is_number(text: str) -> bool:
    """Whether ``text`` is a number int() reads, written in ASCII digits only: ``str.isdigit``
    also says yes to '²' and other Unicode digits, which int() refuses (ValueError)."""
    return text.isascii() and text.isdigit()
