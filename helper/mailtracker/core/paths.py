"""Where a mailtracker home keeps its files.

A home is one directory (``--home`` or ``MAILTRACKER_HOME``) or, by default, the
platform's standard places: settings and the secret in the user config dir,
logs and the register in the user data dir.

The desktop logs (tags, self-fetches, links, replies: one per ``DESKTOP_LOGS`` kind)
have one writer each. A home used from one computer keeps them as ``<kind>.csv`` in
the data dir. A home that is one of a person's several computers has a device id
(``device_path``) and writes ``devices/<kind>-<device>.csv``; the devices folder is
synced between the computers and every computer reads every file in it, as hits
files carry a server id. The names are made and told apart here only.
"""

import os
import re
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import platformdirs

if TYPE_CHECKING:  # the settings name paths of a home; only the type is needed here
    from mailtracker.core.settings import Config

APP_NAME = "mailtracker"
DEVICES_DIR = "devices"
# The desktop logs that one computer writes and every computer of the person reads.
DESKTOP_LOGS = ("tags", "self-fetches", "links", "replies")
# A device id: the computer's name cut to a few safe characters, and a random part
# that keeps two computers of the same name apart.
DEVICE_ID = re.compile(r"[a-z0-9]{1,24}-[a-z2-7]{6}")
# Syncthing keeps a file that changed on two sides at once as <stem>.sync-conflict-<when>-<by><ext>.
CONFLICT_MARK = ".sync-conflict-"
_DEVICE_LOG = re.compile(r"(%s)-(%s)(\.sync-conflict-[A-Za-z0-9-]{1,64})?\.csv" % (
    "|".join(re.escape(kind) for kind in DESKTOP_LOGS), DEVICE_ID.pattern))


@dataclass(frozen=True)
class DeviceLog:
    """One file of the devices folder, by its name: whose log of which kind, and
    whether it is a sync tool's conflict copy of that log."""

    kind: str
    device: str
    conflict: bool

    @classmethod
    def parse(cls, name: str) -> Optional["DeviceLog"]:
        """The log a file name is, or None for any other name."""
        match = _DEVICE_LOG.fullmatch(name)
        if match is None:
            return None
        return cls(match.group(1), match.group(2), match.group(3) is not None)

    @property
    def main_name(self) -> str:
        """The name of the log itself (a conflict copy's original)."""
        return device_log_name(self.kind, self.device)


def is_device_log_name(name: str) -> bool:
    """A computer's own log, by name (never a conflict copy, a dot file or a path): what the
    pixel server keeps and the computers push and pull."""
    found = DeviceLog.parse(name)
    return found is not None and not found.conflict


def device_log_name(kind: str, device: str) -> str:
    return f"{kind}-{device}.csv"


def new_device_id(hostname: Optional[str] = None) -> str:
    """A fresh device id: ``laptop-k3f9qa`` for a computer named 'Laptop.local'."""
    name = (hostname if hostname is not None else socket.gethostname()).split(".")[0].lower()
    name = re.sub(r"[^a-z0-9]", "", name)[:24] or "computer"
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    return f"{name}-{''.join(secrets.choice(alphabet) for _ in range(6))}"


ENV_HOME = "MAILTRACKER_HOME"


@dataclass(frozen=True)
class Home:
    """The directories of one mailtracker installation and the files in them."""

    data_dir: Path
    config_dir: Path

    @classmethod
    def locate(cls, override: Optional[str] = None) -> "Home":
        root = override or os.environ.get(ENV_HOME)
        if root:
            path = Path(root).expanduser().resolve()
            return cls(data_dir=path, config_dir=path)
        return cls(
            data_dir=Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)),
            config_dir=Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)),
        )

    @property
    def config_path(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def secret_path(self) -> Path:
        return self.config_dir / "secret"

    @property
    def device_path(self) -> Path:
        """This computer's device id, once the home is one of several computers."""
        return self.config_dir / "device-id"

    @property
    def device(self) -> str:
        """This computer's device id; '' for a home used from one computer. Read at each
        use: a running host starts writing its device's logs as soon as the id is made."""
        try:
            text = self.device_path.read_text(encoding="ascii").strip()
        except (FileNotFoundError, UnicodeDecodeError):
            return ""
        return text if DEVICE_ID.fullmatch(text) else ""

    @property
    def devices_dir(self) -> Path:
        """The desktop logs of every computer of the person (the folder they sync)."""
        return self.data_dir / DEVICES_DIR

    def legacy_log_path(self, kind: str) -> Path:
        """The log of a home used from one computer (and of every home before devices)."""
        return self.data_dir / f"{kind}.csv"

    def log_path(self, kind: str) -> Path:
        """Where this computer appends a desktop log of ``kind`` (one of DESKTOP_LOGS)."""
        device = self.device
        if device:
            return self.devices_dir / device_log_name(kind, device)
        return self.legacy_log_path(kind)

    def log_paths(self, kind: str, copies: bool = True) -> List[Path]:
        """Every file of ``kind`` to read, each log before its conflict copies (without
        them when not ``copies``): this home's single-computer log, then each computer's
        log in the devices folder."""
        paths = [self.legacy_log_path(kind)]
        try:
            with os.scandir(self.devices_dir) as entries:
                names = [entry.name for entry in entries if entry.is_file(follow_symlinks=False)]
        except (FileNotFoundError, NotADirectoryError):
            return paths
        logs = [(name, DeviceLog.parse(name)) for name in names]
        paths += [self.devices_dir / name for name, found in
                  sorted(logs, key=lambda item: (item[1].main_name, item[1].conflict, item[0])
                         if item[1] else ("", False, item[0]))
                  if found is not None and found.kind == kind and (copies or not found.conflict)]
        return paths

    @property
    def tags_path(self) -> Path:
        return self.log_path("tags")

    @property
    def self_fetches_path(self) -> Path:
        return self.log_path("self-fetches")

    @property
    def links_path(self) -> Path:
        return self.log_path("links")

    @property
    def replies_path(self) -> Path:
        """Replies and bounces to tracked mail, as the add-on judged them (desktop.replies)."""
        return self.log_path("replies")

    @property
    def fold_problem_path(self) -> Path:
        """Written by the daemon while its folds fail, removed when one works again."""
        return self.state_dir / "fold-problem.json"

    @property
    def origins_path(self) -> Path:
        """A snapshot of network origins fresher than the package's ('ranges update')."""
        return self.state_dir / "origins-snapshot.csv"

    @property
    def apple_ranges_path(self) -> Path:
        return self.state_dir / "apple-egress-ranges.txt"

    @property
    def register_path(self) -> Path:
        return self.data_dir / "register.csv"

    @property
    def state_dir(self) -> Path:
        return self.data_dir / "state"

    def hits_dir(self, config: "Config") -> Path:
        if config.hits_dir:
            return Path(config.hits_dir).expanduser()
        return self.data_dir / "hits"

