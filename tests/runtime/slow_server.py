"""A test server on the shared runtime with a slow unary call and an endless stream.

Run as a script: `python slow_server.py PORT`. Used to prove SIGTERM drains in-flight calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from typing import Any

from odin.runtime.errors import InvalidArgument, NotFound
from odin.runtime.server import ServerConfig, ServiceRuntime, serve_main
from odin.scheduler.v1 import scheduler_pb2 as pb
from odin.scheduler.v1 import scheduler_pb2_grpc as pb_grpc


class SlowScheduler(pb_grpc.SchedulerServiceServicer):
    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime

    async def GetJob(self, request: pb.GetJobRequest, context: Any) -> pb.GetJobResponse:
        if request.name == "jobs/missing":
            raise NotFound("job jobs/missing does not exist", reason="JOB_NOT_FOUND", metadata={"job": request.name})
        if not request.name.startswith("jobs/"):
            raise InvalidArgument.field("name", "must look like jobs/{job}")
        if request.name == "jobs/crash":
            raise RuntimeError("SELECT secret FROM internals")  # must never reach the client
        await asyncio.sleep(1.5)
        return pb.GetJobResponse(job=pb.Job(name=request.name))

    async def WatchJob(self, request: pb.WatchJobRequest, context: Any) -> AsyncIterator[pb.WatchJobResponse]:
        seq = 0
        while not self.runtime.stopping.is_set():
            seq += 1
            yield pb.WatchJobResponse(heartbeat=pb.Heartbeat(latest_seq=seq))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.runtime.stopping.wait(), 0.1)


async def setup(config: ServerConfig, runtime: ServiceRuntime) -> None:
    name = pb.DESCRIPTOR.services_by_name["SchedulerService"].full_name
    runtime.add_service(name, pb_grpc.add_SchedulerServiceServicer_to_server, SlowScheduler(runtime))


if __name__ == "__main__":
    sys.exit(serve_main("slow-test", ServerConfig, setup, ["--port", sys.argv[1]]))
