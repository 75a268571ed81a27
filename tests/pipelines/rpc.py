"""Helpers for calling the pipelines service in tests and reading its error details."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from support.clients import DEFAULT, channel

from odin.pipelines.v1 import pipelines_pb2 as pb
from odin.pipelines.v1 import pipelines_pb2_grpc


@dataclass
class Failure:
    code: grpc.StatusCode
    message: str
    reason: str = ""
    violations: list[tuple[str, str]] = field(default_factory=list)


def stub(address: str, token: object = DEFAULT) -> pipelines_pb2_grpc.PipelinesServiceStub:
    """A stub whose calls carry `token` (default: the test admin's)."""
    return pipelines_pb2_grpc.PipelinesServiceStub(channel(address, token=token))


def failure(call: Callable[[], Any]) -> Failure:
    """Runs `call`, which must fail, and returns its status, ErrorInfo reason and BadRequest violations."""
    try:
        call()
    except grpc.RpcError as error:
        status = rpc_status.from_call(error)  # type: ignore[arg-type]
        found = Failure(error.code(), error.details() or "")  # type: ignore[attr-defined]
        for detail in status.details if status else []:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                found.reason = info.reason
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                found.violations = [(v.field, v.description) for v in bad.field_violations]
        return found
    raise AssertionError("the call succeeded")


def pipeline(**texts: str) -> pb.Pipeline:
    return pb.Pipeline(files=[pb.PipelineFile(path=path, content=text) for path, text in texts.items()])


def pipeline_files(*pairs: tuple[str, str]) -> pb.Pipeline:
    return pb.Pipeline(files=[pb.PipelineFile(path=path, content=text) for path, text in pairs])
