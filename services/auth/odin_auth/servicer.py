"""AuthService over gRPC: unpack the request, call the domain (odin_auth.core), pack the answer."""

from __future__ import annotations

from typing import Any

from odin.auth.v1 import auth_pb2 as pb
from odin.auth.v1 import auth_pb2_grpc as pb_grpc
from odin.runtime import paging
from odin.runtime.auth import ProjectRole, Rule, current_identity
from odin.runtime.client_address import client_address
from odin.runtime.errors import InvalidArgument
from odin.runtime.projects import project_id
from odin.runtime.timestamps import from_seconds
from odin.runtime.tokens import Identity, Role, public_jwk
from odin_auth.core import AuthCore, TokenPair, validate_profile, validate_username
from odin_auth.passwords import validate_new_password
from odin_auth.projects import MEMBER_ROLES, Projects
from odin_auth.store import ApiTokenRow, MemberRow, ProjectRow, UserRow

# The least role each RPC needs (odin.runtime.auth enforces it). Handlers add the finer rule
# "admins act on anyone, others only on themselves" where the comment in auth.proto says so.
ROLES: dict[str, Rule] = {
    "Login": Role.ANONYMOUS,
    "RefreshToken": Role.ANONYMOUS,
    "Logout": Role.ANONYMOUS,
    "ExchangeApiToken": Role.ANONYMOUS,
    "GetJwks": Role.ANONYMOUS,
    "GetUser": Role.VIEWER,
    "UpdateUser": Role.VIEWER,
    "ChangePassword": Role.VIEWER,
    "CreateApiToken": Role.VIEWER,
    "ListApiTokens": Role.VIEWER,
    "RevokeApiToken": Role.VIEWER,
    "CreateUser": Role.ADMIN,
    "ListUsers": Role.ADMIN,
    "DeleteUser": Role.ADMIN,
    "CreateProject": Role.ADMIN,
    "GetProject": ProjectRole(Role.VIEWER),
    "ListProjects": Role.VIEWER,
    "UpdateProject": ProjectRole(Role.ADMIN),
    "DeleteProject": Role.ADMIN,
    "SetProjectMember": ProjectRole(Role.ADMIN),
    "RemoveProjectMember": ProjectRole(Role.ADMIN),
    "ListProjectMembers": ProjectRole(Role.VIEWER),
    "ListTokenRevocations": Role.ADMIN,  # and the robot (SERVICE_CALLS)
}
UPDATABLE = ("display_name", "email", "role", "disabled")
PROJECT_UPDATABLE = ("display_name", "description")
PAGE_DEFAULT, PAGE_MAX = 50, 500
PROJECT_PAGE_DEFAULT, PROJECT_PAGE_MAX = 100, 1000
FEED_PAGE_DEFAULT, FEED_PAGE_MAX = 1000, 10_000


