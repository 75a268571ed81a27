"""The gRPC server every Odin service runs: one place for the things all services share.

`ServiceRuntime` owns the grpc.aio server with the error interceptor, message size limits,
keepalive, `grpc.health.v1` (its status follows the service's dependency checks), server
reflection (v1 and v1alpha, so any grpcurl works) and graceful shutdown: on SIGTERM health
turns NOT_SERVING, `stopping` is set so streams end cleanly, and in-flight calls drain.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any, TypeVar

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2
from prometheus_client import CollectorRegistry

from odin.runtime import auth
from odin.runtime.audit import AuditLog
from odin.runtime.audit_sink import remote_sink
from odin.runtime.config import ConfigError, load_config
from odin.runtime.interceptors import DecodeGuard, ErrorInterceptor
from odin.runtime.logs import configure_logging
from odin.runtime.metrics import MetricsEndpoint, RpcMetrics
from odin.runtime.tokens import DEFAULT_AUDIENCE, DEFAULT_ISSUER

log = logging.getLogger("odin.runtime")

HEALTH_SERVICE = "grpc.health.v1.Health"
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    """Settings every service has; each service's config extends this."""

    host: str = "127.0.0.1"
    port: int = 0
    max_message_bytes: int = 8 * 1024 * 1024
    grace_seconds: float = 10.0
    log_level: str = "info"
    health_interval_seconds: float = 5.0
    # Authentication (odin.runtime.auth): one of the first three must be set, or start-up fails.
    auth_address: str = ""  # the auth service: JWKS from GetJwks, API tokens exchanged there
    auth_jwks_file: Path | None = None  # a static JWKS file (tests, Kubernetes secret)
    auth_disabled: bool = False  # every caller is a local admin: for experiments only
    auth_issuer: str = DEFAULT_ISSUER
    auth_audience: str = DEFAULT_AUDIENCE
    auth_token_file: Path | None = None  # this service's own bearer (JWT or API token) for outgoing calls
    # How often the revocation feed of the auth service is polled (needs auth_address and auth_token_file).
    auth_revocation_poll_seconds: float = 2.0
    # Proxies in front of this service whose `x-forwarded-for` entries are trusted (1 behind Envoy, 0 when
    # clients connect directly): the client address of audit records and of the login throttle.
    trusted_proxy_hops: int = 0
    # host:port for Prometheus metrics (`/metrics`: RPCs, and what the service adds); empty: none.
    metrics_address: str = ""
    # Answer server reflection for every public service of the suite (the gateway's descriptor set), not only
    # this one's: the gateway routes grpc.reflection to one such service, so `grpcurl GATEWAY list` works.
    reflect_suite: bool = False


DependencyCheck = Callable[[], Awaitable[bool]]


