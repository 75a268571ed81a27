"""The scheduler's use cases, free of gRPC: what each RPC does once its request is unpacked."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from odin.pipeline_spec import PipelineInvalid, PipelineSpec, load_pipeline, substitute
from odin.runtime import paging
from odin.runtime.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, Unavailable
from odin.runtime.tokens import Role
from odin_scheduler import limits, logs
from odin_scheduler.engine import Engine
from odin_scheduler.engine.decide import NotRetryable
from odin_scheduler.engine.engine import JobNotFound
from odin_scheduler.engine.plan import job_variables, mount_path_problem
from odin_scheduler.executor.base import ClusterEvent, TemporaryError
from odin_scheduler.identity import Caller
from odin_scheduler.jobs import MAIN_FILE, NewJob, RequestedOptions, ResolvedPipeline, build_job, new_job_id
from odin_scheduler.model import DEFAULT_PROJECT, Event, Job, JobFilter, Task, TaskState
from odin_scheduler.paths import Layout
from odin_scheduler.store.base import JobCursor, Store
from odin_scheduler.watch import EventHub, Heartbeat, JobLookup, watch_events


@dataclass(frozen=True)
class Page:
    items: list[Job] | list[Task] | list[Event]
    next_page_token: str = ""
    total_size: int = 0


@dataclass(frozen=True)
class LogPiece:
    data: bytes
    offset: int
    attempt: int


class Scheduler:
    def __init__(self, store: Store, engine: Engine, hub: EventHub, layout: Layout, *, resource_type: str | None,
                 heartbeat_seconds: float = 10.0, stopping: asyncio.Event | None = None,
                 max_log_bytes: int = logs.DEFAULT_MAX_BYTES,
                 protected_claims: frozenset[str] = frozenset()) -> None:  # fmt: skip
        self.store = store
        self.engine = engine
        self.hub = hub
        self.layout = layout
        self.resource_type = resource_type
        self.heartbeat_seconds = heartbeat_seconds
        self.max_log_bytes = max_log_bytes
        # Claims a task may not mount itself (the runs volume: Odin mounts each job's own part of it).
        self.protected_claims = protected_claims
        self.stopping = stopping or asyncio.Event()
        self._watched_jobs = JobLookup(store)  # shared by every WatchJobs filter

    # -- jobs --------------------------------------------------------------------------------------------

    async def create_job(self, resolved: ResolvedPipeline, *, owner: str, options: RequestedOptions,
                         labels: Mapping[str, str], parameters: Mapping[str, object], request_id: str,
                         validate_only: bool, now_us: int, project: str = DEFAULT_PROJECT) -> Job:  # fmt: skip
        """Validates, stores and starts a job; nothing is stored when anything is invalid.

        The caller's right to create in `project` is checked before (the servicer; the embedded engine has none).
        """
        limits.check_parameters(parameters)
        spec = _load(resolved)
        new = NewJob(spec, resolved.pipeline or spec.name, resolved.revision, owner, options, labels, parameters,
                     request_id, project)  # fmt: skip
        job, tasks, events = build_job(new, new_job_id(spec.name), now_us, self.resource_type)
        limits.check_spec(job.spec, resolved.field)
        _check_mounts(spec, job.id, self.layout, self.protected_claims, resolved.field)
        if validate_only:
            return job
        work = self.layout.work_path(job.id)
        _materialise(work, resolved)
        try:
            stored, created = await self.engine.create_job(job, tasks, events)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        if not created:
            shutil.rmtree(work, ignore_errors=True)
        return stored

    async def get_job(self, job_id: str, caller: Caller | None = None, role: Role = Role.VIEWER) -> Job:
        """The job, when `caller` (None: the embedding program, which may do anything) has `role` in its project;
        a caller who is not a member gets JOB_NOT_FOUND, exactly as for a missing job."""
        job = await self.store.get_job(job_id)
        if job is None:
            raise _job_not_found(job_id)
        if caller is not None:
            caller.require(job.project, role, _job_not_found(job_id))
        return job

    async def list_jobs(self, where: JobFilter, page_size: int, page_token: str, include_total: bool,
                        size_of: Callable[[Job], int] | None = None, max_bytes: int = 0) -> Page:
        """A page of jobs; with `size_of`, the page also ends before its jobs pass `max_bytes` (at least one job),
        so a page of large jobs still fits in a message."""
        filters = _filter_key(where)
        position = paging.decode_token(page_token, filters)
        after = JobCursor(int(position["t"]), str(position["i"])) if position else None
        jobs = await self.store.list_jobs(where, page_size + 1, after)
        token = ""
        kept = _within_budget(jobs[:page_size], size_of, max_bytes) if size_of is not None else page_size
        if len(jobs) > kept:
            jobs = jobs[:kept]
            token = paging.encode_token({"t": jobs[-1].create_us, "i": jobs[-1].id}, filters)
        total = await self.store.count_jobs(where) if include_total else 0
        return Page(jobs, token, total)

    async def cancel_job(self, job_id: str, message: str, caller: Caller) -> Job:
        _check_owner(await self.get_job(job_id, caller), caller)
        return await self._cancel(job_id, message)

    async def _cancel(self, job_id: str, message: str) -> Job:
        """Cancels a job whose owner was already checked."""
        try:
            return await self.engine.cancel_job(job_id, message)
        except JobNotFound:
            raise _job_not_found(job_id) from None

    async def retry_job(self, job_id: str, caller: Caller) -> Job:
        _check_owner(await self.get_job(job_id, caller), caller)
        try:
            return await self.engine.retry_job(job_id)
        except JobNotFound:
            raise _job_not_found(job_id) from None
        except NotRetryable as exc:
            raise FailedPrecondition(
                f"job {job_id} is {exc.args[0]}: only failed or cancelled jobs can be retried",
                reason="JOB_NOT_RETRYABLE", metadata={"job": f"jobs/{job_id}", "state": exc.args[0]},
            ) from None  # fmt: skip

    async def delete_job(self, job_id: str, force: bool, caller: Caller) -> None:
        job = await self.get_job(job_id, caller)
        _check_owner(job, caller)
        if not job.state.terminal:
            if not force:
                raise FailedPrecondition(
                    f"job {job_id} is {job.state.name}: cancel it first or delete with force",
                    reason="JOB_RUNNING", metadata={"job": f"jobs/{job_id}"},
                )  # fmt: skip
            await self._cancel(job_id, "deleted")  # the owner was checked above
        try:
            await self.engine.delete_job(job_id)
        except JobNotFound:
            raise _job_not_found(job_id) from None
        except TemporaryError as exc:
            raise Unavailable(f"cannot remove the job's objects from the cluster now: {exc.message}",
                              reason="EXECUTOR_UNAVAILABLE", metadata={"job": f"jobs/{job_id}"}) from None

    # -- tasks and events ------------------------------------------------------------------------------

    async def get_task(self, job_id: str, name: str, caller: Caller | None = None) -> Task:
        """The task, when `caller` may see its job; TASK_NOT_FOUND otherwise, exactly as for a missing task."""
        missing = NotFound(f"task {name} of job {job_id} not found", reason="TASK_NOT_FOUND",
                           metadata={"task": f"jobs/{job_id}/tasks/{name}"})  # fmt: skip
        if caller is not None:
            job = await self.store.get_job(job_id)
            if job is None:
                raise missing
            caller.require(job.project, Role.VIEWER, missing)
        task = await self.store.get_task(job_id, name)
        if task is None:
            raise missing
        return task

    async def list_tasks(self, job_id: str, states: frozenset[TaskState], page_size: int, page_token: str,
                         caller: Caller | None = None) -> Page:
        await self.get_job(job_id, caller)
        filters = {"job": job_id, "states": sorted(states)}
        position = paging.decode_token(page_token, filters)
        after = int(position["p"]) if position else -1
        tasks = [
            t for t in await self.store.list_tasks(job_id) if t.position > after and (not states or t.state in states)
        ]
        if len(tasks) <= page_size:
            return Page(tasks)
        tasks = tasks[:page_size]
        return Page(tasks, paging.encode_token({"p": tasks[-1].position}, filters))

    async def list_events(self, job_id: str, after_seq: int, page_size: int, page_token: str,
                          caller: Caller | None = None) -> Page:
        await self.get_job(job_id, caller)
        filters = {"job": job_id, "after": after_seq}
        position = paging.decode_token(page_token, filters)
        cursor = int(position["s"]) if position else after_seq
        events = await self.store.list_events(cursor, job_id=job_id, limit=page_size + 1)
        if len(events) <= page_size:
            return Page(events)
        events = events[:page_size]
        return Page(events, paging.encode_token({"s": events[-1].seq}, filters))

    async def task_cluster_events(self, job_id: str, name: str,
                                  caller: Caller | None = None) -> tuple[int, list[ClusterEvent]]:  # fmt: skip
        """The cluster's events about the task's current attempt (none before it was dispatched)."""
        task = await self.get_task(job_id, name, caller)
        if not task.handle:
            return task.attempt, []
        try:
            return task.attempt, await self.engine.executor.events(task.handle)
        except TemporaryError as exc:
            raise Unavailable(f"cannot list the task's cluster events now: {exc.message}",
                              reason="EXECUTOR_UNAVAILABLE", metadata={"task": f"jobs/{job_id}/tasks/{name}"}) from None

    # -- streams ------------------------------------------------------------------------------------------

    async def watch_job(self, job_id: str, after_seq: int,
                        caller: Caller | None = None) -> AsyncIterator[list[Event] | Heartbeat]:  # fmt: skip
        """The job's events after the cursor, in batches; ends after the event that ends the job."""
        await self.get_job(job_id, caller)
        stream = watch_events(self.hub, self.store, after_seq, job_id=job_id,
                              heartbeat_seconds=self.heartbeat_seconds, stopping=self.stopping)  # fmt: skip
        async for item in stream:
            yield item
            # A terminal event followed by more in the same batch means the job was retried: go on.
            if isinstance(item, list) and item[-1].ends_job and await self._ended_at(job_id, item[-1].seq):
                return

    async def watch_jobs(self, where: JobFilter, after_seq: int) -> AsyncIterator[list[Event] | Heartbeat]:
        """Events of matching jobs, in batches; `after_seq` 0 starts at the newest event. `where.visible` keeps
        every event of a job the caller may not see out of the stream (a deleted job's too: its project is
        unknown)."""
        cursor = after_seq or self.hub.latest
        select = self._watched_jobs.selector(where) if where.narrows else None
        stream = watch_events(self.hub, self.store, cursor, select, heartbeat_seconds=self.heartbeat_seconds,
                              stopping=self.stopping)  # fmt: skip
        async for item in stream:
            yield item

    async def _ended_at(self, job_id: str, seq: int) -> bool:
        """True unless the job was retried after this terminal event (then the stream goes on)."""
        job = await self.store.get_job(job_id)
        return job is None or (job.state.terminal and job.last_event_seq <= seq)

    async def task_logs(self, job_id: str, name: str, *, follow: bool, offset: int, attempt: int,
                        caller: Caller | None = None) -> AsyncIterator[LogPiece]:  # fmt: skip
        task = await self.get_task(job_id, name, caller)
        if attempt < 0 or attempt > max(task.attempt, 0):
            raise InvalidArgument.field("attempt", f"the task has {task.attempt} attempt(s)")
        number = attempt or task.attempt
        if number == 0:
            return  # never dispatched: no output yet
        path = self.layout.log_file(job_id, name, number)

        async def ended() -> bool:
            current = await self.store.get_task(job_id, name)
            return current is None or current.attempt != number or current.state is not TaskState.RUNNING

        pieces = logs.follow_log(self.layout.attempts_root(), path, offset, follow=follow, ended=ended,
                                 stopping=self.stopping, max_bytes=self.max_log_bytes)
        try:
            async for position, data in pieces:
                yield LogPiece(data, position, number)
        except logs.LogUnreadable as exc:
            if exc.field:
                raise InvalidArgument.field(exc.field, exc.message) from None
            detail = exc.message.removeprefix("the log ")
            raise FailedPrecondition(f"the log of task {name} (attempt {number}) {detail}", reason="LOG_UNREADABLE",
                                     metadata={"task": f"jobs/{job_id}/tasks/{name}"}) from None


