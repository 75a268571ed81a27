"""Helpers for calling the pipelines service in tests and reading its error details."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from support.clients import DEFAULT, channel
from support.rpc_errors import rpc_failure

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
        decoded = rpc_failure(error)
        return Failure(decoded.code, decoded.message, decoded.reason, decoded.violations)
    raise AssertionError("the call succeeded")


def pipeline(**texts: str) -> pb.Pipeline:
    return pb.Pipeline(files=[pb.PipelineFile(path=path, content=text) for path, text in texts.items()])


def pipeline_files(*pairs: tuple[str, str]) -> pb.Pipeline:
    return pb.Pipeline(files=[pb.PipelineFile(path=path, content=text) for path, text in pairs])
