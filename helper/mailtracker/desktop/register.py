"""register.csv, the user's view: one row per tag with its open counts.

The register is derived; the logs are the truth. It is replaced atomically
(temporary file, then rename), so a reader never sees half of it, and a
register that cannot be replaced (open in a spreadsheet on Windows) costs
nothing: the fold keeps its counts and writes it later.
"""

import csv
import os
from pathlib import Path
from typing import Dict, List, Sequence

from mailtracker.core.csvcodec import BOM, format_row, neutralise, restore
from mailtracker.core.errors import RegisterLockedError

REGISTER_COLUMNS = (
    "id", "short_id", "name", "subject", "recipients", "created", "status",
    "message_id", "opens", "first_open", "last_open", "hits", "self_hits", "machine_hits",
)
_OUTSIDE_TEXT = ("name", "subject", "recipients", "message_id")


def write_register(path: Path, rows: Sequence[Dict[str, str]], new_opens: int = 0) -> None:
    lines = [BOM + format_row(REGISTER_COLUMNS)]
    for row in rows:
        lines.append(format_row([
            neutralise(str(row.get(col, ""))) if col in _OUTSIDE_TEXT else str(row.get(col, ""))
            for col in REGISTER_COLUMNS
        ]))
    data = "".join(lines).encode("utf-8")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        kept = f"the {new_opens} new opens are kept" if new_opens else "nothing is lost"
        if isinstance(exc, PermissionError):
            raise RegisterLockedError(
                f"{path.name} is open in another program; {kept} and will be written "
                "when it is closed"
            ) from None
        raise RegisterLockedError(
            f"cannot write {path}: {exc.strerror or exc}; {kept} and will be written "
            "when this is fixed"
        ) from None


def read_register(path: Path) -> List[Dict[str, str]]:
    """The register as dicts (for tests and tools; the CLI reads the fold state)."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        for col in _OUTSIDE_TEXT:
            row[col] = restore(row.get(col, ""))
    return rows


def display_name(row: Dict[str, str]) -> str:
    """Who a tracked email went to, as people read it: name, else recipients, else the tag."""
    return row.get("name") or row.get("recipients") or f"tag {row['short_id']}"