def _load(resolved: ResolvedPipeline) -> PipelineSpec:
    try:
        return load_pipeline(resolved.main_yml, default_name=resolved.pipeline or "flow")
    except PipelineInvalid as exc:
        violations = [(f"{resolved.field}.{v.field}" if v.field else resolved.field, v.description)
                      for v in exc.violations]  # fmt: skip
        summary = "; ".join(f"{f}: {d}" for f, d in violations[:3]) + ("; …" if len(violations) > 3 else "")
        raise InvalidArgument(f"the pipeline is invalid: {summary}", violations, reason="PIPELINE_INVALID") from None


def _check_mounts(spec: PipelineSpec, job_id: str, layout: Layout, protected_claims: frozenset[str],
                  field: str) -> None:
    """Every mount stays inside what the job may touch: its paths expand and avoid Odin's runs root except the
    job's own RUN_PATH, and no mount names a protected claim."""
    violations: list[tuple[str, str]] = []
    for i, task in enumerate(spec.tasks):
        variables = job_variables(task.name, job_id, layout)
        for j, mount in enumerate(task.mounts):
            where = f"{field}.tasks[{i}].mounts[{j}]"
            try:
                problem = mount_path_problem(substitute(mount.path, variables), job_id, layout)
            except ValueError as exc:  # VariableError
                problem = str(exc)
            if problem:
                violations.append((f"{where}.path", problem))
            if (mount.claim or mount.name) in protected_claims:
                violations.append((f"{where}.claim", f"{mount.claim or mount.name} holds every job's files; "
                                   "Odin mounts this job's part of it at ${RUN_PATH} and ${WORK_PATH}"))
    if violations:
        summary = "; ".join(f"{f}: {d}" for f, d in violations[:3]) + ("; …" if len(violations) > 3 else "")
        raise InvalidArgument(f"a mount escapes the job's directory: {summary}", violations,
                              reason="MOUNT_NOT_ALLOWED")


