"""HTTP pull, the desktop's side: the Puller fetches only the bytes of the
server's hits files it lacks (the server's side is ``hitfiles.py``).

The protocol is two requests. ``GET /hits/`` lists the ``hits-*.csv`` files
directly in the server's hits folder with their sizes (and an ETag, so a pull
that finds nothing new is answered 304 with no body). ``GET /hits/<name>``
with ``Range: bytes=N-`` sends a file from byte N on. The desktop asks from a
few bytes before the end of its copy and checks those bytes still match, so a
file replaced on the server is noticed and downloaded whole instead.

The token is derived from the secret the desktop and the server already share:
``HMAC-SHA256(secret, "mailtracker-pull-token-v1")``, unpadded base64url. So
there is nothing to configure, the token cannot mint tags, and replacing the
secret replaces it. Whoever holds it can read the hits (addresses per the
server's privacy setting, user agents), so it only travels over HTTPS.
"""

import logging
import os
import re
import stat
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple
from urllib.parse import urlsplit

import requests
from filelock import FileLock, Timeout

from mailtracker.core.contract import CHUNK_BYTES, HITS_NAME_RE, HITS_ROUTE
from mailtracker.core.errors import LockTimeoutError, MailtrackerError, PullAuthError, PullError
from mailtracker.core.timestamps import utc_timestamp
from mailtracker.desktop.client import session as shared_session

log = logging.getLogger(__name__)

# Bytes of the desktop's copy asked for again, to check the server's file still continues it.
OVERLAP_BYTES = 64
DEFAULT_INTERVAL_S = 30.0
FIRST_RETRY_S = 5.0
MAX_BACKOFF_S = 600.0
LOCK_NAME = ".pull.lock"
LOCK_TIMEOUT_S = 60.0


@dataclass
class PullResult:
    """What one pull did: bytes per file name, and what it cost."""

    files: Dict[str, int] = field(default_factory=dict)
    replaced: List[str] = field(default_factory=list)
    bytes_received: int = 0
    requests: int = 0
    unchanged: bool = True

    @property
    def changed(self) -> bool:
        return bool(self.files)

    def summary(self) -> str:
        if not self.files:
            return "nothing new"
        text = f"{self.bytes_received} bytes into {len(self.files)} files"
        if self.replaced:
            text += f" ({', '.join(self.replaced)} replaced on the server, downloaded whole)"
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


def retry_delay(failures: int, interval_s: float) -> float:
    """Seconds before the next try after ``failures`` failures in a row: doubling, capped."""
    first = min(interval_s, FIRST_RETRY_S)
    return min(max(interval_s, MAX_BACKOFF_S), first * 2 ** max(0, failures - 1))


class _Source:
    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.listing_url = self.url + HITS_ROUTE
        self.host = urlsplit(url).netloc
        self.etag: Optional[str] = None


