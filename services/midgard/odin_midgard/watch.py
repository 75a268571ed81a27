"""WatchNodes: every node as ADDED, then ADDED/MODIFIED/REMOVED deltas, heartbeats while quiet.

Level-triggered: on a wake-up the watcher compares each entry's revision with the one it last
sent, so it sends the latest state of what changed, however many changes happened meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from odin.midgard.v1 import midgard_pb2
from odin.runtime import timestamps
from odin_midgard.cache import Entry, NodeCache

Change = midgard_pb2.NodeChange


class WatchState:
    """What one watcher has sent: agent address → (revision, node name)."""

    def __init__(self) -> None:
        self.sent: dict[str, tuple[int, str]] = {}

    def changes(self, entries: list[Entry]) -> list[midgard_pb2.NodeChange]:
        current = {e.target.address: e for e in entries}
        out = []
        for address, (_, name) in list(self.sent.items()):
            entry = current.get(address)
            if entry is None or entry.view.name != name:  # gone, or renamed once its agent answered
                out.append(Change(type=Change.TYPE_REMOVED, node=midgard_pb2.Node(name=name)))
                del self.sent[address]
        for entry in entries:
            previous = self.sent.get(entry.target.address)
            if previous is None:
                out.append(Change(type=Change.TYPE_ADDED, node=entry.view))
            elif previous[0] != entry.revision:
                out.append(Change(type=Change.TYPE_MODIFIED, node=entry.view))
            self.sent[entry.target.address] = (entry.revision, entry.view.name)
        return out


async def watch_nodes(cache: NodeCache, stopping: asyncio.Event,
                      heartbeat_seconds: float) -> AsyncIterator[midgard_pb2.WatchNodesResponse]:
    """The stream of one WatchNodes call; ends when `stopping` is set."""
    changed = cache.subscribe()
    try:
        state = WatchState()
        for change in state.changes(cache.entries()):
            yield midgard_pb2.WatchNodesResponse(change=change)
        last_sent = time.monotonic()
        while not stopping.is_set():
            remaining = heartbeat_seconds - (time.monotonic() - last_sent)
            await _wait_any((changed, stopping), max(remaining, 0.0))
            if stopping.is_set():
                return
            if changed.is_set():
                changed.clear()
                for change in state.changes(cache.entries()):
                    yield midgard_pb2.WatchNodesResponse(change=change)
                    last_sent = time.monotonic()
            if time.monotonic() - last_sent >= heartbeat_seconds:
                yield _heartbeat()
                last_sent = time.monotonic()
    finally:
        cache.unsubscribe(changed)


def _heartbeat() -> midgard_pb2.WatchNodesResponse:
    return midgard_pb2.WatchNodesResponse(heartbeat=midgard_pb2.Heartbeat(time=timestamps.now()))


async def _wait_any(events: tuple[asyncio.Event, ...], timeout: float) -> None:
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
