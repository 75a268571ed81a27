"""Pod logs of one attempt, followed live into the attempt's log file (the log store), so they outlive the pods.

Each container of each pod is followed by one thread from the moment it starts. In a multi-pod attempt every line
is prefixed with the replica it came from (`[worker-1] ...`). When the attempt ends, followers get a moment to
reach the end of their stream; one still open then is closed and the rest of its log is read once (from the last
timestamp it saw), and a container that was never followed is read once in full.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import urllib3

from odin_scheduler.executor.kubernetes.api import KubeApi, KubeApiError
from odin_scheduler.executor.kubernetes.status import Obj

log = logging.getLogger("odin.scheduler.kubernetes.logs")
_STARTED_PHASES = frozenset({"Running", "Succeeded", "Failed"})
_ERRORS = (KubeApiError, urllib3.exceptions.HTTPError, OSError, ValueError)
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z ")
Key = tuple[str, str]  # (pod, container)


def _split_stamp(line: str) -> tuple[str, str]:
    """(sortable timestamp, line without it); the kubelet prefixes lines with RFC 3339 times when asked."""
    match = _STAMP.match(line)
    if not match:
        return "", line
    return f"{match.group(1)}.{(match.group(2) or '').ljust(9, '0')}", line[match.end():]


class _Follower:
    def __init__(self) -> None:
        self.thread: threading.Thread | None = None
        self.stream: Any = None  # the open HTTP response, to close it when the attempt is over
        self.last_stamp = ""
        self.connected = False
        self.ended = False  # the server ended the stream: everything was read


class AttemptLogs:
    def __init__(self, api: KubeApi, namespace: str, log_file: Path, *, labelled: bool) -> None:
        self._api = api
        self._namespace = namespace
        self._labelled = labelled
        self._lock = threading.Lock()
        log_file.parent.mkdir(parents=True, exist_ok=True)
        self._out: IO[str] = log_file.open("a", encoding="utf-8")
        self._followers: dict[Key, _Follower] = {}

    def ensure(self, pod: Obj, label: str) -> None:
        """Starts following the pod's containers once it has started (idempotent)."""
        if (pod.get("status") or {}).get("phase") not in _STARTED_PHASES or pod.get("odin/deleted"):
            return
        for container in _containers(pod):
            key = (pod["metadata"]["name"], container)
            if key not in self._followers:
                follower = self._followers[key] = _Follower()
                follower.thread = threading.Thread(target=self._follow, args=(key, follower, label), daemon=True,
                                                   name=f"logs {key[0]}/{key[1]}")
                follower.thread.start()

    def finish(self, pods: list[Obj], label_of: Callable[[Obj], str], grace: float = 1.0) -> None:
        """Completes every container's log in the file, then closes it."""
        for pod in pods:
            self.ensure(pod, label_of(pod))
        deadline = time.monotonic() + grace
        for follower in self._followers.values():
            if follower.thread is not None:
                follower.thread.join(max(0.0, deadline - time.monotonic()))
        for pod in pods:
            for container in _containers(pod):
                self._complete((pod["metadata"]["name"], container), label_of(pod))
        with self._lock:
            self._out.close()

    def _complete(self, key: Key, label: str) -> None:
        follower = self._followers.get(key)
        if follower is not None and follower.ended:
            return
        if follower is not None:
            self._close(follower)
        since = follower.last_stamp if follower is not None and follower.connected else ""
        self._snapshot(key, label, since)

    def _path(self, pod: str) -> str:
        return f"/api/v1/namespaces/{self._namespace}/pods/{pod}/log"

    def _follow(self, key: Key, follower: _Follower, label: str) -> None:
        pod, container = key
        query = [("container", container), ("follow", "true"), ("timestamps", "true")]
        try:
            with self._api.stream(self._path(pod), query, read_timeout=3600) as lines:
                follower.stream, follower.connected = lines, True
                for raw in lines:
                    stamp, line = _split_stamp(raw.decode(errors="replace"))
                    follower.last_stamp = stamp or follower.last_stamp
                    self._write(label, line)
            follower.ended = True
        except _ERRORS as exc:
            log.debug("following logs of %s/%s stopped: %s", pod, container, exc)

    def _close(self, follower: _Follower) -> None:
        if follower.stream is not None:
            with contextlib.suppress(*_ERRORS):
                follower.stream.shutdown()  # unblocks the follower's read
        if follower.thread is not None:
            follower.thread.join(2.0)

    def _snapshot(self, key: Key, label: str, since: str) -> None:
        """Reads the container's log once; with `since`, only lines stamped after it (the follower had the rest)."""
        pod, container = key
        query = [("container", container), ("timestamps", "true")]
        if since:
            query.append(("sinceTime", since[:19] + "Z"))
        try:
            text = self._api.text(self._path(pod), query)
        except _ERRORS as exc:
            self._write(label, f"[odin: the logs of {pod}/{container} could not be read: {exc}]\n")
            return
        for raw in text.splitlines(keepends=True):
            stamp, line = _split_stamp(raw)
            if not since or stamp > since:
                self._write(label, line)

    def _write(self, label: str, line: str) -> None:
        if not line.endswith("\n"):
            line += "\n"
        with self._lock:
            if not self._out.closed:
                self._out.write(f"[{label}] {line}" if self._labelled else line)
                self._out.flush()


def _containers(pod: Obj) -> list[str]:
    return [str(c["name"]) for c in (pod.get("spec") or {}).get("containers", [])]
