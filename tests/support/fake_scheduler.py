"""An in-memory SchedulerService for client and CLI unit tests, with scripted stream failures.

It uses the real generated servicer base and the runtime's error interceptor, so errors reach the
client exactly as the real service sends them. Each WatchJob / StreamTaskLogs call follows the next
entry of a script: send N messages then drop the connection (UNAVAILABLE) or end cleanly, or go silent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import timestamp_pb2
from grpc import aio

from odin.runtime.errors import InvalidArgument, NotFound, Unavailable
from odin.runtime.interceptors import ErrorInterceptor
from odin.scheduler.v1 import scheduler_pb2 as pb
from odin.scheduler.v1 import scheduler_pb2_grpc


@dataclass
class Cut:
    """How one stream call ends: after `after` messages, `how` = "drop" | "end" | "silent" | "all"."""

    after: int
    how: str = "drop"
    resend_previous: bool = False  # first resend the message just before the cursor (a duplicate)


@dataclass
class FakeScheduler(scheduler_pb2_grpc.SchedulerServiceServicer):  # type: ignore[misc]
    jobs: dict[str, pb.Job] = field(default_factory=dict)
    tasks: dict[str, list[pb.Task]] = field(default_factory=dict)
    events: dict[str, list[pb.JobEvent]] = field(default_factory=dict)
    logs: dict[str, bytes] = field(default_factory=dict)
    watch_script: list[Cut] = field(default_factory=list)
    log_script: list[Cut] = field(default_factory=list)
    unary_failures: dict[str, int] = field(default_factory=dict)  # method -> UNAVAILABLE answers first
    requests: list[tuple[str, Any]] = field(default_factory=list)
    metadata_seen: list[dict[str, str]] = field(default_factory=list)

    # -- test helpers --------------------------------------------------------------------------------

    def add_job(self, job_id: str, task_names: list[str], events: list[tuple[str, int, int]],
                final_state: int = pb.Job.STATE_SUCCEEDED) -> str:
        """A job whose events are (task or "", task_state, job_state), with seqs 10, 13, 16… (gaps)."""
        name = f"jobs/{job_id}"
        stored = []
        for i, (task, task_state, job_state) in enumerate(events):
            stored.append(pb.JobEvent(
                seq=10 + 3 * i, job=name, time=_ts(i), task=f"{name}/tasks/{task}" if task else "",
                type=pb.JobEvent.TYPE_TASK_STATE_CHANGED if task else pb.JobEvent.TYPE_JOB_STATE_CHANGED,
                job_state=job_state, task_state=task_state, attempt=1 if task else 0))  # fmt: skip
        self.events[name] = stored
        self.jobs[name] = pb.Job(name=name, pipeline=job_id.rsplit("-", 1)[0], state=final_state,
                                 last_event_seq=stored[-1].seq if stored else 0, create_time=_ts(0))
        self.tasks[name] = [pb.Task(name=f"{name}/tasks/{t}", task_id=f"{job_id}--{t}", max_attempts=1)
                            for t in task_names]
        return name

    # -- unary ---------------------------------------------------------------------------------------

    async def _enter(self, method: str, request: Any, context: aio.ServicerContext) -> None:
        self.requests.append((method, request))
        self.metadata_seen.append({k: v for k, v in context.invocation_metadata() or ()})
        if self.unary_failures.get(method, 0) > 0:
            self.unary_failures[method] -= 1
            raise Unavailable("scheduler restarting")

    async def CreateJob(self, request: pb.CreateJobRequest, context: aio.ServicerContext) -> pb.CreateJobResponse:
        await self._enter("CreateJob", request, context)
        if request.HasField("inline") and "bad" in request.inline.main_yml:
            raise InvalidArgument("pipeline is invalid (2 problems)", [
                ("tasks[0].depends", 'unknown task "trian"'), ("tasks[1].name", "must not be empty")])
        job = pb.Job(name="jobs/hello-abcd1234", pipeline="hello", state=pb.Job.STATE_PENDING,
                     request_id=request.request_id, labels=request.labels, options=request.options)
        return pb.CreateJobResponse(job=job)

    async def GetJob(self, request: pb.GetJobRequest, context: aio.ServicerContext) -> pb.GetJobResponse:
        await self._enter("GetJob", request, context)
        return pb.GetJobResponse(job=self._job(request.name))

    async def ListJobs(self, request: pb.ListJobsRequest, context: aio.ServicerContext) -> pb.ListJobsResponse:
        await self._enter("ListJobs", request, context)
        jobs = sorted(self.jobs.values(), key=lambda j: j.name, reverse=True)
        start = int(request.page_token or 0)
        size = request.page_size or 50
        token = str(start + size) if start + size < len(jobs) else ""
        return pb.ListJobsResponse(jobs=jobs[start:start + size], next_page_token=token)

    async def RetryJob(self, request: pb.RetryJobRequest, context: aio.ServicerContext) -> pb.RetryJobResponse:
        await self._enter("RetryJob", request, context)
        return pb.RetryJobResponse(job=self._job(request.name))

    async def GetTask(self, request: pb.GetTaskRequest, context: aio.ServicerContext) -> pb.GetTaskResponse:
        await self._enter("GetTask", request, context)
        job = request.name.split("/tasks/")[0]
        for task in self.tasks.get(job, []):
            if task.name == request.name:
                return pb.GetTaskResponse(task=task)
        raise NotFound(f"task {request.name} not found", reason="TASK_NOT_FOUND")

    async def ListTasks(self, request: pb.ListTasksRequest, context: aio.ServicerContext) -> pb.ListTasksResponse:
        await self._enter("ListTasks", request, context)
        self._job(request.parent)
        return pb.ListTasksResponse(tasks=self.tasks.get(request.parent, []))

    async def ListJobEvents(
        self, request: pb.ListJobEventsRequest, context: aio.ServicerContext
    ) -> pb.ListJobEventsResponse:
        await self._enter("ListJobEvents", request, context)
        self._job(request.parent)
        return pb.ListJobEventsResponse(
            events=[e for e in self.events.get(request.parent, []) if e.seq > request.after_seq])

    def _job(self, name: str) -> pb.Job:
        if name not in self.jobs:
            raise NotFound(f"job {name} not found", reason="JOB_NOT_FOUND", metadata={"job": name})
        return self.jobs[name]

    # -- streams -------------------------------------------------------------------------------------

    async def WatchJob(
        self, request: pb.WatchJobRequest, context: aio.ServicerContext
    ) -> AsyncIterator[pb.WatchJobResponse]:
        await self._enter("WatchJob", request, context)
        stored = self.events.get(self._job(request.name).name, [])
        cut = self.watch_script.pop(0) if self.watch_script else Cut(len(stored), "all")
        pending = [e for e in stored if e.seq > request.after_seq]
        if cut.resend_previous:
            earlier = [e for e in stored if e.seq <= request.after_seq]
            pending = earlier[-1:] + pending
        yield pb.WatchJobResponse(heartbeat=pb.Heartbeat(latest_seq=stored[-1].seq if stored else 0))
        for event in pending[:cut.after]:
            yield pb.WatchJobResponse(event=event)
        async for item in _finish(cut, context):
            yield item

    async def StreamTaskLogs(
        self, request: pb.StreamTaskLogsRequest, context: aio.ServicerContext
    ) -> AsyncIterator[pb.StreamTaskLogsResponse]:
        await self._enter("StreamTaskLogs", request, context)
        data = self.logs.get(request.name, b"")
        cut = self.log_script.pop(0) if self.log_script else Cut(len(data), "all")
        start = max(request.offset - (2 if cut.resend_previous else 0), 0)
        for offset in range(start, min(start + cut.after * 4, len(data)), 4):
            yield pb.StreamTaskLogsResponse(data=data[offset:offset + 4].decode(), offset=offset, attempt=1)
        async for item in _finish(cut, context):
            yield item


async def _finish(cut: Cut, context: aio.ServicerContext) -> AsyncIterator[Any]:
    if cut.how == "drop":
        await context.abort(grpc.StatusCode.UNAVAILABLE, "connection lost")
    elif cut.how == "silent":
        await asyncio.sleep(3600)
    if False:  # pragma: no cover - makes this an async generator
        yield None


def _ts(offset_seconds: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=1_700_000_000 + offset_seconds)


@contextlib.asynccontextmanager
async def serve(servicer: FakeScheduler, port: int = 0) -> AsyncIterator[str]:
    """Runs the servicer on loopback; yields its address."""
    server = aio.server(interceptors=[ErrorInterceptor()])
    scheduler_pb2_grpc.add_SchedulerServiceServicer_to_server(servicer, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    try:
        yield f"127.0.0.1:{bound}"
    finally:
        await server.stop(None)
