"""Server streams that survive a lost connection: reopen from the caller's cursor and carry on.

The caller owns the cursor (an event `seq`, a log offset): `open_call()` builds a new call from its
current value, so a reconnect resumes exactly where the last delivered message left off. A stream
that ends cleanly is asked `finished()` before it is believed, because a server that shuts down
gracefully also ends its streams cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from grpc import aio

from odin.client.errors import OdinError, Unavailable, from_rpc_error
from odin.client.retry import RECONNECT_CODES, Backoff, RetryPolicy


async def resilient_stream(
    open_call: Callable[[], Any],
    finished: Callable[[], Awaitable[bool]],
    policy: RetryPolicy,
    idle_timeout: float | None,
    renew: Callable[[OdinError], Awaitable[bool]] | None = None,
) -> AsyncIterator[Any]:
    """Yields every message of a server stream, reconnecting on UNAVAILABLE or on silence.

    `idle_timeout`: seconds without any message (events or heartbeats) after which the connection is
    presumed dead and reopened; None waits forever. `renew(error)`: for a refusal of the caller's token,
    whether a renewed one is in place (then the stream reopens at once, from the caller's cursor).
    """
    backoff = Backoff(policy)
    renewed = False
    while True:
        call = open_call()
        try:
            async for message in _messages(call, idle_timeout):
                backoff.reset()
                renewed = False
                yield message
        except aio.AioRpcError as exc:
            error = from_rpc_error(exc)
            if error.code == "UNAUTHENTICATED" and renew is not None and not renewed and await renew(error):
                renewed = True  # once: a renewed token refused again is a real refusal
                continue
            if error.code not in RECONNECT_CODES:
                raise error from None
            await backoff.wait(error)
            continue
        except TimeoutError:
            await backoff.wait(Unavailable(f"no message for {idle_timeout}s; the connection seems lost"))
            continue
        finally:
            call.cancel()
        if await _finished(finished):
            return
        await backoff.wait(Unavailable("the stream ended before its end; the server may be restarting"))


async def _messages(call: Any, idle_timeout: float | None) -> AsyncIterator[Any]:
    while True:
        message = await asyncio.wait_for(call.read(), idle_timeout)
        if message is aio.EOF:
            return
        yield message


async def _finished(finished: Callable[[], Awaitable[bool]]) -> bool:
    """`finished()`, where a server that is still unreachable means "not yet"."""
    try:
        return await finished()
    except OdinError as error:
        if error.code in RECONNECT_CODES:
            return False
        raise


@contextlib.asynccontextmanager
async def closing(stream: AsyncIterator[Any]) -> AsyncIterator[AsyncIterator[Any]]:
    """Closes an async generator on exit, so its call is cancelled even when the loop breaks early."""
    try:
        yield stream
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
