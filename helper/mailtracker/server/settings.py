"""The pixel server's settings, in one table: ``ServerSettings``.

Each field of ``ServerSettings`` is one setting and says everything about it: its type
and the default of ``mailtracker serve``, its key in server.toml, its flag, the comment
above it in that file, and the value ``setup-server`` starts a VPS with. ``SETTINGS``
reads them back as records: ``config`` writes and reads the file by them, the CLI makes
``serve``'s flags from them, ``setup-server`` its first file. ``resolve`` builds the
settings of one run from the flags, a config file and the home, in that order.
"""

import ipaddress
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from mailtracker.core.contract import SERVER_ID_RE
from mailtracker.core.errors import NotInitialisedError, ServerError
from mailtracker.core.paths import Home

# Where setup-server keeps the secret and the hits on a VPS.
VPS_SECRET = "/etc/mailtracker/secret"
VPS_HITS_DIR = "/var/lib/mailtracker/hits"
_NOT_WRITTEN = object()


def _setting(default, flag_help: str, comment: str = "", vps=_NOT_WRITTEN, key: str = "",
             flag: str = "", old_names: Tuple[str, ...] = (), metavar: Optional[str] = None,
             choices: Optional[Tuple[str, ...]] = None):
    """One field of the table. ``vps``: what setup-server writes into a new server.toml (left
    out: not written); ``key`` and ``flag``: when not the field's name; ``old_names``: earlier
    keys (and their flags) still read."""
    meta = {"help": flag_help, "comment": comment, "vps": vps, "key": key, "flag": flag,
            "old_names": old_names, "metavar": metavar, "choices": choices}
    if isinstance(default, list):
        return field(default_factory=default.copy, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ServerSettings:
    """How one pixel server instance runs; passed to its worker processes as JSON."""

    host: str = _setting("127.0.0.1", "address to listen on (default 127.0.0.1)",
                         "Where the server listens: loopback, behind Caddy on this machine.", vps="127.0.0.1")
    port: int = _setting(56789, "port to listen on (default 56789)", vps=56789)
    hits_dir: str = _setting("", "where to write hits (default: the home's)",
                             "The hits-*.csv files: what Syncthing, rsync or the desktop's pull carries home.",
                             vps=VPS_HITS_DIR, metavar="DIR")
    # setup-server names a new VPS's after its domain (setup.server_id_for).
    server_id: str = _setting("pixel", "names this instance's hits files (default pixel)",
                              "Names this instance's hits files; give every instance its own.")
    trusted_proxies: List[str] = _setting(
        [], "take X-Forwarded-For only from this address or network (repeatable)",
        "X-Forwarded-For is taken only from these addresses (Caddy).", vps=["127.0.0.1"],
        old_names=("trusted_proxy",), metavar="ADDR")
    client_address: str = _setting(
        "truncated", "how client addresses are stored (default: the config's, else truncated); hash "
        "hides an address only from whoever lacks the secret: with it, an IPv4 address is found by "
        "trying all 2^32",
        ("How a client address is stored: truncated (/24, /48), full or hash. hash hides it only from "
         "whoever lacks the secret: with it, an IPv4 address is found from its hash by trying all 2^32 "
         "(hours on one PC); truncated never stores the last octet."), vps="truncated",
        choices=("full", "truncated", "hash"))
    serve_hits: bool = _setting(
        False, "serve the hits files read-only at /hits/ to the desktop's 'pull' (bearer token derived "
        "from the secret)", "Serve the hits files at /hits/ to the desktop's 'mailtracker pull'.", vps=False)
    devices_dir: str = _setting(
        "", "where the device logs the person's computers push are kept (with --serve-hits; default: "
        "device-logs beside the hits folder)",
        "With serve_hits: the device logs your computers push (empty: device-logs beside the hits folder).",
        metavar="DIR")
    retention_days: int = _setting(
        0, "delete this server's hits files dated more than N days ago (default 0: keep all)",
        "Delete this server's hits files older than this many days (0 keeps all).", vps=90, metavar="N")
    secret_file: str = _setting("", "the shared secret (default: the home's)",
                                "The shared secret (root only; the systemd unit hands the service a copy).",
                                vps=VPS_SECRET, metavar="FILE")
    workers: int = _setting(1, "worker processes, each with its own file (default 1)",
                            "Worker processes, each writing its own hits file.")
    path_prefix: str = _setting("/p", "shown in the start-up message; any prefix is accepted so old links "
                                "keep working", "Only shown at start-up: any prefix is answered, so old "
                                "links keep working.", metavar="/p")
    origins_file: str = _setting(
        "", "network origins snapshot written by 'ranges update' (default: the home's if there is one, "
        "else the one shipped with mailtracker)",
        "A network origins snapshot from 'mailtracker ranges update' (empty: the shipped one).",
        key="origins", metavar="FILE")

    @property
    def device_logs_dir(self) -> str:
        """The folder of the pushed device logs: beside the hits folder, never in it (the hits
        listing, retention and a sync tool sharing the hits folder must never see them)."""
        return self.devices_dir or str(Path(self.hits_dir).parent / "device-logs")

    def validated(self) -> "ServerSettings":
        if not (self.hits_dir and self.secret_file):
            raise ServerError("the server needs a hits folder and a secret file (--hits-dir, --secret-file)")
        if not SERVER_ID_RE.match(self.server_id):
            raise ServerError(
                f"server id {self.server_id!r} may hold only letters, digits, '_' and '.', "
                "up to 63 characters (it becomes part of a file name)"
            )
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ServerError(f"trusted proxy {proxy!r} is not an IP address or network") from None
        if self.workers < 1:
            raise ServerError("--workers must be 1 or more")
        if self.serve_hits and Path(self.device_logs_dir).resolve() == Path(self.hits_dir).resolve():
            raise ServerError("the device logs need a folder of their own, not the hits folder (--devices-dir)")
        if self.retention_days < 0:
            raise ServerError("--retention-days must be 1 or more (or 0: keep every hits file)")
        return self


@dataclass(frozen=True)
class Setting:
    """One row of the table, as the file, the flags and setup-server read it."""

    name: str
    kind: type  # str, int, bool, or list (of addresses)
    default: object
    help: str
    comment: str
    vps: object
    key: str
    flag: str
    old_names: Tuple[str, ...]
    metavar: Optional[str]
    choices: Optional[Tuple[str, ...]]

    @property
    def keys(self) -> Tuple[str, ...]:
        """Its key in server.toml, then the earlier ones still read."""
        return (self.key, *self.old_names)

    @property
    def flags(self) -> Tuple[str, ...]:
        """Its flag, then the earlier ones still taken."""
        return (self.flag, *(f"--{name.replace('_', '-')}" for name in self.old_names))


def _row(f) -> Setting:
    meta = f.metadata
    key = meta["key"] or f.name
    default = f.default_factory() if callable(f.default_factory) else f.default
    return Setting(name=f.name, kind=list if f.type == List[str] else f.type, default=default,
                   help=meta["help"], comment=meta["comment"], vps=meta["vps"], key=key,
                   flag=meta["flag"] or f"--{key.replace('_', '-')}", old_names=meta["old_names"],
                   metavar=meta["metavar"], choices=meta["choices"])


SETTINGS: Tuple[Setting, ...] = tuple(_row(f) for f in fields(ServerSettings))


def vps_values() -> Dict[str, object]:
    """What setup-server writes into a new server.toml, by file key (the server id aside)."""
    return {setting.key: setting.vps for setting in SETTINGS if setting.vps is not _NOT_WRITTEN}


def resolve(given: Dict[str, object], config_file: Optional[Path], home: Home) -> ServerSettings:
    """The settings of one run from, in this order: ``given`` (the flags that were given, by
    field name), ``config_file``'s, the home's config, the defaults."""
    from mailtracker.core.settings import load_config
    from mailtracker.server.config import read_server_config

    values = read_server_config(config_file) if config_file else {}
    values.update({name: value for name, value in given.items() if value is not None})
    if not (values.get("secret_file") and values.get("hits_dir")):
        # Only what the flags and the file leave open comes from the home, so a VPS with
        # a server config needs no desktop home at all.
        config = load_config(home)
        values.setdefault("hits_dir", str(home.hits_dir(config)))
        values.setdefault("secret_file", str(home.secret_path))
    else:
        try:
            config = load_config(home)
        except NotInitialisedError:
            config = None
    if config is not None:
        values.setdefault("path_prefix", config.path_prefix)
        values.setdefault("client_address", config.client_address)
    if not values.get("origins_file"):
        values["origins_file"] = str(home.origins_path) if home.origins_path.exists() else ""
    if values.get("devices_dir"):
        values["devices_dir"] = str(Path(values["devices_dir"]).expanduser().resolve())
    for name in ("hits_dir", "secret_file"):
        values[name] = str(Path(values[name]).expanduser().resolve())
    return ServerSettings(**values)