class ServiceRuntime:
    """One gRPC server with health, reflection, interceptors and a graceful stop."""

    def __init__(self, name: str, config: ServerConfig, interceptors: Sequence[aio.ServerInterceptor] = ()):
        self.name = name
        self.config = config
        self.stopping = asyncio.Event()
        self.port = 0
        self._service_names: list[str] = []
        self._checks: dict[str, DependencyCheck] = {}
        self._cleanups: list[Callable[[], Awaitable[None]]] = []
        self._health = health.aio.HealthServicer()
        self.auth = auth.interceptor_from_config(config)
        self.audit = AuditLog(name, config.trusted_proxy_hops)
        # Every process has its own registry: services add their own metrics to it (`metrics_registry`).
        self.metrics_registry = CollectorRegistry(auto_describe=True)
        self.rpc_metrics = RpcMetrics(self.metrics_registry, name)
        self._metrics_endpoint: MetricsEndpoint | None = None
        # Order matters: errors map everything; the audit recorder sees refused calls too; the decode
        # guard runs after authentication (see DecodeGuard).
        self.server = aio.server(
            interceptors=[ErrorInterceptor(self.rpc_metrics), self.audit.recorder, self.auth, self.audit.actor,
                          *interceptors, DecodeGuard()],
            options=_channel_options(config.max_message_bytes),
        )

    def add_service(self, full_name: str, register: Callable[[Any, aio.Server], None], servicer: Any,
                    roles: Mapping[str, auth.Rule] | None = None) -> None:
        """Registers a servicer, e.g. `add_service(NAME, add_XServicer_to_server, XServicer(), roles=ROLES)`.

        `roles` maps each RPC name to the least role (or `auth.ProjectRole`) that may call it (ANONYMOUS: no token
        needed); an RPC left out needs ADMIN.
        """
        self.auth.register(full_name, roles)
        self.audit.register(full_name)
        register(servicer, self.server)
        self._service_names.append(full_name)

    def add_dependency_check(self, name: str, check: DependencyCheck) -> None:
        """Health reports NOT_SERVING while `check` returns False or raises."""
        self._checks[name] = check

    def on_stop(self, cleanup: Callable[[], Awaitable[None]]) -> None:
        """Runs `cleanup` after the server drained, in reverse order of registration."""
        self._cleanups.append(cleanup)

    async def start(self) -> int:
        auth.check_configured(self.auth, _env_prefix(self.name))
        await self._start_audit()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self.server)
        _enable_reflection([*self._service_names, HEALTH_SERVICE], self.server, self.config.reflect_suite)
        self.port = self.server.add_insecure_port(f"{self.config.host}:{self.config.port}")
        if self.port == 0:
            raise OSError(f"cannot listen on {self.config.host}:{self.config.port}")
        await self.server.start()
        if self.config.metrics_address:
            try:
                self._metrics_endpoint = MetricsEndpoint(self.config.metrics_address, self.metrics_registry)
            except (OSError, ValueError) as exc:
                raise ConfigError(f"{_env_prefix(self.name)}_METRICS_ADDRESS: {exc}") from None
        await self._refresh_health()
        log.info("serving", extra={"address": f"{self.config.host}:{self.port}", "services": self._service_names})
        return self.port

    async def run(self) -> None:
        """Starts, serves until SIGTERM or SIGINT, then stops gracefully."""
        await self.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        monitor = asyncio.create_task(self._monitor_health())
        await self.stopping.wait()
        monitor.cancel()
        await self.stop()

    async def stop(self) -> None:
        self.stopping.set()
        log.info("draining", extra={"grace_seconds": self.config.grace_seconds})
        await self._health.enter_graceful_shutdown()
        await self.server.stop(self.config.grace_seconds)
        await self.audit.sink.close(timeout=min(5.0, self.config.grace_seconds))
        for cleanup in reversed(self._cleanups):
            await cleanup()
        if self._metrics_endpoint is not None:
            await asyncio.to_thread(self._metrics_endpoint.close)
        log.info("stopped")

    async def _start_audit(self) -> None:
        """Audit records go to the auth service when this service can call it with its own token (the auth
        service itself stores them: it calls `audit.use`), and to the log otherwise."""
        if not self.audit.chosen and self.config.auth_address and self.config.auth_token_file:
            sink, close_channel = remote_sink(self.config.auth_address, self.config)
            self.audit.use(sink)
            self.on_stop(close_channel)
        elif not self.audit.chosen and self.audit.methods:
            log.warning("audit records go to the log: set auth_address and auth_token_file to store them")
        await self.audit.sink.start()

    async def _monitor_health(self) -> None:
        while not self.stopping.is_set():
            await asyncio.sleep(self.config.health_interval_seconds)
            await self._refresh_health()

    async def _refresh_health(self) -> None:
        healthy = True
        for name, check in self._checks.items():
            try:
                ok = await asyncio.wait_for(check(), timeout=self.config.health_interval_seconds)
            except Exception as exc:  # a failing check means "not serving", never a crash
                log.warning("dependency check failed", extra={"dependency": name, "error": repr(exc)})
                ok = False
            healthy = healthy and ok
        status = health_pb2.HealthCheckResponse.SERVING if healthy else health_pb2.HealthCheckResponse.NOT_SERVING
        for service in ["", *self._service_names]:
            await self._health.set(service, status)


