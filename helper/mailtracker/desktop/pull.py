"""HTTP pull, the desktop's side: the Puller fetches only the bytes of the
server's hits files it lacks (the server's side is ``hitfiles.py`` and, for the
live pull, ``livewatch.py``).

The protocol is two requests. ``GET /hits/`` lists the ``hits-*.csv`` files
directly in the server's hits folder with their sizes (and an ETag, so a pull
that finds nothing new is answered 304 with no body). ``GET /hits/<name>``
with ``Range: bytes=N-M`` sends a span of a file. The desktop asks from a few
bytes before the end of its copy and checks those bytes still match, so a file
replaced on the server is noticed and downloaded again instead.

Live: the running Puller asks for the listing with ``?wait=40`` and the ETag of
the last one; the server holds that request until a hits file changes, so an
open reaches the desktop within a moment, and an idle desktop costs the server
one request per 40 s. A server that does not hold requests (an older version)
is polled every ``pull_interval_s`` instead.

Nothing a server sends can cost more than it should: a listing is read up to
``MAX_LISTING_BYTES``; each request asks for at most ``MAX_REQUEST_BYTES`` and
reads no more than it asked; a pull stops after ``MAX_PULL_BYTES`` (the next
one goes on) and is given up after its deadline, however slowly the server
trickles; every byte lands first in a temporary file and only whole lines are
kept; a disk with less than ``reserve_bytes`` free is not written to. Each
local file remembers the server it came from (``.pull-sources.json``): two
servers serving files of the same name (the same server id) are refused with
both named, never written over each other.

The token is derived from the secret the desktop and the server already share:
``HMAC-SHA256(secret, "mailtracker-pull-token-v1")``, unpadded base64url. So
there is nothing to configure, the token cannot mint tags, and replacing the
secret replaces it. Whoever holds it can read the hits (addresses per the
server's privacy setting, user agents) and, on a server that keeps them, read and add to the
device logs of the person's computers (``devicesync.py``), so it only travels over HTTPS.
"""

import ipaddress
import json
import logging
import os
import re
import socket
import stat
import threading
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence, Tuple
from urllib.parse import urlsplit

import requests
from filelock import FileLock, Timeout
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError

from mailtracker.core.contract import HITS_NAME_RE, HITS_ROUTE
from mailtracker.core.errors import LockTimeoutError, MailtrackerError, PullAuthError, PullError
from mailtracker.core.timestamps import utc_timestamp
from mailtracker.core.untrusted import is_number
from mailtracker.desktop.client import TIMEOUT_S
from mailtracker.desktop.client import session as shared_session

if TYPE_CHECKING:
    from mailtracker.core.paths import Home

log = logging.getLogger(__name__)

# Bytes of the desktop's copy asked for again, to check the server's file still continues it.
OVERLAP_BYTES = 64
DEFAULT_INTERVAL_S = 30.0
FIRST_RETRY_S = 5.0
MAX_BACKOFF_S = 600.0
LOCK_NAME = ".pull.lock"
LOCK_TIMEOUT_S = 60.0
# Which server each local file came from (one owner per file name).
SOURCES_NAME = ".pull-sources.json"

# How long the server is asked to hold a listing that has nothing new (livewatch.MAX_WAIT_S).
LIVE_WAIT_S = 40
# The header by which a server says it held the listing as asked (livewatch.WAIT_HEADER).
WAIT_HEADER = "mailtracker-wait"
# A held listing answered sooner than this is not asked again at once (a server or a proxy
# that answers every held request at once must not make the desktop spin).
MIN_LIVE_ROUND_S = 1.0
# The first retry after a live server's held request failed (then doubling, as for any failure).
LIVE_FIRST_RETRY_S = 1.0

# The bounds on what one server can make the desktop hold or write.
MAX_LISTING_BYTES = 4 << 20
MAX_REQUEST_BYTES = 8 << 20
MAX_PULL_BYTES = 32 << 20
PULL_DEADLINE_S = 120.0
# Free space left alone on the hits folder's disk: this much, or 5 % of a smaller disk.
RESERVE_BYTES = 64 << 20
# How long stop() waits for a pull to end (its connections are shut at once).
STOP_WITHIN_S = 3.0
READ_BYTES = 64 << 10


