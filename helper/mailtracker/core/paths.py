"""Where a mailtracker home keeps its files.

A home is one directory (``--home`` or ``MAILTRACKER_HOME``) or, by default, the
platform's standard places: settings and the secret in the user config dir,
logs and the register in the user data dir.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import platformdirs

if TYPE_CHECKING:  # the settings name paths of a home; only the type is needed here
    from mailtracker.core.settings import Config

APP_NAME = "mailtracker"


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
    def tags_path(self) -> Path:
        return self.data_dir / "tags.csv"

    @property
    def self_fetches_path(self) -> Path:
        return self.data_dir / "self-fetches.csv"

    @property
    def links_path(self) -> Path:
        return self.data_dir / "links.csv"

    @property
    def replies_path(self) -> Path:
        """Replies and bounces to tracked mail, as the add-on judged them (desktop.replies)."""
        return self.data_dir / "replies.csv"

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

