"""The one backoff formula: exponential, capped, jittered in the upper half, never overflowing."""

from __future__ import annotations

import random

from odin.backoff import backoff_ceiling, equal_jitter


def test_ceiling_grows_then_caps() -> None:
    assert [backoff_ceiling(n, initial=1, factor=2, maximum=10) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 8, 10]


def test_late_retries_do_not_overflow() -> None:
    assert backoff_ceiling(5000, initial=10.0, factor=2.0, maximum=300.0) == 300.0


def test_equal_jitter_stays_in_the_upper_half() -> None:
    rng = random.Random(7)
    waits = [equal_jitter(8.0, rng) for _ in range(200)]
    assert all(4.0 <= w <= 8.0 for w in waits) and len(set(waits)) > 100
