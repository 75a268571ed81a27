"""`SchedulerClient`: typed asyncio access to the scheduler service.

    async with SchedulerClient.from_environment() as client:
        job = await client.create_job(client.pipeline_ref("hello"))
        async for event in client.watch_job(job.name):
            ...

Every call has a deadline. Reads, watches and creates (which always carry a request_id) are retried
on UNAVAILABLE; watches and log streams reconnect from their cursor, so a caller sees every event
once, in order, across lost connections and scheduler restarts.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from google.protobuf import duration_pb2, struct_pb2
from grpc import aio

from odin.client.addresses import ServiceAddresses
from odin.client.channel import call_metadata, open_channel
from odin.client.credentials import load_token
from odin.client.errors import OdinError, from_rpc_error
from odin.client.names import job_name, task_name
from odin.client.renewal import RENEWABLE_REASONS, SessionRenewal
from odin.client.retry import RetryPolicy
from odin.client.states import TASK_TERMINAL, is_job_terminal
from odin.client.streams import resilient_stream
from odin.scheduler.v1 import scheduler_pb2 as pb
from odin.scheduler.v1 import scheduler_pb2_grpc

DEFAULT_TIMEOUT = 10.0
# Heartbeats come about every 10 s; three missed ones mean the connection is gone.
DEFAULT_IDLE_TIMEOUT = 35.0

Source = pb.PipelineRef | pb.InlinePipeline


class SchedulerClient:
    """A client of `odin.scheduler.v1.SchedulerService` over one asyncio channel."""

    def __init__(
        self,
        channel: aio.Channel,
        *,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        owns_channel: bool = False,
    ) -> None:
        self.channel = channel
        self.address = ""
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.idle_timeout = idle_timeout
        self._stub: Any = scheduler_pb2_grpc.SchedulerServiceStub(channel)
        self._metadata = call_metadata(token)
        self._token = token or ""
        self._owns_channel = owns_channel
        self._renewal: SessionRenewal | None = None

    async def _renew(self, error: OdinError) -> bool:
        """Streams reopen with a renewed session token when theirs was refused as revoked or expired."""
        if self._renewal is None or error.reason not in RENEWABLE_REASONS:
            return False
        token = await self._renewal.replacement(self._token)
        if not token:
            return False
        self._token, self._metadata = token, call_metadata(token)
        return True

    @classmethod
    def connect(cls, address: str, *, token: str | None = None, session: Path | None = None,
                **options: Any) -> SchedulerClient:
        """A client with its own channel to `address` (closed by `close()` or `async with`); with `session`, a
        revoked or expired session token is renewed and the call made again."""
        client = cls(open_channel(address, session), token=token, owns_channel=True, **options)
        client._renewal = SessionRenewal(session) if session is not None else None
        client.address = address
        return client

    @classmethod
    def from_environment(
        cls, address: str | None = None, *, state_dir: Path | None = None, **options: Any
    ) -> SchedulerClient:
        """Resolves the address (`address`, ODIN_ADDRESS, the local suite) and the token (see load_token)."""
        addresses = ServiceAddresses.from_environment(address, state_dir)
        token = load_token(addresses.suite_state_dir())
        return cls.connect(addresses.address("scheduler"), token=token, **options)

    async def close(self) -> None:
        if self._owns_channel:
            await self.channel.close()

    async def __aenter__(self) -> SchedulerClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- jobs ---------------------------------------------------------------------------------------

    @staticmethod
    def pipeline_ref(name: str, revision: str = "") -> pb.PipelineRef:
        return pb.PipelineRef(name=name, revision=revision)

    async def create_job(
        self,
        source: Source,
        *,
        parameters: Mapping[str, Any] | None = None,
        options: pb.JobOptions | None = None,
        labels: Mapping[str, str] | None = None,
        validate_only: bool = False,
        request_id: str | None = None,
        project: str = "",
    ) -> pb.Job:
        """Creates and starts a job (in `project`; empty: the pipeline's, else the default one); retried safely,
        since a repeated request_id (of the same user) returns the same job."""
        request = pb.CreateJobRequest(
            project=project,
            request_id=request_id or str(uuid.uuid4()),
            parameters=_struct(parameters),
            options=options,
            labels=dict(labels or {}),
            validate_only=validate_only,
        )
        if isinstance(source, pb.PipelineRef):
            request.pipeline.CopyFrom(source)
        else:
            request.inline.CopyFrom(source)
        response = await self._unary(self._stub.CreateJob, request, retry=True)
        job: pb.Job = response.job
        return job

    async def get_job(self, name: str, *, view: pb.JobView.ValueType = pb.JOB_VIEW_UNSPECIFIED) -> pb.Job:
        """The job; the whole of it unless `view` is JOB_VIEW_BASIC (no spec, no parameters)."""
        request = pb.GetJobRequest(name=job_name(name), view=view)
        response = await self._unary(self._stub.GetJob, request, retry=True)
        job: pb.Job = response.job
        return job

    async def list_jobs_page(self, request: pb.ListJobsRequest) -> pb.ListJobsResponse:
        """One page, as the server returns it (with `total_size` when asked)."""
        response: pb.ListJobsResponse = await self._unary(self._stub.ListJobs, request, retry=True)
        return response

    def list_jobs(
        self,
        *,
        pipeline: str = "",
        states: Iterable[pb.Job.State.ValueType] = (),
        owner: str = "",
        labels: Iterable[str] = (),
        page_size: int = 0,
        limit: int | None = None,
        project: str = "",
        view: pb.JobView.ValueType = pb.JOB_VIEW_UNSPECIFIED,
    ) -> AsyncIterator[pb.Job]:
        """Jobs newest first, across pages, at most `limit` (None: all); of `project` (empty: every project the
        caller may see). The default view is BASIC: no spec, no parameters."""
        request = pb.ListJobsRequest(
            page_size=page_size, pipeline=pipeline, states=list(states), owner=owner, labels=list(labels),
            project=project, view=view,
        )
        return self._paged(self._stub.ListJobs, request, "jobs", limit)

    async def cancel_job(self, name: str, message: str = "") -> pb.Job:
        # Cancelling is idempotent by contract (an ended job is returned unchanged): safe to retry.
        request = pb.CancelJobRequest(name=job_name(name), message=message)
        response = await self._unary(self._stub.CancelJob, request, retry=True)
        job: pb.Job = response.job
        return job

    async def retry_job(self, name: str) -> pb.Job:
        """Re-runs the failed, cancelled and skipped tasks; not retried (a second call would re-run again)."""
        response = await self._unary(self._stub.RetryJob, pb.RetryJobRequest(name=job_name(name)), retry=False)
        job: pb.Job = response.job
        return job

    async def delete_job(self, name: str, *, force: bool = False) -> None:
        request = pb.DeleteJobRequest(name=job_name(name), force=force)
        await self._unary(self._stub.DeleteJob, request, retry=False)

    # -- tasks and events ---------------------------------------------------------------------------

    async def get_task(self, name: str) -> pb.Task:
        response = await self._unary(self._stub.GetTask, pb.GetTaskRequest(name=task_name(name)), retry=True)
        task: pb.Task = response.task
        return task

    def list_tasks(
        self, job: str, *, states: Iterable[pb.Task.State.ValueType] = (), page_size: int = 0
    ) -> AsyncIterator[pb.Task]:
        """The job's tasks in pipeline order, across pages."""
        request = pb.ListTasksRequest(parent=job_name(job), states=list(states), page_size=page_size)
        return self._paged(self._stub.ListTasks, request, "tasks", None)

    def list_job_events(self, job: str, *, after_seq: int = 0, page_size: int = 0) -> AsyncIterator[pb.JobEvent]:
        """The job's stored events with `seq > after_seq`, in order, across pages."""
        request = pb.ListJobEventsRequest(parent=job_name(job), after_seq=after_seq, page_size=page_size)
        return self._paged(self._stub.ListJobEvents, request, "events", None)

    # -- streams ------------------------------------------------------------------------------------

    async def watch_job(
        self, job: str, *, after_seq: int = 0, on_heartbeat: Callable[[pb.Heartbeat], None] | None = None
    ) -> AsyncIterator[pb.JobEvent]:
        """The job's events with `seq > after_seq`, then live ones, until the job has ended.

        Reconnects with the last seq it delivered when the connection drops, so no event is missed or
        repeated. Ends once the job is in a terminal state and every event up to it was delivered.
        """
        name, cursor = job_name(job), after_seq

        def open_call() -> Any:
            request = pb.WatchJobRequest(name=name, after_seq=cursor)
            return self._stub.WatchJob(request, metadata=self._metadata)

        async def finished() -> bool:
            current = await self.get_job(name)
            return is_job_terminal(current.state) and current.last_event_seq <= cursor

        async for response in resilient_stream(open_call, finished, self.retry, self.idle_timeout, self._renew):
            if response.HasField("heartbeat"):
                if on_heartbeat is not None:
                    on_heartbeat(response.heartbeat)
                continue
            event: pb.JobEvent = response.event
            if event.seq <= cursor:
                continue  # already delivered before a reconnect
            cursor = event.seq
            yield event

    async def watch_jobs(
        self,
        *,
        after_seq: int = 0,
        pipeline: str = "",
        owner: str = "",
        labels: Iterable[str] = (),
        on_heartbeat: Callable[[pb.Heartbeat], None] | None = None,
        project: str = "",
    ) -> AsyncIterator[pb.JobEvent]:
        """Events of every matching job; never ends by itself. `after_seq=0` starts at the newest event.

        The cursor also advances with heartbeats, so a reconnect does not replay what was filtered out.
        """
        cursor, label_list = after_seq, list(labels)

        def open_call() -> Any:
            request = pb.WatchJobsRequest(after_seq=cursor, pipeline=pipeline, owner=owner, labels=label_list,
                                          project=project)
            return self._stub.WatchJobs(request, metadata=self._metadata)

        async def finished() -> bool:
            return False  # an endless stream that ended was cut short

        async for response in resilient_stream(open_call, finished, self.retry, self.idle_timeout, self._renew):
            if response.HasField("heartbeat"):
                cursor = max(cursor, response.heartbeat.latest_seq)
                if on_heartbeat is not None:
                    on_heartbeat(response.heartbeat)
                continue
            if response.event.seq <= cursor:
                continue
            cursor = response.event.seq
            yield response.event

    async def stream_logs(
        self, task: str, *, follow: bool = False, offset: int = 0, attempt: int = 0
    ) -> AsyncIterator[pb.StreamTaskLogsResponse]:
        """The task's output from byte `offset` (negative: from the end); with `follow`, until it ends.

        Reconnects at the byte after the last piece delivered, within the same attempt.
        """
        name, position, pinned = task_name(task), offset, attempt

        def open_call() -> Any:
            request = pb.StreamTaskLogsRequest(name=name, follow=follow, offset=position, attempt=pinned)
            return self._stub.StreamTaskLogs(request, metadata=self._metadata)

        async def finished() -> bool:
            return not follow or (await self.get_task(name)).state in TASK_TERMINAL

        async for piece in resilient_stream(open_call, finished, self.retry, self.idle_timeout, self._renew):
            piece = _unseen_part(piece, position)
            if piece is None:
                continue
            position = piece.offset + len(piece.data.encode())
            pinned = piece.attempt or pinned
            yield piece

    # -- plumbing -----------------------------------------------------------------------------------

    async def _unary(self, method: Any, request: Any, *, retry: bool, timeout: float | None = None) -> Any:
        """Calls `method` within one deadline; when `retry`, again after UNAVAILABLE with backoff."""
        deadline = time.monotonic() + (timeout or self.timeout)
        attempts = self.retry.max_attempts if retry else 1
        for attempt in range(1, attempts + 1):
            try:
                remaining = max(deadline - time.monotonic(), 0.001)
                return await method(request, timeout=remaining, metadata=self._metadata)
            except aio.AioRpcError as exc:
                error = from_rpc_error(exc)
            delay = self.retry.delay(attempt)
            if error.code != "UNAVAILABLE" or attempt == attempts or time.monotonic() + delay >= deadline:
                raise error
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _paged(self, method: Any, request: Any, field: str, limit: int | None) -> AsyncIterator[Any]:
        sent = 0
        while limit is None or sent < limit:
            response = await self._unary(method, request, retry=True)
            for item in getattr(response, field):
                if limit is not None and sent >= limit:
                    return
                sent += 1
                yield item
            if not response.next_page_token:
                return
            request.page_token = response.next_page_token


def job_options(
    *, parallelism: int = 0, failure_policy: str = "", timeout: float | timedelta | None = None
) -> pb.JobOptions:
    """JobOptions from plain values; `failure_policy` is `finish` (default) or `cancel`."""
    options = pb.JobOptions(parallelism=parallelism, failure_policy=_failure_policy(failure_policy))
    if timeout is not None:
        seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
        options.timeout.CopyFrom(duration_pb2.Duration(seconds=int(seconds), nanos=int(seconds % 1 * 1e9)))
    return options


def _failure_policy(name: str) -> pb.JobOptions.FailurePolicy.ValueType:
    policies = {
        "": pb.JobOptions.FAILURE_POLICY_UNSPECIFIED,
        "finish": pb.JobOptions.FAILURE_POLICY_FINISH_RUNNING,
        "cancel": pb.JobOptions.FAILURE_POLICY_CANCEL_RUNNING,
    }
    if name not in policies:
        raise ValueError(f'unknown failure policy "{name}" (choose finish or cancel)')
    return policies[name]


def _struct(values: Mapping[str, Any] | None) -> struct_pb2.Struct | None:
    if not values:
        return None
    result = struct_pb2.Struct()
    result.update(dict(values))
    return result


def _unseen_part(piece: pb.StreamTaskLogsResponse, position: int) -> pb.StreamTaskLogsResponse | None:
    """The part of `piece` after byte `position` (a reconnect may resend a little); None when all seen."""
    if position <= 0 or piece.offset >= position:
        return piece
    data = piece.data.encode()
    skip = position - piece.offset
    if skip >= len(data):
        return None
    return pb.StreamTaskLogsResponse(
        data=data[skip:].decode(errors="replace"), offset=position, source=piece.source, attempt=piece.attempt
    )


__all__ = ["OdinError", "SchedulerClient", "job_options"]
