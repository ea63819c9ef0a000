"""Making and letting go of many objects at once (a fold's 50,000 tags, the read model's 50,000
rows): without the cyclic garbage collector while they are made (none of them is part of a cycle,
and each of its scans would walk again through everything made so far), and the memory they held
given back to the system afterwards."""

import ctypes
import gc
import sys
from contextlib import contextmanager
from functools import lru_cache
from typing import Iterator


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic collector off inside, as it was after (reference counting still frees what
    is let go). Nested, the outermost turns it back on."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def return_free_memory() -> None:
    """Give the memory the C library's allocator holds free back to the system, where it can
    (glibc's ``malloc_trim``; elsewhere nothing happens): after a first fold of 1M hits, which
    holds a gigabyte at its peak, a daemon that runs for days kept 240 MB of it free but its own."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@lru_cache(maxsize=1)
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # a C library without it (musl)
        return None