@dataclass
class PullResult:
    """What one pull did: bytes per file name, and what it cost."""

    files: Dict[str, int] = field(default_factory=dict)
    replaced: List[str] = field(default_factory=list)
    bytes_received: int = 0
    requests: int = 0
    unchanged: bool = True
    # Something listed is not here yet (a bound was reached): pull again at once.
    more: bool = False
    # A file was left alone (not a regular file here): it is tried again after pull_interval_s.
    skipped: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.files)

    def summary(self) -> str:
        if not self.files:
            return "nothing new"
        text = f"{self.bytes_received} bytes into {len(self.files)} files"
        if self.replaced:
            text += f" ({', '.join(self.replaced)} replaced on the server, downloaded again)"
        return text


@dataclass(frozen=True)
class PullStatus:
    """How pulling goes, for the tray, the log and ``doctor``."""

    state: str = "waiting"  # waiting, ok, failing, stopped
    message: str = "no pull yet"
    failures: int = 0
    code: int = 0
    last_success: str = ""
    retry_in_s: float = 0.0
    # The server holds the listing until a hit arrives (opens arrive within seconds).
    live: bool = False
    # The server this status is of (its pull URL; '' for the status of several).
    server: str = ""
    # Whether it answered: REACHABLE, UNREACHABLE (no answer, or only its proxy's 502-504) or
    # FAILING (the pull failed for another reason: message says which); "" before a pull.
    reach: str = ""
    # Why it did not answer, in a few words ("connection refused"); '' when it did.
    reason: str = ""


REACHABLE, UNREACHABLE, FAILING = "reachable", "unreachable", "failing"
# What a proxy in front of the pixel server answers when the server behind it does not.
GATEWAY_STATUSES = (502, 503, 504)


def _not_answered(error: PullError, reason: str) -> PullError:
    """Mark a pull error as the server's silence (as opposed to an answer that refused)."""
    error.reach, error.reason = UNREACHABLE, reason
    return error


def _failing(error: PullError, reason: str) -> PullError:
    """Give a pull error that is not the server's silence its reason in a few words (the tray's
    headline says it: "token refused (HTTP 401)", "disk full here")."""
    error.reason = reason
    return error


def reach_of(error: Optional[MailtrackerError]) -> Tuple[str, str]:
    """(reach, reason) of a pull's outcome: REACHABLE when it worked, UNREACHABLE when the server
    did not answer, FAILING for any other failure (a refused token, a full disk here...)."""
    if error is None:
        return REACHABLE, ""
    return getattr(error, "reach", FAILING), getattr(error, "reason", "")


def retry_delay(failures: int, interval_s: float) -> float:
    """Seconds before the next try after ``failures`` failures in a row: doubling, capped."""
    first = min(interval_s, FIRST_RETRY_S)
    return min(max(interval_s, MAX_BACKOFF_S), first * 2 ** max(0, failures - 1))


class _AbortableAdapter(HTTPAdapter):
    """requests' adapter that remembers its sockets, so a pull can be cut off from
    another thread (its deadline, or stop()) whatever it is blocked in."""

    def __init__(self):
        self._connections = weakref.WeakSet()
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        connections = self._connections

        def tracked(base):
            class Tracked(base):
                def connect(self):
                    connections.add(self)
                    super().connect()
            return Tracked

        self.poolmanager.pool_classes_by_scheme = {
            "http": type("PullPool", (HTTPConnectionPool,), {"ConnectionCls": tracked(HTTPConnection)}),
            "https": type("PullTLSPool", (HTTPSConnectionPool,), {"ConnectionCls": tracked(HTTPSConnection)}),
        }

    def abort(self) -> None:
        """Shut every connection: a blocked read returns at once, a pooled one is not reused."""
        for connection in list(self._connections):
            sock = getattr(connection, "sock", None)
            if sock is None:
                continue
            try:
                # The plain socket's shutdown, also under TLS (its socket is the one in use, and
                # SSLSocket.shutdown would change state another thread is reading with).
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except (OSError, TypeError):
                pass


class _Source:
    """One server to pull from: its address, what is known of it, and its connections."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.listing_url = self.url + HITS_ROUTE
        parts = urlsplit(self.url)
        self.host = parts.netloc
        self.etag: Optional[str] = None
        # Whether the server holds listings (None: not known yet).
        self.live: Optional[bool] = None
        self.adapter = _AbortableAdapter()
        self.wake = threading.Event()
        self.overran = threading.Event()
        self.problem = _url_problem(self.url, parts)
        self.status = PullStatus()


def _url_problem(url: str, parts) -> str:
    """What is wrong with a pull URL as written ('' when nothing is)."""
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"pull_url {url!r} is not an http(s) address; give the server's, e.g. https://t.example.org"
    path = parts.path.rstrip("/")
    if path.endswith("/hits") or path.endswith("/p") or path.endswith(".gif"):
        bare = f"{parts.scheme}://{parts.netloc}"
        return (f"pull_url {url} names a path on the server ({parts.path}); pull_url is the server's "
                f"address alone: {bare}")
    return ""


def _in_clear(url: str) -> bool:
    """Whether a pull URL sends the token unencrypted over a network (not to this machine)."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        return False
    host = parts.hostname or ""
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host != "localhost"


