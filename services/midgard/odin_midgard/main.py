"""`odin-midgard`: runs the Midgard aggregator, the cluster-wide view of nodes and GPUs."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Sequence

import grpc

from odin.midgard.v1 import midgard_pb2, midgard_pb2_grpc
from odin.runtime import auth
from odin.runtime.config import ConfigError
from odin.runtime.server import ServerConfig, ServiceRuntime, serve_main
from odin.runtime.tokens import Role
from odin.scheduler.v1 import scheduler_pb2_grpc
from odin_midgard import queries
from odin_midgard.attribution import TaskIndex, refresh_forever
from odin_midgard.cache import NodeCache
from odin_midgard.collector import Collector
from odin_midgard.discovery import Discovery, KubernetesDiscovery, StaticDiscovery
from odin_midgard.pods import kubernetes_core_api
from odin_midgard.watch import watch_nodes

log = logging.getLogger("odin.midgard")

ROLES = {"ListNodes": Role.VIEWER, "GetNode": Role.VIEWER, "ListGpus": Role.VIEWER, "WatchNodes": Role.VIEWER}


@dataclasses.dataclass(frozen=True)
class MidgardConfig(ServerConfig):
    """Aggregator settings (environment: ODIN_MIDGARD_<KEY>)."""

    # Agents as host:port or node=host:port, comma-separated; empty uses agent_selector instead.
    agents: tuple[str, ...] = ()
    # Kubernetes discovery: agent pods matching this label selector in agent_namespace, at agent_port.
    agent_selector: str = ""
    agent_namespace: str = "odin"
    agent_port: int = 29999
    # Calls in flight at once, each agent's deadline, and how often each agent is asked.
    max_concurrency: int = 16
    agent_timeout_seconds: float = 2.0
    refresh_interval_seconds: float = 5.0
    # WatchNodes sends a heartbeat after this long without a change.
    heartbeat_interval_seconds: float = 10.0
    # The scheduler, to name the job and task holding each GPU; empty: no attribution.
    scheduler_address: str = ""


class MidgardServicer(midgard_pb2_grpc.MidgardServiceServicer):
    """MidgardService: every read answers from the cache; nothing waits for an agent."""

    def __init__(self, cache: NodeCache, runtime: ServiceRuntime, heartbeat_seconds: float) -> None:
        self.cache = cache
        self.runtime = runtime
        self.heartbeat_seconds = heartbeat_seconds

    async def ListNodes(self, request: midgard_pb2.ListNodesRequest,
                        context: grpc.aio.ServicerContext) -> midgard_pb2.ListNodesResponse:
        return queries.list_nodes(self.cache, request)

    async def GetNode(self, request: midgard_pb2.GetNodeRequest,
                      context: grpc.aio.ServicerContext) -> midgard_pb2.GetNodeResponse:
        return midgard_pb2.GetNodeResponse(node=queries.get_node(self.cache, request.name))

    async def ListGpus(self, request: midgard_pb2.ListGpusRequest,
                       context: grpc.aio.ServicerContext) -> midgard_pb2.ListGpusResponse:
        return queries.list_gpus(self.cache, request)

    async def WatchNodes(self, request: midgard_pb2.WatchNodesRequest,
                         context: grpc.aio.ServicerContext) -> AsyncIterator[midgard_pb2.WatchNodesResponse]:
        async for message in watch_nodes(self.cache, self.runtime.stopping, self.heartbeat_seconds):
            yield message


def build_discovery(config: MidgardConfig) -> Discovery:
    if config.agents:
        try:
            return StaticDiscovery(config.agents)
        except ValueError as exc:
            raise ConfigError(f"configuration ODIN_MIDGARD_AGENTS: {exc}") from None
    if config.agent_selector:
        return KubernetesDiscovery(kubernetes_core_api(), config.agent_namespace, config.agent_selector,
                                   config.agent_port)
    log.warning("no agents configured: set ODIN_MIDGARD_AGENTS (host:port,...) or ODIN_MIDGARD_AGENT_SELECTOR "
                "(a Kubernetes label selector); serving zero nodes")
    return StaticDiscovery(())


def check_config(config: MidgardConfig) -> None:
    positive = ("max_concurrency", "agent_timeout_seconds", "refresh_interval_seconds", "heartbeat_interval_seconds")
    for key in positive:
        if getattr(config, key) <= 0:
            raise ConfigError(f"configuration ODIN_MIDGARD_{key.upper()}: must be positive")


async def setup(config: MidgardConfig, runtime: ServiceRuntime) -> None:
    check_config(config)
    cache = NodeCache()
    index = TaskIndex()
    collector = Collector(cache, build_discovery(config), lambda address: auth.authenticated_channel(address, config),
                          index, interval=config.refresh_interval_seconds, timeout=config.agent_timeout_seconds,
                          max_concurrency=config.max_concurrency)
    background = [asyncio.create_task(collector.run(runtime.stopping))]
    if config.scheduler_address:
        scheduler = auth.authenticated_channel(config.scheduler_address, config)
        stub = scheduler_pb2_grpc.SchedulerServiceStub(scheduler)
        background.append(asyncio.create_task(refresh_forever(
            index, stub, config.refresh_interval_seconds, config.agent_timeout_seconds, runtime.stopping)))
        runtime.on_stop(scheduler.close)

    async def stop() -> None:
        await asyncio.gather(*background, return_exceptions=True)

    runtime.on_stop(stop)
    name = midgard_pb2.DESCRIPTOR.services_by_name["MidgardService"].full_name
    runtime.add_service(name, midgard_pb2_grpc.add_MidgardServiceServicer_to_server,
                        MidgardServicer(cache, runtime, config.heartbeat_interval_seconds), roles=ROLES)


def main(argv: Sequence[str] | None = None) -> int:
    return serve_main("midgard", MidgardConfig, setup, argv)
