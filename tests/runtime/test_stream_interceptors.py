"""Server streams through the interceptor chain: pre-serialized responses pass through, every
interceptor's check runs before the handler, and however many interceptors there are, a stream runs
in one wrapper generator (no extra step per message per interceptor)."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from grpc import aio

from odin.runtime.errors import PermissionDenied
from odin.runtime.interceptors import ErrorInterceptor, WrappingInterceptor, passing_bytes
from odin.scheduler.v1 import scheduler_pb2 as pb
from odin.scheduler.v1 import scheduler_pb2_grpc as pb_grpc

caller: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="nobody")


class Recording(WrappingInterceptor):
    """Records its check, sets a context variable the handler reads, refuses `jobs/refused`."""

    def __init__(self, name: str, calls: list[str]) -> None:
        self.name, self.calls = name, calls

    async def before_stream(self, method: str, request: Any, context: aio.ServicerContext) -> None:
        self.calls.append(self.name)
        if request.name == "jobs/refused":
            raise PermissionDenied("not you", reason="ROLE_REQUIRED")
        caller.set(self.name)


class Streams(pb_grpc.SchedulerServiceServicer):
    """WatchJob answers with a heartbeat message, the same response serialized once (bytes), then
    who the interceptors said the caller is."""

    def __init__(self) -> None:
        self.shared = pb.WatchJobResponse(event=pb.JobEvent(seq=7, job="jobs/a")).SerializeToString()

    async def WatchJob(self, request: pb.WatchJobRequest, context: Any) -> AsyncIterator[Any]:
        yield pb.WatchJobResponse(heartbeat=pb.Heartbeat(latest_seq=1))
        yield self.shared
        yield self.shared
        yield pb.WatchJobResponse(event=pb.JobEvent(seq=8, message=caller.get()))
        if request.name == "jobs/crash":
            raise RuntimeError("SELECT secret FROM internals")


@pytest.fixture
async def served() -> AsyncIterator[tuple[pb_grpc.SchedulerServiceStub, list[str]]]:
    calls: list[str] = []
    interceptors = [ErrorInterceptor(), Recording("outer", calls), Recording("inner", calls)]
    server = aio.server(interceptors=interceptors)
    pb_grpc.add_SchedulerServiceServicer_to_server(Streams(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield pb_grpc.SchedulerServiceStub(channel), calls
    await server.stop(None)


async def test_bytes_and_messages_arrive_alike(served: tuple[pb_grpc.SchedulerServiceStub, list[str]]) -> None:
    stub, calls = served
    received = [m async for m in stub.WatchJob(pb.WatchJobRequest(name="jobs/a"), timeout=10)]
    assert [m.WhichOneof("kind") for m in received] == ["heartbeat", "event", "event", "event"]
    assert received[1].event.seq == received[2].event.seq == 7 and received[1].event.job == "jobs/a"
    assert calls == ["outer", "inner"]  # each check once, outermost first
    assert received[3].event.message == "inner"  # a context variable set by a check reaches the handler


async def test_a_refusing_check_and_a_crash_are_mapped(
    served: tuple[pb_grpc.SchedulerServiceStub, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    stub, calls = served
    with pytest.raises(aio.AioRpcError) as refused:
        _ = [m async for m in stub.WatchJob(pb.WatchJobRequest(name="jobs/refused"), timeout=10)]
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert calls == ["outer"]  # the inner check never ran
    caplog.set_level(logging.INFO, logger="odin.rpc")
    crashed = stub.WatchJob(pb.WatchJobRequest(name="jobs/crash"), timeout=10)
    with pytest.raises(aio.AioRpcError) as error:
        _ = [m async for m in crashed]
    assert error.value.code() == grpc.StatusCode.INTERNAL and "SELECT" not in (error.value.details() or "")
    logged = [r for r in caplog.records if r.getMessage() == "rpc" and getattr(r, "code", "") == "INTERNAL"]
    assert logged and getattr(logged[-1], "messages", None) == 4


async def test_a_chain_of_interceptors_composes_one_generator() -> None:
    calls: list[str] = []
    chain = [ErrorInterceptor(), Recording("a", calls), Recording("b", calls), Recording("c", calls)]

    async def handler(request: Any, context: Any) -> AsyncIterator[int]:
        yield 1

    behavior: Any = handler
    for interceptor in reversed(chain):  # the server applies the innermost first
        behavior = interceptor._wrap_stream("/x.Y/Z", behavior)
    hooks, inner = behavior._odin_stream_parts
    assert inner is handler and len(hooks) == 4  # one generator around the handler, four checks inside it
    assert [item async for item in behavior(pb.WatchJobRequest(name="jobs/a"), None)] == [1]
    assert calls == ["a", "b", "c"]


def test_the_serializer_passes_bytes_once() -> None:
    serialize = passing_bytes(pb.WatchJobResponse.SerializeToString)
    assert serialize is not None and passing_bytes(serialize) is serialize  # wrapped once however many wrap it
    message = pb.WatchJobResponse(heartbeat=pb.Heartbeat(latest_seq=3))
    assert serialize(message) == message.SerializeToString()
    assert serialize(b"\x0a\x00") == b"\x0a\x00"
    assert passing_bytes(None) is None
