"""Shared fixtures: a temporary home, the real pixel server as a subprocess, and
the suite's rules (no real home, no leaked threads)."""

import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from mailtracker.core.csvcodec import format_row, header_line
from mailtracker.core.hitline import HIT_COLUMNS
from mailtracker.core.paths import Home
from mailtracker.core.settings import init_home, load_config
from mailtracker.core.timestamps import utc_timestamp
from mailtracker.desktop.host import EXTENSION_ID, PROTOCOL_VERSION

SERVER_START_TIMEOUT_S = 30.0
BASE_TIME = 1_795_000_000.0
THUNDERBIRD = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.5.0"
OUTLOOK = "Mozilla/4.0 (compatible; ms-office; MSOffice 16)"
AGENT = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path_factory, monkeypatch, request):
    """Never the real home: HOME, XDG dirs and MAILTRACKER_HOME point into a temp dir.
    Afterwards every name written there (and in the test's tmp_path) must be one Windows
    allows: the same code runs there (a test marked posix_names writes others on purpose)."""
    fake_home = tmp_path_factory.mktemp("userhome")
    monkeypatch.setenv("HOME", str(fake_home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(fake_home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(fake_home / ".local" / "share"))
    monkeypatch.delenv("MAILTRACKER_HOME", raising=False)
    roots = [fake_home] + ([request.getfixturevalue("tmp_path")] if "tmp_path" in request.fixturenames else [])
    yield
    if request.node.get_closest_marker("posix_names"):
        return
    illegal = [str(path) for root in roots for path in windows_illegal_names(root)]
    assert not illegal, f"names Windows refuses were written: {illegal}"


# What Windows refuses in a file or folder name (besides "/" and NUL, which no POSIX name has).
WINDOWS_ILLEGAL_CHARACTERS = set('<>:"\\|?*') | {chr(code) for code in range(1, 32)}
WINDOWS_RESERVED_NAMES = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
                          *(f"LPT{i}" for i in range(1, 10))}


def windows_illegal_names(root: Path) -> list:
    """The paths under ``root`` whose name Windows would refuse."""
    found = []
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            if WINDOWS_ILLEGAL_CHARACTERS.intersection(name) or name.endswith((" ", ".")) \
                    or name.split(".")[0].upper() in WINDOWS_RESERVED_NAMES:
                found.append(Path(folder) / name)
    return found


@pytest.fixture(autouse=True)
def no_leaked_threads():
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not leaked:
            return
        time.sleep(0.05)
    pytest.fail(f"threads outlived their test: {leaked}")


@pytest.fixture
def home(tmp_path, monkeypatch) -> Home:
    """An initialised home in a temp dir, also exported as MAILTRACKER_HOME."""
    root = tmp_path / "home"
    monkeypatch.setenv("MAILTRACKER_HOME", str(root))
    home = Home.locate(str(root))
    init_home(home)
    return home


def run_cli(*args, home=None, check=True, timeout=60, **kwargs) -> subprocess.CompletedProcess:
    """Run the real ``mailtracker`` command line in a subprocess."""
    cmd = [sys.executable, "-m", "mailtracker"]
    if home is not None:
        cmd += ["--home", str(home.data_dir)]
    proc = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"mailtracker {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc


class PixelServer:
    """A real ``mailtracker serve`` process on a free loopback port."""

    def __init__(self, home: Home, *extra: str, hits_dir: Path = None):
        self.home = home
        self.hits_dir = hits_dir or home.hits_dir(load_config(home))
        self.server_id = extra[extra.index("--server-id") + 1] if "--server-id" in extra else "pixel"
        self.log_path = home.data_dir / f"serve-{time.monotonic_ns()}.log"
        cmd = [sys.executable, "-m", "mailtracker", "--home", str(home.data_dir), "serve",
               "--port", "0", "--hits-dir", str(self.hits_dir), *extra]
        self._log = open(self.log_path, "w+")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._log, text=True,
                                     start_new_session=True)
        line = self.proc.stdout.readline()
        match = re.search(r"http://([^/]+):(\d+)/", line)
        if not match:
            self.stop()
            raise AssertionError(f"server did not start: {line!r}\n{self.log()}")
        self.base = f"http://127.0.0.1:{match.group(2)}"
        self.wait_healthy()

    def wait_healthy(self):
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}:\n{self.log()}")
            try:
                requests.get(self.base + "/healthz", timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.05)
        raise AssertionError("server did not answer /healthz in time")

    def url(self, token: str, prefix: str = "/p") -> str:
        return f"{self.base}{prefix}/{token}.gif"

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def hit_lines(self):
        lines = []
        for path in sorted(self.hits_dir.glob(f"hits-{self.server_id}-*.csv")) + \
                sorted(self.hits_dir.glob(f"hits-{self.server_id}.w*.csv")):
            lines += path.read_text(encoding="utf-8-sig").splitlines()[1:]
        return lines

    def stop(self, sig=15):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=20)
        self.proc.stdout.close()
        self._log.close()


