"""`assert_eventually`: poll a condition instead of sleeping a fixed time.

A check that raises (a KeyError because the item has not appeared yet, a failed inner assert, an RPC error while a
server is still starting) counts as "not yet" and is retried; at the deadline the last exception is chained onto the
AssertionError so the failure shows why the condition never held.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def _timed_out(timeout: float, what: str, check: object, last_error: BaseException | None) -> AssertionError:
    reason = f" (last attempt raised {type(last_error).__name__}: {last_error})" if last_error else ""
    return AssertionError(f"not true after {timeout}s: {what or check}{reason}")


def assert_eventually(check: Callable[[], T], timeout: float = 10.0, interval: float = 0.05, what: str = "") -> T:
    """Returns the first truthy result of `check()`; fails after `timeout` seconds. Exceptions from `check` are
    retried until the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        last_error: Exception | None = None
        try:
            result = check()
        except Exception as err:
            last_error, result = err, None  # type: ignore[assignment]
        if result:
            return result
        if time.monotonic() > deadline:
            raise _timed_out(timeout, what, check, last_error) from last_error
        time.sleep(interval)


async def assert_eventually_async(
    check: Callable[[], Awaitable[T]], timeout: float = 10.0, interval: float = 0.05, what: str = ""
) -> T:
    """The coroutine form of `assert_eventually`, with the same retry-on-exception rule."""
    deadline = time.monotonic() + timeout
    while True:
        last_error: Exception | None = None
        try:
            result = await check()
        except Exception as err:
            last_error, result = err, None  # type: ignore[assignment]
        if result:
            return result
        if time.monotonic() > deadline:
            raise _timed_out(timeout, what, check, last_error) from last_error
        await asyncio.sleep(interval)
