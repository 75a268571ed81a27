"""Projects and their members: the domain rules. Imports no grpc.

The caller's role in a project is read from the store (not the token), so the auth service
itself never acts on a stale membership. Non-members get NOT_FOUND (no existence leak);
members below the needed role PERMISSION_DENIED; global admins manage everything, project
admins their project's members. `default` always exists and cannot be deleted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from odin.runtime.errors import FailedPrecondition, InvalidArgument, NotFound
from odin.runtime.projects import DEFAULT_PROJECT, require_project_role
from odin.runtime.tokens import Identity, Role
from odin_auth.store import MemberRow, ProjectRow, Store, UserRow, project_not_found

log = logging.getLogger("odin.auth")
T = TypeVar("T")
MEMBER_ROLES = (Role.VIEWER, Role.USER, Role.ADMIN)


class Projects:
    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    @staticmethod
    async def _bg(fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    async def require(self, caller: UserRow, project: str, role: Role) -> Role:
        """The caller's current role in `project`, or NOT_FOUND / PERMISSION_DENIED."""
        if await self._bg(self.store.get_project, project) is None:
            raise project_not_found(project)
        member = await self._bg(self.store.member_role, project, caller.username)
        identity = Identity(caller.username, Role(caller.role),
                            projects={project: Role(member)} if member is not None else {})
        return require_project_role(identity, project, role, not_found=project_not_found(project))

    async def create(self, project: str, display_name: str, description: str, by: str) -> ProjectRow:
        row = ProjectRow(project, display_name, description, self.clock(), 1)
        await self._bg(self.store.insert_project, row)
        log.info("project created", extra={"project": project, "by": by})
        return row

    async def get(self, caller: UserRow, project: str) -> tuple[ProjectRow, Role]:
        role = await self.require(caller, project, Role.VIEWER)
        row = await self._bg(self.store.get_project, project)
        if row is None:  # deleted in between
            raise project_not_found(project)
        return row, role

    async def listing(self, caller: UserRow, after: str, limit: int) -> list[tuple[ProjectRow, Role]]:
        admin = caller.role == Role.ADMIN
        rows = await self._bg(self.store.list_projects, after, limit, None if admin else caller.username)
        _, members = await self._bg(self.store.token_claims, caller.username)
        identity = Identity(caller.username, Role(caller.role), projects={p: Role(r) for p, r in members.items()})
        return [(row, identity.project_role(row.id)) for row in rows]

    async def update(self, caller: UserRow, project: str, changes: dict[str, str], revision: int | None
                     ) -> tuple[ProjectRow, Role]:
        role = await self.require(caller, project, Role.ADMIN)
        row = await self._bg(self.store.update_project, project, changes, revision)
        log.info("project updated", extra={"project": project, "fields": sorted(changes), "by": caller.username})
        return row, role

    async def delete(self, caller: UserRow, project: str, revision: int | None) -> None:
        if project == DEFAULT_PROJECT:
            raise FailedPrecondition("the default project cannot be deleted", reason="DEFAULT_PROJECT",
                                     metadata={"project": f"projects/{project}"})
        await self._bg(self.store.delete_project, project, revision)
        log.info("project deleted", extra={"project": project, "by": caller.username})

    async def set_member(self, caller: UserRow, project: str, username: str, role: Role) -> MemberRow:
        await self.require(caller, project, Role.ADMIN)
        user = await self._bg(self.store.get_user, username)
        if user is None:
            raise NotFound(f"user users/{username} does not exist", reason="USER_NOT_FOUND",
                           metadata={"user": f"users/{username}"})
        if user.role == Role.SERVICE:
            raise InvalidArgument.field("member.user", "the service robot cannot be a project member")
        if not await self._bg(self.store.set_member, project, username, int(role)):
            raise NotFound(f"user users/{username} does not exist", reason="USER_NOT_FOUND",
                           metadata={"user": f"users/{username}"})
        log.info("project member set", extra={"project": project, "user": username, "role": role.name.lower(),
                                              "by": caller.username})
        return MemberRow(project, username, int(role))

    async def remove_member(self, caller: UserRow, project: str, username: str) -> None:
        await self.require(caller, project, Role.ADMIN)
        if not await self._bg(self.store.remove_member, project, username):
            raise NotFound(f"projects/{project}/members/{username} does not exist", reason="MEMBER_NOT_FOUND",
                           metadata={"member": f"projects/{project}/members/{username}"})
        log.info("project member removed", extra={"project": project, "user": username, "by": caller.username})

    async def members(self, caller: UserRow, project: str, after: str, limit: int) -> list[MemberRow]:
        await self.require(caller, project, Role.VIEWER)
        return await self._bg(self.store.list_members, project, after, limit)

