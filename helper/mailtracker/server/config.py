"""The pixel server's config file (``/etc/mailtracker/server.toml``): the settings
of ``mailtracker serve`` kept in one file rather than on the unit's command line.

``read_server_config`` gives the ``[server]`` table as ServerSettings field values
(only the keys the file sets; a flag on the command line overrides them);
``server_config_text`` writes one, with the comments a person editing it needs.
"""

import sys
from pathlib import Path
from typing import Dict, Optional

import tomli_w

from mailtracker.core.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on older Pythons only
    import tomli as tomllib

# The file's key, its ServerSettings field, and the types it may hold. The key is the
# command-line option's name (trusted_proxy, repeatable there, is a list here).
KEYS = {
    "host": ("host", (str,)),
    "port": ("port", (int,)),
    "hits_dir": ("hits_dir", (str,)),
    "server_id": ("server_id", (str,)),
    "trusted_proxy": ("trusted_proxies", (list,)),
    "client_address": ("client_address", (str,)),
    "serve_hits": ("serve_hits", (bool,)),
    "retention_days": ("retention_days", (int,)),
    "secret_file": ("secret_file", (str,)),
    "workers": ("workers", (int,)),
    "path_prefix": ("path_prefix", (str,)),
    "origins": ("origins_file", (str,)),
}

_TYPE_WORDS = {str: "a string", int: "a whole number", bool: "true or false", list: "a list"}

# Read by 'setup-server' only (it remembers the domain so an upgrade can re-run it bare).
SETUP_KEYS = {"domain": (str,)}


def read_server_config(path: Path) -> Dict[str, object]:
    """The ``[server]`` settings in ``path`` as ServerSettings keyword arguments."""
    return {KEYS[key][0]: value for key, value in read_server_values(path).items()}


def read_server_values(path: Path) -> Dict[str, object]:
    """The ``[server]`` table of ``path``, checked, with the file's own key names."""
    doc = _load(path)
    server = doc.get("server", {})
    if not isinstance(server, dict):
        raise ConfigError(f"{path}: [server] must be a table")
    values = {}
    for key, value in server.items():
        if key not in KEYS:
            raise ConfigError(f"{path}: unknown setting {key!r} in [server]; known: {', '.join(KEYS)}")
        types = KEYS[key][1]
        # bool is an int in Python: port = true must not pass as port 1.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise ConfigError(f"{path}: [server] {key} must be {_TYPE_WORDS[types[0]]}, not {value!r}")
        if key == "trusted_proxy" and not all(isinstance(item, str) for item in value):
            raise ConfigError(f"{path}: [server] trusted_proxy must be a list of addresses")
        values[key] = list(value) if key == "trusted_proxy" else value
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


_COMMENTS = {
    "host": "Where the server listens: loopback, behind Caddy on this machine.",
    "port": None,
    "hits_dir": "The hits-*.csv files: what Syncthing, rsync or the desktop's pull carries home.",
    "server_id": "Names this instance's hits files; give every instance its own.",
    "trusted_proxy": "X-Forwarded-For is taken only from these addresses (Caddy).",
    "client_address": ("How a client address is stored: truncated (/24, /48), full or hash. hash hides it "
                       "only from whoever lacks the secret: with it, an IPv4 address is found from its "
                       "hash by trying all 2^32 (hours on one PC); truncated never stores the last octet."),
    "serve_hits": "Serve the hits files at /hits/ to the desktop's 'mailtracker pull'.",
    "retention_days": "Delete this server's hits files older than this many days (0 keeps all).",
    "secret_file": "The shared secret (root only; the systemd unit hands the service a copy).",
    "workers": "Worker processes, each writing its own hits file.",
    "path_prefix": "Only shown at start-up: any prefix is answered, so old links keep working.",
    "origins": "A network origins snapshot from 'mailtracker ranges update' (empty: the shipped one).",
}


def server_config_text(values: Dict[str, object], domain: Optional[str]) -> str:
    """The whole file for ``values`` (file keys), commented, written by a real TOML writer."""
    lines = [
        "# mailtracker pixel server settings: 'mailtracker serve --config THIS-FILE'.",
        "# Written by 'mailtracker setup-server', which keeps what you change here.",
        "# After editing: systemctl restart mailtracker",
        "",
        "[server]",
    ]
    for key in KEYS:
        if key not in values:
            continue
        if _COMMENTS.get(key):
            lines.append(f"# {_COMMENTS[key]}")
        lines.append(tomli_w.dumps({key: values[key]}).strip())
    if domain:
        lines += ["", "# The public name Caddy serves (setup-server reads it when run again).", "[setup]",
                  tomli_w.dumps({"domain": domain}).strip()]
    return "\n".join(lines) + "\n"
