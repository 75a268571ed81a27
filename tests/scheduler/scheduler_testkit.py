"""Helpers for driving a real `odin-scheduler` process in tests."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import grpc

from odin.scheduler.v1 import scheduler_pb2 as pb
from odin.scheduler.v1 import scheduler_pb2_grpc

Stub = scheduler_pb2_grpc.SchedulerServiceStub
TERMINAL = {pb.Job.STATE_SUCCEEDED, pb.Job.STATE_FAILED, pb.Job.STATE_CANCELLED}


def scheduler_env(state: Path, **extra: str) -> dict[str, str]:
    env = {
        "ODIN_SCHEDULER_STORE_URL": f"sqlite:///{state / 'scheduler.db'}",
        "ODIN_SCHEDULER_RUN_PATH": str(state / "runs"),
        "ODIN_SCHEDULER_HEARTBEAT_SECONDS": "0.5",
        "ODIN_SCHEDULER_KILL_GRACE_SECONDS": "1",
    }
    env.update({f"ODIN_SCHEDULER_{k.upper()}": v for k, v in extra.items()})
    return env


def inline(main_yml: str, **kwargs: object) -> pb.CreateJobRequest:
    return pb.CreateJobRequest(inline=pb.InlinePipeline(main_yml=main_yml), **kwargs)  # type: ignore[arg-type]


def wait_job(stub: Stub, name: str, timeout: float = 30.0) -> pb.Job:
    """Follows the job's WatchJob stream until it ends, then returns the job."""
    for _ in stub.WatchJob(pb.WatchJobRequest(name=name), timeout=timeout):
        pass
    job = stub.GetJob(pb.GetJobRequest(name=name), timeout=5).job
    assert job.state in TERMINAL, job
    return job


def tasks_of(stub: Stub, name: str) -> dict[str, pb.Task]:
    return {t.name.rsplit("/", 1)[1]: t for t in stub.ListTasks(pb.ListTasksRequest(parent=name), timeout=5).tasks}


def field_violations(error: grpc.RpcError) -> dict[str, str]:
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "no google.rpc.Status details"
    found: dict[str, str] = {}
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            found.update({v.field: v.description for v in bad.field_violations})
    return found


def task_yaml(name: str, command: str, *extra: str) -> str:
    lines = [f"  - name: {name}", "    image: local", f"    command: [sh, -c, {json.dumps(command)}]"]
    lines += [f"    {e}" for e in extra]
    return "\n".join(lines)


def pipeline(name: str, *tasks: str, extra: str = "") -> str:
    return f"name: {name}\n{extra}tasks:\n" + "\n".join(tasks) + "\n"


def eventually(check: Callable[[], object], timeout: float = 10.0) -> object:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"not true after {timeout}s"
        time.sleep(0.05)
    return result
