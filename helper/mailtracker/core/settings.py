"""The settings in ``config.toml``: their defaults, their checks, and creating a home.
"""

import re
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

import tomli_w

from mailtracker.core.errors import ConfigError, NotInitialisedError
from mailtracker.core.files import write_file_atomically
from mailtracker.core.paths import Home
from mailtracker.core.secret import create_secret

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on older Pythons only
    import tomli as tomllib

CLIENT_ADDRESS_MODES = ("full", "truncated", "hash")


_PREFIX_RE = re.compile(r"^(/[A-Za-z0-9._~-]+)*$")


@dataclass(frozen=True)
class Config:
    """The settings in ``config.toml``; every field has a working default."""

    server_url: str = "http://127.0.0.1:56789"
    path_prefix: str = "/p"
    hits_dir: str = ""
    client_address: str = "truncated"
    delivery_window_s: float = 10.0
    repeat_window_s: float = 60.0
    # HTTP pull (see pull.py): the servers to pull hits-*.csv from; live (the server holds each
    # request until a hit arrives), else every pull_interval_s.
    pull_urls: tuple = ()
    pull_interval_s: float = 30.0
    pull_live: bool = True
    # Several computers ('devices join'): each pushes its own device logs to the pull servers
    # and pulls the others' there (desktop/devicesync.py). Off unless chosen: the logs hold
    # the tracked mails' names, subjects and recipients.
    devices_via_server: bool = False

    def pixel_url(self, token: str) -> str:
        return f"{self.pixel_base()}{token}.gif"

    def pixel_base(self) -> str:
        """The start every pixel URL of this home shares, ending in a slash."""
        return f"{self.server_url.rstrip('/')}{self.path_prefix}/"

    def validated(self) -> "Config":
        path_prefix = validate_path_prefix(self.path_prefix)
        return replace(
            self,
            server_url=_without_prefix(validate_server_url(self.server_url), path_prefix),
            path_prefix=path_prefix,
            client_address=validate_client_address(self.client_address),
            pull_urls=validate_pull_urls(self.pull_urls),
        )


def _without_prefix(server_url: str, path_prefix: str) -> str:
    """https://h/p with the prefix /p is https://h: the pixel base would read /p/p/ otherwise.

    People paste the start of a pixel URL as the server's address; the server answers any
    prefix (the token is the last segment), so dropping the repeat changes no link's fate.
    """
    if path_prefix and urlsplit(server_url).path.rstrip("/").endswith(path_prefix):
        return server_url[: len(server_url.rstrip("/")) - len(path_prefix)]
    return server_url


def validate_server_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"server URL {url!r} is not an http(s) URL with a host name; "
            "give the public address of your pixel server, e.g. https://t.example.org"
        )
    if parts.query or parts.fragment:
        raise ConfigError(f"server URL {url!r} must not have a query or fragment")
    _check_port(url, parts, "server URL")
    return url.strip().rstrip("/")


def _check_port(url: str, parts, what: str) -> None:
    try:
        parts.port
    except ValueError:
        raise ConfigError(f"{what} {url!r} has a port that is not a number from 1 to 65535") from None
    if parts.port == 0:
        raise ConfigError(f"{what} {url!r} has port 0, which no server listens on")


def validate_pull_urls(urls) -> tuple:
    """``pull_url``: one URL, a list of them (one per server), or empty for no pulling."""
    if isinstance(urls, str):
        urls = [urls] if urls.strip() else []
    if not isinstance(urls, (list, tuple)) or not all(isinstance(url, str) for url in urls):
        raise ConfigError("[desktop] pull_url must be a URL or a list of URLs")
    checked = []
    for url in urls:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ConfigError(
                f"pull URL {url!r} is not an http(s) URL with a host name, e.g. https://t.example.org"
            )
        _check_port(url, parts, "pull URL")
        checked.append(url.strip().rstrip("/"))
    return tuple(checked)


def validate_path_prefix(prefix: str) -> str:
    prefix = "/" + prefix.strip().strip("/") if prefix.strip().strip("/") else ""
    if not _PREFIX_RE.match(prefix) or any(seg in (".", "..") for seg in prefix.split("/")):
        raise ConfigError(
            f"path prefix {prefix!r} may hold only letters, digits and . _ ~ - between slashes"
        )
    return prefix


def validate_client_address(mode: str) -> str:
    if mode not in CLIENT_ADDRESS_MODES:
        raise ConfigError(
            f"client_address {mode!r} is not one of {', '.join(CLIENT_ADDRESS_MODES)}"
        )
    return mode


