"""The person's computers meeting at their pixel server: this computer pushes its own
device logs' new whole lines to each pull server and pulls the other computers' logs into
its devices folder (the server's side is ``server/devicelogs.py``).

It runs beside the hits pull, with the same bounds (``pull.py``: sizes, a deadline per
round, a stop within seconds, a growing delay after failures), in a thread per server of
its own: a held hits listing never delays a push. A round is one listing of
``GET /devices/``, then for each of this computer's logs that the server holds less of, a
``POST /devices/<name>?at=<offset>`` of its next whole lines (starting a few bytes back, so
the server checks its copy continues this one), then each other computer's log that grew
on the server, appended here as the hits pull does (an overlap checked, whole lines only).

Nothing is lost or doubled by a lost answer or a restarted server: the server's copy is
always a prefix of this computer's log, ``at`` says where a push goes, and a push the
server already holds is answered as done. The fold reads each row of a log once, by its
offset, so a pulled log that only grows counts each row once. A server whose copy of this
computer's log is longer, or differs, is left alone and said once: this computer's own
logs are never written by a pull.

A devices folder that Syncthing shares (its ``.stfolder`` marker) gets the other computers'
logs from Syncthing: they are not pulled here as well (an append here would be a change of
this computer's to Syncthing, and a conflict with the writer's); this computer's logs are
still pushed, for the computers that meet only at the server.

A round runs when this computer's logs grow (checked each second, on this machine only),
when another computer's log changes on the server (the thread waits in a listing the
server holds, ``GET /devices/?wait=40``, as the hits' live pull does; on a server that
does not hold it, every ``interval_s``), and when the hits pull brought a hit (its tag
may be another computer's); ``state/devices-sync.json`` says when each server was last pushed to and
pulled from, for ``doctor`` and ``devices list``.
"""

import json
import logging
import os
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import requests
from filelock import FileLock, Timeout

from mailtracker.core.contract import DEVICES_ROUTE, MAX_PUSH_BYTES
from mailtracker.core.errors import LockTimeoutError, MailtrackerError, PullError
from mailtracker.core.files import read_versioned_json, write_file_atomically
from mailtracker.core.paths import DESKTOP_LOGS, DeviceLog, Home, device_log_name, is_device_log_name
from mailtracker.core.timestamps import utc_timestamp
from mailtracker.desktop.client import TIMEOUT_S
from mailtracker.desktop.pull import (LOCK_TIMEOUT_S, MAX_LISTING_BYTES, MAX_PULL_BYTES, MAX_REQUEST_BYTES,
                                      MIN_LIVE_ROUND_S, OVERLAP_BYTES, WAIT_HEADER, PullResult, PullStatus, _no_follow, _not_answered,
                                      _read_capped, _read_span, _Source, _whole_lines, describe_request_error,
                                      request_error_reason, retry_delay)

log = logging.getLogger(__name__)

# How often this computer's own logs are looked at for new lines (a stat each, no network).
LOCAL_POLL_S = 1.0
# The bytes before the server's end a push starts with: the server checks they are its own.
PUSH_OVERLAP_BYTES = 64
# A 409 (the server's copy moved meanwhile) is followed this many times in one round.
MAX_RESENDS = 3
LOCK_NAME = ".pull.lock"
STATE_NAME = "devices-sync.json"
STATE_VERSION = 1
# Syncthing's marker at the root of a folder it shares.
SYNCTHING_MARKER = ".stfolder"


@dataclass
class SyncResult:
    """What one round did: bytes pushed and pulled per log name."""

    pushed: Dict[str, int] = field(default_factory=dict)
    pulled: Dict[str, int] = field(default_factory=dict)
    more: bool = False

    def summary(self) -> str:
        parts = []
        if self.pushed:
            parts.append(f"pushed {sum(self.pushed.values())} bytes of {', '.join(sorted(self.pushed))}")
        if self.pulled:
            parts.append(f"pulled {sum(self.pulled.values())} bytes of {', '.join(sorted(self.pulled))}")
        return "; ".join(parts) or "nothing new"


def state_path(home: Home) -> Path:
    return home.state_dir / STATE_NAME


