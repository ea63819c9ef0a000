"""Checking the pixel server from the desktop, end to end (``doctor --server``):
the name resolves, TLS is valid, the server is healthy, the pixel comes back
with the right headers, and a test hit on the reserved probe tag arrives in the
hits folder (by Syncthing, rsync or HTTP pull) within a bound.

The probe tag (``tokens.probe_token``) verifies, so the server logs it like any
hit, but the fold never counts it: checking costs no false open.
"""

import logging
import secrets
import socket
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional
from urllib.parse import urlsplit

import requests

from mailtracker import __version__
from mailtracker.core.checks import Check, Checklist, pixel_problems
from mailtracker.core.contract import DEVICES_ROUTE, pull_token
from mailtracker.core.errors import MailtrackerError, PullAuthError
from mailtracker.core.paths import DeviceLog, Home
from mailtracker.core.secret import read_secret
from mailtracker.core.settings import Config
from mailtracker.core.tokens import probe_token
from mailtracker.desktop.client import session as shared_session
from mailtracker.desktop.fold import hits_files
from mailtracker.desktop.pull import LIVE_WAIT_S, Puller, describe_request_error

log = logging.getLogger(__name__)

DEFAULT_WAIT_S = 20.0
_POLL_S = 0.25
# How long a live pull is given to reach the server before the test hit is sent.
_HOLD_SETTLE_S = 0.3


def check_server(home: Home, config: Config, wait_s: float = DEFAULT_WAIT_S,
                 session: Optional[requests.Session] = None) -> List[Check]:
    """Each step from this desktop to the server and back, in order; stops at the first broken one."""
    if session is None:
        session = shared_session()
    checks = Checklist()
    add = checks.add
    url = config.server_url
    parts = urlsplit(url)
    host = parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        secret = read_secret(home.secret_path)
    except MailtrackerError as exc:
        add("secret readable", False, str(exc))
        return checks
    try:
        addresses = sorted({info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})
    except (socket.gaierror, UnicodeError) as exc:
        add("name resolves", False, f"{host} does not resolve ({exc}); check server_url in "
            f"{home.config_path} and the DNS record")
        return checks
    add("name resolves", True, f"{host} -> {', '.join(addresses)}")

    try:
        health = session.get(f"{url}/healthz", allow_redirects=False)
    except requests.exceptions.SSLError as exc:
        add("TLS certificate valid", False, describe_request_error(exc, parts.netloc))
        return checks
    except requests.RequestException as exc:
        if parts.scheme == "https":
            add("TLS certificate valid", False, describe_request_error(exc, parts.netloc))
        else:
            add("server answers", False, describe_request_error(exc, parts.netloc))
        return checks
    if parts.scheme == "https":
        add("TLS certificate valid", True, f"verified for {host}")
    else:
        add("TLS certificate valid", True, "not used: the URL is http, so pixel requests travel "
            "unencrypted (fine on a test machine; use https on a VPS)")
    try:
        healthy = health.status_code == 200 and health.json().get("status") == "ok"
    except ValueError:
        healthy = False
    if not add("server healthy", healthy,
               "/healthz answered ok" if healthy else
               f"/healthz answered HTTP {health.status_code} {health.text.strip()[:120]!r}; "
               "is this URL the mailtracker pixel server (or is its disk full)?"):
        return checks

    hits_dir = home.hits_dir(config)
    puller = live = None
    if config.pull_urls:
        puller = Puller(hits_dir, config.pull_urls, pull_token(secret), session=session)
        try:
            puller.pull_all()  # caught up first: the live wait below then waits for the test hit alone
        except PullAuthError as exc:
            add("pull token accepted", False, str(exc))
            return checks
        except MailtrackerError:
            pass  # said below, with the test hit
        else:
            live = _LiveWait(puller, wait_s)

    nonce = secrets.token_hex(8)
    pixel = config.pixel_url(probe_token(secret))
    before = _hits_sizes(hits_dir)
    try:
        reply = session.get(pixel, headers={"User-Agent": f"mailtracker-doctor/{__version__} probe-{nonce}"},
                            allow_redirects=False)
        answered = time.monotonic()
    except requests.RequestException as exc:
        add("pixel served", False, describe_request_error(exc, parts.netloc))
        return checks
    problems = pixel_problems(reply.status_code, reply.headers.get("Content-Type", ""), reply.content,
                              reply.headers.get("Cache-Control", ""))
    if not add("pixel served", not problems,
               f"{pixel}: 43-byte GIF, no caching" if not problems else f"{pixel}: {'; '.join(problems)}"):
        return checks

    if live is not None:
        live.check(add, answered, lambda: _probe_arrived(hits_dir, before, f"probe-{nonce}".encode()),
                   config.pull_interval_s)
    arrived, pull_error, waited = _wait_for_probe(hits_dir, before, nonce, wait_s, puller)
    if arrived:
        add("test hit arrived", True, f"in {arrived} after {waited:.1f} s "
            f"({'HTTP pull' if puller else 'the folder sync'}); the fold never counts it")
    elif pull_error:
        add("test hit arrived", False, f"pulling from the server failed: {pull_error}")
    else:
        how = ("the pull found no new hit" if puller else
               "is Syncthing, rsync or your sync tool bringing the server's hits folder here?")
        add("test hit arrived", False,
            f"the server answered the pixel, but no hit with it reached {hits_dir} within "
            f"{wait_s:.0f} s: {how} Does the server use this desktop's secret (it logs only tokens "
            "it can verify)? A slow sync tool may need a longer --wait.")
    if config.devices_via_server and home.device:
        for pull_url in config.pull_urls:
            _check_device_logs(add, session, pull_url, pull_token(secret), home.device)
    return checks


