"""Published address ranges the classifier trusts: Apple's Mail Privacy
Protection egress ranges, loaded from the CSV Apple publishes (it cannot be
downloaded from here, so the user gives the file)."""

from pathlib import Path

from mailtracker.core.errors import ConfigError
from mailtracker.core.files import write_file_atomically
from mailtracker.core.paths import Home
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
                          mode=0o644, replace_existing=True)
    return len(networks)


def forget_apple_ranges(home: Home) -> bool:
    if home.apple_ranges_path.exists():
        home.apple_ranges_path.unlink()
        return True
    return False
