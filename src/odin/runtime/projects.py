"""Projects: the unit of ownership. Every job, schedule and stored pipeline belongs to one.

A caller's role in a project comes from their token (`Identity.project_role`). Services check
it in their handlers with `require_project_role` once they know which project a request
touches; the interceptor has already pre-checked the caller's best role (see
`odin.runtime.auth.ProjectRole`). A caller who is not a member gets NOT_FOUND, so existence
does not leak; a member whose role is too low gets PERMISSION_DENIED.
"""

from __future__ import annotations

import re

from odin.runtime.errors import InvalidArgument, NotFound, PermissionDenied
from odin.runtime.tokens import DEFAULT_PROJECT, Identity, Role

__all__ = ["DEFAULT_PROJECT", "PROJECT_ID", "check_role", "project_id", "project_name", "require_project_role"]

PROJECT_ID = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_PREFIX = "projects/"


def project_id(value: str, field: str = "project", *, default: str = DEFAULT_PROJECT) -> str:
    """The project id of `projects/{project}` or a bare id; `default` when empty."""
    if not value:
        return default
    bare = value.removeprefix(_PREFIX)
    if not PROJECT_ID.match(bare):
        raise InvalidArgument.field(field, "must be `projects/{project}` or a project id: 1-63 characters of a-z, "
                                           "0-9, '-', starting with a letter")
    return bare


def project_name(project: str) -> str:
    """The resource name of a project id."""
    return f"{_PREFIX}{project}"


def require_project_role(identity: Identity, project: str, required: Role, *, not_found: NotFound | None = None
                         ) -> Role:
    """The caller's role in `project`, or NOT_FOUND (not a member: `not_found`, or the project's
    own not-found) / PERMISSION_DENIED (a member without `required`)."""
    return check_role(identity.project_role(project), project, required, not_found=not_found)


def check_role(role: Role, project: str, required: Role, *, not_found: NotFound | None = None) -> Role:
    """`role` (a caller's role in `project`) if it is at least `required`; else NOT_FOUND for a non-member,
    PERMISSION_DENIED for a member below `required`."""
    if role < Role.VIEWER:
        raise not_found or NotFound(f"project {project!r} does not exist", reason="PROJECT_NOT_FOUND",
                                    metadata={"project": project_name(project)})
    if role < required:
        raise PermissionDenied(f"this needs the {required.name.lower()} role in project {project!r}",
                               reason="PROJECT_ROLE_REQUIRED",
                               metadata={"project": project_name(project), "required_role": required.name.lower()})
    return role
