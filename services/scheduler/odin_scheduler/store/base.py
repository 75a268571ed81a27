"""The scheduler's store interface: what every backend (SQLite, PostgreSQL, later MongoDB) provides.

The store is the truth. Each write is one transaction that changes rows *and* appends their events
with a global, strictly increasing `seq`; a reader that sees event N has already been able to see
every event below N (each backend documents how it guarantees that).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from odin_scheduler.model import Event, Job, JobFilter, NewEvent, Task


class StoreError(Exception):
    """Base of store errors the engine handles."""


class StaleJob(StoreError):
    """The job changed (or vanished) since it was read: re-read and decide again."""


@dataclass(frozen=True)
class JobCursor:
    """Keyset position in the newest-first job order: (create_us, id) of the last job returned."""

    create_us: int
    id: str


class Store(Protocol):
    async def open(self) -> None:
        """Connects and applies schema migrations."""

    async def close(self) -> None: ...

    async def ping(self) -> bool:
        """True when the store answers a trivial query (health check)."""

    async def create_job(self, job: Job, tasks: Sequence[Task], events: Sequence[NewEvent]) -> tuple[Job, bool]:
        """Inserts job, tasks and events in one transaction.

        When `job.request_id` is set and a job with that request id exists, nothing is written and
        that job is returned with `False`.
        """

    async def get_job(self, job_id: str) -> Job | None: ...

    async def list_jobs(self, where: JobFilter, limit: int, after: JobCursor | None = None) -> list[Job]:
        """Jobs newest first (create time, then id, both descending), strictly after `after`."""

    async def count_jobs(self, where: JobFilter) -> int: ...

    async def list_unfinished_jobs(self) -> list[Job]:
        """Jobs not in a terminal state (crash recovery)."""

    async def get_task(self, job_id: str, name: str) -> Task | None: ...

    async def list_tasks(self, job_id: str) -> list[Task]:
        """The job's tasks in pipeline order."""

    async def commit(
        self, job: Job, tasks: Sequence[Task], events: Sequence[NewEvent], expected_version: int
    ) -> tuple[Job, list[Event]]:
        """Writes the job row, the given task rows and the events in one transaction.

        Raises StaleJob unless the stored job still has `expected_version`. Returns the job as
        stored (new version, `last_event_seq`) and the events with their seq and time.
        """

    async def delete_job(self, job_id: str) -> bool:
        """Removes the job, its tasks and events; False when it did not exist."""

    async def list_events(
        self, after_seq: int, *, job_id: str | None = None, up_to: int | None = None, limit: int = 1000
    ) -> list[Event]:
        """Events with after_seq < seq <= up_to (of one job when given), in seq order."""

    async def latest_seq(self) -> int:
        """The highest committed seq; every event at or below it is visible."""

    async def wait_for_events(self, after_seq: int, timeout: float) -> None:
        """Returns when an event above `after_seq` may have been committed, or after `timeout`."""
