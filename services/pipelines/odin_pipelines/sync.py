"""Keeping the repository in step with an optional upstream remote (a path or URL).

A sync fetches the upstream branch, fast-forwards the local branch when the upstream is ahead,
and pushes when the local branch is ahead. Nothing is ever forced: when both sides have
commits the other lacks, the state is DIVERGED and both keep their commits until an operator
reconciles them. Credentials inside the URL never appear in states, messages or logs.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
import urllib.parse
from dataclasses import dataclass

import pygit2

from odin_pipelines.repository import PipelineRepository

log = logging.getLogger("odin.pipelines.sync")


class SyncState(enum.Enum):
    NO_REMOTE = "NO_REMOTE"
    IN_SYNC = "IN_SYNC"
    AHEAD = "AHEAD"
    DIVERGED = "DIVERGED"
    UNREACHABLE = "UNREACHABLE"


@dataclass(frozen=True)
class SyncStatus:
    remote: str  # without credentials
    state: SyncState
    message: str = ""
    last_sync_time: float | None = None


class _PushRejected(Exception):
    pass


class Upstream:
    """The upstream remote of one repository; `sync()` is safe to call from any thread."""

    def __init__(self, repo: PipelineRepository, url: str) -> None:
        self.repo = repo
        self._url = url
        self.display_url = redact_url(url)
        self._tracking_ref = f"refs/odin/upstream/{repo.branch}"
        self._lock = threading.Lock()
        self._status = SyncStatus(self.display_url, SyncState.AHEAD, "not synchronised yet")

    @property
    def status(self) -> SyncStatus:
        return self._status

    def sync(self) -> SyncStatus:
        with self._lock:
            try:
                state, message = self._sync()
                self._status = SyncStatus(self.display_url, state, message, time.time())
            except (pygit2.GitError, OSError, _PushRejected) as exc:
                message = self._scrub(str(exc))
                state = SyncState.AHEAD if isinstance(exc, _PushRejected) else SyncState.UNREACHABLE
                self._status = SyncStatus(self.display_url, state, message, self._status.last_sync_time)
            if self._status.state not in (SyncState.IN_SYNC,):
                log.warning("upstream not in sync", extra={"state": self._status.state.value,
                                                           "detail": self._status.message,
                                                           "remote": self.display_url})
            return self._status

    def _sync(self) -> tuple[SyncState, str]:
        remote = self.repo.git.remotes.create_anonymous(self._url)
        branch = self.repo.branch
        remote.fetch([f"+refs/heads/{branch}:{self._tracking_ref}"])
        upstream = self._upstream_head()
        local = self.repo.head()
        if upstream is None and local is None:
            return SyncState.IN_SYNC, "both sides are empty"
        if upstream is not None and (local is None or upstream == local.id
                                     or self.repo.git.descendant_of(upstream, local.id)):
            if not self.repo.fast_forward(str(upstream)):
                return SyncState.AHEAD, "the local branch moved during the sync; it will be pushed next time"
            return SyncState.IN_SYNC, ""
        assert local is not None
        if upstream is None or self.repo.git.descendant_of(local.id, upstream):
            self._push(remote)
            return SyncState.IN_SYNC, ""
        return SyncState.DIVERGED, self._diverged_message(local.id, upstream)

    def _upstream_head(self) -> pygit2.Oid | None:
        try:
            return pygit2.Oid(hex=str(self.repo.git.lookup_reference(self._tracking_ref).target))
        except KeyError:
            return None

    def _push(self, remote: pygit2.Remote) -> None:
        rejections: list[str] = []

        class Callbacks(pygit2.RemoteCallbacks):
            def push_update_reference(self, refname: str, message: str | None) -> None:
                if message:
                    rejections.append(f"{refname}: {message}")

        branch = self.repo.branch
        remote.push([f"refs/heads/{branch}:refs/heads/{branch}"], callbacks=Callbacks())  # never '+': no force
        if rejections:
            raise _PushRejected("the upstream refused the push: " + "; ".join(rejections))

    def _diverged_message(self, local: pygit2.Oid, upstream: pygit2.Oid) -> str:
        ahead, behind = self.repo.git.ahead_behind(local, upstream)
        return (f"local {self.repo.branch} ({str(local)[:12]}) has {ahead} commit(s) the upstream lacks and the "
                f"upstream ({str(upstream)[:12]}) has {behind} the local branch lacks; nothing was overwritten. "
                f"Merge or rebase one side onto the other, then sync again.")

    def _scrub(self, text: str) -> str:
        """Error texts from libgit2 may repeat the URL, credentials included."""
        secret = urllib.parse.urlsplit(self._url).password if "://" in self._url else None
        text = text.replace(self._url, self.display_url)
        return text.replace(secret, "***") if secret else text


def redact_url(url: str) -> str:
    """The URL without user information (`https://user:token@host/x` -> `https://host/x`)."""
    if "://" not in url:
        return url
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
