"""Event streams: one follower of the store's event log per process, shared by every watcher.

`EventHub` tails the store (woken by its live-tail signal: an in-process event for SQLite,
LISTEN/NOTIFY for PostgreSQL) and keeps the newest events in memory. `watch_events` replays a
watcher's backlog from the store, then serves it from the hub's buffer, so 500 watchers cost one
store read per batch of events, not 500. Cursors are seqs: a watcher resumes after the last one it
saw, and a heartbeat carries the seq up to which everything has been considered.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from odin_scheduler.model import Event
from odin_scheduler.store.base import Store

REPLAY_PAGE = 500


@dataclass(frozen=True)
class Heartbeat:
    latest_seq: int
    time_us: int


class EventHub:
    def __init__(self, store: Store, buffer_size: int = 20_000) -> None:
        self.store = store
        self.buffer_size = buffer_size
        self.latest = 0
        # Every event with floor < seq <= latest is in `_events` (sorted by seq).
        self.floor = 0
        self._events: list[Event] = []
        self._seqs: list[int] = []
        self._changed = asyncio.Event()
        self._closed = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.latest = self.floor = await self.store.latest_seq()
        self._task = asyncio.create_task(self._follow(), name="event-hub")

    async def close(self) -> None:
        self._closed = True
        self._notify()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def closed(self) -> bool:
        return self._closed

    def since(self, after_seq: int) -> list[Event] | None:
        """Buffered events after `after_seq`; None when the buffer does not reach back that far."""
        if after_seq < self.floor:
            return None
        return self._events[bisect.bisect_right(self._seqs, after_seq) :]

    async def wait(self, after_seq: int, timeout: float) -> None:
        """Returns when events after `after_seq` are buffered, the hub closed, or after `timeout`."""
        if self.latest > after_seq or self._closed:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    async def _follow(self) -> None:
        while True:
            await self.store.wait_for_events(self.latest, 5.0)
            try:
                await self._read_new()
            except Exception:  # the store may be briefly down; keep following
                await asyncio.sleep(0.5)

    async def _read_new(self) -> None:
        latest = await self.store.latest_seq()
        cursor = self.latest
        while cursor < latest:
            batch = await self.store.list_events(cursor, up_to=latest, limit=5000)
            self._events.extend(batch)
            self._seqs.extend(e.seq for e in batch)
            cursor = batch[-1].seq if len(batch) == 5000 else latest
        if latest > self.latest:
            self.latest = latest
            self._trim()
            self._notify()

    def _trim(self) -> None:
        excess = len(self._events) - self.buffer_size
        if excess > 0:
            self.floor = self._seqs[excess - 1]
            del self._events[:excess]
            del self._seqs[:excess]

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()


Selector = Callable[[Event], Awaitable[bool]]


async def watch_events(
    hub: EventHub, store: Store, after_seq: int, select: Selector, *, job_id: str | None = None,
    heartbeat_seconds: float = 10.0, stopping: asyncio.Event | None = None,
) -> AsyncIterator[Event | Heartbeat]:  # fmt: skip
    """Every selected event after `after_seq` exactly once, in seq order, then live ones, forever."""
    cursor = after_seq
    quiet_since = time.monotonic()
    while not (hub.closed or (stopping is not None and stopping.is_set())):
        buffered = hub.since(cursor)
        if buffered is None:
            upto = hub.latest
            batch = await store.list_events(cursor, job_id=job_id, up_to=upto, limit=REPLAY_PAGE)
            next_cursor = batch[-1].seq if len(batch) == REPLAY_PAGE else upto
        else:
            batch, next_cursor = buffered, buffered[-1].seq if buffered else cursor
        for event in batch:
            if (job_id is None or event.job_id == job_id) and await select(event):
                yield event
                quiet_since = time.monotonic()
        cursor = max(cursor, next_cursor)
        if buffered is not None and not buffered:
            remaining = heartbeat_seconds - (time.monotonic() - quiet_since)
            if remaining <= 0:
                yield Heartbeat(cursor, time.time_ns() // 1000)
                quiet_since = time.monotonic()
                continue
            await hub.wait(cursor, remaining)