class AuthServicer(pb_grpc.AuthServiceServicer):
    def __init__(self, core: AuthCore, *, trusted_proxy_hops: int = 0) -> None:
        self.core = core
        self.projects = Projects(core.store, core.clock)
        self.trusted_proxy_hops = trusted_proxy_hops

    async def Login(self, request: pb.LoginRequest, context: Any) -> pb.LoginResponse:
        _require(("username", request.username), ("password", request.password))
        tokens, user = await self.core.login(request.username, request.password,
                                             client_address(context, self.trusted_proxy_hops))
        return pb.LoginResponse(tokens=_pair(tokens), user=_user(user))

    async def RefreshToken(self, request: pb.RefreshTokenRequest, context: Any) -> pb.RefreshTokenResponse:
        _require(("refresh_token", request.refresh_token))
        return pb.RefreshTokenResponse(tokens=_pair(await self.core.refresh(request.refresh_token)))

    async def Logout(self, request: pb.LogoutRequest, context: Any) -> pb.LogoutResponse:
        _require(("refresh_token", request.refresh_token))
        await self.core.logout(request.refresh_token)
        return pb.LogoutResponse()

    async def ExchangeApiToken(self, request: pb.ExchangeApiTokenRequest, context: Any) -> pb.ExchangeApiTokenResponse:
        _require(("api_token", request.api_token))
        token, expires = await self.core.exchange_api_token(request.api_token)
        return pb.ExchangeApiTokenResponse(access_token=token, access_token_expire_time=from_seconds(expires),
                                           token_type="Bearer")

    async def GetJwks(self, request: pb.GetJwksRequest, context: Any) -> pb.GetJwksResponse:
        keys = [pb.JsonWebKey(**public_jwk(key, kid)) for kid, key in self.core.keys.public_keys()]
        return pb.GetJwksResponse(keys=keys)

    async def CreateUser(self, request: pb.CreateUserRequest, context: Any) -> pb.CreateUserResponse:
        await self._caller()
        user = request.user
        _collect(lambda: validate_username(user.username, "user.username"),
                 lambda: validate_new_password(request.password, "password"),
                 lambda: validate_profile(user.display_name, user.email, "user"),
                 lambda: _check_role(user.role, "user.role"))
        role = Role(user.role) if user.role else Role.USER
        created = await self.core.create_user(user.username, user.display_name, user.email, role, request.password)
        return pb.CreateUserResponse(user=_user(created))

    async def GetUser(self, request: pb.GetUserRequest, context: Any) -> pb.GetUserResponse:
        caller = await self._caller()
        username = self.core.resolve(caller, _username(request.name, "name"))
        self.core.require_self_or_admin(caller, username)
        return pb.GetUserResponse(user=_user(await self.core.get_user(username)))

    async def ListUsers(self, request: pb.ListUsersRequest, context: Any) -> pb.ListUsersResponse:
        await self._caller()
        size = paging.page_size(request.page_size, default=PAGE_DEFAULT, maximum=PAGE_MAX)
        position = paging.decode_token(request.page_token) or {"after": ""}
        rows = await self.core.list_users(str(position.get("after", "")), size + 1)
        token = paging.encode_token({"after": rows[size - 1].username}) if len(rows) > size else ""
        return pb.ListUsersResponse(users=[_user(r) for r in rows[:size]], next_page_token=token)

    async def UpdateUser(self, request: pb.UpdateUserRequest, context: Any) -> pb.UpdateUserResponse:
        caller = await self._caller()
        username = self.core.resolve(caller, _username(request.user.name, "user.name"))
        self.core.require_self_or_admin(caller, username)
        changes = _changes(request)
        updated = await self.core.update_user(caller, username, changes, _revision(request.user.etag, "user.etag"))
        return pb.UpdateUserResponse(user=_user(updated))

    async def DeleteUser(self, request: pb.DeleteUserRequest, context: Any) -> pb.DeleteUserResponse:
        caller = await self._caller()
        username = _username(request.name, "name")
        await self.core.delete_user(caller, username, _revision(request.etag, "etag"))
        return pb.DeleteUserResponse()

    async def ChangePassword(self, request: pb.ChangePasswordRequest, context: Any) -> pb.ChangePasswordResponse:
        caller = await self._caller()
        username = self.core.resolve(caller, _username(request.name, "name"))
        _require(("new_password", request.new_password))
        await self.core.change_password(caller, username, request.current_password, request.new_password)
        return pb.ChangePasswordResponse()

    async def CreateApiToken(self, request: pb.CreateApiTokenRequest, context: Any) -> pb.CreateApiTokenResponse:
        caller = await self._caller()
        username = self.core.resolve(caller, _username(request.parent, "parent"))
        self.core.require_self_or_admin(caller, username)
        spec = request.api_token
        expires = spec.expire_time.ToNanoseconds() / 1e9 if spec.HasField("expire_time") else None
        new = await self.core.create_api_token(username, spec.display_name, expires)
        message = _api_token(new.row)
        message.token = new.secret
        return pb.CreateApiTokenResponse(api_token=message)

    async def ListApiTokens(self, request: pb.ListApiTokensRequest, context: Any) -> pb.ListApiTokensResponse:
        caller = await self._caller()
        username = self.core.resolve(caller, _username(request.parent, "parent"))
        self.core.require_self_or_admin(caller, username)
        size = paging.page_size(request.page_size, default=PAGE_DEFAULT, maximum=PAGE_MAX)
        position = paging.decode_token(request.page_token, {"parent": username})
        before = (float(position["t"]), str(position["i"])) if position else None
        rows = await self.core.list_api_tokens(username, before, size + 1)
        last = rows[size - 1] if len(rows) > size else None
        token = paging.encode_token({"t": last.create_time, "i": last.id}, {"parent": username}) if last else ""
        return pb.ListApiTokensResponse(api_tokens=[_api_token(r) for r in rows[:size]], next_page_token=token)

    async def RevokeApiToken(self, request: pb.RevokeApiTokenRequest, context: Any) -> pb.RevokeApiTokenResponse:
        caller = await self._caller()
        username, token_id = _token_name(request.name)
        username = self.core.resolve(caller, username)
        self.core.require_self_or_admin(caller, username)
        return pb.RevokeApiTokenResponse(api_token=_api_token(await self.core.revoke_api_token(username, token_id)))

    # ---- projects

    async def CreateProject(self, request: pb.CreateProjectRequest, context: Any) -> pb.CreateProjectResponse:
        caller = await self._caller()
        _require(("project_id", request.project_id))
        project = project_id(request.project_id, "project_id")
        _collect(lambda: _check_project_text(request.project.display_name, request.project.description, "project"))
        row = await self.projects.create(project, request.project.display_name, request.project.description,
                                         caller.username)
        return pb.CreateProjectResponse(project=_project(row, Role.ADMIN))

    async def GetProject(self, request: pb.GetProjectRequest, context: Any) -> pb.GetProjectResponse:
        user = await self._caller_row()
        row, role = await self.projects.get(user, _project_name(request.name, "name"))
        return pb.GetProjectResponse(project=_project(row, role))

    async def ListProjects(self, request: pb.ListProjectsRequest, context: Any) -> pb.ListProjectsResponse:
        user = await self._caller_row()
        size = paging.page_size(request.page_size, default=PROJECT_PAGE_DEFAULT, maximum=PROJECT_PAGE_MAX)
        position = paging.decode_token(request.page_token, {"user": user.username}) or {"after": ""}
        found = await self.projects.listing(user, str(position.get("after", "")), size + 1)
        token = paging.encode_token({"after": found[size - 1][0].id}, {"user": user.username}) \
            if len(found) > size else ""
        return pb.ListProjectsResponse(projects=[_project(row, role) for row, role in found[:size]],
                                       next_page_token=token)

    async def UpdateProject(self, request: pb.UpdateProjectRequest, context: Any) -> pb.UpdateProjectResponse:
        user = await self._caller_row()
        project = _project_name(request.project.name, "project.name")
        paths = list(request.update_mask.paths) or list(PROJECT_UPDATABLE)
        unknown = [p for p in paths if p not in PROJECT_UPDATABLE]
        if unknown:
            raise InvalidArgument.field("update_mask.paths", f"cannot change {', '.join(unknown)}; "
                                                             f"changeable: {', '.join(PROJECT_UPDATABLE)}")
        _check_project_text(request.project.display_name, request.project.description, "project")
        changes = {path: getattr(request.project, path) for path in paths}
        row, role = await self.projects.update(user, project, changes,
                                               _revision(request.project.etag, "project.etag"))
        return pb.UpdateProjectResponse(project=_project(row, role))

    async def DeleteProject(self, request: pb.DeleteProjectRequest, context: Any) -> pb.DeleteProjectResponse:
        user = await self._caller_row()
        await self.projects.delete(user, _project_name(request.name, "name"), _revision(request.etag, "etag"))
        return pb.DeleteProjectResponse()

    async def SetProjectMember(self, request: pb.SetProjectMemberRequest, context: Any
                               ) -> pb.SetProjectMemberResponse:
        user = await self._caller_row()
        project = _project_name(request.project, "project")
        _collect(lambda: _username(request.member.user, "member.user"),
                 lambda: _check_member_role(request.member.role))
        member = await self.projects.set_member(user, project, _username(request.member.user, "member.user"),
                                                Role(request.member.role))
        return pb.SetProjectMemberResponse(member=_member(member))

    async def RemoveProjectMember(self, request: pb.RemoveProjectMemberRequest, context: Any
                                  ) -> pb.RemoveProjectMemberResponse:
        user = await self._caller_row()
        project, username = _member_name(request.name)
        await self.projects.remove_member(user, project, username)
        return pb.RemoveProjectMemberResponse()

    async def ListProjectMembers(self, request: pb.ListProjectMembersRequest, context: Any
                                 ) -> pb.ListProjectMembersResponse:
        user = await self._caller_row()
        project = _project_name(request.parent, "parent")
        size = paging.page_size(request.page_size, default=PROJECT_PAGE_DEFAULT, maximum=PROJECT_PAGE_MAX)
        position = paging.decode_token(request.page_token, {"parent": project}) or {"after": ""}
        rows = await self.projects.members(user, project, str(position.get("after", "")), size + 1)
        token = paging.encode_token({"after": rows[size - 1].username}, {"parent": project}) \
            if len(rows) > size else ""
        return pb.ListProjectMembersResponse(members=[_member(r) for r in rows[:size]], next_page_token=token)

    # ---- the revocation feed

    async def ListTokenRevocations(self, request: pb.ListTokenRevocationsRequest, context: Any
                                   ) -> pb.ListTokenRevocationsResponse:
        await self._caller()
        if request.after_seq < 0:
            raise InvalidArgument.field("after_seq", "must not be negative")
        size = paging.page_size(request.page_size, default=FEED_PAGE_DEFAULT, maximum=FEED_PAGE_MAX)
        rows, latest = await self.core.list_revocations(request.after_seq, size)
        return pb.ListTokenRevocationsResponse(
            revocations=[pb.TokenRevocation(user=f"users/{r.username}", min_token_version=r.min_version, seq=r.seq)
                         for r in rows], latest_seq=latest)

    async def _caller(self) -> Identity:
        identity = current_identity()
        await self.core.caller(identity)
        return identity

    async def _caller_row(self) -> UserRow:
        return await self.core.caller(current_identity())


