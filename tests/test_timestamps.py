"""Timestamps: the text every log writes, and the moment it stands for."""

import random

from mailtracker.core.timestamps import parse_timestamp, stamped, utc_timestamp


def test_a_moment_is_what_its_timestamp_says():
    """stamped() gives exactly the moment its timestamp text reads back as, at every edge of
    the millisecond rounding (the fold's fast path compares hit times with it)."""
    rng = random.Random(7)
    moments = [1_795_000_000.0, 1_795_000_000.0005, 1_795_000_000.9995, 1_795_000_000.9999996,
               1_795_000_059.999999, 15.573, 0.0]
    moments += [rng.uniform(0, 4_000_000_000) for _ in range(20_000)]
    moments += [round(rng.uniform(1e9, 2e9), 3) + rng.choice([0, 5e-7, -5e-7, 1e-9]) for _ in range(20_000)]
    for moment in moments:
        assert stamped(moment) == parse_timestamp(utc_timestamp(moment)), repr(moment)
