"""Background loops that must stop promptly when the service shuts down."""

from __future__ import annotations

import asyncio
import contextlib


async def sleep_or_stop(stopping: asyncio.Event, seconds: float) -> bool:
    """Waits `seconds`, or less if `stopping` is set meanwhile; returns whether the service is stopping."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), timeout=seconds)
    return stopping.is_set()
