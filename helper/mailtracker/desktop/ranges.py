"""The network ranges the classifier trusts, on this machine: the snapshot of the
providers' published lists that ships in the package or that ``ranges update``
fetched (``core.origins``), and a copy of Apple's relay list loaded by hand."""

import json
import time
import uuid
from datetime import date
from pathlib import Path
from typing import List, Optional, Tuple

from mailtracker.core.errors import ConfigError
from mailtracker.core.files import write_file_atomically
from mailtracker.core.paths import Home
from mailtracker.core.origins import (Origins, SourceUpdate, format_snapshot, table_bytes, table_path_of,
                                      update_origins)
from mailtracker.desktop.classify import parse_ranges_csv


def load_apple_ranges(home: Home, source: Path) -> int:
    """Validate and store the ranges; returns how many. The next fold relabels."""
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {source}: {exc.strerror or exc}") from None
    try:
        networks = parse_ranges_csv(text)
    except ValueError as exc:
        raise ConfigError(f"{source} is not Apple's egress range CSV: {exc}") from None
    if not networks:
        raise ConfigError(f"{source} holds no address ranges")
    write_file_atomically(home.apple_ranges_path, ("\n".join(networks) + "\n").encode("ascii"),
                          mode=0o600, replace_existing=True)
    return len(networks)


def forget_ranges(home: Home) -> bool:
    """Remove Apple's loaded ranges and the updated snapshot; True when anything was there."""
    removed = False
    for path in (home.apple_ranges_path, home.origins_path, table_path_of(home.origins_path),
                 _validators_path(home)):
        if path.exists():
            path.unlink()
            removed = True
    return removed


def _validators_path(home: Home) -> Path:
    return home.state_dir / "origins-validators.json"


def update_ranges(home: Home, mirror: str = "", output: Optional[Path] = None,
                  session=None) -> Tuple[List[SourceUpdate], Optional[Path]]:
    """Fetch the providers' lists into a new snapshot; (what happened per source, where the
    snapshot was written, or None when nothing could be fetched)."""
    from mailtracker.desktop.client import session as shared_session

    path = output or home.origins_path
    validators_path = _validators_path(home)
    try:
        validators = json.loads(validators_path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        validators = {}
    # Microsoft asks each installation for a request id of its own.
    client_id = validators.setdefault("m365-client-id", str(uuid.uuid4()))
    today = date.today().isoformat()
    origins, reports = update_origins(Origins.load(path), session or shared_session(), validators,
                                      today, client_id, mirror)
    if all(report.outcome == "failed" for report in reports):
        return reports, None
    if any(report.outcome == "updated" for report in reports) or not path.exists():
        text = format_snapshot(origins, today)
        write_file_atomically(path, text.encode("utf-8"), mode=0o644, replace_existing=True)
        # Its lookup table beside it, which the pixel server's workers read instead.
        write_file_atomically(table_path_of(path), table_bytes(text), mode=0o644, replace_existing=True)
    write_file_atomically(validators_path, json.dumps(validators).encode("utf-8"), mode=0o644,
                          replace_existing=True)
    return reports, path


def describe_ranges(home: Home, now: Optional[float] = None) -> List[str]:
    """What 'ranges status' prints: where the ranges come from and how old each source is."""
    now = time.time() if now is None else now
    updated = home.origins_path.exists()
    origins = Origins.load(home.origins_path)
    lines = [f"Network origins: {'updated with ranges update, ' + str(home.origins_path) if updated else 'the snapshot shipped with mailtracker'} "
             f"({len(origins)} ranges)."]
    for source in sorted(origins.sources, key=lambda s: s.id):
        try:
            age = int((now - time.mktime(time.strptime(source.date[:10], "%Y-%m-%d"))) // 86400)
            age_text = f"{age} days old"
        except ValueError:
            age_text = "age unknown"
        lines.append(f"  {source.id:<13} {source.date:<10}  {age_text:<14} {source.url}")
    if home.apple_ranges_path.exists():
        count = len(home.apple_ranges_path.read_text().split())
        lines.append(f"Apple relay ranges loaded by hand: {count} ({home.apple_ranges_path}).")
    lines.append("'mailtracker ranges update' fetches fresh copies (only lists that changed are downloaded).")
    return lines
