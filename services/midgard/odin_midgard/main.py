"""`odin-midgard`: runs the Midgard aggregator service."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from odin.midgard.v1 import midgard_pb2, midgard_pb2_grpc
from odin.runtime.server import ServerConfig, ServiceRuntime, serve_main


@dataclasses.dataclass(frozen=True)
class MidgardConfig(ServerConfig):
    """Aggregator settings (environment: ODIN_MIDGARD_<KEY>)."""


class MidgardServicer(midgard_pb2_grpc.MidgardServiceServicer):
    """Every RPC answers UNIMPLEMENTED until the aggregator lands."""


async def setup(config: MidgardConfig, runtime: ServiceRuntime) -> None:
    name = midgard_pb2.DESCRIPTOR.services_by_name["MidgardService"].full_name
    runtime.add_service(name, midgard_pb2_grpc.add_MidgardServiceServicer_to_server, MidgardServicer())  # type: ignore[abstract]


def main(argv: Sequence[str] | None = None) -> int:
    return serve_main("midgard", MidgardConfig, setup, argv)
