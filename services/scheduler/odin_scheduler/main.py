"""`odin-scheduler`: runs the scheduler service."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from odin.runtime.server import ServerConfig, ServiceRuntime, serve_main
from odin.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc


@dataclasses.dataclass(frozen=True)
class SchedulerConfig(ServerConfig):
    """Scheduler settings (environment: ODIN_SCHEDULER_<KEY>)."""


class SchedulerServicer(scheduler_pb2_grpc.SchedulerServiceServicer):
    """Every RPC answers UNIMPLEMENTED until the engine lands."""


async def setup(config: SchedulerConfig, runtime: ServiceRuntime) -> None:
    name = scheduler_pb2.DESCRIPTOR.services_by_name["SchedulerService"].full_name
    runtime.add_service(name, scheduler_pb2_grpc.add_SchedulerServiceServicer_to_server, SchedulerServicer())  # type: ignore[abstract]


def main(argv: Sequence[str] | None = None) -> int:
    return serve_main("scheduler", SchedulerConfig, setup, argv)
