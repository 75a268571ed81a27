"""Login throttling: after a few failures, each further attempt for that user or client waits longer.

Kept in memory (per replica): failures within `window_seconds` count; once there are
`free_failures` of them the key is locked for 2^(failures - free_failures + 1) seconds after
the last one, at most `max_lock_seconds`. A success clears the user's count (not the address's,
so one good password does not reset a spray).

An attempt is counted as a failure *before* the password hash is awaited (`attempt`) and taken
back when it succeeds (`succeeded` / `forgive`): checking first and counting after the await let
any number of concurrent guesses through. Keys are pruned once their failures left the window,
and at most `max_keys` are kept (the least recently failed go first), so made-up usernames
cannot grow memory without bound.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from odin.runtime.errors import ResourceExhausted

_PRUNE_EVERY_SECONDS = 60.0


class LoginThrottle:
    def __init__(self, *, free_failures: int, window_seconds: float = 900.0, max_lock_seconds: float = 300.0,
                 max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.free_failures = free_failures
        self.window_seconds = window_seconds
        self.max_lock_seconds = max_lock_seconds
        self.max_keys = max_keys
        self._clock = clock
        # Insertion order is recency of the last failure (a key is re-inserted on each failure).
        self._failures: dict[str, list[float]] = {}
        self._pruned_at = clock()

    def __len__(self) -> int:
        return len(self._failures)

    def check(self, key: str) -> None:
        """Raises RESOURCE_EXHAUSTED while `key` is locked (without telling whether a user exists)."""
        wait = self.locked_for(key)
        if wait > 0:
            raise ResourceExhausted(f"too many failed logins; try again in {math.ceil(wait)} s",
                                    reason="LOGIN_THROTTLED", metadata={"retry_after_seconds": str(math.ceil(wait))})

    def attempt(self, key: str) -> float:
        """Checks `key` and counts this attempt as a failure in one step (no await in between); returns
        the attempt's stamp for `forgive`."""
        self.check(key)
        return self.failed(key)

    def locked_for(self, key: str) -> float:
        recent = self._recent(key)
        extra = len(recent) - self.free_failures + 1
        if extra <= 0:
            return 0.0
        lock = min(2.0 ** extra, self.max_lock_seconds)
        return max(0.0, recent[-1] + lock - self._clock())

    def failed(self, key: str) -> float:
        now = self._clock()
        recent = self._recent(key)
        self._failures.pop(key, None)
        self._failures[key] = [*recent, now]
        self._prune(now)
        return now

    def forgive(self, key: str, stamp: float) -> None:
        """Takes back one counted attempt (it turned out to be a success)."""
        failures = self._failures.get(key)
        if failures and stamp in failures:
            failures.remove(stamp)
            if not failures:
                del self._failures[key]

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)

    def _recent(self, key: str) -> list[float]:
        horizon = self._clock() - self.window_seconds
        return [t for t in self._failures.get(key, []) if t > horizon]

    def _prune(self, now: float) -> None:
        if now - self._pruned_at >= _PRUNE_EVERY_SECONDS:
            self._pruned_at = now
            horizon = now - self.window_seconds
            for key in [k for k, times in self._failures.items() if times[-1] <= horizon]:
                del self._failures[key]
        while len(self._failures) > self.max_keys:  # still too many: drop the least recently failed
            del self._failures[next(iter(self._failures))]