# ---- request checks ---------------------------------------------------------------------


def _require(*fields: tuple[str, str]) -> None:
    missing = [(name, "is required") for name, value in fields if not value]
    if missing:
        raise InvalidArgument("; ".join(f"{f}: {d}" for f, d in missing), missing)


def _collect(*checks: Any) -> None:
    """Runs every check and reports all their field violations together."""
    violations: list[tuple[str, str]] = []
    for check in checks:
        try:
            check()
        except InvalidArgument as exc:
            violations.extend(exc.violations)
    if violations:
        raise InvalidArgument("; ".join(f"{f}: {d}" for f, d in violations), violations)


def _username(name: str, field: str) -> str:
    if not name.startswith("users/"):
        raise InvalidArgument.field(field, "must look like users/{username} (users/me is the caller)")
    username = name.removeprefix("users/")
    if username != "me":
        validate_username(username, field)
    return username


def _token_name(name: str) -> tuple[str, str]:
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "users" or parts[2] != "apiTokens" or not parts[3]:
        raise InvalidArgument.field("name", "must look like users/{username}/apiTokens/{token}")
    return _username(f"users/{parts[1]}", "name"), parts[3]


def _revision(etag: str, field: str) -> int | None:
    if not etag:
        return None
    if not etag.isdigit():
        raise InvalidArgument.field(field, "is not an etag this service returned")
    return int(etag)


