"""Every service starts as its own process, is healthy, and is describable with grpcurl."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support.processes import ServiceProcess
from support.scheduler import scheduler_env

# service process name → the gRPC services it must expose
EXPECTED = {
    "scheduler": ["odin.scheduler.v1.SchedulerService"],
    "auth": ["odin.auth.v1.AuditService", "odin.auth.v1.AuthService"],
    "pipelines": ["odin.pipelines.v1.PipelinesService"],
    "midgard": ["odin.midgard.v1.MidgardService"],
    "midgard-agent": ["odin.midgard.v1.AgentService"],
}
COMMON = {"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_service_is_healthy_and_reflects_its_api(
    name: str, service_factory: Callable[..., ServiceProcess], grpcurl: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    service = service_factory(name, _minimal_env(name, tmp_path_factory))
    with grpc.insecure_channel(service.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for svc in ["", *EXPECTED[name]]:
            reply = health.Check(health_pb2.HealthCheckRequest(service=svc), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
    listed = subprocess.run([grpcurl, "-plaintext", service.address, "list"], capture_output=True, text=True,
                            check=True, timeout=30).stdout.split()
    assert set(listed) == COMMON | set(EXPECTED[name])
    for svc in EXPECTED[name]:
        described = subprocess.run([grpcurl, "-plaintext", service.address, "describe", svc],
                                   capture_output=True, text=True, check=True, timeout=30).stdout
        assert f"service {svc.rsplit('.', 1)[1]} {{" in described
        assert "rpc " in described


def test_grpcurl_sees_codes_and_details(service_factory: Callable[..., ServiceProcess], grpcurl: str,
                                        tmp_path_factory: pytest.TempPathFactory) -> None:
    service = service_factory("scheduler", _minimal_env("scheduler", tmp_path_factory))
    result = subprocess.run(
        [grpcurl, "-plaintext", "-format-error", "-d", json.dumps({"name": "jobs/nope", "unknown_field": 1}),
         service.address, "odin.scheduler.v1.SchedulerService/GetJob"],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode != 0
    assert "unknown_field" in result.stderr  # grpcurl refuses the malformed JSON before sending


def _minimal_env(name: str, tmp: pytest.TempPathFactory) -> dict[str, str]:
    """Settings a service needs to start on its own, with state in a temp dir."""
    state = tmp.mktemp(name)
    return {
        "scheduler": scheduler_env(state),
        "auth": {"ODIN_AUTH_STORE_URL": f"sqlite:///{state}/a.db", "ODIN_AUTH_KEYS_PATH": str(state / "keys")},
        "pipelines": {"ODIN_PIPELINES_REPO_PATH": str(state / "repo")},
        "midgard": {"ODIN_MIDGARD_AGENTS": ""},
        "midgard-agent": {},
    }[name]
