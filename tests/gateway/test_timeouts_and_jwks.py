"""A gateway with short timeouts that fetches its JWKS from the (stand-in) auth service, and grpcurl."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from gateway_backend import SLOW_CALL, STREAM_MESSAGES, Backend, SigningKey
from gateway_harness import RunningGateway, start_gateway
from support.waiting import assert_eventually

from odin.gateway import DESCRIPTOR_SET
from odin.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc


@pytest.fixture(scope="module")
def short_gateway(tmp_path_factory: pytest.TempPathFactory, test_key: SigningKey,
                  backends: dict[str, Backend]) -> Iterator[RunningGateway]:
    running = start_gateway(tmp_path_factory.mktemp("short"), test_key, backends, jwks_file=False,
                            unary_timeout_seconds=1, stream_idle_timeout_seconds=1)
    yield running
    running.process.terminate()
    running.process.wait(10)


def scheduler(gateway: RunningGateway) -> scheduler_pb2_grpc.SchedulerServiceStub:
    return scheduler_pb2_grpc.SchedulerServiceStub(grpc.insecure_channel(gateway.listen))


def meta(gateway: RunningGateway) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {gateway.key.token()}"),)


def test_keys_are_fetched_from_the_auth_service_through_the_gateway(short_gateway: RunningGateway) -> None:
    stub = scheduler(short_gateway)

    def accepted() -> bool:
        try:
            stub.ListJobs(scheduler_pb2.ListJobsRequest(), metadata=meta(short_gateway), timeout=5)
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAUTHENTICATED, exc
            return False
        return True

    assert_eventually(accepted, timeout=15, what="token accepted with the fetched JWKS")


def test_a_slow_unary_call_hits_the_unary_timeout(short_gateway: RunningGateway) -> None:
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as caught:
        scheduler(short_gateway).CancelJob(scheduler_pb2.CancelJobRequest(name="jobs/j1"),
                                           metadata=meta(short_gateway), timeout=10)
    # The client's 10 s deadline is capped to the route's 1 s on its way upstream.
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < SLOW_CALL
    request = urllib.request.Request(f"{short_gateway.url}/v1/jobs/j1:cancel", data=b"{}", method="POST",
                                     headers={"authorization": f"Bearer {short_gateway.key.token()}",
                                              "content-type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 504


def test_a_stream_lives_past_the_unary_timeout_while_messages_flow(short_gateway: RunningGateway) -> None:
    started = time.monotonic()
    stream = scheduler(short_gateway).WatchJob(scheduler_pb2.WatchJobRequest(name="jobs/j1"),
                                               metadata=meta(short_gateway), timeout=10)
    assert len(list(stream)) == STREAM_MESSAGES
    assert time.monotonic() - started > 1.0  # longer than the 1 s unary timeout


def test_a_silent_stream_is_ended_by_the_idle_timeout(short_gateway: RunningGateway) -> None:
    stream = scheduler(short_gateway).WatchJobs(scheduler_pb2.WatchJobsRequest(), metadata=meta(short_gateway),
                                                timeout=10)
    received = []
    started = time.monotonic()
    with pytest.raises(grpc.RpcError):
        for message in stream:
            received.append(message)
    assert len(received) == 1 and time.monotonic() - started < SLOW_CALL


def test_grpcurl_calls_through_the_gateway_with_the_descriptor_set(gateway: RunningGateway, grpcurl: str) -> None:
    result = subprocess.run(
        [grpcurl, "-plaintext", "-protoset", str(DESCRIPTOR_SET), "-H", f"authorization: Bearer {gateway.key.token()}",
         "-d", '{"pageSize": 2}', gateway.listen, "odin.scheduler.v1.SchedulerService/ListJobs"],
        capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["jobs"][0]["message"] == "page_size=2 auth=True"
    refused = subprocess.run(
        [grpcurl, "-plaintext", "-protoset", str(DESCRIPTOR_SET), gateway.listen,
         "odin.scheduler.v1.SchedulerService/ListJobs"], capture_output=True, text=True, timeout=30, check=False)
    assert refused.returncode != 0 and "Unauthenticated" in refused.stderr


def test_grpcurl_lists_every_public_service_from_the_descriptor_set(grpcurl: str, tmp_path: Path) -> None:
    result = subprocess.run([grpcurl, "-protoset", str(DESCRIPTOR_SET), "list"], capture_output=True, text=True,
                            timeout=30, check=True)
    assert {"odin.scheduler.v1.SchedulerService", "odin.auth.v1.AuthService", "grpc.health.v1.Health"} <= set(
        result.stdout.split())
