"""Which Odin job holds which GPU: GPU processes joined with the scheduler's running tasks.

Pods that Odin starts carry `odin.job`/`odin.task` labels, which the agent already turned into
`job`/`task` on the process. What is left is the local executor, whose tasks are plain
processes: a RUNNING task with `resource_type` `Process` names its pid in `resource_id`.
The pid → task index is refreshed in the background, so a slow or missing scheduler never
delays a collection; without a scheduler the processes simply stay unattributed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc

from odin.midgard.v1 import midgard_pb2
from odin.runtime.lifecycle import sleep_or_stop
from odin.scheduler.v1 import scheduler_pb2

log = logging.getLogger("odin.midgard")

PAGE_SIZE = 1000
# Codes that say "no scheduler to ask (yet)"; others are logged as warnings.
_QUIET_CODES = (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.UNAVAILABLE)


class TaskIndex:
    """pid → task name of the local executor's running tasks."""

    def __init__(self) -> None:
        self.by_pid: dict[int, str] = {}

    def attribute(self, node: midgard_pb2.Node) -> None:
        """Fills `job` and `task` of every GPU process that a running task owns."""
        for gpu in node.gpus:
            for process in gpu.processes:
                task = self.by_pid.get(process.pid)
                if task and not process.job:
                    process.task = task
                    process.job = task.split("/tasks/", 1)[0]


async def running_process_tasks(stub: Any, timeout: float) -> dict[int, str]:
    """pid → task name of every RUNNING task the local executor runs, read with ListJobs + ListTasks."""
    found: dict[int, str] = {}
    running_jobs = scheduler_pb2.ListJobsRequest(states=[scheduler_pb2.Job.STATE_RUNNING], page_size=PAGE_SIZE)
    async for job in _pages(stub.ListJobs, running_jobs, "jobs", timeout):
        tasks = scheduler_pb2.ListTasksRequest(parent=job.name, states=[scheduler_pb2.Task.STATE_RUNNING],
                                               page_size=PAGE_SIZE)
        async for task in _pages(stub.ListTasks, tasks, "tasks", timeout):
            if task.resource_type == "Process" and task.resource_id.isdigit():
                found[int(task.resource_id)] = task.name
    return found


async def _pages(method: Any, request: Any, field: str, timeout: float) -> Any:
    while True:
        reply = await method(request, timeout=timeout)
        for item in getattr(reply, field):
            yield item
        if not reply.next_page_token:
            return
        request.page_token = reply.next_page_token


async def refresh_forever(index: TaskIndex, stub: Any, interval: float, timeout: float,
                          stopping: asyncio.Event) -> None:
    """Keeps `index` current. While the scheduler fails the index is empty (a stale one could name a
    finished task for a reused pid); the outage is logged once."""
    failing = False
    while not stopping.is_set():
        try:
            index.by_pid = await running_process_tasks(stub, timeout)
            failing = False
        except grpc.aio.AioRpcError as exc:
            index.by_pid = {}
            if not failing:
                level = logging.INFO if exc.code() in _QUIET_CODES else logging.WARNING
                log.log(level, "cannot read running tasks from the scheduler; GPU processes stay unattributed",
                        extra={"code": exc.code().name})
            failing = True
        await sleep_or_stop(stopping, interval)