def load_config(home: Home) -> Config:
    """Read the home's config, or fail with how to create it."""
    try:
        raw = home.config_path.read_bytes()
    except FileNotFoundError:
        raise NotInitialisedError(
            f"no mailtracker home at {home.config_dir}; run 'mailtracker init' first"
        ) from None
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{home.config_path} is not valid TOML: {exc}") from None
    pixel = doc.get("pixel", {})
    desktop = doc.get("desktop", {})
    server = doc.get("server", {})
    counting = doc.get("counting", {})
    defaults = Config()
    return Config(
        server_url=str(pixel.get("server_url", defaults.server_url)),
        path_prefix=str(pixel.get("path_prefix", defaults.path_prefix)),
        hits_dir=str(desktop.get("hits_dir", defaults.hits_dir)),
        client_address=str(server.get("client_address", defaults.client_address)),
        delivery_window_s=_seconds(counting, "delivery_window_s", defaults.delivery_window_s),
        repeat_window_s=_seconds(counting, "repeat_window_s", defaults.repeat_window_s),
        pull_urls=desktop.get("pull_url", defaults.pull_urls),
        pull_interval_s=_pull_interval(desktop.get("pull_interval_s", defaults.pull_interval_s)),
        pull_live=_flag("pull_live", desktop.get("pull_live", defaults.pull_live)),
        devices_via_server=_flag("devices_via_server", desktop.get("devices_via_server", defaults.devices_via_server)),
    ).validated()


def _pull_interval(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError("[desktop] pull_interval_s must be a number of seconds above 0")
    return float(value)


def _flag(key: str, value) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"[desktop] {key} must be true or false")
    return value


def _seconds(section: dict, key: str, default: float) -> float:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(f"[counting] {key} must be a number of seconds, 0 or more")
    return float(value)


def save_config(home: Home, config: Config) -> None:
    # Each value by a real TOML writer (comments stay ours): json.dumps wrote an emoji as a
    # surrogate pair escape, which TOML forbids, and the home no longer loaded.
    values = {key: _toml_value(value) for key, value in asdict(config).items()}
    text = (
        "# mailtracker settings. Edit freely; 'mailtracker init' keeps what is here.\n"
        "\n[pixel]\n"
        "# The public address of your pixel server, as recipients' mail clients reach it.\n"
        f"server_url = {values['server_url']}\n"
        "# The path before /<token>.gif in every pixel URL minted from now on.\n"
        f"path_prefix = {values['path_prefix']}\n"
        "\n[desktop]\n"
        "# Where the hits-*.csv logs arrive (Syncthing folder, rsync target...). Empty: <home>/hits\n"
        f"hits_dir = {values['hits_dir']}\n"
        "# Pull hits over HTTPS from the server (serve --serve-hits): its URL, or a list of them.\n"
        "# Empty: hits arrive by Syncthing, rsync or another tool instead.\n"
        f"pull_url = {_toml_urls(config.pull_urls)}\n"
        "# Live: the server holds each pull request until a hit arrives (opens arrive within a\n"
        "# second or two; an idle desktop asks about 90 times an hour). false: pull on the interval.\n"
        f"pull_live = {values['pull_live']}\n"
        "# Seconds between pulls when not live (pull_live = false, or a server too old to hold\n"
        "# requests); a pull that finds nothing new costs one small request.\n"
        f"pull_interval_s = {values['pull_interval_s']}\n"
        "# Several computers ('mailtracker devices join'): true lets them meet at the pull servers:\n"
        "# each pushes its own logs there (the names, subjects and recipients of its tracked mail)\n"
        "# and pulls the others'. false: share the devices folder with Syncthing or another tool.\n"
        f"devices_via_server = {values['devices_via_server']}\n"
        "\n[server]\n"
        "# How the pixel server stores a client address: full, truncated (/24, /48) or hash.\n"
        "# hash hides it only from whoever lacks the secret: with it (this desktop and the server\n"
        "# have it), an IPv4 address is found from its hash by trying all 2^32, in hours.\n"
        f"client_address = {values['client_address']}\n"
        "\n[counting]\n"
        "# Fetches this soon after a send come from mail servers and scanners, not people.\n"
        f"delivery_window_s = {values['delivery_window_s']}\n"
        "# The same client fetching again within this many seconds is one open.\n"
        f"repeat_window_s = {values['repeat_window_s']}\n"
    )
    write_file_atomically(home.config_path, text.encode("utf-8"), mode=0o600, replace_existing=True)


def _toml_value(value) -> str:
    return tomli_w.dumps({"v": list(value) if isinstance(value, tuple) else value})[len("v = "):].rstrip("\n")


def _toml_urls(urls: tuple) -> str:
    return _toml_value(urls[0] if len(urls) == 1 else "" if not urls else list(urls))


def init_home(
    home: Home,
    server_url: Optional[str] = None,
    path_prefix: Optional[str] = None,
    hits_dir: Optional[str] = None,
    force: bool = False,
    pull_url: Optional[str] = None,
) -> dict:
    """Create or update a home; returns what was done, for the CLI to report."""
    try:
        config = load_config(home)
        created_config = False
    except NotInitialisedError:
        config = Config()
        created_config = True
    changes = {}
    if server_url is not None:
        changes["server_url"] = server_url
    if path_prefix is not None:
        changes["path_prefix"] = path_prefix
    if hits_dir is not None:
        changes["hits_dir"] = str(Path(hits_dir).expanduser().resolve())
    if pull_url is not None:
        changes["pull_urls"] = pull_url
    config = replace(config, **changes).validated()
    for folder in (home.data_dir, home.config_dir, home.state_dir):
        # The user's alone (it holds names and addresses), an older home too.
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.chmod(0o700)
    home.hits_dir(config).mkdir(parents=True, exist_ok=True)
    save_config(home, config)
    new_secret = create_secret(home, force=force)
    return {
        "config": config,
        "created_config": created_config,
        "new_secret": new_secret,
    }