class Puller:
    """Pulls new hits from one or more servers into the hits folder.

    ``pull_once`` pulls now, in the caller's thread. ``start``/``stop`` (or
    ``with``) run a thread that pulls at start, every ``interval_s``, at once on
    ``pull_now``, and after a failure again with a growing delay. A lock file in
    the hits folder makes every puller on this machine take turns, so each
    local hits file has one writer at a time.
    """

    def __init__(self, hits_dir: Path, urls: Sequence[str], token: str,
                 interval_s: float = DEFAULT_INTERVAL_S, session: Optional[requests.Session] = None,
                 on_pull: Optional[Callable[[PullStatus, Optional[PullResult]], None]] = None):
        if not urls:
            raise PullError("no pull URL: set pull_url in config.toml's [desktop] section")
        self.hits_dir = Path(hits_dir)
        self.sources = [_Source(url) for url in urls]
        self.token = token
        self.interval_s = interval_s
        if session is None:
            session = shared_session()
        self.session = session
        self.on_pull = on_pull
        self._status = PullStatus()
        self._status_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: Optional[threading.Thread] = None

    # -- the thread --

    def start(self) -> "Puller":
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="mailtracker-pull", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._status_lock:
            self._status = replace(self._status, state="stopped", retry_in_s=0.0)

    def __enter__(self) -> "Puller":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def pull_now(self) -> None:
        """Pull as soon as possible, also while backing off after failures."""
        self._wake.set()

    @property
    def status(self) -> PullStatus:
        with self._status_lock:
            return self._status

    def _run(self) -> None:
        delay = 0.0
        while True:
            self._wake.wait(delay)
            if self._stopping:
                return
            self._wake.clear()
            result, error = None, None
            try:
                result = self.pull_once()
            except MailtrackerError as exc:
                error = exc
            except OSError as exc:
                error = PullError(f"cannot write pulled hits to {self.hits_dir}: {exc.strerror or exc}")
            except Exception as exc:  # a bug must not end the pulling for good
                log.exception("pulling hits failed unexpectedly")
                error = PullError(f"pulling failed unexpectedly: {exc!r}")
            status = self._record(result, error)
            delay = status.retry_in_s
            if self.on_pull is not None:
                self.on_pull(status, result)

    def _record(self, result: Optional[PullResult], error: Optional[MailtrackerError]) -> PullStatus:
        with self._status_lock:
            before = self._status
            if error is None:
                self._status = PullStatus("ok", f"pulled {result.summary()}", 0, 0,
                                          utc_timestamp(), self.interval_s)
            else:
                failures = before.failures + 1
                self._status = PullStatus("failing", str(error), failures, error.code,
                                          before.last_success, retry_delay(failures, self.interval_s))
            status = self._status
        if error is None:
            if before.state == "failing":
                log.info("pulling hits works again: %s", result.summary())
            elif result.changed:
                log.info("pulled %s", result.summary())
        elif before.state != "failing" or before.message != status.message:
            log.warning("%s (trying again in %.0f s)", status.message, status.retry_in_s)
        else:
            log.debug("%s (failure %d, trying again in %.0f s)", status.message, status.failures,
                      status.retry_in_s)
        return status

    # -- one pull --

    def pull_once(self) -> PullResult:
        """Pull every source once; raises PullError (PullAuthError for a refused token)."""
        self.hits_dir.mkdir(parents=True, exist_ok=True)
        result = PullResult()
        try:
            with FileLock(str(self.hits_dir / LOCK_NAME), timeout=LOCK_TIMEOUT_S):
                errors = []
                for source in self.sources:
                    try:
                        self._pull_source(source, result)
                    except PullError as exc:
                        errors.append(exc)
        except Timeout:
            raise LockTimeoutError(
                f"another mailtracker pull held {self.hits_dir / LOCK_NAME} for {LOCK_TIMEOUT_S:.0f} s"
            ) from None
        if errors:
            # What did arrive is kept; the first failure is what the user must fix.
            raise errors[0]
        return result

    def _pull_source(self, source: _Source, result: PullResult) -> None:
        headers = {"If-None-Match": source.etag} if source.etag else {}
        # Read whole (not streamed), so the kept-alive connection goes back to the pool.
        response = self._get(source, source.listing_url, headers, stream=False)
        with response:
            if response.status_code == 304:
                return
            result.unchanged = False
            self._check_status(source, response, source.listing_url)
            files = self._parse_listing(source, response)
            etag = response.headers.get("ETag")
        source.etag = None
        complete = True
        for name, size in files:
            complete = self._pull_file(source, name, size, result) and complete
        # Only a listing whose every file was fully pulled may answer "nothing new" later.
        source.etag = etag if complete else None

    def _get(self, source: _Source, url: str, headers: Dict[str, str], stream: bool = True) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", "Accept-Encoding": "identity", **headers}
        try:
            response = self.session.get(url, headers=headers, stream=stream, allow_redirects=False)
        except requests.RequestException as exc:
            raise PullError(describe_request_error(exc, source.host)) from None
        return response

    def _check_status(self, source: _Source, response: requests.Response, url: str) -> None:
        status = response.status_code
        if status == 401:
            raise PullAuthError(
                f"{source.host} refused the pull token (HTTP 401): the server's secret is not this "
                "desktop's; copy this desktop's secret file to the server and restart it"
            )
        if status == 404 and url == source.listing_url:
            raise PullError(
                f"{source.url} does not serve hits (HTTP 404): start the pixel server with "
                "--serve-hits, and check that pull_url is the server's address"
            )
        if status not in (200, 206):
            raise PullError(f"{url} answered HTTP {status} {response.reason}")

    @staticmethod
    def _parse_listing(source: _Source, response: requests.Response) -> List[Tuple[str, int]]:
        try:
            files = [(item["name"], item["size"]) for item in response.json()["files"]]
        except (ValueError, KeyError, TypeError, requests.RequestException):
            raise PullError(f"{source.listing_url} did not answer a mailtracker hits list") from None
        for name, size in files:
            if not (isinstance(name, str) and HITS_NAME_RE.fullmatch(name)
                    and isinstance(size, int) and size >= 0):
                raise PullError(f"{source.listing_url} listed a file mailtracker does not accept: {name!r}")
        return files

    def _pull_file(self, source: _Source, name: str, size: int, result: PullResult) -> bool:
        """Bring one file up to date; False when it was left alone (see below)."""
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
            return False
        have = info.st_size if info is not None else 0
        if size == have:
            return True
        if size < have:
            self._download_whole(source, name, result)
            return True
        start = max(0, have - OVERLAP_BYTES)
        url = f"{source.url}{HITS_ROUTE}{name}"
        response = self._get(source, url, {"Range": f"bytes={start}-"})
        with response:
            result.requests += 1
            if response.status_code == 416:
                raise PullError(f"{name} shrank on the server during the pull; it is fetched again next time")
            self._check_status(source, response, url)
            if response.status_code == 200 or not response.headers.get(
                    "Content-Range", "").startswith(f"bytes {start}-"):
                # The server ignored the range and sent the whole file: it replaces the copy.
                self._save_whole(source, name, response, result)
                return True
            expected = int(response.headers.get("Content-Length", "-1"))
            tail = _read_tail(local, start, have)
            self._append(source, name, local, response, tail, expected, result)
        return True

    def _append(self, source: _Source, name: str, local: Path, response: requests.Response,
                tail: bytes, expected: int, result: PullResult) -> None:
        got = 0
        pending = b""
        checked = not tail
        try:
            with open(local, "ab", opener=_no_follow) as handle:
                for chunk in response.iter_content(CHUNK_BYTES):
                    got += len(chunk)
                    result.bytes_received += len(chunk)
                    if not checked:
                        pending += chunk
                        if len(pending) < len(tail):
                            continue
                        if pending[:len(tail)] != tail:
                            break
                        checked, chunk = True, pending[len(tail):]
                    if chunk:
                        handle.write(chunk)
                        handle.flush()
                        result.files[name] = result.files.get(name, 0) + len(chunk)
        except requests.RequestException:
            pass
        if not checked and (got >= len(tail) or got == expected):
            log.info("%s on %s no longer continues the copy here; downloading it whole", name, source.host)
            self._download_whole(source, name, result)
            return
        if expected >= 0 and got != expected:
            raise PullError(
                f"the connection to {source.host} broke after {got} of {expected} bytes of {name}; "
                "what arrived is kept and the rest comes with the next pull"
            )

    def _download_whole(self, source: _Source, name: str, result: PullResult) -> None:
        url = f"{source.url}{HITS_ROUTE}{name}"
        response = self._get(source, url, {})
        with response:
            result.requests += 1
            self._check_status(source, response, url)
            self._save_whole(source, name, response, result)

    def _save_whole(self, source: _Source, name: str, response: requests.Response,
                    result: PullResult) -> None:
        """Write the whole file beside its copy and rename it over, as sync tools do."""
        expected = int(response.headers.get("Content-Length", "-1"))
        tmp = self.hits_dir / f".{name}.pull-tmp"
        got = 0
        try:
            with open(tmp, "wb") as handle:
                try:
                    for chunk in response.iter_content(CHUNK_BYTES):
                        got += len(chunk)
                        handle.write(chunk)
                except requests.RequestException:
                    pass
            result.bytes_received += got
            if expected >= 0 and got != expected:
                raise PullError(
                    f"the connection to {source.host} broke after {got} of {expected} bytes of {name}; "
                    "it is downloaded again with the next pull"
                )
            os.replace(tmp, self.hits_dir / name)
        finally:
            tmp.unlink(missing_ok=True)
        result.files[name] = got
        result.replaced.append(name)


def _no_follow(path: str, flags: int) -> int:
    """Open without following a symlink or waiting on a FIFO put there since it was checked."""
    return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0), 0o666)


def _read_tail(path: Path, start: int, end: int) -> bytes:
    if end <= start:
        return b""
    with open(path, "rb") as handle:
        handle.seek(start)
        return handle.read(end - start)


_ERRNO_RE = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")


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
        if "Name or service not known" in text or "NameResolutionError" in text or \
                "nodename nor servname" in text or "getaddrinfo failed" in text:
            return f"cannot resolve the name {host}: check the URL and your network"
        match = _ERRNO_RE.search(text)
        reason = match.group(1).strip() if match else "the connection failed"
        return f"cannot connect to {host}: {reason}; is the pixel server running and reachable?"
    return f"request to {host} failed: {exc}"
