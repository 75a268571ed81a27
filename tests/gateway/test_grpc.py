"""gRPC callers through the real Envoy: routing, JWT at the edge, errors, streams, limits, health."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import grpc
import pytest
from gateway_backend import STREAM_MESSAGES, STREAM_PAUSE, SigningKey
from gateway_harness import RunningGateway
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from support.waiting import assert_eventually

from odin.auth.v1 import auth_pb2, auth_pb2_grpc
from odin.midgard.v1 import midgard_pb2, midgard_pb2_grpc
from odin.pipelines.v1 import pipelines_pb2, pipelines_pb2_grpc
from odin.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc


def admin_healthz(gateway: RunningGateway) -> int:
    try:
        with urllib.request.urlopen(f"{gateway.url}/healthz", timeout=5) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture
def channel(gateway: RunningGateway) -> grpc.Channel:
    with grpc.insecure_channel(gateway.listen) as chan:
        yield chan


def test_a_call_with_a_valid_token_reaches_its_service(gateway: RunningGateway, channel: grpc.Channel) -> None:
    stub = scheduler_pb2_grpc.SchedulerServiceStub(channel)
    reply, call = stub.ListJobs.with_call(scheduler_pb2.ListJobsRequest(page_size=7),
                                          metadata=bearer(gateway.key.token()), timeout=5)
    assert [j.name for j in reply.jobs] == ["jobs/j1"]
    assert reply.jobs[0].message == "page_size=7 auth=True"  # the token is passed on for the service's own check
    assert dict(call.initial_metadata())["x-served-by"] == "scheduler"


def test_each_service_is_routed_by_its_path_prefix(gateway: RunningGateway, channel: grpc.Channel) -> None:
    token = gateway.key.token()
    _, call = auth_pb2_grpc.AuthServiceStub(channel).GetJwks.with_call(auth_pb2.GetJwksRequest(), timeout=5)
    assert dict(call.initial_metadata())["x-served-by"] == "auth"
    with pytest.raises(grpc.RpcError) as caught:
        pipelines_pb2_grpc.PipelinesServiceStub(channel).ListPipelines(
            pipelines_pb2.ListPipelinesRequest(), metadata=bearer(token), timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED

    def logged() -> list[dict[str, str]]:
        lines = [json.loads(line) for line in gateway.access_log.read_text().splitlines()]
        return [e for e in lines if e["rpc"] == "/odin.pipelines.v1.PipelinesService/ListPipelines"]

    entry = assert_eventually(logged, timeout=10, what="access log entry")[0]
    assert entry["upstream"] == "pipelines" and entry["grpc_status"] == "UNIMPLEMENTED"


@pytest.mark.parametrize("case", ["missing", "wrong key", "expired", "garbage"])
def test_calls_without_a_valid_token_are_refused_at_the_edge(gateway: RunningGateway, channel: grpc.Channel,
                                                             case: str) -> None:
    tokens = {
        "missing": None,
        "wrong key": SigningKey(SigningKey.generate().private, gateway.key.kid).token(),
        "expired": gateway.key.token(lifetime=-120),
        "garbage": "not-a-jwt",
    }
    token = tokens[case]
    with pytest.raises(grpc.RpcError) as caught:
        scheduler_pb2_grpc.SchedulerServiceStub(channel).ListJobs(
            scheduler_pb2.ListJobsRequest(), metadata=bearer(token) if token else (), timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "Jwt" in (caught.value.details() or "")


def test_a_token_for_another_audience_is_permission_denied(gateway: RunningGateway, channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        scheduler_pb2_grpc.SchedulerServiceStub(channel).ListJobs(
            scheduler_pb2.ListJobsRequest(), metadata=bearer(gateway.key.token(aud="someone-else")), timeout=5)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_login_and_health_are_open(gateway: RunningGateway, channel: grpc.Channel) -> None:
    reply = auth_pb2_grpc.AuthServiceStub(channel).Login(
        auth_pb2.LoginRequest(username="ann", password="secret"), timeout=5)
    assert reply.tokens.access_token.count(".") == 2
    for name in gateway.backends:
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), metadata=(("x-odin-service", name),), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_an_unknown_method_is_unimplemented(gateway: RunningGateway, channel: grpc.Channel) -> None:
    unknown = channel.unary_unary("/odin.nothing.v1.NoService/Nope", request_serializer=lambda b: b,
                                  response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as caught:
        unknown(b"", metadata=bearer(gateway.key.token()), timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_error_details_pass_through(gateway: RunningGateway, channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        scheduler_pb2_grpc.SchedulerServiceStub(channel).GetJob(
            scheduler_pb2.GetJobRequest(name="jobs/x"), metadata=bearer(gateway.key.token()), timeout=5)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    status = rpc_status.from_call(caught.value)
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info) and info.reason == "JOB_NOT_FOUND"


def test_server_streams_arrive_message_by_message(gateway: RunningGateway, channel: grpc.Channel) -> None:
    started = time.monotonic()
    stream = scheduler_pb2_grpc.SchedulerServiceStub(channel).WatchJob(
        scheduler_pb2.WatchJobRequest(name="jobs/j1", after_seq=10), metadata=bearer(gateway.key.token()), timeout=10)
    arrivals = [(m.heartbeat.latest_seq, time.monotonic() - started) for m in stream]
    assert [seq for seq, _ in arrivals] == [11, 12, 13][:STREAM_MESSAGES]
    # The first message is delivered before the upstream has produced the rest.
    assert arrivals[0][1] < arrivals[-1][1] - STREAM_PAUSE


def test_an_oversized_request_is_resource_exhausted(gateway: RunningGateway, channel: grpc.Channel) -> None:
    big = scheduler_pb2.ListJobsRequest(pipeline="x" * 100_000)  # over the test gateway's 64 KiB limit
    with pytest.raises(grpc.RpcError) as caught:
        scheduler_pb2_grpc.SchedulerServiceStub(channel).ListJobs(big, metadata=bearer(gateway.key.token()),
                                                                   timeout=5)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_an_unhealthy_service_gets_no_traffic(gateway: RunningGateway, channel: grpc.Channel) -> None:
    midgard = gateway.backends["midgard"].health
    midgard.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    try:
        def refused() -> bool:
            try:
                midgard_pb2_grpc.MidgardServiceStub(channel).ListNodes(
                    midgard_pb2.ListNodesRequest(), metadata=bearer(gateway.key.token()), timeout=5)
            except grpc.RpcError as exc:
                return exc.code() == grpc.StatusCode.UNAVAILABLE
            return False

        assert_eventually(refused, timeout=15, what="midgard refused while NOT_SERVING")
        assert admin_healthz(gateway) == 503
    finally:
        midgard.set("", health_pb2.HealthCheckResponse.SERVING)
