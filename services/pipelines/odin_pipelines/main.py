"""`odin-pipelines`: runs the pipelines service."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from odin.pipelines.v1 import pipelines_pb2, pipelines_pb2_grpc
from odin.runtime.server import ServerConfig, ServiceRuntime, serve_main


@dataclasses.dataclass(frozen=True)
class PipelinesConfig(ServerConfig):
    """Pipelines settings (environment: ODIN_PIPELINES_<KEY>)."""


class PipelinesServicer(pipelines_pb2_grpc.PipelinesServiceServicer):
    """Every RPC answers UNIMPLEMENTED until the service lands."""


async def setup(config: PipelinesConfig, runtime: ServiceRuntime) -> None:
    name = pipelines_pb2.DESCRIPTOR.services_by_name["PipelinesService"].full_name
    runtime.add_service(name, pipelines_pb2_grpc.add_PipelinesServiceServicer_to_server, PipelinesServicer())  # type: ignore[abstract]


def main(argv: Sequence[str] | None = None) -> int:
    return serve_main("pipelines", PipelinesConfig, setup, argv)
