"""An in-process engine over a real store with the instant executor, and helpers to drive it."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from odin_scheduler.engine import Engine
from odin_scheduler.executor.instant import InstantExecutor
from odin_scheduler.jobs import NewJob, RequestedOptions, build_job, new_job_id
from odin_scheduler.model import FailurePolicy, Job, Task
from odin_scheduler.store import Store
from support.waiting import assert_eventually_async

from odin.pipeline_spec import load_pipeline


class Harness:
    def __init__(self, store: Store, engine: Engine, executor: InstantExecutor) -> None:
        self.store = store
        self.engine = engine
        self.executor = executor

    async def run(self, tasks: Sequence[dict[str, Any]], *, parallelism: int = 0, timeout: float | None = None,
                  policy: FailurePolicy | None = None, pipeline_keys: dict[str, Any] | None = None) -> str:  # fmt: skip
        spec = load_pipeline({"name": "t", "tasks": list(tasks), **(pipeline_keys or {})})
        new = NewJob(spec, "t", "", "users/a", RequestedOptions(parallelism, policy, timeout))
        job, rows, events = build_job(new, new_job_id("t"), time.time_ns() // 1000, "Process")
        await self.engine.create_job(job, rows, events)
        return job.id

    async def finished(self, job_id: str, timeout: float = 20.0) -> Job:
        deadline = time.monotonic() + timeout
        while True:
            job = await self.store.get_job(job_id)
            assert job is not None
            if job.state.terminal and not self.engine.running_attempts:
                return job
            assert time.monotonic() < deadline, f"job still {job.state.name}"
            await self.store.wait_for_events(job.last_event_seq, 0.2)

    async def until(self, job_id: str, name: str, check: Callable[[Task], bool], timeout: float = 20.0) -> Task:
        """The task once `check` holds for it."""

        async def probe() -> Task | None:
            current = (await self.tasks(job_id))[name]
            return current if check(current) else None

        found = await assert_eventually_async(probe, timeout=timeout, interval=0.02)
        assert found is not None
        return found

    async def tasks(self, job_id: str) -> dict[str, Task]:
        return {t.name: t for t in await self.store.list_tasks(job_id)}


def task(name: str, *command: str, depends: str | list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": "x", "command": list(command) or ["true"], "depends": depends, **extra}


