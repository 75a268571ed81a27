"""Collects every agent's snapshot into the cache: one loop per agent, bounded parallelism, per-call deadline.

Each agent is called every `interval` seconds by its own loop, so a slow or dead agent only
delays itself: its call ends at `timeout`, its node turns STALE (or stays UNREACHABLE), and the
others keep their own rhythm. At most `max_concurrency` calls are in flight at once. After a
failure the channel is replaced, so a restarted agent is reached at the next round rather than
after gRPC's reconnect backoff (up to two minutes).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import grpc
from grpc import aio

from odin.midgard.v1 import midgard_pb2, midgard_pb2_grpc
from odin.runtime.lifecycle import sleep_or_stop
from odin_midgard.attribution import TaskIndex
from odin_midgard.cache import NodeCache
from odin_midgard.discovery import AgentTarget, Discovery

log = logging.getLogger("odin.midgard")

ChannelFactory = Callable[[str], aio.Channel]
FIRST_RETRY_SECONDS = 0.25


class Collector:
    """Keeps one collection loop per discovered agent."""

    def __init__(self, cache: NodeCache, discovery: Discovery, channels: ChannelFactory, index: TaskIndex, *,
                 interval: float, timeout: float, max_concurrency: int) -> None:
        self.cache = cache
        self._discovery = discovery
        self._channels = channels
        self._index = index
        self._interval = interval
        self._timeout = timeout
        self._slots = asyncio.Semaphore(max_concurrency)
        self._loops: dict[str, asyncio.Task[None]] = {}

    async def run(self, stopping: asyncio.Event) -> None:
        """Discovers agents every interval and keeps their loops in step, until `stopping`."""
        try:
            while not stopping.is_set():
                await self.reconcile()
                await sleep_or_stop(stopping, self._interval)
        finally:
            await self.stop()

    async def reconcile(self) -> None:
        try:
            targets = await asyncio.wait_for(asyncio.to_thread(self._discovery.discover), timeout=self._timeout * 5)
        except Exception as exc:  # discovery down: keep collecting from the agents already known
            log.warning("agent discovery failed; keeping the known agents", extra={"error": repr(exc)})
            return
        wanted = {t.address: t for t in targets}
        for address in set(self._loops) - set(wanted):
            self._loops.pop(address).cancel()
            self.cache.remove(address)
        for address, target in wanted.items():
            if address not in self._loops:
                self.cache.add(target)
                self._loops[address] = asyncio.create_task(self._collect_forever(target), name=f"collect {address}")

    async def stop(self) -> None:
        loops = list(self._loops.values())
        self._loops.clear()
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)

    async def _collect_forever(self, target: AgentTarget) -> None:
        channel = self._channels(target.address)
        # Until an agent first answers it is retried sooner (it may be starting along with us).
        first_retry, reached = FIRST_RETRY_SECONDS, False
        try:
            while True:
                started = time.monotonic()
                ok = await self.collect_once(target, midgard_pb2_grpc.AgentServiceStub(channel))
                if not ok:
                    await channel.close()
                    channel = self._channels(target.address)
                reached = reached or ok
                period = self._interval if reached else min(self._interval, first_retry)
                first_retry *= 2
                await asyncio.sleep(max(0.0, period - (time.monotonic() - started)))
        finally:
            await channel.close()

    async def collect_once(self, target: AgentTarget, stub: midgard_pb2_grpc.AgentServiceStub) -> bool:
        """One call to one agent; the cache records the snapshot or the failure. True on success."""
        async with self._slots:
            try:
                reply = await stub.GetNodeInfo(midgard_pb2.GetNodeInfoRequest(), timeout=self._timeout)
            except aio.AioRpcError as exc:
                self.cache.failed(target.address, self._describe(exc))
                return False
        self._index.attribute(reply.node)
        self.cache.succeeded(target.address, reply.node)
        return True

    def _describe(self, exc: aio.AioRpcError) -> str:
        if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            return f"the agent did not answer within {self._timeout:g}s"
        if exc.code() == grpc.StatusCode.UNAVAILABLE:
            return "the agent cannot be reached"
        return f"the agent failed: {exc.code().name}: {exc.details() or ''}".rstrip(": ")
