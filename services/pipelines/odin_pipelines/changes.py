"""Which commit last changed each pipeline, computed once per commit and project directory and cached.

A pipeline's revision is the newest commit whose first-parent diff changed its directory (an
entry of its project's directory: the top level for the default project, `_projects/<p>` else).
Walking history for every Get or List would cost O(commits); instead each commit's answer is
derived from its first parent's, so a new head costs one tree comparison.
Merge commits (only possible through a pulled remote) count as changing what they brought in.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import pygit2

from odin_pipelines.trees import commit_at, directory


@dataclass(frozen=True)
class Changes:
    """At one commit: each entry of one directory, its object id and the commit that last changed it."""

    tree_id: str  # the directory's own tree ('' when absent), so an untouched directory is copied as is
    entries: dict[str, str]
    changed_by: dict[str, str]


class ChangeIndex:
    """An LRU of `Changes` per commit id, safe to share between threads."""

    def __init__(self, capacity: int = 1024) -> None:
        self._cache: OrderedDict[tuple[str, str], Changes] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def at(self, repo: pygit2.Repository, commit: pygit2.Commit, directory: Sequence[str] = ()) -> Changes:
        """The changes of the entries of `directory` (path components; () is the top level) at `commit`."""
        path = "/".join(directory)
        chain: list[pygit2.Commit] = []
        changes: Changes | None = None
        current: pygit2.Commit | None = commit
        # Walk first parents back to one whose answer is cached (or to the root).
        while current is not None:
            changes = self._get((str(current.id), path))
            if changes is not None:
                break
            chain.append(current)
            current = commit_at(repo, current.parent_ids[0]) if current.parent_ids else None
        for step in reversed(chain):
            changes = _apply(repo, step, path, changes)
        assert changes is not None
        self._put((str(commit.id), path), changes)
        return changes

    def _get(self, key: tuple[str, str]) -> Changes | None:
        with self._lock:
            found = self._cache.get(key)
            if found is not None:
                self._cache.move_to_end(key)
            return found

    def _put(self, key: tuple[str, str], changes: Changes) -> None:
        with self._lock:
            self._cache[key] = changes
            self._cache.move_to_end(key)
            while len(self._cache) > self._capacity:
                self._cache.popitem(last=False)


def _apply(repo: pygit2.Repository, commit: pygit2.Commit, path: str, before: Changes | None) -> Changes:
    tree = directory(repo, commit.tree, path)
    tree_id = str(tree.id) if tree is not None else ""
    if before is not None and before.tree_id == tree_id:
        return before  # nothing under the directory changed in this commit
    entries = {entry.name or "": str(entry.id) for entry in tree} if tree is not None else {}
    old_entries = before.entries if before else {}
    changed_by = {name: by for name, by in (before.changed_by if before else {}).items() if name in entries}
    commit_id = str(commit.id)
    for name, oid in entries.items():
        if old_entries.get(name) != oid:
            changed_by[name] = commit_id
    return Changes(tree_id, entries, changed_by)