class Puller:
    """Pulls new hits from one or more servers into the hits folder.

    ``pull_once`` pulls every server now, in the caller's thread. ``start``/``stop``
    (or ``with``) run a thread per server that pulls at start, then waits live on the
    server (or every ``interval_s`` where the server cannot hold requests), at once
    on ``pull_now``, and after a failure again with a growing delay. A lock file in
    the hits folder makes every puller on this machine take turns writing, so each
    local hits file has one writer at a time.
    """

    def __init__(self, hits_dir: Path, urls: Sequence[str], token: str,
                 interval_s: float = DEFAULT_INTERVAL_S, session: Optional[requests.Session] = None,
                 on_pull: Optional[Callable[[PullStatus, Optional[PullResult]], None]] = None,
                 live: bool = True, live_wait_s: int = LIVE_WAIT_S, deadline_s: Optional[float] = None,
                 reserve_bytes: Optional[int] = None, devices: Optional["Home"] = None):
        if not urls:
            raise PullError("no pull URL: set pull_url in config.toml's [desktop] section")
        self.hits_dir = Path(hits_dir)
        self.sources = [_Source(url) for url in urls]
        self.token = token
        self.interval_s = interval_s
        self.live = live
        self.live_wait_s = live_wait_s
        self.deadline_s = PULL_DEADLINE_S if deadline_s is None else deadline_s
        self.reserve_bytes = RESERVE_BYTES if reserve_bytes is None else reserve_bytes
        if session is None:
            session = shared_session()
        self.session = session
        for source in self.sources:
            # The longest matching prefix wins: each server's requests use its own adapter.
            session.mount(source.url + "/", source.adapter)
            if _in_clear(source.url):
                log.warning("pull_url %s is plain http://: the pull token and every hit (addresses, "
                            "user agents) travel in clear; use https://", source.url)
        self.on_pull = on_pull
        # The person's other computers meet here too (devicesync): a home that joined pushes its
        # own device logs and pulls theirs.
        self.devices = None
        if devices is not None:
            from mailtracker.desktop.devicesync import DeviceSync

            self.devices = DeviceSync(self, devices, urls)
        self._status_lock = threading.Lock()
        self._stopping = False
        self._stopped = False
        self._threads: List[threading.Thread] = []

    # -- the threads --

    def start(self) -> "Puller":
        self._stopping = self._stopped = False
        self._threads = [threading.Thread(target=self._run, args=(source,), daemon=True,
                                          name=f"mailtracker-pull-{source.host}")
                         for source in self.sources]
        if self.devices is not None:
            self._threads += self.devices.threads()
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop pulling within ``STOP_WITHIN_S``, whatever a pull is doing (its connections are shut)."""
        self._stopping = True
        for source in self.sources:
            source.wake.set()
            source.adapter.abort()
        if self.devices is not None:
            self.devices.abort()
        deadline = time.monotonic() + STOP_WITHIN_S
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(thread.is_alive() for thread in self._threads):
            log.warning("a pull did not end within %.0f s of stopping; it is left to end with the process",
                        STOP_WITHIN_S)
        self._threads = []
        with self._status_lock:
            self._stopped = True

    def __enter__(self) -> "Puller":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def pull_now(self) -> None:
        """Pull as soon as possible, also while backing off after failures."""
        for source in self.sources:
            source.wake.set()

    @property
    def status(self) -> PullStatus:
        """One status for all servers: the first failing one's, else the latest success."""
        with self._status_lock:
            statuses = [source.status for source in self.sources]
            stopped = self._stopped
        failing = [s for s in statuses if s.state == "failing"]
        ok = sorted((s for s in statuses if s.state == "ok"), key=lambda s: s.last_success)
        status = failing[0] if failing else ok[-1] if ok else statuses[0]
        if failing or ok:
            status = replace(status, live=all(s.live for s in statuses))
        return replace(status, state="stopped", retry_in_s=0.0) if stopped else status

    def _run(self, source: _Source) -> None:
        delay = 0.0
        while True:
            source.wake.wait(delay)
            if self._stopping:
                return
            source.wake.clear()
            began = time.monotonic()
            # After a failure the listing is not held: its prompt answer says the server is back.
            wait_s = self.live_wait_s if self.live and source.live is not False and source.etag \
                and source.status.state != "failing" else 0
            result, error = PullResult(), None
            try:
                self._pull_source(source, result, wait_s)
            except MailtrackerError as exc:
                error = exc
            except OSError as exc:
                error = _failing(PullError(f"cannot write pulled hits to {self.hits_dir}: {exc.strerror or exc}"),
                                 "cannot write here")
            except Exception as exc:  # a bug must not end the pulling for good
                log.exception("pulling hits failed unexpectedly")
                error = PullError(f"pulling failed unexpectedly: {exc!r}")
            if self._stopping:
                return
            status = self._record(source, result, error)
            delay = status.retry_in_s
            if error is None and delay == 0 and time.monotonic() - began < MIN_LIVE_ROUND_S \
                    and not result.changed and not result.more:
                delay = MIN_LIVE_ROUND_S
            if result.changed and self.devices is not None:
                self.devices.sync_soon()  # a hit may be on a tag another computer minted
            if self.on_pull is not None:
                self.on_pull(status, result)

    def _record(self, source: _Source, result: PullResult, error: Optional[MailtrackerError]) -> PullStatus:
        with self._status_lock:
            before = source.status
            if error is None:
                live = bool(self.live and source.live)
                if result.more:
                    again = 0.0
                elif result.skipped or not self.live or source.live is False:
                    again = self.interval_s
                else:
                    again = 0.0
                source.status = PullStatus("ok", f"pulled {result.summary()}", 0, 0, utc_timestamp(), again,
                                           live, source.url, REACHABLE)
            else:
                failures = before.failures + 1
                # A live server is asked again sooner: a dropped held request is the common failure.
                first = min(self.interval_s, LIVE_FIRST_RETRY_S) if self.live and source.live else self.interval_s
                reach, reason = reach_of(error)
                source.status = PullStatus("failing", str(error), failures, error.code,
                                           before.last_success, retry_delay(failures, first),
                                           server=source.url, reach=reach, reason=reason)
            status = source.status
        if error is None:
            if before.state == "failing":
                log.info("pulling hits from %s works again: %s", source.host, result.summary())
            elif result.changed:
                log.info("pulled %s from %s", result.summary(), source.host)
        elif before.state != "failing" or before.message != status.message:
            log.warning("%s (trying again in %.0f s)", status.message, status.retry_in_s)
        else:
            log.debug("%s (failure %d, trying again in %.0f s)", status.message, status.failures,
                      status.retry_in_s)
        return status

    # -- one pull --

    def pull_once(self, wait_s: int = 0) -> PullResult:
        """Pull every source once; raises PullError (PullAuthError for a refused token).
        ``wait_s``: ask each server to hold its listing until a hit arrives (the live pull)."""
        result = PullResult()
        errors = []
        for source in self.sources:
            try:
                self._pull_source(source, result, wait_s)
            except PullError as exc:
                errors.append(exc)
        if errors:
            # What did arrive is kept; the first failure is what the user must fix.
            raise errors[0]
        return result

    def pull_all(self) -> PullResult:
        """Pull until every listed byte is here: ``pull_once`` again while a bound left more."""
        total = PullResult()
        while True:
            result = self.pull_once()
            for name, count in result.files.items():
                total.files[name] = total.files.get(name, 0) + count
            total.replaced += [name for name in result.replaced if name not in total.replaced]
            total.bytes_received += result.bytes_received
            total.requests += result.requests
            total.unchanged = total.unchanged and result.unchanged
            if not (result.more and result.changed):
                return total

    def _pull_source(self, source: _Source, result: PullResult, wait_s: int = 0) -> None:
        """The listing (held up to ``wait_s``), then each file that grew, within the pull's deadline."""
        if source.problem:
            raise PullError(source.problem)
        with self.within_deadline(source, wait_s + self.deadline_s):
            listing = self._listing(source, wait_s)
            if listing is None:
                return
            files, etag = listing
            result.unchanged = False
            source.etag = None
            complete = self._pull_files(source, files, result)
            # Only a listing whose every file was fully pulled may answer "nothing new" later.
            source.etag = etag if complete else None

    @contextmanager
    def within_deadline(self, source: _Source, limit: float):
        """Cut the source's connections after ``limit`` s: a server that trickles is given up."""
        source.overran.clear()
        watchdog = threading.Timer(limit, self._overrun, (source,))
        watchdog.daemon = True
        watchdog.start()
        try:
            yield
        except PullError:
            if source.overran.is_set() and not self._stopping:
                raise _failing(PullError(f"{source.host} answered too slowly: the pull was given up after "
                                         f"{limit:.0f} s; what arrived whole is kept and the rest comes next "
                                         "time"), "answered too slowly") from None
            raise
        finally:
            watchdog.cancel()

    def _overrun(self, source: _Source) -> None:
        source.overran.set()
        source.adapter.abort()

    def _listing(self, source: _Source, wait_s: int) -> Optional[Tuple[List[Tuple[str, int]], Optional[str]]]:
        """(name, size) of each file the server lists and the listing's ETag; None: nothing new."""
        headers = {"If-None-Match": source.etag} if source.etag else {}
        url = source.listing_url + (f"?wait={wait_s}" if wait_s else "")
        timeout = (TIMEOUT_S[0], wait_s + TIMEOUT_S[1]) if wait_s else None
        response = self.get(source, url, headers, timeout)
        with response:
            if wait_s and response.status_code in (200, 304):
                source.live = WAIT_HEADER in response.headers
            if response.status_code == 304:
                return None
            self.check_status(source, response, source.listing_url)
            body = _read_capped(response, MAX_LISTING_BYTES, source, "hits list")
            return self._parse_listing(source, body), response.headers.get("ETag")

    # What the device logs' sync (devicesync.py) shares with the hits' pull: one source's
    # authorised request, the check of its answer, a span of a file fetched and appended.

    @property
    def stopping(self) -> bool:
        return self._stopping

    def get(self, source: _Source, url: str, headers: Dict[str, str], timeout=None) -> requests.Response:
        """A GET of ``url`` with the pull token, streamed; PullError when it was not answered."""
        if self._stopping:
            raise PullError("pulling stopped")
        headers = {"Authorization": f"Bearer {self.token}", "Accept-Encoding": "identity", **headers}
        extra = {"timeout": timeout} if timeout else {}
        try:
            return self.session.get(url, headers=headers, stream=True, allow_redirects=False, **extra)
        except requests.RequestException as exc:
            raise _not_answered(PullError(describe_request_error(exc, source.host)),
                                request_error_reason(exc)) from None

    def check_status(self, source: _Source, response: requests.Response, url: str) -> None:
        """PullError (PullAuthError for a refused token) for an answer that is not a success."""
        status = response.status_code
        if status == 401:
            raise _failing(PullAuthError(
                f"{source.host} refused the pull token (HTTP 401): the server's secret is not this "
                "desktop's; copy this desktop's secret file to the server and restart it"
            ), "token refused (HTTP 401)")
        if status in (301, 302, 303, 307, 308):
            target = response.headers.get("Location", "")
            if source.url.startswith("http://") and target.startswith("https://"):
                raise _failing(PullError(f"{source.url} redirects to HTTPS (HTTP {status}): set pull_url to "
                                         f"https://{source.host}; over http:// the pull token would travel "
                                         "in clear"), f"redirects (HTTP {status})")
            raise _failing(PullError(f"{url} redirects to {target or 'another address'} (HTTP {status}); "
                                     "pull_url must be the pixel server's own address (a redirect is not "
                                     "followed: the token would go with it)"), f"redirects (HTTP {status})")
        if status == 404 and url == source.listing_url:
            raise _failing(PullError(
                f"{source.url} does not serve hits (HTTP 404): start the pixel server with "
                "--serve-hits, and check that pull_url is the server's address"
            ), "does not serve hits (HTTP 404)")
        if status in GATEWAY_STATUSES:
            raise _not_answered(PullError(
                f"{url} answered HTTP {status} {response.reason}: the proxy in front of the pixel server "
                "answers, the pixel server behind it does not; is it running?"), f"HTTP {status} from its proxy")
        if status not in (200, 206):
            raise _failing(PullError(f"{url} answered HTTP {status} {response.reason}"), f"HTTP {status}")

    @staticmethod
    def _parse_listing(source: _Source, body: bytes) -> List[Tuple[str, int]]:
        try:
            files = [(item["name"], item["size"]) for item in json.loads(body)["files"]]
        except (ValueError, KeyError, TypeError):
            raise PullError(f"{source.listing_url} did not answer a mailtracker hits list") from None
        for name, size in files:
            if not (isinstance(name, str) and HITS_NAME_RE.fullmatch(name)
                    and isinstance(size, int) and size >= 0):
                raise PullError(f"{source.listing_url} listed a file mailtracker does not accept: {name!r}")
        return files

    def _pull_files(self, source: _Source, files: List[Tuple[str, int]], result: PullResult) -> bool:
        """Bring each listed file up to date under the folder's lock; False when one is not
        (left alone, or more to come)."""
        self.hits_dir.mkdir(parents=True, exist_ok=True)
        try:
            with FileLock(str(self.hits_dir / LOCK_NAME), timeout=LOCK_TIMEOUT_S):
                owners = _Owners.load(self.hits_dir)
                try:
                    complete, conflicts = True, []
                    for name, size in files:
                        if result.bytes_received >= MAX_PULL_BYTES:
                            result.more = True
                            return False
                        try:
                            complete = self._pull_file(source, name, size, owners, result) and complete
                        except _Conflict as exc:
                            conflicts.append(str(exc))
                            complete = False
                finally:
                    owners.save()
        except Timeout:
            raise LockTimeoutError(
                f"another mailtracker pull held {self.hits_dir / LOCK_NAME} for {LOCK_TIMEOUT_S:.0f} s"
            ) from None
        if conflicts:
            raise _failing(PullError(conflicts[0] + (f" ({len(conflicts) - 1} more files alike)"
                                                     if len(conflicts) > 1 else "")), "same server id as another")
        return complete

    def _pull_file(self, source: _Source, name: str, size: int, owners: "_Owners",
                   result: PullResult) -> bool:
        """Bring one file closer to the server's; True when the copy now holds every listed byte."""
        local = self.hits_dir / name
        try:
            info = os.lstat(local)
        except FileNotFoundError:
            info = None
        if info is not None and not stat.S_ISREG(info.st_mode):
            # A symlink, FIFO or folder by that name (another sync tool's, or made by hand):
            # writing through it would block the pull or change a file outside the folder.
            log.warning("%s in %s is not a regular file (a symlink, FIFO or folder); it is not "
                        "pulled until it is removed", name, self.hits_dir)
            result.skipped = True
            return False
        owner = owners.get(name)
        if owner is not None and owner != source.url and owner in (s.url for s in self.sources):
            raise _Conflict(f"{name} is served by both {owner} and {source.url}: the two servers have "
                            f"the same server id, and pulling both would write one's hits over the "
                            f"other's; give one of them another server_id (in its server.toml, or "
                            f"setup-server --server-id NAME) and restart it. Its files are not pulled "
                            f"from {source.host} until then")
        have = info.st_size if info is not None else 0
        if size == have:
            return True
        replacing = size < have
        if replacing:
            self._may_replace(source, name, owner, "is shorter on the server than here")
        start = 0 if replacing else max(0, have - OVERLAP_BYTES)
        end = min(size, start + MAX_REQUEST_BYTES, start + max(OVERLAP_BYTES + 1,
                                                               MAX_PULL_BYTES - result.bytes_received))
        tmp = self.hits_dir / f".{name}.pull-tmp"
        try:
            got = self.fetch(source, name, start, end, tmp, result)
            overlap = 0 if replacing else have - start
            if overlap:
                if got < overlap:
                    raise PullError(f"the connection to {source.host} broke after {got} of {end - start} "
                                    f"bytes of {name}; the rest comes with the next pull")
                if _read_span(tmp, 0, overlap) != _read_span(local, start, overlap):
                    self._may_replace(source, name, owner, "no longer continues the copy here")
                    log.info("%s on %s no longer continues the copy here; downloading it again",
                             name, source.host)
                    tmp.unlink(missing_ok=True)
                    start, end, overlap, replacing = 0, min(size, MAX_REQUEST_BYTES), 0, True
                    got = self.fetch(source, name, start, end, tmp, result)
            kept = _whole_lines(tmp, overlap, got)
            if replacing or info is None:
                if kept:
                    os.truncate(tmp, kept)
                    os.replace(tmp, local)
            elif kept:
                self.append(local, tmp, overlap, kept, have, name)
        finally:
            tmp.unlink(missing_ok=True)
        if kept or replacing:
            owners.set(name, source.url)
        if kept:
            result.files[name] = result.files.get(name, 0) + kept
            if replacing and name not in result.replaced:
                result.replaced.append(name)
        if got < end - start:
            raise PullError(f"the connection to {source.host} broke after {got} of {end - start} bytes "
                            f"of {name}; the whole lines that arrived are kept and the rest comes with "
                            "the next pull")
        if end < size:
            result.more = True
            return False
        return True

    def _may_replace(self, source: _Source, name: str, owner: Optional[str], how: str) -> None:
        """Refuse to write over a copy that did not come from this server."""
        if owner != source.url:
            came = f"came from {owner}" if owner else "was not pulled from it"
            raise _Conflict(f"{name} {how}, and the copy here {came}: another server with the same "
                            f"server id, or a file put there by hand? It is left as it is; move it out "
                            f"of {self.hits_dir} to pull {source.host}'s")

    def fetch(self, source: _Source, name: str, start: int, end: int, tmp: Path, result: PullResult,
              route: str = HITS_ROUTE) -> int:
        """Bytes [start, end) of the server's file into ``tmp``; how many arrived (fewer when the
        connection broke). Refuses, writing nothing, an answer that is not exactly that span."""
        self._check_room(end - start, name, source, tmp.parent)
        url = f"{source.url}{route}{name}"
        response = self.get(source, url, {"Range": f"bytes={start}-{end - 1}"})
        with response:
            result.requests += 1
            if response.status_code == 416:
                raise PullError(f"{name} shrank on the server during the pull; it is fetched again next time")
            self.check_status(source, response, url)
            content_range = response.headers.get("Content-Range", "")
            if response.status_code != 206 or not content_range.startswith(f"bytes {start}-"):
                raise PullError(f"{source.host} did not answer the span of {name} it was asked for "
                                f"(HTTP {response.status_code}, Content-Range {content_range!r}); nothing "
                                "of it was written. Is a proxy in between changing the answers?")
            length = response.headers.get("Content-Length", "")
            if is_number(length) and int(length) > end - start:
                raise PullError(f"{source.host} announced {length} bytes of {name} where {end - start} were "
                                "asked; nothing of it was written")
            got = 0
            try:
                with open(tmp, "wb", opener=_no_follow) as handle:
                    for chunk in _pieces(response):
                        got += len(chunk)
                        result.bytes_received += len(chunk)
                        if got > end - start:
                            raise PullError(f"{source.host} sent more of {name} than the {end - start} "
                                            "bytes asked; nothing of it was written")
                        handle.write(chunk)
            except OSError as exc:
                raise _failing(PullError(f"cannot write {name} into {tmp.parent}: {exc.strerror or exc}; "
                                         "nothing of it was kept"), "cannot write here") from None
        return got

    def _check_room(self, needed: int, name: str, source: _Source, folder: Path) -> None:
        """Refuse to write when it would leave the disk with less than the reserve free."""
        try:
            disk = os.statvfs(folder)
        except (OSError, AttributeError):
            return
        free, total = disk.f_bavail * disk.f_frsize, disk.f_blocks * disk.f_frsize
        reserve = min(self.reserve_bytes, total // 20)
        # The span lands in a temporary file first, then is appended: it is written twice.
        if free - 2 * needed < reserve:
            raise _failing(PullError(f"the disk holding {folder} has {free >> 20} MiB free: {name} from "
                                     f"{source.host} ({needed} more bytes) is not pulled until there is room "
                                     f"(mailtracker leaves {reserve >> 20} MiB free)"), "disk full here")

    def append(self, local: Path, tmp: Path, offset: int, count: int, have: int, name: str) -> None:
        """Append ``count`` bytes of ``tmp`` from ``offset`` to the copy; all of them or none."""
        try:
            with open(local, "ab", opener=_no_follow) as handle, open(tmp, "rb") as source:
                source.seek(offset)
                remaining = count
                try:
                    while remaining:
                        chunk = source.read(min(READ_BYTES, remaining))
                        handle.write(chunk)
                        remaining -= len(chunk)
                    handle.flush()
                except OSError:
                    handle.truncate(have)
                    raise
        except OSError as exc:
            raise _failing(PullError(f"cannot add to {name} in {local.parent}: {exc.strerror or exc}; the "
                                     "copy is as it was before this pull"), "cannot write here") from None


class _Conflict(PullError):
    """A file the pull will not write: it belongs to another server, or to no pull at all."""


class _Owners:
    """``.pull-sources.json``: the server each pulled file came from."""

    def __init__(self, path: Path, owners: Dict[str, str]):
        self.path = path
        self._owners = owners
        self._changed = False

    @classmethod
    def load(cls, hits_dir: Path) -> "_Owners":
        path = hits_dir / SOURCES_NAME
        try:
            data = json.loads(path.read_bytes())
            owners = {name: url for name, url in data["files"].items()
                      if isinstance(name, str) and isinstance(url, str)}
        except FileNotFoundError:
            owners = {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            log.warning("%s is not readable; the server each file came from is learnt again", path)
            owners = {}
        return cls(path, owners)

    def get(self, name: str) -> Optional[str]:
        return self._owners.get(name)

    def set(self, name: str, url: str) -> None:
        if self._owners.get(name) != url:
            self._owners[name] = url
            self._changed = True

    def save(self) -> None:
        if not self._changed:
            return
        folder = self.path.parent
        kept = {name: url for name, url in sorted(self._owners.items()) if (folder / name).exists()}
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"files": kept}, indent=0) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)
        self._changed = False