def _changes(request: pb.UpdateUserRequest) -> dict[str, Any]:
    paths = list(request.update_mask.paths)
    if not paths:
        raise InvalidArgument.field("update_mask", f"must name the fields to change: {', '.join(UPDATABLE)}")
    unknown = [p for p in paths if p not in UPDATABLE]
    if unknown:
        raise InvalidArgument.field("update_mask.paths", f"cannot change {', '.join(unknown)}; "
                                                         f"changeable: {', '.join(UPDATABLE)}")
    user = request.user
    if "display_name" in paths or "email" in paths:
        validate_profile(user.display_name, user.email if "email" in paths else "", "user")
    if "role" in paths:
        _check_role(user.role, "user.role", allow_unset=False)
    values = {"display_name": user.display_name, "email": user.email, "role": user.role,
              "disabled": user.disabled}
    return {path: values[path] for path in paths}


def _check_role(role: int, field: str, *, allow_unset: bool = True) -> None:
    if role not in (Role.VIEWER, Role.USER, Role.ADMIN) and not (allow_unset and role == 0):
        raise InvalidArgument.field(field, "must be ROLE_VIEWER, ROLE_USER or ROLE_ADMIN")


def _project_name(name: str, field: str) -> str:
    if not name.startswith("projects/"):
        raise InvalidArgument.field(field, "must look like projects/{project}")
    return project_id(name, field)