def _materialise(work: Path, resolved: ResolvedPipeline) -> None:
    """Writes the pipeline's files where `${WORK_PATH}` points."""
    work.mkdir(parents=True, exist_ok=True)
    (work / MAIN_FILE).write_text(resolved.main_yml)
    for relative, content in resolved.files.items():
        target = work / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)


def _filter_key(where: JobFilter) -> dict[str, object]:
    # The visible projects are part of the key: a token minted for one caller's view is not another's.
    visible = None if where.visible is None else sorted(where.visible)
    return {"p": where.pipeline, "s": sorted(where.states), "o": where.owner, "l": dict(sorted(where.labels.items())),
            "j": where.project, "v": visible}


def _within_budget(jobs: list[Job], size_of: Callable[[Job], int], max_bytes: int) -> int:
    """How many of `jobs` fit in `max_bytes` (always at least one)."""
    total = 0
    for count, job in enumerate(jobs):
        total += size_of(job)
        if total > max_bytes and count > 0:
            return count
    return len(jobs)


def _check_owner(job: Job, caller: Caller) -> None:
    """Members with the user role change their own jobs; project admins change any (the caller may already see
    the job: get_job checked that)."""
    if job.owner == caller.name:
        caller.require(job.project, Role.USER, _job_not_found(job.id))
    elif caller.role_in(job.project) < Role.ADMIN:
        raise PermissionDenied(f"job {job.id} belongs to {job.owner}", reason="NOT_JOB_OWNER",
                               metadata={"job": f"jobs/{job.id}", "owner": job.owner})  # fmt: skip


def _job_not_found(job_id: str) -> NotFound:
    return NotFound(f"job {job_id} not found", reason="JOB_NOT_FOUND", metadata={"job": f"jobs/{job_id}"})
