"""The embedded API: `start` (a job to follow), `run_async` / `run` (to its end), `watch` (its events)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from odin_scheduler.executor.base import Executor
from odin_scheduler.identity import ANONYMOUS
from odin_scheduler.jobs import RequestedOptions
from odin_scheduler.model import Event, now_us
from odin_scheduler.store import Store

from odin.engine.job import FinishedJob, JobHandle
from odin.engine.source import Pipeline, resolve_pipeline
from odin.engine.stack import open_scheduler
from odin.runtime.errors import InvalidArgument

# The service's default global limit (`ODIN_SCHEDULER_MAX_PARALLEL_TASKS`).
MAX_PARALLEL_TASKS = 64
INTERRUPTED = "the embedding program stopped waiting for the job"


@contextlib.asynccontextmanager
async def start(
    pipeline: Pipeline, *, params: Mapping[str, Any] | None = None, executor: Executor | None = None,
    store: Store | str | None = None, run_path: str | Path | None = None, options: RequestedOptions | None = None,
    labels: Mapping[str, str] | None = None, max_parallel_tasks: int = MAX_PARALLEL_TASKS,
) -> AsyncIterator[JobHandle]:  # fmt: skip
    """Creates the job on an engine of its own and yields its handle; leaving the block ends everything.

    A job still running when the block is left (an exception, a `break`, a cancelled task) is cancelled
    and its running tasks are stopped before the engine closes. Raises `InvalidArgument` (reason
    `PIPELINE_INVALID` and one violation per problem) for a pipeline the service would refuse.
    """
    requested = options or RequestedOptions()
    _check(requested, labels or {})
    resolved = resolve_pipeline(pipeline, params)
    async with open_scheduler(executor, store, run_path, max_parallel_tasks) as scheduler:
        job = await scheduler.create_job(
            resolved, owner=ANONYMOUS, options=requested, labels=dict(labels or {}), parameters=dict(params or {}),
            request_id="", validate_only=False, now_us=now_us(),
        )  # fmt: skip
        handle = JobHandle(scheduler, job.id)
        try:
            yield handle
        finally:
            await handle.close(INTERRUPTED)


async def run_async(
    pipeline: Pipeline, *, params: Mapping[str, Any] | None = None, executor: Executor | None = None,
    store: Store | str | None = None, run_path: str | Path | None = None, options: RequestedOptions | None = None,
    labels: Mapping[str, str] | None = None, max_parallel_tasks: int = MAX_PARALLEL_TASKS,
) -> FinishedJob:  # fmt: skip
    """Runs the pipeline to its end. Cancelling the awaiting task cancels the job and stops its tasks."""
    async with start(pipeline, params=params, executor=executor, store=store, run_path=run_path, options=options,
                     labels=labels, max_parallel_tasks=max_parallel_tasks) as job:  # fmt: skip
        return await job.wait()


def run(
    pipeline: Pipeline, *, params: Mapping[str, Any] | None = None, executor: Executor | None = None,
    store: Store | str | None = None, run_path: str | Path | None = None, options: RequestedOptions | None = None,
    labels: Mapping[str, str] | None = None, max_parallel_tasks: int = MAX_PARALLEL_TASKS,
) -> FinishedJob:  # fmt: skip
    """`run_async` on an event loop of its own: for scripts and notebooks (Ctrl-C cancels the job).

    Where an event loop already runs in this thread (Jupyter), the job runs on a fresh loop in a helper thread.
    """
    work = run_async(pipeline, params=params, executor=executor, store=store, run_path=run_path, options=options,
                     labels=labels, max_parallel_tasks=max_parallel_tasks)  # fmt: skip
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(work)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="odin-engine") as pool:
        return pool.submit(asyncio.run, work).result()


async def watch(
    pipeline: Pipeline, *, params: Mapping[str, Any] | None = None, executor: Executor | None = None,
    store: Store | str | None = None, run_path: str | Path | None = None, options: RequestedOptions | None = None,
    labels: Mapping[str, str] | None = None, max_parallel_tasks: int = MAX_PARALLEL_TASKS,
) -> AsyncGenerator[Event, None]:  # fmt: skip
    """Runs the pipeline and yields every event of its job, the job's end last.

    Stopping early (`break` inside `contextlib.aclosing(watch(...))`) cancels the job.
    """
    async with start(pipeline, params=params, executor=executor, store=store, run_path=run_path, options=options,
                     labels=labels, max_parallel_tasks=max_parallel_tasks) as job:  # fmt: skip
        async for event in job.events():
            yield event


def _check(options: RequestedOptions, labels: Mapping[str, str]) -> None:
    """The checks CreateJob applies to its labels and options, in the same order and with the same fields."""
    if labels:
        from odin_scheduler.convert import label_violations  # imports protobuf: only when labels are given

        found = label_violations(labels.items(), "labels")
        if found:
            raise InvalidArgument("invalid request", found)
    violations: list[tuple[str, str]] = []
    if options.parallelism < 0:
        violations.append(("options.parallelism", "must not be negative"))
    if options.timeout_seconds is not None and options.timeout_seconds <= 0:
        violations.append(("options.timeout", "must be positive"))
    if violations:
        raise InvalidArgument("invalid job options", violations)