def read_sync_state(home: Home) -> Dict[str, Dict[str, str]]:
    """Per pull server: when this computer's logs were last pushed ('pushed'), the others'
    last pulled ('pulled'), the last round that worked ('checked' is not kept: it would be
    written every round), the problem of the last round ('problem', '' when it worked) and
    since when the rounds fail ('failing_since', only while they do)."""
    data = read_versioned_json(state_path(home), STATE_VERSION, "it is written again") or {}
    servers = data.get("servers") if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        return {}
    return {url: {key: str(value) for key, value in entry.items() if isinstance(value, str)}
            for url, entry in servers.items() if isinstance(url, str) and isinstance(entry, dict)}


class DeviceSync:
    """Pushes and pulls the device logs with each of the puller's servers (see the module)."""

    def __init__(self, puller, home: Home, urls):
        self.puller = puller
        self.home = home
        self.sources = [_Source(url) for url in urls]
        for source in self.sources:
            source.holding = False  # in a held listing, which a change here cuts short
            # Its own adapter: a devices round cut at its deadline never cuts a held hits listing.
            puller.session.mount(source.url + DEVICES_ROUTE, source.adapter)
        self._said: set = set()
        self._state_lock = threading.Lock()
        self.on_pulled: Optional[Callable[[SyncResult], None]] = None

    # -- the threads (started and stopped by the Puller) --

    def threads(self) -> List[threading.Thread]:
        """A thread per server, and one that notices this computer's new lines."""
        threads = [threading.Thread(target=self._run, args=(source,), daemon=True,
                                    name=f"mailtracker-devices-{source.host}") for source in self.sources]
        return threads + [threading.Thread(target=self._watch_local, daemon=True,
                                           name="mailtracker-devices-local")]

    def abort(self) -> None:
        for source in self.sources:
            source.wake.set()
            source.adapter.abort()

    def sync_soon(self) -> None:
        for source in self.sources:
            source.wake.set()

    def _local_sizes(self) -> Tuple:
        device = self.home.device
        sizes = []
        for kind in DESKTOP_LOGS:
            try:
                sizes.append(os.lstat(self.home.devices_dir / device_log_name(kind, device)).st_size)
            except OSError:
                sizes.append(-1)
        return device, tuple(sizes)

    def _watch_local(self) -> None:
        """Each second: this computer's logs grew (or it joined)? Then each server's thread
        pushes now, a held listing cut short; while a server fails its lines wait for the next
        try (its delay grows)."""
        seen = self._local_sizes()
        while not self.puller.stopping:
            time.sleep(LOCAL_POLL_S)
            now = self._local_sizes()
            if now == seen:
                continue
            seen = now
            for source in self.sources:
                if source.status.state != "failing":
                    source.wake.set()
                    with self._state_lock:
                        if source.holding:
                            source.adapter.abort()

    def _run(self, source) -> None:
        delay, failures = 0.0, 0
        source.holding = False
        while True:
            if delay or failures or not self._holds(source):
                source.wake.wait(delay)
            else:
                while not self.puller.stopping and not self._hold(source):
                    pass
            if self.puller.stopping:
                return
            source.wake.clear()
            if not self.home.device:
                delay = self.puller.interval_s  # a home used from one computer: nothing to share yet
                continue
            try:
                result = self.sync(source)
                error = None
            except MailtrackerError as exc:
                error, result = exc, None
            except OSError as exc:
                error, result = PullError(f"cannot write the devices folder {self.home.devices_dir}: "
                                          f"{exc.strerror or exc}"), None
            except Exception as exc:  # a bug must not end the syncing for good
                log.exception("syncing the device logs failed unexpectedly")
                error, result = PullError(f"syncing the device logs failed unexpectedly: {exc!r}"), None
            if self.puller.stopping:
                return
            if error is None:
                failures = 0
                delay = 0.0 if result.more or self._holds(source) else self.puller.interval_s
            else:
                failures += 1
                delay = retry_delay(failures, self.puller.interval_s)
            self._record(source, result, error, delay)

    def _holds(self, source) -> bool:
        """Whether the next wait is a listing the server holds (it did so before, or may)."""
        return bool(self.puller.live and source.live is not False and source.etag)

    def _hold(self, source) -> bool:
        """Wait for news with a listing the server holds until a device log changes there; True
        when a round should follow (news, a change here, a failure: the round tells)."""
        wait_s = self.puller.live_wait_s
        began = time.monotonic()
        with self._state_lock:
            if source.wake.is_set():
                return True
            source.holding = True
        try:
            with self.puller.within_deadline(source, wait_s + self.puller.deadline_s):
                response = self.puller.get(source, f"{source.url}{DEVICES_ROUTE}?wait={wait_s}",
                                            {"If-None-Match": source.etag},
                                            timeout=(TIMEOUT_S[0], wait_s + TIMEOUT_S[1]))
                with response:
                    if response.status_code not in (200, 304):
                        return True
                    source.live = WAIT_HEADER in response.headers
                    if response.status_code == 200:
                        return True
        except PullError:
            return True  # cut for a push or a stop, or a failure that the round will name
        finally:
            with self._state_lock:
                source.holding = False
        if time.monotonic() - began < MIN_LIVE_ROUND_S:
            source.wake.wait(MIN_LIVE_ROUND_S)  # a server or proxy that answers at once is not asked in a loop
        return source.wake.is_set() or not source.live

    def _record(self, source, result: Optional[SyncResult], error: Optional[MailtrackerError],
                delay: float) -> None:
        problem = str(error) if error is not None else ""
        before = source.status.message
        source.status = PullStatus("failing" if error else "ok", problem or result.summary(),
                                   server=source.url)
        if error is not None:
            if before != problem:
                log.warning("device logs with %s: %s (trying again in %.0f s)", source.host, problem, delay)
        elif result.pushed or result.pulled:
            log.info("device logs with %s: %s", source.host, result.summary())
        self.note(source.url, result, problem)
        if result is not None and result.pulled and self.on_pulled is not None:
            self.on_pulled(result)

    def note(self, url: str, result: Optional[SyncResult], problem: str) -> None:
        """Keep when this server was last pushed to and pulled from (written only on a change)."""
        with self._state_lock:
            servers = read_sync_state(self.home)
            entry = dict(servers.get(url, {}))
            now = utc_timestamp()
            if result is not None and result.pushed:
                entry["pushed"] = now
            if result is not None and result.pulled:
                entry["pulled"] = now
            entry["problem"] = problem
            # Since when it fails (kept while it keeps failing, for whatever reason): the tray
            # tells a failure once it has lasted, not every round that failed once.
            failing_since = entry.pop("failing_since", "") or now
            if problem:
                entry["failing_since"] = failing_since
            if servers.get(url) == entry:
                return
            servers[url] = entry
            self.home.state_dir.mkdir(parents=True, exist_ok=True)
            body = {"version": STATE_VERSION, "servers": servers}
            write_file_atomically(state_path(self.home), (json.dumps(body, indent=1) + "\n").encode(),
                                  mode=0o600, replace_existing=True)

    # -- one round --

    def sync_all(self) -> SyncResult:
        """Every server, until nothing more is waiting (``mailtracker pull``); the first failure raises."""
        total, errors = SyncResult(), []
        for source in self.sources:
            while True:
                try:
                    result = self.sync(source)
                except MailtrackerError as exc:
                    self.note(source.url, None, str(exc))
                    errors.append(exc)
                    break
                self.note(source.url, result, "")
                for name, count in result.pushed.items():
                    total.pushed[name] = total.pushed.get(name, 0) + count
                for name, count in result.pulled.items():
                    total.pulled[name] = total.pulled.get(name, 0) + count
                if not result.more or not (result.pushed or result.pulled):
                    break
        if errors:
            raise errors[0]
        return total

    def sync(self, source) -> SyncResult:
        """Push this computer's new lines, then pull the others' (one listing, bounded)."""
        result = SyncResult()
        device = self.home.device
        if not device:
            return result  # a home used from one computer has nothing to share
        if source.problem:
            raise PullError(source.problem)
        with self.puller.within_deadline(source, self.puller.deadline_s):
            listing = dict(self._listing(source))
            self._push(source, device, listing, result)
            self._pull(source, device, listing, result)
        return result

    def _listing(self, source) -> List[Tuple[str, int]]:
        url = source.url + DEVICES_ROUTE
        with self.puller.get(source, url, {}) as response:
            source.etag = response.headers.get("ETag")
            if response.status_code == 404:
                raise PullError(f"{source.url} does not keep device logs (HTTP 404): it needs "
                                "--serve-hits and a mailtracker that knows /devices/; update it")
            self.puller.check_status(source, response, url)
            body = _read_capped(response, MAX_LISTING_BYTES, source, "device logs list")
        try:
            files = [(item["name"], item["size"]) for item in json.loads(body)["files"]]
        except (ValueError, KeyError, TypeError):
            raise PullError(f"{url} did not answer a mailtracker device logs list") from None
        for name, size in files:
            if not (isinstance(name, str) and is_device_log_name(name) and isinstance(size, int) and size >= 0):
                raise PullError(f"{url} listed a file mailtracker does not accept: {str(name)[:80]!r}")
        return files

    def _say_once(self, key: str, message: str) -> None:
        if key not in self._said:
            self._said.add(key)
            log.warning("%s", message)

    # -- pushing this computer's logs --

    def _push(self, source, device: str, listing: Dict[str, int], result: SyncResult) -> None:
        for kind in DESKTOP_LOGS:
            name = device_log_name(kind, device)
            local = self.home.devices_dir / name
            try:
                info = os.lstat(local)
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(info.st_mode):
                self._say_once(f"odd:{name}", f"{local} is not a regular file: it is not pushed")
                continue
            self._push_log(source, name, local, info.st_size, listing.get(name, 0), result)

    def _push_log(self, source, name: str, local: Path, have: int, held: int, result: SyncResult) -> None:
        """Send ``local``'s lines after the server's ``held`` bytes, a bounded push at a time."""
        resends = 0
        while held < have:
            if sum(result.pushed.values()) >= MAX_PULL_BYTES:
                result.more = True  # a round sends as much as a pull brings at most: the rest goes next
                return
            start = max(0, held - PUSH_OVERLAP_BYTES)
            with open(local, "rb", opener=_no_follow) as handle:
                handle.seek(start)
                data = handle.read(min(have, start + MAX_PUSH_BYTES) - start)
            whole = data.rfind(b"\n") + 1
            if start + whole <= held:
                if len(data) == MAX_PUSH_BYTES:
                    self._say_once(f"long:{name}", f"{name} has a line longer than a push can carry "
                                   f"({MAX_PUSH_BYTES} bytes): it is not pushed past it")
                return  # only a line still being written: it goes next round
            answer = self._post(source, name, start, data[:whole])
            if answer[0] == 200:
                sent = start + whole - held
                result.pushed[name] = result.pushed.get(name, 0) + sent
                held = answer[1]
                resends = 0
                continue
            size = answer[1]
            if size == held or resends >= MAX_RESENDS or size < 0:
                self._say_once(f"differs:{name}:{source.url}",
                               f"{source.host}'s copy of {name} is not this computer's log ({answer[2]}); "
                               "it is not pushed there (move the server's copy out of its device-logs "
                               "folder to push it again)")
                return
            held = size
            resends += 1
        if held > have:
            self._say_once(f"longer:{name}:{source.url}",
                           f"{source.host} holds {held} bytes of {name}, this computer only {have}: "
                           "its copy is not this computer's log; this computer's file is never written "
                           "by a pull, and nothing of it is pushed there")

    def _post(self, source, name: str, at: int, body: bytes) -> Tuple[int, int, str]:
        """(status, the server's size after it or -1, its words) of one push; raises on failures
        that end the round."""
        if self.puller.stopping:
            raise PullError("pulling stopped")
        url = f"{source.url}{DEVICES_ROUTE}{name}"
        headers = {"Authorization": f"Bearer {self.puller.token}", "Content-Type": "text/csv"}
        try:
            response = self.puller.session.post(url, params={"at": str(at)}, data=body, headers=headers,
                                                timeout=TIMEOUT_S, allow_redirects=False)
        except requests.RequestException as exc:
            raise _not_answered(PullError(describe_request_error(exc, source.host)),
                                request_error_reason(exc)) from None
        with response:
            text = response.text[:300].strip() if len(response.content) < 4096 else ""
            size_text = response.headers.get("mailtracker-size", "")
            if response.status_code == 200:
                try:
                    size = int(response.json()["size"])
                except (ValueError, KeyError, TypeError):
                    raise PullError(f"{source.host} did not answer a push of {name} as mailtracker does") from None
                if size < at + len(body):
                    raise PullError(f"{source.host} says it holds {size} bytes of {name} after a push "
                                    f"up to {at + len(body)}; nothing more is pushed there this round")
                return 200, size, ""
            if response.status_code == 409:
                return 409, int(size_text) if size_text.isdigit() else -1, text
            if response.status_code == 507:
                raise PullError(f"{source.host}'s disk is full: {name} is pushed when it has room ({text})")
            if response.status_code == 413:
                raise PullError(f"{source.host} takes no more of {name}: {text}")
            self.puller.check_status(source, response, url)
            raise PullError(f"{url} answered a push with HTTP {response.status_code}: {text}")

    # -- pulling the other computers' logs --

    def _pull(self, source, device: str, listing: Dict[str, int], result: SyncResult) -> None:
        others = [(name, size) for name, size in sorted(listing.items())
                  if DeviceLog.parse(name).device != device]
        folder = self.home.devices_dir
        if not others or (folder / SYNCTHING_MARKER).exists():
            return
        folder.mkdir(parents=True, exist_ok=True)
        try:
            with FileLock(str(folder / LOCK_NAME), timeout=LOCK_TIMEOUT_S):
                for name, size in others:
                    if sum(result.pulled.values()) >= MAX_PULL_BYTES:
                        result.more = True
                        return
                    self._pull_log(source, name, size, result)
        except Timeout:
            raise LockTimeoutError(f"another mailtracker pull held {folder / LOCK_NAME} for "
                                   f"{LOCK_TIMEOUT_S:.0f} s") from None

    def _pull_log(self, source, name: str, size: int, result: SyncResult) -> None:
        """Append the server's new whole lines of another computer's log; never replace it."""
        local = self.home.devices_dir / name
        try:
            info = os.lstat(local)
        except FileNotFoundError:
            info = None
        if info is not None and not stat.S_ISREG(info.st_mode):
            self._say_once(f"odd:{name}", f"{local} is not a regular file (a symlink, FIFO or folder): "
                           "it is not pulled until it is removed")
            return
        have = info.st_size if info is not None else 0
        if size <= have:
            return  # the server's copy is behind this one (another server, or a sync tool, was first)
        start = max(0, have - OVERLAP_BYTES)
        budget = MAX_PULL_BYTES - sum(result.pulled.values())
        end = min(size, start + MAX_REQUEST_BYTES, start + max(OVERLAP_BYTES + 1, budget))
        tmp = self.home.devices_dir / f".{name}.pull.tmp"
        counted = PullResult()
        try:
            got = self.puller.fetch(source, name, start, end, tmp, counted, route=DEVICES_ROUTE)
            overlap = have - start
            if got < overlap:
                raise PullError(f"the connection to {source.host} broke during {name}; it comes next time")
            if overlap and _read_span(tmp, 0, overlap) != _read_span(local, start, overlap):
                self._say_once(f"diverged:{name}:{source.url}",
                               f"{name} on {source.host} no longer continues the copy here: it is not "
                               "pulled from there (the copy here is kept as it is)")
                return
            kept = _whole_lines(tmp, overlap, got)
            if kept and info is None:
                os.truncate(tmp, kept)
                os.replace(tmp, local)
            elif kept:
                self.puller.append(local, tmp, overlap, kept, have, name)
        finally:
            tmp.unlink(missing_ok=True)
        if kept:
            result.pulled[name] = result.pulled.get(name, 0) + kept
        if got < end - start:
            raise PullError(f"the connection to {source.host} broke after {got} of {end - start} bytes "
                            f"of {name}; the whole lines that arrived are kept")
        if end < size:
            result.more = True
