"""A task (or anyone who can write where logs live) plants something where a log is expected: StreamTaskLogs hands
the caller an error or the real log, never another file, and the scheduler keeps serving."""

from __future__ import annotations

import os
import time
from pathlib import Path

import grpc
import pytest
from scheduler_testkit import Stub, inline, pipeline, task_yaml, wait_job
from support.rpc_errors import rpc_failure

from odin.scheduler.v1 import scheduler_pb2 as pb

SECRET = "service-token-that-must-never-leak"


def finished_job(stub: Stub) -> str:
    job = stub.CreateJob(inline(pipeline("logs", task_yaml("talk", "echo the real log"))), timeout=10).job
    assert wait_job(stub, job.name).state == pb.Job.STATE_SUCCEEDED
    return job.name


def log_path(state_dir: Path, job: str, attempt: int = 1) -> Path:
    return state_dir / "runs-state" / "attempts" / job.removeprefix("jobs/") / "talk" / str(attempt) / "output.log"


def read(stub: Stub, job: str, offset: int = 0) -> str:
    request = pb.StreamTaskLogsRequest(name=f"{job}/tasks/talk", offset=offset)
    return "".join(piece.data for piece in stub.StreamTaskLogs(request, timeout=10))


def still_serving(stub: Stub, job: str) -> None:
    assert stub.GetJob(pb.GetJobRequest(name=job), timeout=5).job.state == pb.Job.STATE_SUCCEEDED


def test_the_real_log_is_served(stub: Stub, state_dir: Path) -> None:
    job = finished_job(stub)
    assert read(stub, job) == "the real log\n"
    assert log_path(state_dir, job).read_text() == "the real log\n"  # where the scheduler keeps it


@pytest.mark.parametrize("plant", ["file-symlink", "directory-symlink", "fifo"])
def test_a_planted_symlink_or_fifo_is_refused_never_followed(stub: Stub, state_dir: Path, tmp_path: Path,
                                                             plant: str) -> None:
    job = finished_job(stub)
    secret = tmp_path / "token"
    secret.write_text(SECRET)
    log = log_path(state_dir, job)
    if plant == "file-symlink":
        log.unlink()
        log.symlink_to(secret)
    elif plant == "directory-symlink":  # a link higher up the path: O_NOFOLLOW on the last part alone misses it
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        (elsewhere / "output.log").write_text(SECRET)  # a regular file, reached through a linked directory
        attempt_dir = log.parent
        for child in attempt_dir.iterdir():
            child.unlink()
        attempt_dir.rmdir()
        attempt_dir.symlink_to(elsewhere)
    else:
        log.unlink()
        os.mkfifo(log)
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as caught:
        read(stub, job)
    assert time.monotonic() - started < 5  # a FIFO with no writer does not hang the reader
    failure = rpc_failure(caught.value)
    assert failure.code == grpc.StatusCode.FAILED_PRECONDITION and failure.reason == "LOG_UNREADABLE"
    assert SECRET not in failure.message and str(tmp_path) not in failure.message
    still_serving(stub, job)


def test_a_huge_sparse_log_is_bounded(stub: Stub, state_dir: Path) -> None:
    job = finished_job(stub)
    log = log_path(state_dir, job)
    with log.open("r+b") as handle:
        handle.truncate(10 << 30)  # 10 GiB, sparse
        handle.seek((10 << 30) - 6)
        handle.write(b"tail!\n")
    with pytest.raises(grpc.RpcError) as caught:
        read(stub, job, offset=0)
    failure = rpc_failure(caught.value)
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "offset" in dict(failure.violations), failure
    assert read(stub, job, offset=-6) == "tail!\n"  # the end of the log is still there to read
    still_serving(stub, job)


def test_outputs_planted_as_a_symlink_fail_the_task_not_the_scheduler(stub: Stub, tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text('{"leak": "' + SECRET + '"}')
    plant = f"rm -f \"$$ODIN_OUTPUTS\"; ln -s {secret} \"$$ODIN_OUTPUTS\""  # $$: a literal $ for the shell
    job = stub.CreateJob(inline(pipeline("plant", task_yaml("plant", plant))), timeout=10).job
    wait_job(stub, job.name)
    task = stub.GetTask(pb.GetTaskRequest(name=f"{job.name}/tasks/plant"), timeout=5).task
    # A root scheduler runs the task as an unprivileged user, who cannot even replace the file (its directory is
    # the scheduler's); otherwise the symlink is planted and refused when the outputs are read.
    expected = "NonZeroExit" if os.geteuid() == 0 else "InvalidOutputs"
    assert task.state == pb.Task.STATE_FAILED and task.reason == expected, task
    assert SECRET not in task.message and not task.outputs
