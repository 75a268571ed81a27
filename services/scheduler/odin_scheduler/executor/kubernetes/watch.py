"""List-then-watch of one resource collection, kept in a local cache.

The cache is the executor's only view of the cluster: a watch event only says "look at this object again"
(level-triggered); whoever is told reads the cache. The watch resumes from the last resourceVersion after a
dropped connection, re-lists on 410 Gone (the version was compacted away), and backs off, bounded, while the
apiserver is unreachable.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
from collections.abc import Callable
from typing import Any

import urllib3

from odin_scheduler.executor.kubernetes.api import KubeApi, KubeApiError

log = logging.getLogger("odin.scheduler.kubernetes.watch")

OnChange = Callable[[dict[str, Any]], None]


class Gone(Exception):
    """The resourceVersion we watch from is older than what the apiserver keeps: re-list."""


class ResourceWatch:
    def __init__(self, api: KubeApi, path: str, selector: str, on_change: OnChange, *,
                 watch_timeout: int = 300, reconnect_max: float = 30.0) -> None:
        self.path = path
        self._api = api
        self._selector = selector
        self._on_change = on_change
        self._watch_timeout = watch_timeout
        self._reconnect_max = reconnect_max
        self._objects: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.synced = threading.Event()
        self.relists = 0
        self.expired = 0  # 410 Gone answers
        self._version = ""  # the resourceVersion the cache is at; empty: list first
        self.reconnects = 0
        self.error = ""  # the last failure, until the next successful list
        self._stream: Any = None
        self._thread = threading.Thread(target=self._run, name=f"watch {path}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        stream = self._stream
        if stream is not None:
            with contextlib.suppress(urllib3.exceptions.HTTPError, OSError):
                stream.shutdown()  # unblocks the watch thread's read

    def get(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            return self._objects.get(name)

    def select(self, predicate: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        with self._lock:
            return [obj for obj in self._objects.values() if predicate(obj)]

    def _run(self) -> None:
        delay = 0.0
        while not self._stopping.is_set():
            try:
                if not self._version:
                    self._version = self._list()
                self._watch()  # returns when the server ends the watch (timeout): resume from where it got
                delay = 0.0
            except Gone:
                self.expired += 1
                self._version = ""
                log.info("watch of %s expired (410 Gone): re-listing", self.path)
            except (KubeApiError, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
                if self._stopping.is_set():
                    break
                self.error = str(exc)
                self.reconnects += 1
                delay = min(self._reconnect_max, max(0.2, delay * 2))
                log.warning("watch of %s failed (%s); resuming in %.1fs", self.path, exc, delay)
                self._stopping.wait(delay * random.uniform(0.8, 1.2))

    def _list(self) -> str:
        body = self._api.request("GET", self.path, [("labelSelector", self._selector)])
        fresh = {obj["metadata"]["name"]: obj for obj in body.get("items", [])}
        with self._lock:
            vanished = [obj for name, obj in self._objects.items() if name not in fresh]
            self._objects = fresh
        self.relists += 1
        self.error = ""
        self.synced.set()
        for obj in vanished:
            self._on_change(_deleted(obj))
        for obj in fresh.values():
            self._on_change(obj)
        return str(body["metadata"]["resourceVersion"])

    def _watch(self) -> None:
        """Follows events from the cache's version until the server ends the watch."""
        query = [("watch", "1"), ("resourceVersion", self._version), ("allowWatchBookmarks", "true"),
                 ("timeoutSeconds", str(self._watch_timeout)), ("labelSelector", self._selector)]
        with self._api.stream(self.path, query, read_timeout=self._watch_timeout + 30) as lines:
            self._stream = lines
            try:
                for line in lines:
                    if self._stopping.is_set():
                        break
                    if line.strip():
                        self._version = self._apply(json.loads(line), self._version)
            finally:
                self._stream = None

    def _apply(self, event: dict[str, Any], version: str) -> str:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise Gone()
            raise KubeApiError(int(obj.get("code") or 500), str(obj.get("reason", "")), str(obj.get("message", "")))
        meta = obj.get("metadata", {})
        if kind == "BOOKMARK":
            return str(meta.get("resourceVersion") or version)
        with self._lock:
            if kind == "DELETED":
                self._objects.pop(meta["name"], None)
            else:
                self._objects[meta["name"]] = obj
        self._on_change(_deleted(obj) if kind == "DELETED" else obj)
        return str(meta.get("resourceVersion") or version)


def _deleted(obj: dict[str, Any]) -> dict[str, Any]:
    """A tombstone: the object as last seen, marked gone, so listeners know it no longer exists."""
    return {**obj, "odin/deleted": True}
