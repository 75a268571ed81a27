"""Serves N Midgard agents from one process, for tests and benchmarks of the aggregator at scale.

    python many_agents.py PORT [PORT ...]

Each port serves AgentService as node `agent-<port>` with simulated GPUs; one real sampler feeds
them all (N full agents would each sample psutil and NVML every second). Auth is off: these
agents stand for a cluster's DaemonSet, not for what is under test. Prints `ready` when serving.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import grpc
from grpc import aio
from odin_midgard.agent import Agent
from odin_midgard.nvml_backend import open_nvml
from odin_midgard.nvml_sim import SimOptions, SimProcess

from odin.midgard.v1 import midgard_pb2 as pb
from odin.midgard.v1 import midgard_pb2_grpc


class RenamedAgent(midgard_pb2_grpc.AgentServiceServicer):
    """The shared agent's latest snapshot, as node `name`."""

    def __init__(self, agent: Agent, name: str) -> None:
        self.agent = agent
        self.name = name

    async def GetNodeInfo(self, request: pb.GetNodeInfoRequest,
                          context: grpc.aio.ServicerContext) -> pb.GetNodeInfoResponse:
        node = pb.Node()
        node.CopyFrom(self.agent.latest or self.agent.sample())
        node.name = f"nodes/{self.name}"
        node.system.hostname = self.name
        for gpu in node.gpus:
            gpu.name = f"nodes/{self.name}/gpus/{gpu.index}"
        return pb.GetNodeInfoResponse(node=node)


async def serve(ports: list[int]) -> None:
    nvml = open_nvml("simulated", SimOptions(gpus=8, processes=(SimProcess(0, 4242, 1 << 30),)))
    agent = Agent("template", nvml, Path("/proc"))
    agent.sample()
    servers = []
    for port in ports:
        server = aio.server()
        midgard_pb2_grpc.add_AgentServiceServicer_to_server(RenamedAgent(agent, f"agent-{port}"), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        servers.append(server)
    print("ready", flush=True)
    await agent.run_sampler(1.0, asyncio.Event())


if __name__ == "__main__":
    asyncio.run(serve([int(p) for p in sys.argv[1:]]))
