"""A job running in this process (`JobHandle`) and the record of one that ended (`FinishedJob`)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from odin_scheduler import safe_files
from odin_scheduler.identity import ANONYMOUS, Caller
from odin_scheduler.model import Event, Job, JobState, Task
from odin_scheduler.service import Scheduler

if TYPE_CHECKING:
    from odin.scheduler.v1 import scheduler_pb2

# The embedding program acts for itself: it may cancel its own jobs whoever is recorded as their owner.
EMBEDDER = Caller(ANONYMOUS, admin=True)
# Seconds a stopped attempt gets to exit before the engine is closed anyway.
STOP_TIMEOUT_SECONDS = 60.0
# The end of each task's output kept in `FinishedJob.logs`.
LOG_TAIL_BYTES = 64 * 1024


@dataclass(frozen=True)
class FinishedJob:
    """A job that ended: its row, its tasks (pipeline order), every event it had, and each task's output."""

    job: Job
    tasks: Mapping[str, Task]
    events: tuple[Event, ...]
    # The end (up to 64 KiB) of each task's latest attempt's output; "" for a task that never ran.
    logs: Mapping[str, str]

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def state(self) -> JobState:
        return self.job.state

    @property
    def succeeded(self) -> bool:
        return self.job.state is JobState.SUCCEEDED

    @property
    def outputs(self) -> dict[str, Mapping[str, Any]]:
        """Each task's published outputs (what `^task.outputs.key` reads), by task name."""
        return {name: task.outputs for name, task in self.tasks.items()}


class JobHandle:
    """A job of the embedded engine: follow its events, cancel it, wait for its end.

    Valid inside the `odin.engine.start(...)` block that created it; leaving the block early cancels the job.
    """

    def __init__(self, scheduler: Scheduler, job_id: str) -> None:
        self._scheduler = scheduler
        self.id = job_id

    async def events(self, after_seq: int = 0) -> AsyncGenerator[Event, None]:
        """The job's events after `after_seq` (all of them by default), live, ending with the job's end.

        These are the very records `WatchJob` streams (`odin.engine.to_proto` packs one as a `JobEvent`).
        """
        async for item in self._scheduler.watch_job(self.id, after_seq):
            if isinstance(item, list):  # a batch of events; the rest are heartbeats
                for event in item:
                    yield event

    async def job(self) -> Job:
        """The job as stored now."""
        return await self._scheduler.get_job(self.id)

    async def tasks(self) -> dict[str, Task]:
        """The job's tasks as stored now, in pipeline order."""
        return {task.name: task for task in await self._scheduler.store.list_tasks(self.id)}

    async def cancel(self, message: str = "") -> Job:
        """Cancels the job (a no-op once it ended) and returns once its running tasks were stopped."""
        job = await self._scheduler.cancel_job(self.id, message, EMBEDDER)
        await self._scheduler.engine.wait_for_attempts(self.id, STOP_TIMEOUT_SECONDS)
        return job

    async def wait(self) -> FinishedJob:
        """Waits for the job to end (its attempts included) and returns what it did."""
        events = tuple([event async for event in self.events()])
        await self._scheduler.engine.wait_for_attempts(self.id, STOP_TIMEOUT_SECONDS)
        tasks = await self.tasks()
        layout = self._scheduler.layout
        logs = {name: _log_tail(layout.attempts_root(), layout.log_file(self.id, name, t.attempt))
                for name, t in tasks.items()}
        return FinishedJob(await self.job(), tasks, events, logs)

    async def close(self, message: str) -> None:
        """Cancels the job unless it ended, so no task outlives the engine that started it."""
        if not (await self.job()).state.terminal:
            await self.cancel(message)
        await self._scheduler.engine.wait_for_attempts(self.id, STOP_TIMEOUT_SECONDS)


def to_proto(event: Event) -> scheduler_pb2.JobEvent:
    """The `odin.scheduler.v1.JobEvent` a WatchJob stream would carry for this event (imports protobuf)."""
    from odin_scheduler import convert

    return convert.event(event)


def _log_tail(root: Path, path: Path) -> str:
    """The last LOG_TAIL_BYTES of a task's log, read without following anything a task planted there."""
    try:
        size = safe_files.size_of(root, path)
        data, _ = safe_files.read_at(root, path, max(0, size - LOG_TAIL_BYTES), LOG_TAIL_BYTES)
    except (OSError, safe_files.UnsafeFile):
        return ""
    return data.decode("utf-8", errors="replace")
