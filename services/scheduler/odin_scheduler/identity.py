"""Who is calling: the one place the scheduler asks the auth context."""

from __future__ import annotations

from dataclasses import dataclass

ANONYMOUS = "users/anonymous"


@dataclass(frozen=True)
class Caller:
    name: str  # users/{user}
    admin: bool = False


def current_caller() -> Caller:
    """The caller of the RPC being handled (anonymous outside an authenticated call)."""
    # Imported here: the auth context pulls in grpc and JWT, which the embedded engine (odin.engine) never needs.
    from odin.runtime.auth import current_identity
    from odin.runtime.errors import Unauthenticated
    from odin.runtime.tokens import Role

    try:
        identity = current_identity()
    except Unauthenticated:
        return Caller(ANONYMOUS)
    return Caller(identity.name, identity.has(Role.ADMIN))
