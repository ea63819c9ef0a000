"""The live pull, the server's side: a listing request that may wait for news.

``GET /hits/?wait=N`` with the ``If-None-Match`` of the desktop's last listing is
held until a hits file changes (then answered with the new listing) or for N
seconds (then answered 304, and the desktop asks again at once). So a desktop
learns of an open within a moment of the hit, and an idle desktop costs the
server one small request per ``MAX_WAIT_S``.

The pixel server runs several worker processes: the hit may be written by one
worker while another holds the request. Each worker therefore watches the hits
folder itself, with inotify where the system has it (an event for every write to
a file in the folder, whichever process made it) and otherwise by listing the
folder again every ``FALLBACK_POLL_S``. The inotify reader is registered with
the event loop only while a request waits, so a server nobody pulls from live
pays nothing per hit.
"""

import asyncio
import ctypes
import ctypes.util
import logging
import os
import signal
import time
from pathlib import Path
from typing import Callable, List, Optional

log = logging.getLogger(__name__)

# The longest a listing request is held; the desktop asks for this much. Proxies and
# NAT boxes keep a quiet connection far longer than this.
MAX_WAIT_S = 40
# Without inotify: how often a held request lists the folder again.
FALLBACK_POLL_S = 1.0
# After a change, so that a file's first line and its header (two writes) go out together.
SETTLE_S = 0.01
# The header a listing carries when the server held it as asked; a server without it
# answers at once, and the desktop falls back to polling at its interval.
WAIT_HEADER = b"mailtracker-wait"

_IN_MODIFY, _IN_MOVED_TO, _IN_CREATE = 0x2, 0x80, 0x100
_IN_NONBLOCK, _IN_CLOEXEC = 0o4000, 0o2000000


def requested_wait(query_string: bytes) -> int:
    """Seconds a listing request asks to be held (``wait=N``), at most ``MAX_WAIT_S``; 0: none."""
    for pair in query_string.split(b"&"):
        key, _, value = pair.partition(b"=")
        if key == b"wait" and value.isdigit() and len(value) <= 4:
            return min(int(value), MAX_WAIT_S)
    return 0


class FolderChanges:
    """Wakes the coroutines waiting in one event loop when a file in ``folder`` is written.

    ``drain`` first (it also wakes whoever already waits), then look at the folder,
    then ``wait``: a write made after ``drain`` wakes that wait.
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self._fd: Optional[int] = None
        self._reading = False
        self._waiters: List[asyncio.Future] = []
        self._inotify = _Inotify.load()
        self.wakes = 0

    def drain(self) -> None:
        if self._inotify is None:
            return
        if self._fd is None:
            self._fd = self._inotify.watch(self.folder)
            if self._fd is None:
                self._inotify = None
                return
        self._readable()

    async def wait(self, timeout_s: float) -> None:
        """Until a change (or, without inotify, ``FALLBACK_POLL_S``), at most ``timeout_s``."""
        if self._fd is None:
            await asyncio.sleep(min(timeout_s, FALLBACK_POLL_S))
            return
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._waiters.append(waiter)
        if not self._reading:
            loop.add_reader(self._fd, self._readable)
            self._reading = True
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout_s)
        except asyncio.TimeoutError:
            pass
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            if not self._waiters and self._reading:
                loop.remove_reader(self._fd)
                self._reading = False

    def _readable(self) -> None:
        if self._fd is None:
            return
        try:
            while os.read(self._fd, 65536):
                pass
        except BlockingIOError:
            pass
        except OSError as exc:
            log.warning("watching %s for new hits failed (%s); held pull requests poll instead",
                        self.folder, exc)
        waiters, self._waiters = self._waiters, []
        if waiters:
            self.wakes += 1
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def close(self) -> None:
        self._readable()
        if self._fd is not None:
            if self._reading:
                try:
                    asyncio.get_running_loop().remove_reader(self._fd)
                except RuntimeError:
                    pass
            os.close(self._fd)
            self._fd = None


class _Inotify:
    """Linux's inotify through libc (no extra package): one non-blocking descriptor per folder."""

    def __init__(self, libc):
        self._libc = libc

    @classmethod
    def load(cls) -> Optional["_Inotify"]:
        if not hasattr(os, "uname") or os.uname().sysname != "Linux":
            return None
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.inotify_init1.argtypes = [ctypes.c_int]
            libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        except (OSError, AttributeError):
            return None
        return cls(libc)

    def watch(self, folder: Path) -> Optional[int]:
        fd = self._libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            log.warning("inotify is not available (%s); held pull requests poll the hits folder",
                        os.strerror(ctypes.get_errno()))
            return None
        if self._libc.inotify_add_watch(fd, os.fsencode(folder), _IN_MODIFY | _IN_CREATE | _IN_MOVED_TO) < 0:
            log.warning("cannot watch %s with inotify (%s); held pull requests poll it", folder,
                        os.strerror(ctypes.get_errno()))
            os.close(fd)
            return None
        return fd


async def held_answer(answer: Callable, unchanged: Callable, changes: FolderChanges, wait_s: float,
                      stopping: asyncio.Event):
    """``answer()`` as soon as it is not ``unchanged``, or when ``wait_s`` or the server is over."""
    deadline = time.monotonic() + wait_s
    while True:
        changes.drain()
        reply = answer()
        remaining = deadline - time.monotonic()
        if not unchanged(reply) or remaining <= 0 or stopping.is_set():
            return reply
        stop = asyncio.ensure_future(stopping.wait())
        change = asyncio.ensure_future(changes.wait(remaining))
        try:
            await asyncio.wait({stop, change}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            change.cancel()
        if not stopping.is_set():
            await asyncio.sleep(SETTLE_S)


def release_on_signals(loop, release: Callable[[], None]) -> None:
    """Run ``release`` in ``loop`` on SIGTERM/SIGINT, before the server's own handling.

    granian stops a worker by draining its requests first, and a held listing would
    hold the stop for up to ``MAX_WAIT_S``. The event loop learns of the signal through
    its wake-up descriptor whatever Python-level handler is set, so granian's own
    handling is kept; this handler only adds the release.
    """
    previous = {}

    def handler(signum, frame):
        loop.call_soon_threadsafe(release)
        if callable(previous.get(signum)):
            previous[signum](signum, frame)

    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            previous[signum] = signal.getsignal(signum)
            signal.signal(signum, handler)
        except (ValueError, OSError):  # not the main thread: stops wait out their holds
            return
