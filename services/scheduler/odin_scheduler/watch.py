"""Event streams: one follower of the store's event log per process, shared by every watcher.

`EventHub` tails the store (woken by its live-tail signal: an in-process event for SQLite,
LISTEN/NOTIFY for PostgreSQL) and keeps the newest events in memory. `watch_events` replays a
watcher's backlog from the store, then serves it from the hub's buffer, so 500 watchers cost one
store read per batch of events, not 500. Cursors are seqs: a watcher resumes after the last one it
saw, and a heartbeat carries the seq up to which everything has been considered.

Watchers receive batches: a watcher that wakes takes everything buffered after its cursor at once,
so a slow watcher catches up in one step rather than one wakeup per event.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from odin_scheduler.model import Event, Job, JobFilter, now_us
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
        """Returns when events after `after_seq` are buffered, the hub closed, or after `timeout`.

        No wakeup is lost: `latest` is checked and the current `_changed` awaited with no await in
        between, and `_read_new` raises `latest` before it sets (and replaces) that event."""
        if self.latest > after_seq or self._closed:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):  # a timer, not a task per wait as `wait_for` makes
                await self._changed.wait()

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


class JobLookup:
    """Jobs by id for the WatchJobs filters, read once and shared by every watcher: the fields the
    filters use (pipeline, owner, labels) never change after creation. Concurrent lookups of the same
    job share one store read, so 500 watchers seeing a new job cost one read, not 500."""

    def __init__(self, store: Store, capacity: int = 10_000) -> None:
        self.store = store
        self.capacity = capacity
        self._jobs: dict[str, asyncio.Future[Job | None]] = {}

    async def get(self, job_id: str) -> Job | None:
        pending = self._jobs.get(job_id)
        if pending is None:
            if len(self._jobs) >= self.capacity:
                self._jobs.clear()
            pending = self._jobs[job_id] = asyncio.ensure_future(self.store.get_job(job_id))
            pending.add_done_callback(lambda done: self._forget_failed(job_id, done))
        return await asyncio.shield(pending)  # a cancelled watcher must not cancel the others' read

    def selector(self, where: JobFilter) -> Selector:
        async def select(batch: list[Event]) -> list[Event]:
            wanted = {job_id: _matches(where, await self.get(job_id)) for job_id in {e.job_id for e in batch}}
            return [e for e in batch if wanted[e.job_id]]

        return select

    def _forget_failed(self, job_id: str, done: asyncio.Future[Job | None]) -> None:
        """A read that failed is tried again by the next watcher rather than remembered."""
        if (done.cancelled() or done.exception() is not None) and self._jobs.get(job_id) is done:
            del self._jobs[job_id]


def _matches(where: JobFilter, job: Job | None) -> bool:
    return job is not None and where.matches(job)


# Keeps the events a watcher wants from a batch (may look things up, e.g. the jobs' labels).
Selector = Callable[[list[Event]], Awaitable[list[Event]]]


async def watch_events(
    hub: EventHub, store: Store, after_seq: int, select: Selector | None = None, *, job_id: str | None = None,
    heartbeat_seconds: float = 10.0, stopping: asyncio.Event | None = None,
) -> AsyncIterator[list[Event] | Heartbeat]:  # fmt: skip
    """Every selected event after `after_seq` exactly once, in seq order, then live ones, forever; in
    non-empty batches (all that was buffered when the watcher woke), with heartbeats when quiet."""
    cursor = after_seq
    quiet_since = time.monotonic()
    while not (hub.closed or (stopping is not None and stopping.is_set())):
        buffered = hub.since(cursor)
        if buffered is None:
            upto = hub.latest
            batch = await store.list_events(cursor, job_id=job_id, up_to=upto, limit=REPLAY_PAGE)
            next_cursor = batch[-1].seq if len(batch) == REPLAY_PAGE else upto
        else:
            batch = buffered if job_id is None else [e for e in buffered if e.job_id == job_id]
            next_cursor = buffered[-1].seq if buffered else cursor
        if batch and select is not None:
            batch = await select(batch)
        if batch:
            yield batch
            quiet_since = time.monotonic()
        cursor = max(cursor, next_cursor)
        if buffered is not None and not buffered:
            remaining = heartbeat_seconds - (time.monotonic() - quiet_since)
            if remaining <= 0:
                yield Heartbeat(cursor, now_us())
                quiet_since = time.monotonic()
                continue
            await hub.wait(cursor, remaining)
