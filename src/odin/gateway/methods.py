"""The gateway's view of the contract: every public RPC, its gRPC path and its HTTP binding."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from google.api import annotations_pb2  # type: ignore[import-untyped]
from google.protobuf import descriptor_pb2

DESCRIPTOR_SET = Path(__file__).resolve().parent / "odin.protoset"

# The services the gateway exposes, each to its suite service (the Envoy cluster of that name).
# midgard's AgentService is left out on purpose: agents are node-local and only midgard calls them.
PUBLIC_SERVICES: dict[str, str] = {
    "odin.auth.v1.AuthService": "auth",
    "odin.auth.v1.AuditService": "auth",
    "odin.pipelines.v1.PipelinesService": "pipelines",
    "odin.scheduler.v1.SchedulerService": "scheduler",
    "odin.midgard.v1.MidgardService": "midgard",
}

# RPCs a caller without an access token must reach: getting a token, and the keys that verify one.
OPEN_METHODS = frozenset({
    "/odin.auth.v1.AuthService/Login",
    "/odin.auth.v1.AuthService/RefreshToken",
    "/odin.auth.v1.AuthService/ExchangeApiToken",
    "/odin.auth.v1.AuthService/GetJwks",
})

_VERBS = ("get", "put", "post", "delete", "patch")


@dataclass(frozen=True)
class Method:
    """One RPC as the gateway routes it."""

    service: str
    name: str
    upstream: str
    server_streaming: bool
    http_verb: str | None
    http_path: str | None

    @property
    def grpc_path(self) -> str:
        return f"/{self.service}/{self.name}"

    @property
    def is_read(self) -> bool:
        """Bound to HTTP GET: an idempotent read the gateway may retry."""
        return self.http_verb == "get"

    @property
    def is_open(self) -> bool:
        return self.grpc_path in OPEN_METHODS


def load_methods(descriptor_set: Path = DESCRIPTOR_SET) -> list[Method]:
    """Every RPC of the public services, in descriptor order."""
    fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes())
    methods: list[Method] = []
    for file in fds.file:
        for service in file.service:
            full_name = f"{file.package}.{service.name}"
            if full_name in PUBLIC_SERVICES:
                methods += [_method(full_name, m) for m in service.method]
    return methods


def _method(service: str, method: descriptor_pb2.MethodDescriptorProto) -> Method:
    rule = method.options.Extensions[annotations_pb2.http]
    verb = next((v for v in _VERBS if getattr(rule, v)), None)
    return Method(service, method.name, PUBLIC_SERVICES[service], method.server_streaming,
                  verb, getattr(rule, verb) if verb else None)
