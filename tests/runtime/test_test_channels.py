"""The test channels carry the bearer token on unary and server-streaming calls alike."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from support.clients import aio_channel
from support.processes import ServiceProcess
from support.scheduler import scheduler_env

from odin.scheduler.v1 import scheduler_pb2 as pb
from odin.scheduler.v1 import scheduler_pb2_grpc as pb_grpc


async def test_aio_channel_authenticates_streams(
    service_factory: Callable[..., ServiceProcess], tmp_path_factory: pytest.TempPathFactory
) -> None:
    state = tmp_path_factory.mktemp("sched")
    service = service_factory("scheduler", scheduler_env(state))
    async with aio_channel(service.address) as channel:
        stub = pb_grpc.SchedulerServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            async for _ in stub.WatchJob(pb.WatchJobRequest(name="jobs/none-such"), timeout=10):
                pass
        # authenticated: the scheduler looked the job up instead of refusing the caller
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
