"""Where audit records go: a bounded buffer flushed in the background, so recording never blocks an RPC.

`BufferedAuditSink` takes records synchronously (`submit`) and writes them in batches with a
writer: the auth service's writes to its database, every other service's calls
`AuditService.WriteAuditRecords` with its own robot token (`remote_writer`). A failed write is
retried with backoff; when the buffer is full new records are dropped, counted and logged.
Without a place to send them (no auth address or no service token) records go to the log.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import grpc
from grpc import aio

from odin.auth.v1 import auth_pb2, auth_pb2_grpc
from odin.backoff import backoff_ceiling, equal_jitter

log = logging.getLogger("odin.audit")

Writer = Callable[[Sequence[auth_pb2.AuditRecord]], Awaitable[None]]
MAX_BATCH = 1000  # WriteAuditRecords takes at most this many records per call
_DROP_LOG_SECONDS = 10.0


class AuditSink(Protocol):
    def submit(self, record: auth_pb2.AuditRecord) -> None: ...
    async def start(self) -> None: ...
    async def close(self, timeout: float) -> None: ...


class RecordsRejected(Exception):
    """The receiver refused a batch for good (it is malformed): retrying cannot help."""


class LogSink:
    """Writes each record to the `odin.audit` log: for services with nowhere else to send them."""

    def submit(self, record: auth_pb2.AuditRecord) -> None:
        log.info("audit", extra={"actor": record.actor, "audited_method": record.method,
                                 "resource": record.resource, "result": record.result,
                                 "request_id": record.request_id, "client": record.client})

    async def start(self) -> None:
        return None

    async def close(self, timeout: float) -> None:
        return None


class BufferedAuditSink:
    """Holds at most `capacity` records and writes them in batches of up to `batch` with `write`."""

    def __init__(self, write: Writer, *, capacity: int = 10_000, batch: int = 500, initial_backoff: float = 0.5,
                 max_backoff: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.write = write
        self.capacity = capacity
        self.batch = min(batch, MAX_BATCH)
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.dropped = 0
        self.written = 0
        self._clock = clock
        self._buffer: collections.deque[auth_pb2.AuditRecord] = collections.deque()
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._last_drop_log = float("-inf")
        self._unlogged_drops = 0

    def submit(self, record: auth_pb2.AuditRecord) -> None:
        if len(self._buffer) >= self.capacity or self._closing:
            self._drop(1, "the audit buffer is full")
            return
        self._buffer.append(record)
        self._wake.set()

    async def start(self) -> None:
        # An empty context: a task started inside an RPC would otherwise inherit the caller's token.
        self._task = asyncio.get_running_loop().create_task(self._run(), context=contextvars.Context())

    async def close(self, timeout: float) -> None:
        """One last flush of what is buffered, for at most `timeout` seconds; the rest is dropped and counted."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._buffer:
            self._drop(len(self._buffer), "the service stopped before they were written")
            self._buffer.clear()
        self._flush_drop_log(force=True)

    async def _run(self) -> None:
        failures = 0
        while True:
            if not self._buffer:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = [self._buffer[i] for i in range(min(self.batch, len(self._buffer)))]
            try:
                await self.write(batch)
            except RecordsRejected as exc:
                self._take(len(batch))
                self._drop(len(batch), f"the receiver rejected them: {exc}")
                continue
            except Exception as exc:  # any failure is retried: the receiver may be restarting
                failures += 1
                if self._closing:
                    return
                wait = equal_jitter(backoff_ceiling(failures, initial=self.initial_backoff, factor=2.0,
                                                    maximum=self.max_backoff))
                log.warning("cannot write audit records; retrying", extra={
                    "error": _short(exc), "buffered": len(self._buffer), "retry_in_seconds": round(wait, 2)})
                await asyncio.sleep(wait)
                continue
            failures = 0
            self._take(len(batch))
            self.written += len(batch)
            self._flush_drop_log()

    def _take(self, count: int) -> None:
        for _ in range(count):
            self._buffer.popleft()

    def _drop(self, count: int, why: str) -> None:
        self.dropped += count
        self._unlogged_drops += count
        self._flush_drop_log(why=why)

    def _flush_drop_log(self, *, why: str = "", force: bool = False) -> None:
        """Logs drops at most every few seconds, so a flood of them does not flood the log too."""
        if not self._unlogged_drops:
            return
        now = self._clock()
        if force or now - self._last_drop_log >= _DROP_LOG_SECONDS:
            log.error("audit records dropped", extra={"dropped": self._unlogged_drops, "dropped_total": self.dropped,
                                                      "why": why or "see earlier warnings"})
            self._unlogged_drops = 0
            self._last_drop_log = now


def remote_writer(channel: aio.Channel, timeout: float = 10.0) -> Writer:
    """Writes records with `AuditService.WriteAuditRecords` over `channel` (an authenticated channel)."""
    stub = auth_pb2_grpc.AuditServiceStub(channel)

    async def write(records: Sequence[auth_pb2.AuditRecord]) -> None:
        try:
            await stub.WriteAuditRecords(auth_pb2.WriteAuditRecordsRequest(records=records), timeout=timeout)
        except aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise RecordsRejected(exc.details() or "invalid records") from None
            raise

    return write


def remote_sink(address: str, config: Any) -> tuple[AuditSink, Callable[[], Awaitable[None]]]:
    """The sink of a service that sends records to the auth service at `address`, and what closes its channel."""
    from odin.runtime.auth import authenticated_channel  # auth imports the interceptors, which import nothing here

    channel = authenticated_channel(address, config)
    return BufferedAuditSink(remote_writer(channel)), channel.close


def _short(exc: BaseException) -> str:
    if isinstance(exc, aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"[:300]
    return repr(exc)[:300]