@pytest.fixture
def desktop(tmp_path, home) -> Home:
    """A second home, the desktop's, with the server home's secret: hits pulled into <desktop>/hits."""
    desktop = Home.locate(str(tmp_path / "desktop"))
    init_home(desktop)
    shutil.copy(home.secret_path, desktop.secret_path)
    return desktop


@pytest.fixture
def pixel_server(home):
    server = PixelServer(home)
    yield server
    server.stop()


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MiB tmpfs: a real disk that fills up (root only; skipped, with the reason, otherwise).
    With the space back it must hold a small home and its store (16 KiB pages: 208 KiB)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)]).returncode:
        pytest.skip("needs root to mount a small tmpfs as a full disk")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def fill_disk(folder: Path) -> Path:
    """Write a file in folder until its disk is full; remove it to give the space back."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


def wait_for(predicate, timeout=5.0, interval=0.02, what="condition"):
    """Wait on an observable event, with a bound."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# The real desktop (Xvfb with trayer, dunst on a session bus), started once per session.
from tests.display import notification_service, x_display  # noqa: E402,F401


def rows_of(home: Home) -> list:
    """Every register row, as the read model has them."""
    from mailtracker.desktop.register import Register

    with Register.load(home) as register:
        return register.rows()


def row_of(home: Home, tag_id: str) -> dict:
    """One tag's register row from the read model, as the add-on gets it (``Row.to_json``); a
    zero row for a tag it does not know."""
    from mailtracker.core.tokens import short_id
    from mailtracker.desktop.register import Register, Row

    with Register.load(home) as register:
        return (register.get(tag_id) or Row(tag_id, short_id(tag_id))).to_json()


def timeline_of(home: Home, tag_id: str) -> list:
    """One tag's latest hits from the read model: (time, label, counted, reason, client)."""
    from mailtracker.desktop.register import Register

    with Register.load(home) as register:
        return register.timeline(tag_id)


def write_hits(path, hits, header=True, boot="bootaaaa", agent=THUNDERBIRD):
    """Append hits in the server's exact format: (seq, tag, method, time?) tuples."""
    with open(path, "ab") as handle:
        if header and handle.tell() == 0:
            handle.write(header_line(HIT_COLUMNS))
        for seq, tag, method, *when in hits:
            # Two minutes apart by default: separate opens, not repeats of one.
            stamp = when[0] if when else utc_timestamp(BASE_TIME + seq * 120)
            handle.write(format_row([f"{boot}.{seq:x}", stamp, tag, method, "127.0.0.0",
                                     agent, ""]).encode())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class HostProcess:
    """The helper started the way Thunderbird starts it: manifest path and extension id."""

    def __init__(self, home, extension_id=EXTENSION_ID):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mailtracker", "--home", str(home.data_dir), "host",
             "/path/to/mailtracker.helper.json", extension_id],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.counter = 0

    def send_raw(self, payload: bytes):
        self.proc.stdin.write(struct.pack("=I", len(payload)) + payload)
        self.proc.stdin.flush()

    def read(self) -> dict:
        header = self.proc.stdout.read(4)
        assert len(header) == 4, self.proc.stderr.read().decode()
        (length,) = struct.unpack("=I", header)
        return json.loads(self.proc.stdout.read(length))

    def call(self, command, **args) -> dict:
        self.counter += 1
        request = {"id": f"r{self.counter}", "command": command, "protocol": PROTOCOL_VERSION, **args}
        self.send_raw(json.dumps(request).encode())
        reply = self.read()
        assert reply["id"] == request["id"]
        return reply

    def close(self) -> int:
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                pipe.close()
            except BrokenPipeError:
                pass
        return self.proc.wait(timeout=20)
