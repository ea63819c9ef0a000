"""What keeps opens from arriving here, or from being counted, as the tray tells it: the pull
servers that have not answered (or whose pulls failed) for longer than a grace, the device logs'
sync with the person's other computers failing likewise, and the folding daemon's folds failing.

It reads what the leading daemon writes (``reachability``'s sightings of each server,
``devicesync``'s state, the watcher's fold problem), never the puller's or the watcher's memory:
a tray that follows another process's daemon has neither, and reading the files in the leader
too keeps one way for both. The
files are written only when an outcome changes, so ``TroubleWatch`` looks at them once a
second (a stat each; read only when one changed) and tells its owner when what is to be
shown changed, also when a failure outlasts the grace with no new write.

The grace (``GRACE_S``, 60 s): a live pull's dropped request is retried after 1, 2, 4, 8, 16
and 32 s, a polled one after 5, 10 and 20 s, and a pixel server restarts within seconds; a
server still failing after a minute has failed several rounds in a row and is no blip of a
flapping network. It counts from the last pull that worked (a server down, then refusing the
token, is one run of failures, not two), or the failure's start where none is known, but not
from before this watch began: a failure recorded before the tray started is shown only if the
new daemon's pulls do not clear it first.
"""

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple
from urllib.parse import urlsplit

from mailtracker.core.paths import Home
from mailtracker.core.settings import Config
from mailtracker.core.timestamps import parse_timestamp
from mailtracker.desktop.devicesync import read_sync_state, state_path
from mailtracker.desktop.install import read_fold_problem
from mailtracker.desktop.pull import FAILING, UNREACHABLE
from mailtracker.desktop.reachability import Sighting, read_sightings, seen_path

log = logging.getLogger(__name__)

GRACE_S = 60.0
POLL_S = 1.0


@dataclass(frozen=True)
class ServerTrouble:
    """One pull server failing past the grace: its host, how (UNREACHABLE or FAILING), since
    when (UTC timestamp), why in a few words, the error code, and the failure's sentence."""

    host: str
    outcome: str
    since: str
    reason: str = ""
    code: int = 0
    message: str = ""


@dataclass(frozen=True)
class SyncTrouble:
    """The device logs' sync with one server failing past the grace, and its last problem."""

    host: str
    problem: str


@dataclass(frozen=True)
class Troubles:
    """What the tray tells of opens not arriving; empty when they arrive."""

    servers: Tuple[ServerTrouble, ...] = ()
    server_count: int = 0  # how many pull servers config.toml names
    device_sync: Tuple[SyncTrouble, ...] = ()
    sync_count: int = 0  # how many servers the device logs meet at
    # The folding daemon's words for why its last fold failed ('' when it worked): told at once.
    fold_problem: str = ""


NO_TROUBLES = Troubles()


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


def _lasted(since: str, now: float, grace_s: float, watched_since: float) -> bool:
    """Whether a failure since ``since`` (or since the watch began, if later) outlasted the grace."""
    try:
        began = parse_timestamp(since)
    except ValueError:  # an older writer's entry, or a hand's: counted from the watch's start
        began = watched_since
    return now - max(began, watched_since) >= grace_s


def _failing_since(seen: Sighting) -> str:
    """When the run of failed pulls began, at the latest: the last time the server answered a
    pull, else the first failure of this outcome."""
    return min(seen.last_reached, seen.since) if seen.last_reached else seen.since


def troubles_of(config: Config, sightings: Dict[str, Sighting], sync_state: Dict[str, Dict[str, str]],
                now: float, grace_s: float = GRACE_S, watched_since: float = 0.0, fold_problem: str = "") -> Troubles:
    """The troubles the files say, for the servers config.toml names (pure: no reading)."""
    urls = [url.rstrip("/") for url in config.pull_urls]
    servers = []
    for url in urls:
        seen = sightings.get(url)
        if seen is not None and seen.outcome in (UNREACHABLE, FAILING) \
                and _lasted(_failing_since(seen), now, grace_s, watched_since):
            servers.append(ServerTrouble(_host(url), seen.outcome, seen.since, seen.reason, seen.code, seen.message))
    syncs = []
    told = {server.host for server in servers}
    for url in urls if config.devices_via_server else ():
        entry = sync_state.get(url, {})
        # A server whose hits do not come either is told in the headline already (one cause).
        if entry.get("problem") and _host(url) not in told \
                and _lasted(entry.get("failing_since", ""), now, grace_s, watched_since):
            syncs.append(SyncTrouble(_host(url), entry["problem"]))
    if not servers and not syncs and not fold_problem:
        return NO_TROUBLES
    return Troubles(tuple(servers), len(urls), tuple(syncs), len(urls) if config.devices_via_server else 0,
                    fold_problem)


def _stat_key(path) -> Optional[Tuple[int, int, int]]:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns, info.st_size


class TroubleWatch:
    """``start`` / ``stop``: each ``poll_s`` works out the troubles (reading a file only when it
    changed) and calls ``on_change`` with them when they differ from the last told."""

    def __init__(self, home: Home, config: Config, on_change: Callable[[Troubles], None],
                 grace_s: float = GRACE_S, poll_s: float = POLL_S):
        self.home = home
        self.config = config
        self.on_change = on_change
        self.grace_s = grace_s
        self.poll_s = poll_s
        self.troubles = NO_TROUBLES
        self._keys: Tuple = ()
        self._read: Tuple[Dict, Dict, str] = ({}, {}, "")
        self._watched_since = time.time()
        self._stopping = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "TroubleWatch":
        self._watched_since = time.time()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="mailtracker-troubles", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while not self._stopping.wait(self.poll_s):
            try:
                self.check()
            except Exception:  # a watch that stops would leave a warning up, or never raise one
                log.exception("looking whether opens still arrive failed; trying again")

    def check(self) -> Troubles:
        """Work the troubles out now; tell the owner when they changed."""
        keys = (_stat_key(seen_path(self.home)), _stat_key(state_path(self.home)),
                _stat_key(self.home.fold_problem_path))
        if keys != self._keys:
            problem = read_fold_problem(self.home) or {}
            self._read = (read_sightings(self.home), read_sync_state(self.home), str(problem.get("error", "")))
            self._keys = keys
        sightings, sync_state, fold_problem = self._read
        troubles = troubles_of(self.config, sightings, sync_state, time.time(), self.grace_s, self._watched_since,
                               fold_problem)
        if troubles != self.troubles:
            self.troubles = troubles
            self.on_change(troubles)
        return troubles
