"""Dependency-graph algorithms over task names: stable topological order and cycles."""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence


def dependents_of(names: Sequence[str], depends: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """Invert ``depends``: task -> tasks that depend on it, in pipeline order."""
    # dicts keep insertion order and make the duplicate check O(1) for wide fan-ins
    result: dict[str, dict[str, None]] = {name: {} for name in names}
    for name in names:
        for dep in depends.get(name, ()):
            if dep in result:
                result[dep][name] = None
    return {name: tuple(children) for name, children in result.items()}


def _kahn(names: Sequence[str], depends: Mapping[str, Sequence[str]]) -> list[str]:
    """Kahn's algorithm; a heap of pipeline indices makes ready tasks come out in file order."""
    index = {name: i for i, name in enumerate(names)}
    missing = {name: len({d for d in depends.get(name, ()) if d in index}) for name in names}
    children = dependents_of(names, depends)
    ready = [index[name] for name in names if missing[name] == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        name = names[heapq.heappop(ready)]
        order.append(name)
        for child in children[name]:
            missing[child] -= 1
            if missing[child] == 0:
                heapq.heappush(ready, index[child])
    return order


def topological_order(names: Sequence[str], depends: Mapping[str, Sequence[str]]) -> list[str]:
    """Stable topological order; ValueError when the graph has a cycle."""
    order = _kahn(names, depends)
    if len(order) != len(names):
        raise ValueError("dependency graph has a cycle")
    return order


def find_cycles(names: Sequence[str], depends: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Each distinct cycle once, as names in run order starting and ending at the same task.

    Self-dependencies are ignored here (they are reported on their own).
    """
    edges = {n: [d for d in depends.get(n, ()) if d != n] for n in names}
    ordered = set(_kahn(names, edges))  # computed once: per-task recomputation made 1,000 tasks take seconds
    stuck = [n for n in names if n not in ordered]
    stuck_set = set(stuck)
    position = {name: i for i, name in enumerate(names)}
    cycles: list[list[str]] = []
    seen: set[frozenset[str]] = set()
    for start in stuck:
        cycle = _walk_to_cycle(start, edges, stuck_set)
        if frozenset(cycle) not in seen:
            seen.add(frozenset(cycle))
            cycles.append(_rotate(cycle, position))
    return cycles


def _walk_to_cycle(start: str, edges: Mapping[str, Sequence[str]], stuck: set[str]) -> list[str]:
    # Every stuck task waits on another stuck task, so this walk always closes a loop.
    path: list[str] = []
    where: dict[str, int] = {}
    node = start
    while node not in where:
        where[node] = len(path)
        path.append(node)
        node = next(d for d in edges[node] if d in stuck)
    return path[where[node] :]


def _rotate(cycle: list[str], position: Mapping[str, int]) -> list[str]:
    """Run order (dependency first), starting from the earliest task in the file."""
    run_order = list(reversed(cycle))
    first = min(range(len(run_order)), key=lambda i: position[run_order[i]])
    rotated = run_order[first:] + run_order[:first]
    return [*rotated, rotated[0]]
