"""The shared runtime in a real process: error mapping, health, reflection and graceful shutdown."""

from __future__ import annotations

import signal
import threading
import time

import grpc
import pytest
from support.clients import channel
from support.processes import ServiceProcess
from support.rpc_errors import rpc_failure
from support.waiting import assert_eventually

from odin.scheduler.v1 import scheduler_pb2 as pb
from odin.scheduler.v1 import scheduler_pb2_grpc as pb_grpc


def stub(address: str) -> pb_grpc.SchedulerServiceStub:
    return pb_grpc.SchedulerServiceStub(channel(address))


def details(error: grpc.RpcError) -> dict[str, object]:
    failure = rpc_failure(error)
    assert failure.has_status, "no google.rpc.Status in the trailers"
    found: dict[str, object] = {}
    if failure.reason:
        found["reason"], found["metadata"] = failure.reason, failure.metadata
    if failure.violations:
        found["violations"] = failure.violations
    return found


def test_domain_errors_become_codes_with_details(slow_server: ServiceProcess) -> None:
    client = stub(slow_server.address)
    with pytest.raises(grpc.RpcError) as missing:
        client.GetJob(pb.GetJobRequest(name="jobs/missing"), timeout=5)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert details(missing.value) == {"reason": "JOB_NOT_FOUND", "metadata": {"job": "jobs/missing"}}

    with pytest.raises(grpc.RpcError) as invalid:
        client.GetJob(pb.GetJobRequest(name="nope"), timeout=5)
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details(invalid.value)["violations"] == [("name", "must look like jobs/{job}")]


def test_unexpected_errors_leak_nothing(slow_server: ServiceProcess) -> None:
    with pytest.raises(grpc.RpcError) as crash:
        stub(slow_server.address).GetJob(pb.GetJobRequest(name="jobs/crash"), timeout=5)
    assert crash.value.code() == grpc.StatusCode.INTERNAL
    assert "SELECT" not in (crash.value.details() or "")
    assert "Traceback" not in (crash.value.details() or "")
    assert "incident" in (crash.value.details() or "")
    assert "SELECT secret" in slow_server.log_text()  # the operator still sees it


def test_unimplemented_methods_say_so(slow_server: ServiceProcess) -> None:
    with pytest.raises(grpc.RpcError) as unimplemented:
        stub(slow_server.address).CancelJob(pb.CancelJobRequest(name="jobs/a"), timeout=5)
    assert unimplemented.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_calls_are_logged_with_duration(slow_server: ServiceProcess) -> None:
    with pytest.raises(grpc.RpcError):
        stub(slow_server.address).GetJob(pb.GetJobRequest(name="jobs/missing"), timeout=5)

    def logged() -> bool:
        lines = [line for line in slow_server.log_text().splitlines() if "/GetJob" in line]
        return any('"code": "NOT_FOUND"' in line and '"duration_ms"' in line for line in lines)

    assert_eventually(logged, what="a log line for the GetJob call with code and duration")


def test_message_size_limit(slow_server: ServiceProcess) -> None:
    huge = "x" * (9 * 1024 * 1024)
    with pytest.raises(grpc.RpcError) as too_big:
        stub(slow_server.address).GetJob(pb.GetJobRequest(name=huge), timeout=10)
    assert too_big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_sigterm_drains_calls_and_ends_streams(slow_server: ServiceProcess) -> None:
    client = stub(slow_server.address)
    unary_result: dict[str, object] = {}
    stream_result: dict[str, object] = {"messages": 0}

    def slow_call() -> None:
        unary_result["reply"] = client.GetJob(pb.GetJobRequest(name="jobs/slow"), timeout=10)

    def watch() -> None:
        stream = client.WatchJob(pb.WatchJobRequest(name="jobs/slow"), timeout=10)
        for _ in stream:
            stream_result["messages"] = int(str(stream_result["messages"])) + 1
        stream_result["code"] = stream.code()

    threads = [threading.Thread(target=slow_call), threading.Thread(target=watch)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # both calls are in flight
    slow_server.process.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(10)
    assert unary_result["reply"].job.name == "jobs/slow"  # type: ignore[attr-defined]
    assert stream_result["code"] == grpc.StatusCode.OK
    assert int(str(stream_result["messages"])) >= 2
    assert slow_server.process.wait(10) == 0
    with pytest.raises(grpc.RpcError) as refused:
        client.GetJob(pb.GetJobRequest(name="jobs/after"), timeout=2)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
