"""Domain errors and their one mapping to gRPC statuses with `google.rpc` details.

Handlers raise these plain exceptions (no grpc import needed in domain code); the error
interceptor turns them into a status code, an `ErrorInfo` with a stable UPPER_SNAKE reason,
and for invalid arguments a `BadRequest` with one field violation per problem.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

ERROR_DOMAIN = "odin"


class OdinError(Exception):
    """Base of every error a client may see. `code` is a google.rpc.Code name."""

    code = "INTERNAL"
    default_reason = "INTERNAL"

    def __init__(self, message: str, *, reason: str | None = None, metadata: Mapping[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata = dict(metadata or {})


class InvalidArgument(OdinError):
    """The request is malformed; `violations` name each bad field."""

    code = "INVALID_ARGUMENT"
    default_reason = "INVALID_ARGUMENT"

    def __init__(
        self,
        message: str,
        violations: Iterable[tuple[str, str]] = (),
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ):
        super().__init__(message, reason=reason, metadata=metadata)
        self.violations = list(violations)

    @classmethod
    def field(cls, field: str, description: str) -> InvalidArgument:
        """One bad field; the message repeats it for humans."""
        return cls(f"{field}: {description}", [(field, description)])


class NotFound(OdinError):
    code = "NOT_FOUND"
    default_reason = "NOT_FOUND"


class AlreadyExists(OdinError):
    code = "ALREADY_EXISTS"
    default_reason = "ALREADY_EXISTS"


class FailedPrecondition(OdinError):
    code = "FAILED_PRECONDITION"
    default_reason = "FAILED_PRECONDITION"


class Aborted(OdinError):
    """A concurrent change won (stale etag or revision); re-read and retry."""

    code = "ABORTED"
    default_reason = "ABORTED"


class Unauthenticated(OdinError):
    code = "UNAUTHENTICATED"
    default_reason = "UNAUTHENTICATED"


class PermissionDenied(OdinError):
    code = "PERMISSION_DENIED"
    default_reason = "PERMISSION_DENIED"


class ResourceExhausted(OdinError):
    code = "RESOURCE_EXHAUSTED"
    default_reason = "RESOURCE_EXHAUSTED"


class Unavailable(OdinError):
    """A dependency is down; the call may be retried."""

    code = "UNAVAILABLE"
    default_reason = "UNAVAILABLE"


class Unimplemented(OdinError):
    code = "UNIMPLEMENTED"
    default_reason = "UNIMPLEMENTED"


def to_status(error: OdinError) -> status_pb2.Status:
    """Builds the `google.rpc.Status` sent in the `grpc-status-details-bin` trailer."""
    details = [error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata)]
    if isinstance(error, InvalidArgument) and error.violations:
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=f, description=d) for f, d in error.violations
                ]
            )
        )
    packed = []
    for detail in details:
        holder = any_pb2.Any()
        holder.Pack(detail)
        packed.append(holder)
    return status_pb2.Status(code=code_pb2.Code.Value(error.code), message=error.message, details=packed)