def _read_capped(response: requests.Response, limit: int, source: _Source, what: str) -> bytes:
    length = response.headers.get("Content-Length", "")
    if is_number(length) and int(length) > limit:
        raise PullError(f"{source.host} sent a {what} of {int(length)} bytes; more than {limit >> 20} MiB "
                        "is not read")
    body = bytearray()
    for chunk in _pieces(response):
        body += chunk
        if len(body) > limit:
            raise PullError(f"{source.host} sent a {what} longer than {limit >> 20} MiB; it is not read")
    if is_number(length) and len(body) != int(length):
        raise PullError(f"the connection to {source.host} broke during the {what}")
    return bytes(body)


def _pieces(response: requests.Response):
    """The body as it arrives (each read returns what came, so a cut connection loses none of
    it); ends early, without an error, when the connection breaks."""
    while True:
        try:
            piece = response.raw.read1(READ_BYTES, decode_content=False)
        except (HTTPError, OSError, ValueError):
            return
        if not piece:
            return
        yield piece


def _whole_lines(path: Path, offset: int, end: int) -> int:
    """How many bytes of ``path`` from ``offset`` up to ``end`` form whole lines."""
    if end <= offset:
        return 0
    with open(path, "rb") as handle:
        position = end
        while position > offset:
            step = min(READ_BYTES, position - offset)
            handle.seek(position - step)
            block = handle.read(step)
            newline = block.rfind(b"\n")
            if newline >= 0:
                return position - step + newline + 1 - offset
            position -= step
    return 0


