"""The pixel server's config file (``/etc/mailtracker/server.toml``): the settings
of ``mailtracker serve`` kept in one file rather than on the unit's command line.

``read_server_config`` gives the ``[server]`` table as ServerSettings field values
(only the keys the file sets; a flag on the command line overrides them);
``server_config_text`` writes one, with the comments a person editing it needs. The keys,
their types and comments are the settings table's (``settings.SETTINGS``).
"""

import sys
from pathlib import Path
from typing import Dict, Optional

import tomli_w

from mailtracker.core.errors import ConfigError
from mailtracker.server.settings import SETTINGS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on older Pythons only
    import tomli as tomllib

_TYPE_WORDS = {str: "a string", int: "a whole number", bool: "true or false", list: "a list"}
_BY_KEY = {key: setting for setting in SETTINGS for key in setting.keys}


def read_server_config(path: Path) -> Dict[str, object]:
    """The ``[server]`` settings in ``path`` as ServerSettings keyword arguments."""
    return {_BY_KEY[key].name: value for key, value in read_server_values(path).items()}


def read_server_values(path: Path) -> Dict[str, object]:
    """The ``[server]`` table of ``path``, checked, by each setting's key (an earlier key read as
    today's)."""
    doc = _load(path)
    server = doc.get("server", {})
    if not isinstance(server, dict):
        raise ConfigError(f"{path}: [server] must be a table")
    values = {}
    for key, value in server.items():
        setting = _BY_KEY.get(key)
        if setting is None:
            known = ", ".join(setting.key for setting in SETTINGS)
            raise ConfigError(f"{path}: unknown setting {key!r} in [server]; known: {known}")
        # bool is an int in Python: port = true must not pass as port 1.
        if not isinstance(value, setting.kind) or (isinstance(value, bool) and setting.kind is not bool):
            raise ConfigError(f"{path}: [server] {key} must be {_TYPE_WORDS[setting.kind]}, not {value!r}")
        if setting.kind is list and not all(isinstance(item, str) for item in value):
            raise ConfigError(f"{path}: [server] {key} must be a list of addresses")
        values[setting.key] = list(value) if setting.kind is list else value
    return values


def read_setup_domain(path: Path) -> Optional[str]:
    """The domain a previous setup-server wrote into ``[setup]``, if any."""
    setup = _load(path).get("setup", {})
    domain = setup.get("domain") if isinstance(setup, dict) else None
    return domain if isinstance(domain, str) and domain else None


def _load(path: Path) -> dict:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"no server config at {path} ('mailtracker setup-server' writes one)") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the server config {path}: {exc.strerror or exc}") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None


def server_config_text(values: Dict[str, object], domain: Optional[str]) -> str:
    """The whole file for ``values`` (file keys), commented, written by a real TOML writer."""
    lines = [
        "# mailtracker pixel server settings: 'mailtracker serve --config THIS-FILE'.",
        "# Written by 'mailtracker setup-server', which keeps what you change here.",
        "# After editing: systemctl restart mailtracker",
        "",
        "[server]",
    ]
    for setting in SETTINGS:
        if setting.key not in values:
            continue
        if setting.comment:
            lines.append(f"# {setting.comment}")
        lines.append(tomli_w.dumps({setting.key: values[setting.key]}).strip())
    if domain:
        lines += ["", "# The public name Caddy serves (setup-server reads it when run again).", "[setup]",
                  tomli_w.dumps({"domain": domain}).strip()]
    return "\n".join(lines) + "\n"