def _check_device_logs(add, session: requests.Session, pull_url: str, token: str, device: str) -> None:
    """Whether a pull server keeps the device logs this computer pushes (``devices_via_server``)."""
    listing = f"{pull_url.rstrip('/')}{DEVICES_ROUTE}"
    try:
        reply = session.get(listing, headers={"Authorization": f"Bearer {token}"}, allow_redirects=False)
        files = reply.json()["files"] if reply.status_code == 200 else None
        names = [item["name"] for item in files] if files is not None else []
    except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
        add("device logs kept", False, f"{listing} did not answer a device logs list ({exc})")
        return
    if files is None:
        hint = ("it keeps no device logs: the pixel server needs --serve-hits and a mailtracker that "
                "knows /devices/"
                if reply.status_code == 404 else reply.text.strip()[:120])
        add("device logs kept", False, f"{listing} answered HTTP {reply.status_code}: {hint}")
        return
    logs = [log for log in map(DeviceLog.parse, names) if log is not None]
    mine = sum(log.device == device for log in logs)
    others = sorted({log.device for log in logs if log.device != device})
    add("device logs kept", True, f"{len(logs)} logs at {listing}: {mine} of this computer's"
        + (f", and those of {', '.join(others)}" if others else ", none of another computer yet"))


def _hits_sizes(hits_dir: Path) -> Dict[str, int]:
    sizes = {}
    for path in hits_files(hits_dir)[0]:
        try:
            sizes[path.name] = path.stat().st_size
        except OSError:
            continue
    return sizes


def _wait_for_probe(hits_dir: Path, before: Dict[str, int], nonce: str, wait_s: float,
                    puller: Optional[Puller]):
    """(file name it arrived in, pull error, seconds waited); polls the new bytes of each file.
    A refused pull token ends the wait at once: waiting would only repeat the refusal."""
    needle = f"probe-{nonce}".encode()
    start = time.monotonic()
    deadline = start + wait_s
    pull_error = ""
    while True:
        if puller is not None:
            try:
                puller.pull_once()
                pull_error = ""
            except PullAuthError as exc:
                return "", str(exc), time.monotonic() - start
            except MailtrackerError as exc:
                pull_error = str(exc)
        arrived = _probe_arrived(hits_dir, before, needle)
        if arrived:
            return arrived, "", time.monotonic() - start
        if time.monotonic() >= deadline:
            return "", pull_error, time.monotonic() - start
        time.sleep(_POLL_S)


def _probe_arrived(hits_dir: Path, before: Dict[str, int], needle: bytes) -> str:
    """The hits file whose new bytes hold ``needle`` ('' when none does)."""
    # Regular files only: a FIFO or a symlink to /dev/zero would hold the check forever.
    for path in hits_files(hits_dir)[0]:
        offset = before.get(path.name, 0)
        try:
            with open(path, "rb") as handle:
                if handle.seek(0, 2) < offset:
                    offset = 0  # replaced by a shorter file: read it all
                handle.seek(max(0, offset - len(needle)))
                if needle in handle.read():
                    return path.name
        except OSError:
            continue
    return ""


class _LiveWait:
    """A live pull started before the test hit is sent: how long after the pixel's answer
    the hit was here, as 'watch' would have it (``doctor --server`` reports it)."""

    def __init__(self, puller: Puller, wait_s: float):
        self.puller = puller
        self.error = ""
        self.done_at = 0.0
        self._thread = threading.Thread(target=self._pull, args=(max(1, int(min(wait_s, LIVE_WAIT_S))),),
                                        daemon=True)
        self._thread.start()
        # The request must be held before the hit is sent, or it would be answered by it.
        time.sleep(_HOLD_SETTLE_S)

    def _pull(self, wait_s: int) -> None:
        try:
            self.puller.pull_once(wait_s=wait_s)
        except MailtrackerError as exc:
            self.error = str(exc)
        self.done_at = time.monotonic()

    def check(self, add, answered: float, arrived, interval_s: float) -> None:
        self._thread.join(LIVE_WAIT_S + 5)
        sources = self.puller.sources
        if self.error:
            add("live pull", False, f"the live pull failed: {self.error}")
        elif not all(source.live for source in sources):
            # It works, slowly: not a broken step.
            add("live pull", True, "not live: the server answers pull requests at once (a mailtracker "
                f"older than the live pull, or a proxy in between), so opens arrive every {interval_s:g} s; "
                "update the server")
        elif arrived():
            add("live pull", True, f"the test hit was here {max(0.0, self.done_at - answered):.2f} s after "
                "the server answered the pixel (the server holds each pull request until a hit arrives)")
        else:
            add("live pull", False, "the server held the pull request but the test hit did not come with "
                "its answer")

