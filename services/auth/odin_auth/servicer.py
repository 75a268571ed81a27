"""AuthService over gRPC: unpack the request, call the domain (odin_auth.core), pack the answer."""

from __future__ import annotations

from typing import Any

from odin.auth.v1 import auth_pb2 as pb
from odin.auth.v1 import auth_pb2_grpc as pb_grpc
from odin.runtime import paging
from odin.runtime.auth import current_identity
from odin.runtime.errors import InvalidArgument
from odin.runtime.timestamps import from_seconds
from odin.runtime.tokens import Identity, Role, public_jwk
from odin_auth.core import AuthCore, TokenPair, validate_profile, validate_username
from odin_auth.passwords import validate_new_password
from odin_auth.store import ApiTokenRow, UserRow

# The least role each RPC needs (odin.runtime.auth enforces it). Handlers add the finer rule
# "admins act on anyone, others only on themselves" where the comment in auth.proto says so.
ROLES: dict[str, Role] = {
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
}
UPDATABLE = ("display_name", "email", "role", "disabled")
PAGE_DEFAULT, PAGE_MAX = 50, 500


class AuthServicer(pb_grpc.AuthServiceServicer):
    def __init__(self, core: AuthCore) -> None:
        self.core = core

    async def Login(self, request: pb.LoginRequest, context: Any) -> pb.LoginResponse:
        _require(("username", request.username), ("password", request.password))
        tokens, user = await self.core.login(request.username, request.password, _client(context))
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

    async def _caller(self) -> Identity:
        identity = current_identity()
        await self.core.caller(identity)
        return identity


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


def _client(context: Any) -> str:
    """The caller's address without the port, e.g. `ipv4:127.0.0.1`."""
    peer = str(context.peer() or "unknown")
    return peer.rsplit(":", 1)[0] if peer.count(":") > 1 else peer


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
