"""When and how long the client waits before trying a call again.

Only calls that cannot do harm twice are retried (reads, watches, creates that carry a request_id), and
only for UNAVAILABLE: the service was down or restarting. Each wait grows exponentially with full jitter,
so many clients that lost the same server do not come back in lock-step.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from odin.backoff import backoff_ceiling, equal_jitter
from odin.client.errors import OdinError

# Codes after which the same read may succeed: the server was unreachable, or it cancelled the stream
# while shutting down (a client's own cancel raises asyncio.CancelledError, never this).
RECONNECT_CODES = frozenset({"UNAVAILABLE", "CANCELLED"})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: the n-th wait is uniform in [0, min(max_backoff, initial_backoff * multiplier^n)]."""

    initial_backoff: float = 0.1
    max_backoff: float = 2.0
    multiplier: float = 2.0
    # Unary calls: how many attempts in all (also bounded by the call's deadline).
    max_attempts: int = 5
    # Streams: how long to keep reconnecting without receiving anything before giving up.
    reconnect_timeout: float = 60.0

    def delay(self, failures: int) -> float:
        """The wait after `failures` consecutive failures (1 for the first)."""
        ceiling = backoff_ceiling(
            failures, initial=self.initial_backoff, factor=self.multiplier, maximum=self.max_backoff
        )
        return equal_jitter(ceiling)


NO_RETRY = RetryPolicy(max_attempts=1, reconnect_timeout=0.0)


class Backoff:
    """Counts consecutive failures of one stream and waits before its next attempt, or gives up."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.failures = 0
        self.failing_since: float | None = None

    def reset(self) -> None:
        """The stream delivered something: the next failure starts a fresh count."""
        self.failures = 0
        self.failing_since = None

    async def wait(self, error: OdinError) -> None:
        """Sleeps before the next attempt; re-raises `error` when the reconnect budget is spent."""
        now = time.monotonic()
        if self.failing_since is None:
            self.failing_since = now
        self.failures += 1
        if now - self.failing_since >= self.policy.reconnect_timeout:
            raise error
        await asyncio.sleep(self.policy.delay(self.failures))
