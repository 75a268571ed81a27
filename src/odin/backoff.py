"""Exponential backoff, one formula for task retries and client reconnects alike."""

from __future__ import annotations

import random


def backoff_ceiling(attempt: int, *, initial: float, factor: float, maximum: float) -> float:
    """The longest wait before retry number `attempt` (1-based): initial * factor^(attempt-1), capped."""
    try:
        return min(maximum, initial * factor ** max(attempt - 1, 0))
    except OverflowError:  # a very late retry of a long outage: the cap has long been reached
        return maximum


def equal_jitter(ceiling: float, rng: random.Random | None = None) -> float:
    """Half of `ceiling` fixed, half random, so many retries spread out without ever retrying at once."""
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)
