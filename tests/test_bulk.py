"""Making and letting go of many objects at once: the collector paused while they are made, and
the memory they held given back to the system afterwards (a daemon runs for days after a
first fold that held a gigabyte)."""

import gc
import sys

import pytest

from mailtracker.core.bulk import collector_paused, return_free_memory


def _resident_mib() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; glibc's malloc_trim")
def test_memory_let_go_goes_back_to_the_system():
    """200 MB of blocks let go, with one in a hundred kept between them (so the heap cannot just
    shrink from its end, as a fold's leftovers keep it): giving back frees most of it. (Fails when
    ``return_free_memory`` does nothing.)"""
    blocks = [bytes(2000) for _ in range(100_000)]
    kept = blocks[::100]
    del blocks
    before = _resident_mib()
    return_free_memory()
    assert before - _resident_mib() > 100, "the free memory stayed with the process"
    assert len(kept) == 1000


def test_the_collector_is_paused_inside_and_as_it_was_after():
    """Off inside (nested too); on again after only where it was on before."""
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
