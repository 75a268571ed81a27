"""`odin-midgard-agent`: runs the per-node Midgard agent."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from odin.midgard.v1 import midgard_pb2, midgard_pb2_grpc
from odin.runtime.server import ServerConfig, ServiceRuntime, serve_main


@dataclasses.dataclass(frozen=True)
class AgentConfig(ServerConfig):
    """Agent settings (environment: ODIN_MIDGARD_AGENT_<KEY>)."""


class AgentServicer(midgard_pb2_grpc.AgentServiceServicer):
    """Every RPC answers UNIMPLEMENTED until the agent lands."""


async def setup(config: AgentConfig, runtime: ServiceRuntime) -> None:
    name = midgard_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name
    runtime.add_service(name, midgard_pb2_grpc.add_AgentServiceServicer_to_server, AgentServicer())  # type: ignore[abstract]


def main(argv: Sequence[str] | None = None) -> int:
    return serve_main("midgard-agent", AgentConfig, setup, argv)
