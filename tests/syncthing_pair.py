"""Two real Syncthing instances on loopback, configured as MEASUREMENTS.md says:
a "server" side whose hits folder is send-only and a "desktop" side whose
folder is receive-only, both with fsWatcherDelayS=1, and nothing that leaves
127.0.0.1 (no announce, relays, NAT, usage reports, upgrades or crash reports).
Used by tests/test_syncthing.py and bench/bench_delivery.py. ``DevicesPair``: two of
a person's computers sharing their devices folder, send-and-receive on both sides
(tests/test_devices.py)."""

import os
import secrets
import shutil
import socket
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Optional

import requests

SYNCTHING = shutil.which("syncthing") or "/usr/bin/syncthing"
FOLDER_ID = "mailtracker-hits"
DEVICES_FOLDER_ID = "mailtracker-devices"
START_TIMEOUT_S = 30.0

_OPTIONS = {
    "globalAnnounceEnabled": "false", "localAnnounceEnabled": "false", "relaysEnabled": "false",
    "natEnabled": "false", "urAccepted": "-1", "autoUpgradeIntervalH": "0",
    "crashReportingEnabled": "false", "startBrowser": "false", "reconnectionIntervalS": "1",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Instance:
    """One Syncthing with its own home, GUI/REST port, API key and sync port."""

    def __init__(self, root: Path, name: str, folder: Path):
        self.name = name
        self.home = root / f"syncthing-{name}"
        self.folder = folder
        self.gui_port, self.sync_port = free_port(), free_port()
        # Syncthing's own keys may begin with '-' (about 1 in 64 of them); the desktop's
        # always does here, so 'syncthing check --api-key KEY' is tested with one every run
        # rather than failing at random.
        self.api_key = ("-" if name == "desktop" else "") + secrets.token_urlsafe(24)
        self.base = f"http://127.0.0.1:{self.gui_port}"
        self.proc: Optional[subprocess.Popen] = None
        self._log = None
        out = subprocess.run([SYNCTHING, "generate", f"--home={self.home}", "--no-default-folder",
                              "--skip-port-probing"], capture_output=True, text=True, check=True, timeout=60)
        self.device_id = ET.parse(self.home / "config.xml").getroot().find("device").get("id")
        assert self.device_id in out.stdout + out.stderr

    def configure(self, peer: "Instance", folder_type: str, dial: bool, folder_id: str = FOLDER_ID,
                  **folder_options: str) -> None:
        path = self.home / "config.xml"
        tree = ET.parse(path)
        root = tree.getroot()
        gui = root.find("gui")
        gui.find("address").text = f"127.0.0.1:{self.gui_port}"
        gui.find("apikey").text = self.api_key
        options = root.find("options")
        options.find("listenAddress").text = f"tcp://127.0.0.1:{self.sync_port}"
        for key, value in _OPTIONS.items():
            node = options.find(key)
            if node is None:
                node = ET.SubElement(options, key)
            node.text = value
        me = root.find("device")
        me.find("address").text = f"tcp://127.0.0.1:{self.sync_port}"
        other = ET.SubElement(root, "device", id=peer.device_id, name=peer.name, compression="metadata",
                              introducer="false", skipIntroductionRemovals="false", introducedBy="")
        # Only one side dials, as a desktop behind NAT dials its VPS: when both dial at
        # once, Syncthing 1.19 can stall 20 s in the Hello exchange.
        ET.SubElement(other, "address").text = f"tcp://127.0.0.1:{peer.sync_port}" if dial else "dynamic"
        ET.SubElement(other, "autoAcceptFolders").text = "false"
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / ".stfolder").mkdir(exist_ok=True)
        folder = ET.Element("folder", id=folder_id, label=folder_id.replace("-", " "), path=str(self.folder),
                            type=folder_type, rescanIntervalS="3600", fsWatcherEnabled="true",
                            fsWatcherDelayS="1", ignorePerms="false", autoNormalize="true")
        ET.SubElement(folder, "filesystemType").text = "basic"
        for device in (self.device_id, peer.device_id):
            ET.SubElement(folder, "device", id=device, introducedBy="")
        for key, value in folder_options.items():
            ET.SubElement(folder, key).text = value
        root.insert(0, folder)
        tree.write(path)

    def start(self) -> None:
        self._log = open(self.home / "syncthing.log", "w")
        env = {**os.environ, "STNOUPGRADE": "1", "STNODEFAULTFOLDER": "1", "HOME": str(self.home)}
        self.proc = subprocess.Popen(
            [SYNCTHING, "serve", f"--home={self.home}", "--no-browser", "--no-restart", "--no-upgrade"],
            stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def api(self, path: str, method: str = "GET", **kwargs):
        response = requests.request(method, self.base + path, headers={"X-API-Key": self.api_key},
                                    timeout=10, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def connected_to(self, peer: "Instance") -> bool:
        try:
            return self.api("/rest/system/connections")["connections"].get(peer.device_id, {}).get("connected", False)
        except requests.RequestException:
            if self.proc.poll() is not None:
                raise AssertionError(f"syncthing {self.name} exited:\n{self.log()}")
            return False

    def listening(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"syncthing {self.name} exited:\n{self.log()}")
        try:
            socket.create_connection(("127.0.0.1", self.sync_port), timeout=1).close()
            return True
        except OSError:
            return False

    def log(self) -> str:
        return (self.home / "syncthing.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(timeout=15)
        if self._log is not None:
            self._log.close()


class Pair:
    """The server side (send-only) and the desktop side (receive-only, ignoreDelete)."""

    def __init__(self, root: Path):
        self.server = Instance(root, "server", root / "server-hits")
        self.desktop = Instance(root, "desktop", root / "desktop-hits")
        self.server.configure(self.desktop, "sendonly", dial=False)
        self.desktop.configure(self.server, "receiveonly", dial=True, ignoreDelete="true")

    def start(self) -> "Pair":
        try:
            self.server.start()
            deadline = time.monotonic() + START_TIMEOUT_S
            # The desktop dials once the server listens: a failed first dial waits 5 s to retry.
            while not self.server.listening() and time.monotonic() < deadline:
                time.sleep(0.05)
            self.desktop.start()
            while time.monotonic() < deadline:
                if self.server.connected_to(self.desktop) and self.desktop.connected_to(self.server):
                    return self
                time.sleep(0.1)
            raise AssertionError("the two Syncthing instances did not connect:\n"
                                 f"{self.server.log()[-2000:]}\n{self.desktop.log()[-2000:]}")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self.server.stop()
        self.desktop.stop()


class DevicesPair(Pair):
    """Two computers of one person, each sharing its home's devices folder with the other
    (send & receive, ignoreDelete, as 'mailtracker syncthing settings --devices' says).
    ``server`` is the one that listens, ``desktop`` the one that dials."""

    def __init__(self, root: Path, first: Path, second: Path):
        self.server = Instance(root, "first", first)
        self.desktop = Instance(root, "second", second)
        for me, peer, dial in ((self.server, self.desktop, False), (self.desktop, self.server, True)):
            me.configure(peer, "sendreceive", dial=dial, folder_id=DEVICES_FOLDER_ID, ignoreDelete="true")
