"""Who is calling and what they may do in a project: the one place the scheduler asks the auth context."""

from __future__ import annotations

from dataclasses import dataclass

from odin.runtime.errors import NotFound
from odin.runtime.projects import check_role
from odin.runtime.tokens import DEFAULT_PROJECT, Identity, Role

ANONYMOUS = "users/anonymous"

__all__ = ["ANONYMOUS", "DEFAULT_PROJECT", "Caller", "current_caller"]


@dataclass(frozen=True)
class Caller:
    """`identity` is the verified token; None for the embedded engine (then `admin` says everything)."""

    name: str  # users/{user}
    admin: bool = False
    identity: Identity | None = None

    def role_in(self, project: str) -> Role:
        """The caller's role in `project` (ANONYMOUS: not a member)."""
        if self.admin:
            return Role.ADMIN
        return self.identity.project_role(project) if self.identity is not None else Role.ANONYMOUS

    def visible_projects(self) -> frozenset[str] | None:
        """Projects whose jobs the caller may read; None means all of them."""
        if self.admin:
            return None
        return self.identity.visible_projects() if self.identity is not None else frozenset()

    def require(self, project: str, role: Role, not_found: NotFound) -> Role:
        """The caller's role in `project`; `not_found` for a non-member (no existence leak), PERMISSION_DENIED
        for a member below `role`."""
        return check_role(self.role_in(project), project, role, not_found=not_found)


def current_caller() -> Caller:
    """The caller of the RPC being handled (anonymous, a member of nothing, outside an authenticated call)."""
    # Imported here: the auth context pulls in grpc, which the embedded engine (odin.engine) never needs.
    from odin.runtime.auth import current_identity
    from odin.runtime.errors import Unauthenticated

    try:
        identity = current_identity()
    except Unauthenticated:
        return Caller(ANONYMOUS)
    return Caller(identity.name, identity.has(Role.ADMIN), identity)
