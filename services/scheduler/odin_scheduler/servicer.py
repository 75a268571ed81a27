"""SchedulerService over gRPC: unpack the request, call the domain (`service.Scheduler`), pack the reply."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from odin.runtime import paging
from odin.runtime.errors import InvalidArgument, NotFound
from odin.runtime.projects import project_name
from odin.runtime.tokens import Role
from odin.scheduler.v1 import scheduler_pb2 as pb
from odin.scheduler.v1 import scheduler_pb2_grpc
from odin_scheduler import convert, limits
from odin_scheduler.identity import current_caller
from odin_scheduler.model import Job, now_us
from odin_scheduler.service import Scheduler
from odin_scheduler.sources import PipelineSources
from odin_scheduler.watch import Heartbeat

JOBS_PAGE = (50, 500)  # (default, maximum) page sizes
# A ListJobs page ends before its jobs pass this many bytes: well under the 8 MiB message cap even in FULL view.
JOBS_PAGE_BYTES = 4 * 1024 * 1024
TASKS_PAGE = (100, 1000)
EVENTS_PAGE = (100, 1000)


class SchedulerServicer(scheduler_pb2_grpc.SchedulerServiceServicer):
    def __init__(self, scheduler: Scheduler, sources: PipelineSources) -> None:
        self.scheduler = scheduler
        self.sources = sources
        self.event_responses = convert.EventResponses()  # shared by every watch stream

    async def CreateJob(self, request: pb.CreateJobRequest, context: Any) -> pb.CreateJobResponse:
        caller = current_caller()
        convert.check_create(request)
        project = convert.create_project(request)
        caller.require(project, Role.USER, NotFound(f"project {project!r} does not exist",
                                                    reason="PROJECT_NOT_FOUND",
                                                    metadata={"project": project_name(project)}))
        options = convert.requested_options(request.options)
        parameters = convert.struct_dict(request.parameters)
        limits.check_parameters(parameters)  # before rendering with them
        resolved = await self.sources.resolve(request, parameters, project)
        job = await self.scheduler.create_job(
            resolved, owner=caller.name, options=options, labels=dict(request.labels),
            parameters=parameters, request_id=request.request_id,
            validate_only=request.validate_only, now_us=now_us(), project=project,
        )  # fmt: skip
        return pb.CreateJobResponse(job=convert.job(job))

    async def GetJob(self, request: pb.GetJobRequest, context: Any) -> pb.GetJobResponse:
        view = convert.job_view(request.view, pb.JOB_VIEW_FULL)
        job = await self.scheduler.get_job(convert.job_id(request.name), current_caller())
        return pb.GetJobResponse(job=convert.job(job, view))

    async def ListJobs(self, request: pb.ListJobsRequest, context: Any) -> pb.ListJobsResponse:
        size = _page_size(request.page_size, JOBS_PAGE)
        view = convert.job_view(request.view, pb.JOB_VIEW_BASIC)
        caller = current_caller()
        where = convert.job_filter(request.pipeline, request.states, request.owner, request.labels, caller.name,
                                   project=request.project, visible=caller.visible_projects())  # fmt: skip
        messages: dict[str, pb.Job] = {}

        def size_of(record: Job) -> int:
            messages[record.id] = convert.job(record, view)
            return messages[record.id].ByteSize()

        page = await self.scheduler.list_jobs(where, size, request.page_token, request.include_total_size,
                                              size_of, JOBS_PAGE_BYTES)  # fmt: skip
        jobs = [messages.get(j.id) or convert.job(j, view) for j in page.items]  # type: ignore[union-attr, arg-type]
        return pb.ListJobsResponse(jobs=jobs, next_page_token=page.next_page_token, total_size=page.total_size)

    async def CancelJob(self, request: pb.CancelJobRequest, context: Any) -> pb.CancelJobResponse:
        job = await self.scheduler.cancel_job(convert.job_id(request.name), request.message, current_caller())
        return pb.CancelJobResponse(job=convert.job(job))

    async def RetryJob(self, request: pb.RetryJobRequest, context: Any) -> pb.RetryJobResponse:
        job = await self.scheduler.retry_job(convert.job_id(request.name), current_caller())
        return pb.RetryJobResponse(job=convert.job(job))

    async def DeleteJob(self, request: pb.DeleteJobRequest, context: Any) -> pb.DeleteJobResponse:
        await self.scheduler.delete_job(convert.job_id(request.name), request.force, current_caller())
        return pb.DeleteJobResponse()

    async def GetTask(self, request: pb.GetTaskRequest, context: Any) -> pb.GetTaskResponse:
        task = await self.scheduler.get_task(*convert.task_name(request.name), current_caller())
        return pb.GetTaskResponse(task=convert.task(task))

    async def ListTasks(self, request: pb.ListTasksRequest, context: Any) -> pb.ListTasksResponse:
        size = _page_size(request.page_size, TASKS_PAGE)
        states = convert.task_states(request.states)
        page = await self.scheduler.list_tasks(convert.job_id(request.parent, "parent"), states, size,
                                               request.page_token, current_caller())  # fmt: skip
        tasks = [convert.task(t) for t in page.items]  # type: ignore[arg-type]
        return pb.ListTasksResponse(tasks=tasks, next_page_token=page.next_page_token)

    async def ListJobEvents(self, request: pb.ListJobEventsRequest, context: Any) -> pb.ListJobEventsResponse:
        size = _page_size(request.page_size, EVENTS_PAGE)
        if request.after_seq < 0:
            raise InvalidArgument.field("after_seq", "must not be negative")
        page = await self.scheduler.list_events(convert.job_id(request.parent, "parent"), request.after_seq, size,
                                                request.page_token, current_caller())  # fmt: skip
        events = [convert.event(e) for e in page.items]  # type: ignore[arg-type]
        return pb.ListJobEventsResponse(events=events, next_page_token=page.next_page_token)

    # Watch streams yield responses or their bytes (AsyncIterator[Any]: the stubs know only messages).
    async def WatchJob(self, request: pb.WatchJobRequest, context: Any) -> AsyncIterator[Any]:
        if request.after_seq < 0:
            raise InvalidArgument.field("after_seq", "must not be negative")
        async for item in self.scheduler.watch_job(convert.job_id(request.name), request.after_seq, current_caller()):
            if isinstance(item, Heartbeat):
                yield pb.WatchJobResponse(heartbeat=convert.heartbeat(item))
                continue
            for event in item:  # pre-serialized, shared with the other watchers
                yield self.event_responses(event)

    async def WatchJobs(self, request: pb.WatchJobsRequest, context: Any) -> AsyncIterator[Any]:
        if request.after_seq < 0:
            raise InvalidArgument.field("after_seq", "must not be negative")
        caller = current_caller()
        where = convert.job_filter(request.pipeline, (), request.owner, request.labels, caller.name,
                                   project=request.project, visible=caller.visible_projects())  # fmt: skip
        async for item in self.scheduler.watch_jobs(where, request.after_seq):
            if isinstance(item, Heartbeat):
                yield pb.WatchJobsResponse(heartbeat=convert.heartbeat(item))
                continue
            for event in item:  # the same bytes are a WatchJobsResponse (see convert.EventResponses)
                yield self.event_responses(event)

    async def StreamTaskLogs(
        self, request: pb.StreamTaskLogsRequest, context: Any
    ) -> AsyncIterator[pb.StreamTaskLogsResponse]:
        job, task = convert.task_name(request.name)
        pieces = self.scheduler.task_logs(job, task, follow=request.follow, offset=request.offset,
                                          attempt=request.attempt, caller=current_caller())  # fmt: skip
        async for piece in pieces:
            data = piece.data.decode("utf-8", errors="replace")
            yield pb.StreamTaskLogsResponse(data=data, offset=piece.offset, source="main", attempt=piece.attempt)


    async def ListTaskClusterEvents(self, request: pb.ListTaskClusterEventsRequest,
                                    context: Any) -> pb.ListTaskClusterEventsResponse:  # fmt: skip
        attempt, events = await self.scheduler.task_cluster_events(*convert.task_name(request.name), current_caller())
        return pb.ListTaskClusterEventsResponse(events=[convert.cluster_event(e) for e in events], attempt=attempt)


def _page_size(requested: int, sizes: tuple[int, int]) -> int:
    return paging.page_size(requested, default=sizes[0], maximum=sizes[1])