def _channel_options(max_bytes: int) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", max_bytes),
        ("grpc.max_send_message_length", max_bytes),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
        ("grpc.http2.max_pings_without_data", 0),
        # Without this a second server could bind the same port and split traffic silently.
        ("grpc.so_reuseport", 0),
    ]


def _enable_reflection(service_names: list[str], server: aio.Server, suite: bool = False) -> None:
    """Serves reflection as v1alpha (grpcio-reflection) and v1, whose messages are wire-identical; with `suite`,
    for every public service of the suite, from the gateway's descriptor set."""
    pool = None
    if suite:
        pool, public = _suite_descriptors()
        service_names = sorted({*service_names, *public})
    names = [*service_names, reflection.SERVICE_NAME, REFLECTION_V1]
    servicer = reflection.aio.ReflectionServicer(names, pool=pool)
    reflection.enable_server_reflection(names, server, pool=pool)
    v1 = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    v1_service = grpc.method_handlers_generic_handler(REFLECTION_V1, {"ServerReflectionInfo": v1})
    server.add_generic_rpc_handlers((v1_service,))


def _suite_descriptors() -> tuple[descriptor_pool.DescriptorPool, list[str]]:
    """A pool with the gateway's descriptor set (every public service, health, google.rpc) and reflection."""
    from odin.gateway.methods import DESCRIPTOR_SET, PUBLIC_SERVICES

    pool = descriptor_pool.DescriptorPool()
    files = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_SET.read_bytes()).file
    known = {f.name for f in files}
    for file in files:
        pool.Add(file)
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    if proto.name not in known:
        pool.Add(proto)
    return pool, sorted(PUBLIC_SERVICES)


C = TypeVar("C", bound=ServerConfig)
Setup = Callable[[C, ServiceRuntime], Awaitable[None]]


def settings_help(config_type: type[Any], prefix: str) -> str:
    """Every setting of a service with its default, read from its config dataclass (so --help stays true)."""
    lines = ["settings:"]
    for field in dataclasses.fields(config_type):
        if field.default is not dataclasses.MISSING:
            default = f"default {_shown(field.default)}"
        elif field.default_factory is not dataclasses.MISSING:
            default = f"default {_shown(field.default_factory())}"
        else:
            default = "required"
        lines.append(f"  {prefix}_{field.name.upper():<34} {default}")
    return "\n".join(lines)


def _shown(value: Any) -> str:
    return repr(str(value)) if isinstance(value, PurePath) else repr(value)


def serve_main(
    service: str,
    config_type: type[C],
    setup: Setup[C],
    argv: Sequence[str] | None = None,
    interceptors: Callable[[C], Sequence[aio.ServerInterceptor]] = lambda _: (),
) -> int:
    """The `main()` of a service: parse flags, load config, set up, serve until SIGTERM."""
    prefix = f"ODIN_{service.upper().replace('-', '_')}"
    parser = argparse.ArgumentParser(
        prog=f"odin-{service}",
        description=f"Run the Odin {service} service. Settings come from {prefix}_<KEY> "
        f"environment variables and an optional YAML file (keys in lower case).",
        epilog=settings_help(config_type, prefix),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help=f"YAML configuration file (also {prefix}_CONFIG)")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default: any free port)")
    args = parser.parse_args(argv)
    try:
        config = load_config(config_type, prefix, file=args.config)
    except ConfigError as exc:
        print(f"odin-{service}: {exc}", file=sys.stderr)
        return 2
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    config = dataclasses.replace(config, **overrides)
    configure_logging(service, config.log_level)

    async def run() -> None:
        runtime = ServiceRuntime(service, config, interceptors(config))
        await setup(config, runtime)
        await runtime.run()

    try:
        asyncio.run(run())
    except ConfigError as exc:
        log.error("configuration error", extra={"error": str(exc)})
        return 2
    return 0


def _env_prefix(name: str) -> str:
    return "ODIN_" + name.upper().replace("-", "_")