def _no_follow(path: str, flags: int) -> int:
    """Open without following a symlink or waiting on a FIFO put there since it was checked."""
    return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0), 0o666)


def _read_span(path: Path, start: int, count: int) -> bytes:
    with open(path, "rb", opener=_no_follow) as handle:
        handle.seek(start)
        return handle.read(count)


_ERRNO_RE = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")
# How a failed name lookup reads on Linux (glibc), macOS and Windows, and in urllib3.
_NAME_NOT_FOUND = ("Name or service not known", "NameResolutionError", "nodename nor servname",
                   "getaddrinfo failed")


def _name_not_found(text: str) -> bool:
    return any(words in text for words in _NAME_NOT_FOUND)


def request_error_reason(exc: requests.RequestException) -> str:
    """Why a request got no HTTP answer, in a few words: 'connection refused', 'timed out'..."""
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS error"
    if isinstance(exc, requests.exceptions.Timeout):
        return "timed out"
    text = str(exc)
    if _name_not_found(text):
        return "name not found"
    if "RemoteDisconnected" in text or "Connection aborted" in text:
        return "connection closed"
    match = _ERRNO_RE.search(text)
    return match.group(1).strip().lower() if match else "no connection"


def describe_request_error(exc: requests.RequestException, host: str) -> str:
    """One sentence a person can act on, for a request that got no HTTP answer."""
    if isinstance(exc, requests.exceptions.SSLError):
        reason = re.search(r"(certificate verify failed[^'\"()]*|wrong version number|"
                           r"hostname [^'\"()]*|certificate has expired)", str(exc))
        return (f"TLS error with {host}: {reason.group(1).strip() if reason else 'the handshake failed'}; "
                "check the server's certificate (is Caddy running, does the name point at the server?)")
    if isinstance(exc, requests.exceptions.Timeout):
        return f"{host} did not answer in time; is the server overloaded or a firewall dropping packets?"
    if isinstance(exc, requests.exceptions.ConnectionError):
        text = str(exc)
        if _name_not_found(text):
            return f"cannot resolve the name {host}: check the URL and your network"
        match = _ERRNO_RE.search(text)
        reason = match.group(1).strip() if match else "the connection failed"
        return f"cannot connect to {host}: {reason}; is the pixel server running and reachable?"
    return f"request to {host} failed: {exc}"
