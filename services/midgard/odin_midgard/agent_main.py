"""`odin-midgard-agent`: runs the per-node Midgard agent (one per node, e.g. a DaemonSet)."""

from __future__ import annotations

import asyncio
import dataclasses
import platform
from collections.abc import Sequence
from pathlib import Path

import grpc

from odin.midgard.v1 import midgard_pb2, midgard_pb2_grpc
from odin.runtime.config import ConfigError
from odin.runtime.server import ServerConfig, ServiceRuntime, serve_main
from odin.runtime.tokens import Role
from odin_midgard.agent import Agent
from odin_midgard.dcgm_metrics import DcgmCollector
from odin_midgard.nvml_backend import MODES, NvmlStartError, open_nvml
from odin_midgard.nvml_sim import DATACENTER_MODEL, SimOptions, parse_processes
from odin_midgard.pods import PodDirectory, kubernetes_core_api

# The aggregator (midgard) calls agents with its own token: the robot (SERVICE_CALLS) or a viewer.
AGENT_ROLES = {"GetNodeInfo": Role.VIEWER}


@dataclasses.dataclass(frozen=True)
class AgentConfig(ServerConfig):
    """Agent settings (environment: ODIN_MIDGARD_AGENT_<KEY>)."""

    # The node's name; on Kubernetes pass spec.nodeName through the downward API. Default: the hostname.
    node_name: str = ""
    # "auto" (real NVML when present, else zero GPUs and the reason), "real" (refuse to start
    # without NVML) or "simulated" (invented GPUs, for machines without any).
    nvml: str = "auto"
    # Seconds between samples; GetNodeInfo answers with the latest one.
    sample_interval_seconds: float = 1.0
    # Where the node's /proc is mounted (a container with hostPID sees the host's at /proc).
    proc_path: Path = Path("/proc")
    # Resolve pod UIDs of GPU processes to pod names and Odin jobs through the Kubernetes API.
    kube_pod_lookup: bool = False
    # The simulation (nvml=simulated): GPU count, model, trailing consumer GPUs with unsupported
    # readings, a lost GPU's index (-1: none), processes as gpu_index:pid[:used_bytes].
    sim_gpus: int = 4
    sim_model: str = DATACENTER_MODEL
    sim_consumer_gpus: int = 1
    sim_lost_index: int = -1
    sim_processes: tuple[str, ...] = ()


class AgentServicer(midgard_pb2_grpc.AgentServiceServicer):
    """AgentService: answers with the agent's latest snapshot."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    async def GetNodeInfo(
        self, request: midgard_pb2.GetNodeInfoRequest, context: grpc.aio.ServicerContext
    ) -> midgard_pb2.GetNodeInfoResponse:
        node = self.agent.latest or await asyncio.to_thread(self.agent.sample)
        return midgard_pb2.GetNodeInfoResponse(node=node)


def sim_options(config: AgentConfig) -> SimOptions:
    try:
        processes = parse_processes(config.sim_processes)
    except ValueError as exc:
        raise ConfigError(f"configuration ODIN_MIDGARD_AGENT_SIM_PROCESSES: {exc}") from None
    return SimOptions(gpus=config.sim_gpus, model=config.sim_model, consumer_gpus=config.sim_consumer_gpus,
                      lost_index=config.sim_lost_index, processes=processes)


def build_agent(config: AgentConfig) -> Agent:
    if config.nvml not in MODES:
        raise ConfigError(f"configuration ODIN_MIDGARD_AGENT_NVML: must be one of {', '.join(MODES)}")
    node = config.node_name or platform.node()
    try:
        nvml = open_nvml(config.nvml, sim_options(config))
    except NvmlStartError as exc:
        raise ConfigError(f"configuration ODIN_MIDGARD_AGENT_NVML=real: {exc}") from None
    pods = PodDirectory(kubernetes_core_api(), node) if config.kube_pod_lookup else None
    return Agent(node, nvml, config.proc_path, pods)


async def setup(config: AgentConfig, runtime: ServiceRuntime) -> None:
    agent = build_agent(config)
    await asyncio.to_thread(agent.sample)
    sampler = asyncio.create_task(agent.run_sampler(config.sample_interval_seconds, runtime.stopping))

    async def stop() -> None:
        await sampler
        agent.close()

    runtime.on_stop(stop)
    # The GPUs in dcgm-exporter's names, on the runtime's `/metrics` (the `metrics_address` setting).
    names = agent.pods.container_name if agent.pods else None
    runtime.metrics_registry.register(DcgmCollector(lambda: agent.latest, agent.node_name.removeprefix("nodes/"),
                                                    names))
    name = midgard_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name
    runtime.add_service(name, midgard_pb2_grpc.add_AgentServiceServicer_to_server, AgentServicer(agent),
                        roles=AGENT_ROLES)


def main(argv: Sequence[str] | None = None) -> int:
    return serve_main("midgard-agent", AgentConfig, setup, argv)
