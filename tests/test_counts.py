"""A tag's counts: what the fold adds hit by hit equals what the fast path adds as a batch."""

import random

from mailtracker.desktop.counts import Counts, widened


def test_a_merged_batch_counts_as_its_hits_one_by_one():
    """Opens and clicks in any order, added one at a time or summed per link and merged: the same
    counts, times and per-link clicks, and a packed copy reads back equal."""
    rng = random.Random(5)
    stamp = "2026-11-24T{:02d}:{:02d}:00.000Z".format
    earlier, one_by_one, batch = Counts(), Counts(), Counts()
    for _ in range(3):
        earlier.add_open(stamp(rng.randrange(24), rng.randrange(60)))
    one_by_one.merge(earlier)
    events = [(rng.choice(["open", "1", "2"]), stamp(rng.randrange(24), rng.randrange(60))) for _ in range(40)]
    for kind, when in events:
        one_by_one.hits += 1
        one_by_one.add_open(when) if kind == "open" else one_by_one.add_click(when, kind)
    opens = sorted(when for kind, when in events if kind == "open")
    batch.hits = len(events)
    batch.add_opens(len(opens), opens[0], opens[-1])
    for link in ("1", "2"):
        times = sorted(when for kind, when in events if kind == link)
        batch.add_clicks(link, len(times), times[0], times[-1])
    earlier.merge(batch)
    assert earlier.packed() == one_by_one.packed()
    assert Counts.unpacked(earlier.packed()).packed() == earlier.packed()
    assert earlier.first_open == min(opens + [one_by_one.first_open])


def test_a_span_widens_only_outwards():
    """widened: "" is no time yet; an earlier start and a later end replace, nothing else does."""
    assert widened("", "", "b", "c") == ("b", "c")
    assert widened("b", "c", "a", "d") == ("a", "d")
    assert widened("a", "d", "b", "c") == ("a", "d")
