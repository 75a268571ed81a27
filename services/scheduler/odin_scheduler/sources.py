"""Where a job's pipeline comes from: inline in the request, or the pipelines service at a revision.

This module and `servicer.py` are the only ones that import grpc. Either way the result is the
text of `main.yml` plus the pipeline's other files, which the job gets as its `${WORK_PATH}`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import grpc
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc import aio
from grpc_status import rpc_status

from odin.pipelines.v1 import pipelines_pb2, pipelines_pb2_grpc
from odin.runtime.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from odin.scheduler.v1 import scheduler_pb2
from odin_scheduler import convert
from odin_scheduler.inline import Renderer
from odin_scheduler.inline import resolve as resolve_inline_text
from odin_scheduler.jobs import MAIN_FILE, ResolvedPipeline

CALL_TIMEOUT_SECONDS = 30.0


ChannelFactory = Callable[[str], aio.Channel]


class PipelineSources:
    def __init__(self, pipelines_address: str, channel: ChannelFactory = aio.insecure_channel,
                 render: Renderer | None = None) -> None:
        self.pipelines_address = pipelines_address
        self._make_channel = channel
        self._channel: aio.Channel | None = None
        # Inline templates render here: the pool's bounded, killable workers in the service.
        self._render = render

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()

    async def resolve(self, request: scheduler_pb2.CreateJobRequest, parameters: dict[str, Any],
                      project: str) -> ResolvedPipeline:
        """`parameters` is `request.parameters` as a dict (converted once by the caller); `project` the job's."""
        source = request.WhichOneof("source")
        if source == "inline":
            # Rendering may take up to the render time limit: never on the event loop, which serves every RPC.
            return await asyncio.to_thread(resolve_inline, request.inline, parameters, self._render)
        if source == "pipeline":
            return await self._resolve_ref(request.pipeline, parameters, project)
        raise InvalidArgument.field("source", "set either `pipeline` or `inline`")

    async def _resolve_ref(self, ref: scheduler_pb2.PipelineRef, parameters: dict[str, Any],
                           project: str) -> ResolvedPipeline:  # fmt: skip
        _, pipeline_id = convert.pipeline_ref(ref.name)  # its project, if named, is `project` (create_project)
        if not self.pipelines_address:
            raise FailedPrecondition(
                "this scheduler has no pipelines service configured; send the pipeline inline",
                reason="PIPELINES_NOT_CONFIGURED",
            )
        name = f"projects/{project}/pipelines/{pipeline_id}"
        request = pipelines_pb2.RenderPipelineRequest(name=name, revision=ref.revision)
        if parameters:
            json_format.ParseDict(parameters, request.parameters)
        stub = pipelines_pb2_grpc.PipelinesServiceStub(self._channel_for())
        try:
            reply = await stub.RenderPipeline(request, timeout=CALL_TIMEOUT_SECONDS)
        except aio.AioRpcError as exc:
            raise _pipelines_error(exc, pipeline_id) from None
        files = {f.path: f.content for f in reply.files}
        if MAIN_FILE not in files:
            raise InvalidArgument.field("pipeline.name", f'pipeline "{pipeline_id}" has no {MAIN_FILE}')
        main = files.pop(MAIN_FILE)
        return ResolvedPipeline(main, files, pipeline_id, reply.revision.commit, "pipeline.main_yml")

    def _channel_for(self) -> aio.Channel:
        if self._channel is None:
            # Calls carry the caller's token: the pipelines service checks their access, not ours.
            self._channel = self._make_channel(self.pipelines_address)
        return self._channel


def resolve_inline(inline: scheduler_pb2.InlinePipeline, parameters: Mapping[str, Any],
                   render: Renderer | None = None) -> ResolvedPipeline:
    return resolve_inline_text(inline.main_yml, dict(inline.files), parameters, render)


def _pipelines_error(exc: aio.AioRpcError, pipeline_id: str) -> Exception:
    code = exc.code()
    if code is grpc.StatusCode.NOT_FOUND:
        return NotFound(f'pipeline "{pipeline_id}" not found', reason="PIPELINE_NOT_FOUND")
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidArgument(exc.details() or "the pipeline is invalid", _violations(exc, "pipeline.main_yml"))
    if code is grpc.StatusCode.UNIMPLEMENTED:
        return FailedPrecondition(
            "the pipelines service cannot render pipelines yet; send the pipeline inline",
            reason="PIPELINES_UNIMPLEMENTED",
        )
    return Unavailable(f"the pipelines service is unavailable ({code.name})", reason="PIPELINES_UNAVAILABLE")


def _violations(exc: aio.AioRpcError, prefix: str) -> list[tuple[str, str]]:
    status = rpc_status.from_call(exc)
    found: list[tuple[str, str]] = []
    for detail in status.details if status else ():
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            found += [(f"{prefix}.{v.field}" if v.field else prefix, v.description) for v in bad.field_violations]
    return found
