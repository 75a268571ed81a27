"""The aggregator's one source of truth: the last view of every agent's node, and who to tell on change.

Each agent has one entry, keyed by its address. Collections write into it (`succeeded`,
`failed`); readers get ready-made `Node` views, built once per change so reads cost nothing.
Every change bumps the entry's revision and wakes the watchers, which compare revisions to
decide what to send (level-triggered: a slow watcher sees the latest state, never a backlog).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools

from odin.midgard.v1 import midgard_pb2
from odin_midgard.discovery import AgentTarget

Node = midgard_pb2.Node


@dataclasses.dataclass
class Entry:
    """One agent's node: its last good snapshot and how fresh it is."""

    target: AgentTarget
    view: Node
    revision: int
    snapshot: Node | None = None


def _placeholder_name(target: AgentTarget) -> str:
    """Before an agent answers its node is named after what discovery knew: the node, else the address."""
    return f"nodes/{target.node or target.address}"


def build_view(target: AgentTarget, snapshot: Node | None, state: Node.State.ValueType, message: str) -> Node:
    view = Node()
    if snapshot is not None:
        view.CopyFrom(snapshot)
    else:
        view.name = _placeholder_name(target)
    view.state = state
    view.state_message = message
    view.agent_address = target.address
    return view


class NodeCache:
    """Node views by agent address, with change notification."""

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}
        self._watchers: set[asyncio.Event] = set()
        self._revisions = itertools.count(1)

    # -- writers (collector, discovery) -----------------------------------------------------
    def add(self, target: AgentTarget) -> None:
        view = build_view(target, None, Node.STATE_UNREACHABLE, "not collected yet")
        self._entries[target.address] = Entry(target, view, next(self._revisions))
        self._notify()

    def remove(self, address: str) -> None:
        if self._entries.pop(address, None) is not None:
            self._notify()

    def succeeded(self, address: str, snapshot: Node) -> None:
        entry = self._entries.get(address)
        if entry is None:  # removed by discovery while the call was in flight
            return
        entry.snapshot = snapshot
        self._update(entry, build_view(entry.target, snapshot, Node.STATE_READY, ""))

    def failed(self, address: str, message: str) -> None:
        entry = self._entries.get(address)
        if entry is None:
            return
        state = Node.STATE_STALE if entry.snapshot is not None else Node.STATE_UNREACHABLE
        view = build_view(entry.target, entry.snapshot, state, message)
        if view != entry.view:  # the same failure again is no change
            self._update(entry, view)

    def _update(self, entry: Entry, view: Node) -> None:
        entry.view = view
        entry.revision = next(self._revisions)
        self._notify()

    # -- readers ----------------------------------------------------------------------------
    def entries(self) -> list[Entry]:
        """Every entry, ordered by node name, then agent address."""
        return sorted(self._entries.values(), key=lambda e: (e.view.name, e.target.address))

    def nodes(self) -> list[Node]:
        return [entry.view for entry in self.entries()]

    def find(self, name: str) -> Node | None:
        """The node called `name`; when two agents claim one name, the lower agent address wins."""
        found = [e for e in self._entries.values() if e.view.name == name]
        return min(found, key=lambda e: e.target.address).view if found else None

    def addresses(self) -> set[str]:
        return set(self._entries)

    # -- change notification ----------------------------------------------------------------
    def subscribe(self) -> asyncio.Event:
        """An event set on every change; the watcher clears it before reading."""
        event = asyncio.Event()
        self._watchers.add(event)
        return event

    def unsubscribe(self, event: asyncio.Event) -> None:
        self._watchers.discard(event)

    def _notify(self) -> None:
        for event in self._watchers:
            event.set()
