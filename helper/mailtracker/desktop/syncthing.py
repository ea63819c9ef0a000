"""Syncthing as the way hits come home, and the way a person's computers share their
desktop logs: the folder settings for each side and a check (and repair) of a
running Syncthing's folder through its REST API.

The server's hits folder is send-only (the desktop can never change the
server's logs), the desktop's is receive-only and ignores deletes (the server
may delete old hits files after ``--retention-days``; the desktop keeps them,
so the register can always be rebuilt). Both watch for changes with a 1 s
delay: a hit reaches the desktop in about a second instead of ten.

The devices folder (``Home.devices_dir``) is send-and-receive on each of the
person's computers: each writes only its own logs in it (``core.paths``), so no
file ever has two writers, and deletes are ignored there too: a computer that
drops a log never takes another computer's history with it.
"""

import os
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple
from urllib.parse import urlsplit

import requests

from mailtracker.core.errors import SyncthingError
from mailtracker.desktop.client import session as shared_session
from mailtracker.desktop.install import Check
from mailtracker.desktop.platforms import platform_key

FOLDER_ID = "mailtracker-hits"
DEVICES_FOLDER_ID = "mailtracker-devices"
SIDES = ("server", "desktop", "devices")
# Per side: the folder's label and default ID, where it is, and who is on the other end.
FOLDERS = {
    "server": ("mailtracker hits", FOLDER_ID, "the VPS", "the desktop"),
    "desktop": ("mailtracker hits", FOLDER_ID, "this desktop", "the server"),
    "devices": ("mailtracker devices", DEVICES_FOLDER_ID, "each of your computers", "your other computers"),
}
# Where packaging/systemd/mailtracker.service keeps the hits on a VPS.
SERVER_HITS_DIR = "/var/lib/mailtracker/hits"
DEFAULT_ADDRESS = "http://127.0.0.1:8384"



@dataclass(frozen=True)
class Setting:
    """One folder setting that matters: its REST field and value, and where the GUI has it."""

    field: str
    wanted: object
    name: str
    where: str
    shown: str


_TYPE = "Edit Folder > Advanced > Folder Type"
_WATCH = Setting("fsWatcherEnabled", True, "watch for changes", "Edit Folder > Advanced > Watch for Changes", "on")
_DELAY = Setting("fsWatcherDelayS", 1, "watcher delay", "Actions > Advanced > Folders > Fs Watcher Delay S",
                 "1 (a change arrives in about 1 s, not 10)")
_RUNNING = Setting("paused", False, "not paused", "the folder's Resume button", "not paused")
WANTED: Dict[str, List[Setting]] = {
    "server": [Setting("type", "sendonly", "folder type", _TYPE, "Send Only"), _WATCH, _DELAY, _RUNNING],
    "desktop": [
        Setting("type", "receiveonly", "folder type", _TYPE, "Receive Only"), _WATCH, _DELAY,
        Setting("ignoreDelete", True, "ignore deletes", "Actions > Advanced > Folders > Ignore Delete",
                "on (keeps the hits files the server deletes after --retention-days)"),
        _RUNNING,
    ],
    "devices": [
        Setting("type", "sendreceive", "folder type", _TYPE, "Send & Receive"), _WATCH, _DELAY,
        Setting("ignoreDelete", True, "ignore deletes", "Actions > Advanced > Folders > Ignore Delete",
                "on (a computer that drops its logs never takes them from the others)"),
        _RUNNING,
    ],
}

# Where Syncthing keeps config.xml (with the GUI address and API key), per platform,
# newest layout first: 1.27 moved it from the config dir to the state dir on Linux.
CONFIG_DIRS = {
    "linux": ["$XDG_STATE_HOME/syncthing", "~/.local/state/syncthing",
              "$XDG_CONFIG_HOME/syncthing", "~/.config/syncthing"],
    "darwin": ["~/Library/Application Support/Syncthing"],
    "win32": ["$LOCALAPPDATA/Syncthing"],
}


