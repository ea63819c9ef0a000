"""The helper's one HTTP client: a ``requests.Session`` whose every request has
an explicit timeout and says who is asking.

Pulling hits, checking a server and asking Syncthing all go through
``session()``, so connections are reused (a pull that finds nothing new costs
one small request on an open connection) and no request can hang forever.
"""

import threading
from typing import Optional

import requests

from mailtracker import __version__

# (connect, read) in seconds: a server that accepts but never answers is given up on.
TIMEOUT_S = (5.0, 20.0)
USER_AGENT = f"mailtracker/{__version__}"


class Session(requests.Session):
    """A session that applies ``TIMEOUT_S`` unless a call names its own timeout."""

    def __init__(self, timeout=TIMEOUT_S):
        super().__init__()
        self.timeout = timeout
        self.headers["User-Agent"] = USER_AGENT

    def request(self, method, url, **kwargs):
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, **kwargs)


_shared: Optional[Session] = None
_shared_lock = threading.Lock()


def session() -> Session:
    """The process's shared session, made on first use."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Session()
        return _shared
