"""Two ways to run a pipeline: the embedded API (`odin.engine`) and a real `odin-scheduler` process over
gRPC. Both report what happened in the same plain terms (`Outcome`), so one assertion checks both."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format, struct_pb2
from odin_scheduler.executor.local import LocalExecutor
from odin_scheduler.model import EventType, JobState, TaskState
from support.clients import channel
from support.processes import ServiceProcess
from support.waiting import assert_eventually

import odin.engine
from odin.scheduler.v1 import scheduler_pb2 as pb
from odin.scheduler.v1 import scheduler_pb2_grpc

KILL_GRACE_SECONDS = 1.0  # both ways: SIGTERM, then SIGKILL a second later


@dataclass(frozen=True)
class Step:
    """One event in plain terms: whose state changed, to what, in which attempt, why."""

    task: str  # "" for the job itself
    state: str
    attempt: int = 0
    reason: str = ""


@dataclass(frozen=True)
class TaskResult:
    state: str
    attempt: int
    max_attempts: int
    reason: str
    exit_code: int | None
    outputs: Mapping[str, Any]
    args: tuple[str, ...]


@dataclass(frozen=True)
class Outcome:
    state: str
    reason: str
    message: str
    tasks: Mapping[str, TaskResult]
    steps: list[Step] = field(default_factory=list)

    def of(self, task: str) -> list[Step]:
        """The steps of one task (or of the job, with ""): their order does not depend on other tasks' timing."""
        return [s for s in self.steps if s.task == task]


@dataclass(frozen=True)
class Refusal:
    reason: str
    violations: list[tuple[str, str]]


@dataclass(frozen=True)
class Run:
    """What a test asks of a runner: run `main_yml` to its end; once task `cancel_when_running` runs and `ready()`,
    cancel the job (message "enough")."""

    main_yml: str
    params: Mapping[str, Any] | None = None
    options: odin.engine.Options | None = None
    cancel_when_running: str = ""
    ready: Callable[[], bool] = lambda: True


class Runner:
    name: str

    async def run(
        self,
        main_yml: str,
        *,
        params: Mapping[str, Any] | None = None,
        options: odin.engine.Options | None = None,
        cancel_when_running: str = "",
        ready: Callable[[], bool] = lambda: True,
    ) -> Outcome:
        """Runs the pipeline to its end; cancels the job (message "enough") once that task runs and `ready()`."""
        return await self.outcome(Run(main_yml, params, options, cancel_when_running, ready))

    async def outcome(self, run: Run) -> Outcome:
        raise NotImplementedError

    async def violations(self, main_yml: str) -> Refusal:
        """The error reason and field violations a refused pipeline gets."""
        raise NotImplementedError


class EmbeddedRunner(Runner):
    name = "embedded"

    def __init__(self, run_path: Path) -> None:
        self.run_path = run_path

    async def outcome(self, run: Run) -> Outcome:
        executor = LocalExecutor(KILL_GRACE_SECONDS, task_user_name=None)  # as the embedded engine runs it
        async with odin.engine.start(
            run.main_yml, params=run.params, options=run.options, executor=executor, run_path=self.run_path
        ) as job:
            async for event in job.events():
                running = event.task_state is TaskState.RUNNING
                if run.cancel_when_running and event.task == run.cancel_when_running and running:
                    await asyncio.to_thread(assert_eventually, run.ready, 10)
                    await job.cancel("enough")
            done = await job.wait()
        tasks = {
            n: TaskResult(t.state.name, t.attempt, t.max_attempts, t.reason, t.exit_code, dict(t.outputs), t.args)
            for n, t in done.tasks.items()
        }
        steps = [Step(e.task, (e.task_state or e.job_state).name, e.attempt, e.reason) for e in done.events]
        return Outcome(done.state.name, done.job.reason, done.job.message, tasks, steps)

    async def violations(self, main_yml: str) -> Refusal:
        with pytest.raises(odin.engine.InvalidArgument) as caught:
            await odin.engine.run_async(main_yml, run_path=self.run_path)
        return Refusal(caught.value.reason, caught.value.violations)


class ServiceRunner(Runner):
    name = "service"

    def __init__(self, service: ServiceProcess) -> None:
        self.address = service.address

    async def outcome(self, run: Run) -> Outcome:
        # The sync client in a thread: `support.clients.aio_channel` does not yet attach the token to
        # server-streaming calls (WatchJob answers UNAUTHENTICATED through it).
        return await asyncio.to_thread(self._outcome, run)

    def _outcome(self, run: Run) -> Outcome:
        with channel(self.address) as opened:
            stub = scheduler_pb2_grpc.SchedulerServiceStub(opened)
            job = stub.CreateJob(_request(run.main_yml, run.params, run.options), timeout=10).job
            steps = []
            for item in stub.WatchJob(pb.WatchJobRequest(name=job.name), timeout=60):
                if not item.HasField("event"):
                    continue
                steps.append(_step(item.event))
                if run.cancel_when_running and steps[-1] == Step(run.cancel_when_running, "RUNNING", 1, ""):
                    assert_eventually(run.ready, timeout=10)
                    stub.CancelJob(pb.CancelJobRequest(name=job.name, message="enough"), timeout=10)
            job = stub.GetJob(pb.GetJobRequest(name=job.name), timeout=5).job
            listed = stub.ListTasks(pb.ListTasksRequest(parent=job.name), timeout=5).tasks
        tasks = {t.name.rsplit("/", 1)[1]: _task(t) for t in listed}
        return Outcome(JobState(job.state).name, job.reason, job.message, tasks, steps)

    async def violations(self, main_yml: str) -> Refusal:
        return await asyncio.to_thread(self._violations, main_yml)

    def _violations(self, main_yml: str) -> Refusal:
        import grpc

        with channel(self.address) as opened:
            stub = scheduler_pb2_grpc.SchedulerServiceStub(opened)
            with pytest.raises(grpc.RpcError) as caught:
                stub.CreateJob(_request(main_yml, None, None), timeout=10)
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        return _refusal(caught.value)


def _request(main_yml: str, params: Mapping[str, Any] | None, options: odin.engine.Options | None) -> Any:
    request = pb.CreateJobRequest(inline=pb.InlinePipeline(main_yml=main_yml))
    if params:
        request.parameters.CopyFrom(json_format.ParseDict(dict(params), struct_pb2.Struct()))
    if options is not None:
        request.options.parallelism = options.parallelism
        request.options.failure_policy = int(options.failure_policy or 0)  # type: ignore[assignment]
        if options.timeout_seconds is not None:
            request.options.timeout.FromNanoseconds(int(options.timeout_seconds * 1e9))
    return request


def _step(event: Any) -> Step:
    if event.type == EventType.TASK_STATE_CHANGED:
        return Step(event.task.rsplit("/", 1)[1], TaskState(event.task_state).name, event.attempt, event.reason)
    return Step("", JobState(event.job_state).name, event.attempt, event.reason)


def _task(task: Any) -> TaskResult:
    exit_code = task.exit_code if task.HasField("exit_code") else None
    outputs = json_format.MessageToDict(task.outputs)
    return TaskResult(
        TaskState(task.state).name, task.attempt, task.max_attempts, task.reason, exit_code, outputs, tuple(task.args)
    )


def _refusal(error: Any) -> Refusal:
    from support.rpc_errors import rpc_failure

    decoded = rpc_failure(error)
    return Refusal(decoded.reason, decoded.violations)
