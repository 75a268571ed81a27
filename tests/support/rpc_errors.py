"""Reading a failed call's google.rpc details (ErrorInfo, BadRequest) in tests: one decoder for every area."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass
class RpcFailure:
    """What a failed call carried: code, message, ErrorInfo reason/metadata and BadRequest violations."""

    code: Any
    message: str
    has_status: bool = False
    reason: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    violations: list[tuple[str, str]] = field(default_factory=list)


def rpc_failure(error: Any) -> RpcFailure:
    """Decodes the `grpc-status-details-bin` trailer of a failed sync or asyncio call."""
    status = rpc_status.from_call(error)
    found = RpcFailure(error.code(), error.details() or "", has_status=status is not None)
    for detail in status.details if status else ():
        info, bad = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
        if detail.Unpack(info):
            found.reason, found.metadata = info.reason, dict(info.metadata)
        elif detail.Unpack(bad):
            found.violations += [(v.field, v.description) for v in bad.field_violations]
    return found
