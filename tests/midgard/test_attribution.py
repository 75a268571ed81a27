"""GPU processes joined with the scheduler's running tasks (a fake scheduler stub)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from grpc import aio
from odin_midgard.attribution import TaskIndex, refresh_forever, running_process_tasks
from support.waiting import assert_eventually_async

from odin.midgard.v1 import midgard_pb2 as pb
from odin.scheduler.v1 import scheduler_pb2 as spb

RUNNING = spb.Job.STATE_RUNNING


def async_true(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def wrapped() -> bool:
        return check()

    return wrapped


class FakeScheduler:
    """ListJobs/ListTasks over fixed data, two items a page to exercise paging."""

    def __init__(self, jobs: dict[str, list[spb.Task]], error: grpc.StatusCode | None = None) -> None:
        self.jobs = jobs
        self.error = error
        self.requests: list[Any] = []

    async def ListJobs(self, request: spb.ListJobsRequest, timeout: float) -> spb.ListJobsResponse:
        self._maybe_fail(request)
        assert list(request.states) == [RUNNING]
        names = sorted(self.jobs)
        return self._page(spb.ListJobsResponse, "jobs", [spb.Job(name=n) for n in names], request.page_token)

    async def ListTasks(self, request: spb.ListTasksRequest, timeout: float) -> spb.ListTasksResponse:
        self._maybe_fail(request)
        assert list(request.states) == [spb.Task.STATE_RUNNING]
        return self._page(spb.ListTasksResponse, "tasks", self.jobs[request.parent], request.page_token)

    def _maybe_fail(self, request: Any) -> None:
        self.requests.append(request)
        if self.error:
            raise aio.AioRpcError(self.error, aio.Metadata(), aio.Metadata(), details="down")

    @staticmethod
    def _page(kind: Any, field: str, items: list[Any], token: str) -> Any:
        start = int(token or 0)
        reply = kind(**{field: items[start:start + 2]})
        if start + 2 < len(items):
            reply.next_page_token = str(start + 2)
        return reply


def task(job: str, name: str, kind: str, resource: str) -> spb.Task:
    return spb.Task(name=f"{job}/tasks/{name}", resource_type=kind, resource_id=resource)


SCHEDULER = {
    "jobs/a-11111111": [task("jobs/a-11111111", "train", "Process", "4242"),
                        task("jobs/a-11111111", "eval", "Process", "4243"),
                        task("jobs/a-11111111", "pod", "Pod", "a--pod")],
    "jobs/b-22222222": [task("jobs/b-22222222", "x", "Process", "")],
    "jobs/c-33333333": [task("jobs/c-33333333", "y", "Process", "5000")],
}


async def test_running_local_tasks_by_pid_across_pages() -> None:
    found = await running_process_tasks(FakeScheduler(SCHEDULER), timeout=1)
    assert found == {4242: "jobs/a-11111111/tasks/train", 4243: "jobs/a-11111111/tasks/eval",
                     5000: "jobs/c-33333333/tasks/y"}


def test_processes_get_their_job_and_pod_labels_win() -> None:
    index = TaskIndex()
    index.by_pid = {4242: "jobs/a-11111111/tasks/train", 10: "jobs/x/tasks/wrong"}
    node = pb.Node(gpus=[pb.Gpu(processes=[pb.GpuProcess(pid=4242), pb.GpuProcess(pid=1),
                                           pb.GpuProcess(pid=10, job="jobs/p", task="jobs/p/tasks/q")])])
    index.attribute(node)
    mine, other, labelled = node.gpus[0].processes
    assert (mine.job, mine.task) == ("jobs/a-11111111", "jobs/a-11111111/tasks/train")
    assert (other.job, other.task) == ("", "")
    assert (labelled.job, labelled.task) == ("jobs/p", "jobs/p/tasks/q")


@pytest.mark.parametrize("code", [grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.UNAVAILABLE,
                                  grpc.StatusCode.PERMISSION_DENIED])
async def test_a_failing_scheduler_empties_the_index_and_logs_once(code: grpc.StatusCode,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    index = TaskIndex()
    index.by_pid = {1: "jobs/old/tasks/t"}
    scheduler = FakeScheduler(SCHEDULER, error=code)
    stopping = asyncio.Event()
    with caplog.at_level(logging.INFO, logger="odin.midgard"):
        refresher = asyncio.create_task(refresh_forever(index, scheduler, 0.01, 1, stopping))
        await assert_eventually_async(async_true(lambda: len(scheduler.requests) >= 3))
        assert index.by_pid == {}
        scheduler.error = None
        await assert_eventually_async(async_true(lambda: 4242 in index.by_pid))
        stopping.set()
        await refresher
    assert [r.message for r in caplog.records].count(
        "cannot read running tasks from the scheduler; GPU processes stay unattributed") == 1
