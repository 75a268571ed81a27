"""Every service's /metrics: RPCs by method and code with latency, from a real service process."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable

import grpc
from prometheus_client.parser import text_string_to_metric_families
from support.clients import channel
from support.processes import ServiceProcess
from support.waiting import assert_eventually

from odin.devsuite import free_port
from odin.midgard.v1 import midgard_pb2 as pb
from odin.midgard.v1 import midgard_pb2_grpc

METHOD = "/odin.midgard.v1.AgentService/GetNodeInfo"


def samples(address: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_rpcs_are_counted_by_method_and_code_with_their_latency(
        service_factory: Callable[..., ServiceProcess]) -> None:
    address = f"127.0.0.1:{free_port()}"
    agent = service_factory("midgard-agent", {"ODIN_MIDGARD_AGENT_NVML": "simulated",
                                              "ODIN_MIDGARD_AGENT_METRICS_ADDRESS": address})
    stub = midgard_pb2_grpc.AgentServiceStub(channel(agent.address))
    for _ in range(3):
        stub.GetNodeInfo(pb.GetNodeInfoRequest(), timeout=10)
    refused = midgard_pb2_grpc.AgentServiceStub(channel(agent.address, token=""))
    try:
        refused.GetNodeInfo(pb.GetNodeInfoRequest(), timeout=10)
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED

    def counted() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        found = samples(address)
        ok = (("code", "OK"), ("method", METHOD), ("service", "midgard-agent"))
        assert found[("odin_rpc_requests_total", ok)] == 3
        return found

    found = assert_eventually(counted, timeout=10, what="the calls counted")
    denied = (("code", "UNAUTHENTICATED"), ("method", METHOD), ("service", "midgard-agent"))
    assert found[("odin_rpc_requests_total", denied)] == 1
    latency = (("method", METHOD), ("service", "midgard-agent"))
    assert found[("odin_rpc_duration_seconds_count", latency)] == 4
    assert 0 < found[("odin_rpc_duration_seconds_sum", latency)] < 10
    # No job ids or user names: the labels are the service, the method and the code only.
    assert {k for name, labels in found for k, _ in labels if name.startswith("odin_rpc")} <= {
        "service", "method", "code", "le"}
