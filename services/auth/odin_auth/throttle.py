"""Login throttling: after a few failures, each further attempt for that user or client waits longer.

Kept in memory (per replica): failures within `window_seconds` count; once there are
`free_failures` of them the key is locked for 2^(failures - free_failures + 1) seconds after
the last one, at most `max_lock_seconds`. A success
clears the user's count (not the address's, so one good password does not reset a spray).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from odin.runtime.errors import ResourceExhausted


class LoginThrottle:
    def __init__(self, *, free_failures: int, window_seconds: float = 900.0, max_lock_seconds: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.free_failures = free_failures
        self.window_seconds = window_seconds
        self.max_lock_seconds = max_lock_seconds
        self._clock = clock
        self._failures: dict[str, list[float]] = {}

    def check(self, key: str) -> None:
        """Raises RESOURCE_EXHAUSTED while `key` is locked (without telling whether a user exists)."""
        wait = self.locked_for(key)
        if wait > 0:
            raise ResourceExhausted(f"too many failed logins; try again in {math.ceil(wait)} s",
                                    reason="LOGIN_THROTTLED", metadata={"retry_after_seconds": str(math.ceil(wait))})

    def locked_for(self, key: str) -> float:
        recent = self._recent(key)
        extra = len(recent) - self.free_failures + 1
        if extra <= 0:
            return 0.0
        lock = min(2.0 ** extra, self.max_lock_seconds)
        return max(0.0, recent[-1] + lock - self._clock())

    def failed(self, key: str) -> None:
        self._failures[key] = [*self._recent(key), self._clock()]
        if len(self._failures) > 100_000:  # bounded memory under a spray of made-up names
            self._failures.clear()

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)

    def _recent(self, key: str) -> list[float]:
        horizon = self._clock() - self.window_seconds
        return [t for t in self._failures.get(key, []) if t > horizon]