def folder_settings(side: str, path: str, folder_id: Optional[str] = None,
                    devices: Tuple[str, ...] = ()) -> dict:
    """The folder as Syncthing's REST API takes it (``PATCH /rest/config/folders/<id>``)."""
    label, default_id, _, _ = FOLDERS[side]
    settings = {"id": folder_id or default_id, "label": label, "path": path}
    settings.update({setting.field: setting.wanted for setting in WANTED[side]})
    settings["rescanIntervalS"] = 3600
    if devices:
        settings["devices"] = [{"deviceID": device} for device in devices]
    return settings


def describe_settings(side: str, path: str, folder_id: Optional[str] = None) -> str:
    """The same settings as a person sets them in Syncthing's web GUI."""
    _, default_id, where, other = FOLDERS[side]
    rows = [("Add Folder > Folder ID", f"{folder_id or default_id} (the same on every side)"),
            ("Add Folder > Folder Path", path),
            ("Add Folder > Sharing", f"{other}' devices" if other.endswith("s") else f"{other}'s device")]
    rows += [(setting.where, setting.shown) for setting in WANTED[side] if setting is not _RUNNING]
    width = max(len(where) for where, _ in rows)
    return "\n".join([f"{side.capitalize()} side ({where}):"] +
                     [f"  {where:<{width}}  {shown}" for where, shown in rows])


def find_gui(config_dir: Optional[Path] = None) -> Tuple[str, str, Path]:
    """(REST address, API key, config.xml) read from a Syncthing's config.xml."""
    candidates = [config_dir] if config_dir else [
        Path(os.path.expandvars(entry)).expanduser() for entry in CONFIG_DIRS.get(platform_key(), [])
        if "$" not in os.path.expandvars(entry)]
    for directory in candidates:
        path = Path(directory) / "config.xml"
        if path.is_file():
            break
    else:
        raise SyncthingError(
            "found no Syncthing config.xml (looked in "
            f"{', '.join(str(c) for c in candidates) or 'no folder'}); "
            "pass --syncthing-home DIR, or --address and --api-key"
        )
    try:
        gui = ET.parse(path).getroot().find("gui")
        address = gui.findtext("address", "127.0.0.1:8384").strip()
        api_key = gui.findtext("apikey", "").strip()
        tls = gui.get("tls", "false") == "true"
    except (ET.ParseError, AttributeError, OSError) as exc:
        raise SyncthingError(f"cannot read the GUI settings in {path}: {exc}") from None
    if not api_key:
        raise SyncthingError(f"{path} has no API key; create one in Syncthing's Settings > GUI")
    if address.startswith("unix"):
        raise SyncthingError(f"Syncthing's GUI listens on {address}; pass --address with an http URL")
    host, _, port = address.rpartition(":")
    if host in ("0.0.0.0", "[::]", ""):
        host = "127.0.0.1"
    return f"{'https' if tls else 'http'}://{host}:{port}", api_key, path


class SyncthingAPI:
    """The few REST calls the check needs, with messages that say what to do."""

    def __init__(self, address: str, api_key: str, session: Optional[requests.Session] = None):
        self.address = address.rstrip("/")
        self.api_key = api_key
        if session is None:
            session = shared_session()
        self.session = session
        # Syncthing's GUI certificate is self-signed; on loopback there is no one to impersonate it.
        host = urlsplit(self.address).hostname or ""
        self._verify = not (self.address.startswith("https") and host in ("127.0.0.1", "localhost", "::1"))

    def call(self, method: str, path: str, **kwargs):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                response = self.session.request(method, self.address + path, verify=self._verify,
                                                headers={"X-API-Key": self.api_key}, **kwargs)
        except requests.RequestException as exc:
            raise SyncthingError(
                f"cannot reach Syncthing's REST API at {self.address} ({type(exc).__name__}); "
                "is Syncthing running? (--address, --syncthing-home)"
            ) from None
        if response.status_code in (401, 403):
            raise SyncthingError(
                f"Syncthing at {self.address} refused the API key (HTTP {response.status_code}); "
                "take it from Syncthing's Settings > GUI > API Key (--api-key)"
            )
        if response.status_code == 404:
            return None
        if not response.ok:
            raise SyncthingError(f"Syncthing answered {method} {path} with HTTP {response.status_code}: "
                                 f"{response.text.strip()[:200]}")
        return response.json() if response.content else {}

    def my_id(self) -> str:
        return self.call("GET", "/rest/system/status")["myID"]

    def folders(self) -> List[dict]:
        return self.call("GET", "/rest/config/folders") or []

    def patch_folder(self, folder_id: str, changes: dict) -> None:
        self.call("PATCH", f"/rest/config/folders/{folder_id}", json=changes)

    def connections(self) -> Dict[str, dict]:
        return (self.call("GET", "/rest/system/connections") or {}).get("connections", {})

    def folder_status(self, folder_id: str) -> dict:
        return self.call("GET", f"/rest/db/status?folder={folder_id}") or {}


