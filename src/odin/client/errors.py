"""Typed errors for callers of the Odin services, rebuilt from gRPC statuses.

The services send a `google.rpc.Status` in the `grpc-status-details-bin` trailer: an `ErrorInfo` with a
stable UPPER_SNAKE `reason`, and for bad input a `BadRequest` with one violation per field. This module
turns that back into exceptions, so programs branch on `.reason` and never parse messages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request, e.g. `tasks[2].depends: unknown task "trian"`."""

    field: str
    description: str

    def __str__(self) -> str:
        return f"{self.field}: {self.description}" if self.field else self.description


class OdinError(Exception):
    """A call failed. `code` is the gRPC status name (`NOT_FOUND`), `reason` the server's stable reason."""

    code: str = "UNKNOWN"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        reason: str = "",
        metadata: Mapping[str, str] | None = None,
        violations: Sequence[FieldViolation] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.reason = reason or self.code
        self.metadata = dict(metadata or {})
        self.violations = list(violations)

    @property
    def retryable(self) -> bool:
        """Whether the same call may succeed later (a service or connection was down)."""
        return self.code == "UNAVAILABLE"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description, as the CLI prints with `--json`."""
        return {
            "code": self.code,
            "reason": self.reason,
            "message": self.message,
            "metadata": self.metadata,
            "violations": [{"field": v.field, "description": v.description} for v in self.violations],
        }


class InvalidArgument(OdinError):
    """The request was malformed; `violations` name each bad field."""

    code = "INVALID_ARGUMENT"


class NotFound(OdinError):
    code = "NOT_FOUND"


class AlreadyExists(OdinError):
    code = "ALREADY_EXISTS"


class FailedPrecondition(OdinError):
    """The resource is in the wrong state for the call (e.g. `JOB_NOT_RETRYABLE`)."""

    code = "FAILED_PRECONDITION"


class Aborted(OdinError):
    """A concurrent change won; re-read and try again."""

    code = "ABORTED"


class Unauthenticated(OdinError):
    """No valid token was sent: log in (`odin login`) or set ODIN_TOKEN."""

    code = "UNAUTHENTICATED"


class PermissionDenied(OdinError):
    code = "PERMISSION_DENIED"


class ResourceExhausted(OdinError):
    code = "RESOURCE_EXHAUSTED"


class Unavailable(OdinError):
    """The service could not be reached or is shutting down; the call may be retried."""

    code = "UNAVAILABLE"


class DeadlineExceeded(OdinError):
    """The call did not finish within its deadline."""

    code = "DEADLINE_EXCEEDED"


class Unimplemented(OdinError):
    code = "UNIMPLEMENTED"


class ConfigurationError(OdinError):
    """The client could not be set up (no address, unreadable token file); nothing was sent."""

    code = "FAILED_PRECONDITION"


_BY_CODE: dict[str, type[OdinError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument, NotFound, AlreadyExists, FailedPrecondition, Aborted, Unauthenticated,
        PermissionDenied, ResourceExhausted, Unavailable, DeadlineExceeded, Unimplemented,
    )
}


def from_rpc_error(error: grpc.RpcError) -> OdinError:
    """The typed error for a failed call (sync `grpc.RpcError` or `grpc.aio.AioRpcError`)."""
    code: str = error.code().name if error.code() is not None else "UNKNOWN"
    message: str = error.details() or code
    status = _rich_status(error)
    reason, metadata, violations = "", {}, []
    if status is not None:
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            bad = error_details_pb2.BadRequest()
            if detail.Unpack(info):
                reason, metadata = info.reason, dict(info.metadata)
            elif detail.Unpack(bad):
                violations = [FieldViolation(v.field, v.description) for v in bad.field_violations]
    cls = _BY_CODE.get(code, OdinError)
    return cls(message, code=code, reason=reason, metadata=metadata, violations=violations)


def _rich_status(error: grpc.RpcError) -> status_pb2.Status | None:
    try:
        status: status_pb2.Status | None = rpc_status.from_call(error)
    except (ValueError, AttributeError, TypeError):
        return None  # a trailer that disagrees with the status (a proxy rewrote it): keep the plain status
    return status
