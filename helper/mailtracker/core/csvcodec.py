"""The spreadsheet-safe CSV encoding every mailtracker file uses: Excel dialect,
UTF-8 with a BOM, a header row, and outside text neutralised so that no
spreadsheet runs it as a formula.
"""

from typing import Sequence

BOM = "\ufeff"


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")
# What a field that ``csv_field`` quotes holds (any of these characters; it tests them one by one).
_QUOTED_CHARACTERS = ',";\r\n'


def _one_of(characters: str) -> str:
    """A regular expression's class of these characters (Python's re and Rust's regex alike)."""
    return "[" + "".join("\\" + char if char in "\\]^-" else char for char in characters) + "]"


# The same two rules as regular expressions, for writing a whole column at once (polars:
# ``register.csv_lines``): a cell that ``neutralise`` changes, and one that ``csv_field`` quotes.
FORMULA_START_PATTERN = "^" + _one_of("".join(_FORMULA_STARTS))
QUOTED_PATTERN = _one_of(_QUOTED_CHARACTERS)


def neutralise(text: str) -> str:
    """Make outside text inert in a spreadsheet; ``restore`` undoes it exactly."""
    if text.startswith(_FORMULA_STARTS):
        return "'" + text
    return text


def restore(text: str) -> str:
    return text[1:] if text.startswith("'") else text


def csv_field(text: str) -> str:
    """One Excel-dialect CSV field, quoted when it must be: as csv.writer does, and also
    when it holds a ';' (a spreadsheet in a locale whose list separator is ';' splits
    an unquoted field there; any CSV reader reads the quoted field back the same)."""
    if "," in text or '"' in text or ";" in text or "\r" in text or "\n" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


def format_row(fields: Sequence[str]) -> str:
    """One Excel-dialect CSV line, as ``csv.writer`` would write it, but faster."""
    return ",".join(csv_field(field) for field in fields) + "\r\n"


def header_line(columns: Sequence[str]) -> bytes:
    return (BOM + format_row(columns)).encode("utf-8")


def strip_bom(line: bytes) -> bytes:
    return line[3:] if line.startswith(b"\xef\xbb\xbf") else line