@dataclass
class FolderCheck:
    """The outcome of checking one side: every check, the folder found, what a fix would change."""

    checks: List[Check]
    folder: Optional[dict]
    changes: dict

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)


def _same_path(a: str, b: str) -> bool:
    try:
        return Path(os.path.expanduser(a)).resolve() == Path(os.path.expanduser(b)).resolve()
    except OSError:
        return False


def check_folder(api: SyncthingAPI, side: str, path: str, folder_id: Optional[str] = None) -> FolderCheck:
    """Check the folder of one side in a running Syncthing: found, settings, shared, connected, healthy."""
    label, _, _, other = FOLDERS[side]
    my_id = api.my_id()
    folders = api.folders()
    if folder_id:
        folder = next((f for f in folders if f.get("id") == folder_id), None)
        missing = f"Syncthing has no folder with the ID {folder_id!r}"
    else:
        folder = next((f for f in folders if _same_path(f.get("path", ""), path)), None)
        missing = f"Syncthing has no folder at {path}"
    checks = [Check(f"{label.split()[-1]} folder present", folder is not None,
                    f"{folder['id']} at {folder['path']}" if folder else
                    f"{missing}; add it as 'mailtracker syncthing settings' shows")]
    if folder is None:
        return FolderCheck(checks, None, {})
    if folder_id and not _same_path(folder.get("path", ""), path):
        checks.append(Check("folder path", False, f"{folder['path']}, but the {label.split()[-1]} are in {path}"))
    changes = {}
    for setting in WANTED[side]:
        value = folder.get(setting.field)
        ok = value == setting.wanted
        if not ok:
            changes[setting.field] = setting.wanted
        checks.append(Check(setting.name, ok, f"{setting.field} = {value!r}" if ok else
                            f"{setting.field} = {value!r}, should be {setting.wanted!r} "
                            f"({setting.where}: {setting.shown})"))
    peers = [d["deviceID"] for d in folder.get("devices", []) if d.get("deviceID") != my_id]
    checks.append(Check("shared with the other side", bool(peers),
                        f"{len(peers)} device(s)" if peers else
                        f"the folder is shared with no other device; share it with {other}"))
    connections = api.connections()
    connected = [p for p in peers if connections.get(p, {}).get("connected")]
    checks.append(Check("other side connected", bool(connected),
                        f"{', '.join(p[:7] for p in connected)}" if connected else
                        "no device sharing this folder is connected now; is Syncthing running on the "
                        "other side, and can the two reach each other?"))
    status = api.folder_status(folder["id"])
    healthy = status.get("state") != "error" and not status.get("invalid") and not status.get("pullErrors")
    checks.append(Check("folder healthy", healthy,
                        f"state {status.get('state')}, {status.get('localFiles', 0)} files" if healthy else
                        f"state {status.get('state')}: {status.get('invalid') or ''} "
                        f"{status.get('pullErrors', 0)} pull errors; see Syncthing's GUI"))
    return FolderCheck(checks, folder, changes)


def fix_folder(api: SyncthingAPI, result: FolderCheck) -> List[str]:
    """Apply the settings a check found wrong; returns what was changed."""
    if result.folder is None or not result.changes:
        return []
    api.patch_folder(result.folder["id"], result.changes)
    return [f"{field} = {value!r}" for field, value in result.changes.items()]
