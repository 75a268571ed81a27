"""Driving a real `odin-scheduler` process in tests: its environment and the waits every scheduler test needs."""

from __future__ import annotations

from pathlib import Path

from odin.scheduler.v1 import scheduler_pb2 as pb
from odin.scheduler.v1 import scheduler_pb2_grpc

Stub = scheduler_pb2_grpc.SchedulerServiceStub
TERMINAL = {pb.Job.STATE_SUCCEEDED, pb.Job.STATE_FAILED, pb.Job.STATE_CANCELLED}


def scheduler_env(state: Path, **extra: str) -> dict[str, str]:
    """A scheduler keeping its SQLite store and run path under `state`; `extra` sets more fields (name=value)."""
    env = {
        "ODIN_SCHEDULER_STORE_URL": f"sqlite:///{state / 'scheduler.db'}",
        "ODIN_SCHEDULER_RUN_PATH": str(state / "runs"),
    }
    env.update({f"ODIN_SCHEDULER_{k.upper()}": v for k, v in extra.items()})
    return env


def wait_job(stub: Stub, name: str, timeout: float = 30.0) -> pb.Job:
    """Follows the job's WatchJob stream until it ends, then returns the job."""
    for _ in stub.WatchJob(pb.WatchJobRequest(name=name), timeout=timeout):
        pass
    job = stub.GetJob(pb.GetJobRequest(name=name), timeout=5).job
    assert job.state in TERMINAL, job
    return job


def tasks_of(stub: Stub, name: str) -> dict[str, pb.Task]:
    return {t.name.rsplit("/", 1)[1]: t for t in stub.ListTasks(pb.ListTasksRequest(parent=name), timeout=5).tasks}
