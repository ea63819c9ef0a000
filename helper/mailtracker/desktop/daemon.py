"""The desktop daemon: the one process per home that keeps the counts current.

It composes the watcher (fold on every change of a log) and the puller (HTTP
pull, when config.toml names a server), and tells its owner when the counts
changed. The tray, ``watch``, ``demo`` and the native host (while Thunderbird
keeps a port open) all run one. Only one of them folds: the first to take the
home's daemon lock leads; any other follows, reading the read model when it
changes and taking over the lead when the leader stops.
"""

import logging
import threading
from typing import Callable, Optional

from filelock import FileLock, Timeout

from mailtracker.core.paths import Home
from mailtracker.core.secret import read_secret
from mailtracker.core.settings import Config
from mailtracker.desktop.fold import FoldResult
from mailtracker.desktop.register import Register
from mailtracker.desktop.watcher import Watcher

log = logging.getLogger(__name__)

# A follower looks this often whether the counts changed, or the lead is free.
FOLLOW_POLL_S = 1.0


def _lock(home: Home) -> FileLock:
    home.state_dir.mkdir(parents=True, exist_ok=True)
    return FileLock(str(daemon_lock_path(home)), timeout=0)


def daemon_lock_path(home: Home):
    """The lock the leading daemon holds: one folder of the counts per home."""
    return home.state_dir / "daemon.lock"


def _held_elsewhere(home: Home, path) -> bool:
    """Whether another process holds this lock (taken and dropped at once to find out);
    never creates the state folder of a home that has none."""
    if not home.state_dir.is_dir():
        return False
    lock = FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return True
    lock.release()
    return False


def daemon_running(home: Home) -> bool:
    """Whether some process leads this home's daemon (and so keeps the counts current)."""
    return _held_elsewhere(home, daemon_lock_path(home))


def tray_lock_path(home: Home):
    """The lock a running tray holds (tray.app.InstanceLock): one tray per home."""
    return home.state_dir / "tray.lock"


def tray_running(home: Home) -> bool:
    """Whether a tray runs for this home (it notifies of opens, leading or following)."""
    return _held_elsewhere(home, tray_lock_path(home))


class Daemon:
    """``start`` / ``stop`` (or ``with``); ``on_change`` runs after each fold that changed
    something (in the leader) or whenever the read model changed (in a follower)."""

    def __init__(self, home: Home, config: Config,
                 on_change: Optional[Callable[[Optional[FoldResult]], None]] = None,
                 follow_poll_s: float = FOLLOW_POLL_S):
        self.home = home
        self.config = config
        self.on_change = on_change
        self.follow_poll_s = follow_poll_s
        self.watcher = Watcher(home, config, on_fold=self._folded)
        self.leading = threading.Event()
        self._lock = _lock(home)
        self._puller = None
        self._stopping = threading.Event()
        self._thread: Optional[threading.Thread] = None

    @property
    def last_error(self) -> str:
        """What went wrong in the last fold, in words ('' when it went well)."""
        return self.watcher.last_error

    def start(self) -> "Daemon":
        if self._try_lead():
            return self
        log.info("another mailtracker process folds for %s; following it", self.home.data_dir)
        self._thread = threading.Thread(target=self._follow, name="mailtracker-follow", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        try:
            if self._thread is not None:
                # A follower only waits and reads: it is not waited for long (it ends with the process).
                self._thread.join(FOLLOW_POLL_S + 2.0)
        finally:
            try:
                if self._puller is not None:
                    self._puller.stop()
            finally:
                if self.leading.is_set():
                    self.watcher.stop()
                    self._lock.release()
                    self.leading.clear()

    def __enter__(self) -> "Daemon":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def fold_now(self) -> None:
        if self.leading.is_set():
            self.watcher.fold_now()

    def _try_lead(self) -> bool:
        try:
            self._lock.acquire()
        except Timeout:
            return False
        self.watcher.start()
        self._puller = _puller(self.home, self.config, self.watcher)
        if self._puller is not None:
            self._puller.start()
        self.leading.set()
        return True

    def _follow(self) -> None:
        seen = self._generation()
        while not self._stopping.wait(self.follow_poll_s):
            try:
                if self._try_lead():
                    log.info("the folding process stopped; this one folds now")
                    self._changed(None)
                    return
                now = self._generation()
                if now != seen:
                    seen = now
                    self._changed(None)
            except Exception:  # a follower that stops following would go quiet for good
                log.exception("following the folding process failed; trying again")

    def _generation(self) -> int:
        with Register.load(self.home) as register:
            return register.generation()

    def _folded(self, result: FoldResult) -> None:
        if result.touched or result.register_written:
            self._changed(result)

    def _changed(self, result: Optional[FoldResult]) -> None:
        if self.on_change is not None:
            self.on_change(result)


def _puller(home: Home, config: Config, watcher: Watcher):
    """The Puller for config.toml's pull_url (it folds after each pull that brought
    something, and notes how the server answered), or None when hits arrive another way."""
    if not config.pull_urls:
        return None
    from mailtracker.core.contract import pull_token
    from mailtracker.desktop.pull import Puller
    from mailtracker.desktop.reachability import Sightings

    # How each server answered, for the Track button before Send (written when it changes).
    sightings = Sightings(home, config.pull_urls)

    def fold_after(status, result):
        sightings.record(status)
        if result is not None and result.changed:
            watcher.fold_now()

    puller = Puller(home.hits_dir(config), config.pull_urls, pull_token(read_secret(home.secret_path)),
                    interval_s=config.pull_interval_s, live=config.pull_live, on_pull=fold_after,
                    devices=home if config.devices_via_server else None)
    if puller.devices is not None:
        # Another computer's logs pulled: folded now (the watcher may not watch the devices folder yet).
        puller.devices.on_pulled = lambda result: watcher.fold_now()
    return puller
