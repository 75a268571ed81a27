"""Background loops wake up as soon as the service starts stopping."""

from __future__ import annotations

import asyncio
import time

from odin.runtime.lifecycle import sleep_or_stop


async def test_sleep_or_stop_returns_early_when_stopping() -> None:
    stopping = asyncio.Event()
    assert await sleep_or_stop(stopping, 0.01) is False
    asyncio.get_running_loop().call_later(0.05, stopping.set)
    started = time.monotonic()
    assert await sleep_or_stop(stopping, 30) is True
    assert time.monotonic() - started < 5
