"""Helpers for driving a real `odin-scheduler` process in tests."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from support import scheduler as base
from support.scheduler import TERMINAL, Stub, tasks_of, wait_job

from odin.scheduler.v1 import scheduler_pb2 as pb

__all__ = ["TERMINAL", "Stub", "tasks_of", "wait_job"]  # re-exported for this directory's tests


def scheduler_env(state: Path, **extra: str) -> dict[str, str]:
    """support.scheduler's environment with a fast heartbeat and a short kill grace (tests wait on both)."""
    return base.scheduler_env(state, **{"heartbeat_seconds": "0.5", "kill_grace_seconds": "1", **extra})


def inline(main_yml: str, **kwargs: object) -> pb.CreateJobRequest:
    return pb.CreateJobRequest(inline=pb.InlinePipeline(main_yml=main_yml), **kwargs)  # type: ignore[arg-type]


def field_violations(error: grpc.RpcError) -> dict[str, str]:
    from support.rpc_errors import rpc_failure

    decoded = rpc_failure(error)
    assert decoded.has_status, "no google.rpc.Status details"
    return dict(decoded.violations)


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