def _member_name(name: str) -> tuple[str, str]:
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "projects" or parts[2] != "members":
        raise InvalidArgument.field("name", "must look like projects/{project}/members/{username}")
    return project_id(parts[1], "name"), _username(f"users/{parts[3]}", "name")


def _check_member_role(role: int) -> None:
    if role not in MEMBER_ROLES:
        raise InvalidArgument.field("member.role", "must be ROLE_VIEWER, ROLE_USER or ROLE_ADMIN")


def _check_project_text(display_name: str, description: str, prefix: str) -> None:
    problems = []
    if len(display_name) > 200:
        problems.append((f"{prefix}.display_name", "must be at most 200 characters"))
    if len(description) > 2000:
        problems.append((f"{prefix}.description", "must be at most 2000 characters"))
    if problems:
        raise InvalidArgument("; ".join(f"{f}: {d}" for f, d in problems), problems)


# ---- packing ----------------------------------------------------------------------------


def _pair(tokens: TokenPair) -> pb.TokenPair:
    return pb.TokenPair(access_token=tokens.access_token,
                        access_token_expire_time=from_seconds(tokens.access_expire_time),
                        refresh_token=tokens.refresh_token,
                        refresh_token_expire_time=from_seconds(tokens.refresh_expire_time), token_type="Bearer")


def _user(row: UserRow) -> pb.User:
    return pb.User(name=f"users/{row.username}", username=row.username, display_name=row.display_name,
                   email=row.email, role=pb.User.Role.ValueType(row.role), disabled=row.disabled,
                   create_time=from_seconds(row.create_time),
                   update_time=from_seconds(row.update_time), etag=str(row.revision))


def _api_token(row: ApiTokenRow) -> pb.ApiToken:
    message = pb.ApiToken(name=f"users/{row.username}/apiTokens/{row.id}", display_name=row.display_name,
                          create_time=from_seconds(row.create_time))
    for field, value in (("expire_time", row.expire_time), ("last_use_time", row.last_use_time),
                         ("revoke_time", row.revoke_time)):
        if value is not None:
            getattr(message, field).CopyFrom(from_seconds(value))
    return message


def _project(row: ProjectRow, role: Role) -> pb.Project:
    return pb.Project(name=f"projects/{row.id}", display_name=row.display_name, description=row.description,
                      create_time=from_seconds(row.create_time), caller_role=pb.User.Role.ValueType(role),
                      etag=str(row.revision))


def _member(row: MemberRow) -> pb.ProjectMember:
    return pb.ProjectMember(name=f"projects/{row.project}/members/{row.username}", user=f"users/{row.username}",
                            role=pb.User.Role.ValueType(row.role))
