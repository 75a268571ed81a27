"""AuthService end to end against a real odin-auth process, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import grpc
import jwt
import pytest
from auth_helpers import ADMIN, AuthService, failure
from google.protobuf import field_mask_pb2, timestamp_pb2
from support.waiting import assert_eventually

from odin.auth.v1 import auth_pb2 as pb
from odin.runtime.tokens import keys_from_jwks

C = grpc.StatusCode


def fails(call: Callable[[], Any]) -> dict[str, object]:
    with pytest.raises(grpc.RpcError) as error:
        call()
    return failure(error.value)


def claims_of(service: AuthService, token: str) -> dict[str, Any]:
    """Verifies `token` with the published JWKS, as any other service would."""
    jwks = json.loads(json.dumps({"keys": [
        {"kty": k.kty, "crv": k.crv, "x": k.x, "kid": k.kid} for k in service.stub().GetJwks(pb.GetJwksRequest()).keys
    ]}))
    kid = jwt.get_unverified_header(token)["kid"]
    decoded: dict[str, Any] = jwt.decode(token, keys_from_jwks(jwks)[kid], algorithms=["EdDSA"], audience="odin",
                                         issuer="odin-auth")
    return decoded


def test_bootstrap_admin_logs_in_with_a_verifiable_token(auth_service: AuthService) -> None:
    reply = auth_service.login(ADMIN, auth_service.admin_password)
    assert reply.user.role == pb.User.ROLE_ADMIN and reply.tokens.token_type == "Bearer"
    claims = claims_of(auth_service, reply.tokens.access_token)
    assert claims["sub"] == f"users/{ADMIN}" and claims["role"] == "admin"
    assert 0 < claims["exp"] - time.time() <= 600 + 5
    me = auth_service.stub(reply.tokens.access_token).GetUser(pb.GetUserRequest(name="users/me"))
    assert me.user.name == f"users/{ADMIN}"


def test_a_bad_login_says_nothing_about_the_user(auth_service: AuthService) -> None:
    name, _, _ = auth_service.new_user()
    wrong = fails(lambda: auth_service.login(name, "not-the-password"))
    unknown = fails(lambda: auth_service.login("nobody-here", "not-the-password"))
    assert wrong == unknown == {"code": C.UNAUTHENTICATED, "reason": "LOGIN_FAILED"}


def test_refresh_rotates_and_a_reused_token_revokes_the_session(auth_service: AuthService) -> None:
    name, password, _ = auth_service.new_user()
    first = auth_service.login(name, password).tokens
    stub = auth_service.stub()
    second = stub.RefreshToken(pb.RefreshTokenRequest(refresh_token=first.refresh_token)).tokens
    assert second.refresh_token != first.refresh_token
    assert claims_of(auth_service, second.access_token)["sid"] == claims_of(auth_service, first.access_token)["sid"]
    third = stub.RefreshToken(pb.RefreshTokenRequest(refresh_token=second.refresh_token)).tokens
    # An attacker replays the first token: refused, and the whole session (third too) dies.
    assert fails(lambda: stub.RefreshToken(pb.RefreshTokenRequest(refresh_token=first.refresh_token)))["code"] \
        == C.UNAUTHENTICATED
    assert fails(lambda: stub.RefreshToken(pb.RefreshTokenRequest(refresh_token=third.refresh_token)))["reason"] \
        == "REFRESH_TOKEN_INVALID"
    other = auth_service.login(name, password).tokens  # other sessions are untouched
    stub.RefreshToken(pb.RefreshTokenRequest(refresh_token=other.refresh_token))


def test_logout_ends_the_session(auth_service: AuthService) -> None:
    name, password, _ = auth_service.new_user()
    tokens = auth_service.login(name, password).tokens
    stub = auth_service.stub()
    stub.Logout(pb.LogoutRequest(refresh_token=tokens.refresh_token))
    assert fails(lambda: stub.RefreshToken(pb.RefreshTokenRequest(refresh_token=tokens.refresh_token)))["code"] \
        == C.UNAUTHENTICATED


def test_user_lifecycle_with_etags_and_paging(auth_service: AuthService) -> None:
    admin = auth_service.stub(auth_service.admin_token)
    names = sorted(auth_service.new_user(prefix="page")[0] for _ in range(3))
    user = admin.GetUser(pb.GetUserRequest(name=f"users/{names[0]}")).user
    assert user.role == pb.User.ROLE_USER and not user.disabled and user.etag
    mask = field_mask_pb2.FieldMask(paths=["display_name", "email", "role"])
    changed = admin.UpdateUser(pb.UpdateUserRequest(user=pb.User(
        name=user.name, display_name="Ada", email="ada@example.org", role=pb.User.ROLE_VIEWER, etag=user.etag),
        update_mask=mask)).user
    assert (changed.display_name, changed.email, changed.role) == ("Ada", "ada@example.org", pb.User.ROLE_VIEWER)
    assert changed.etag != user.etag
    stale = fails(lambda: admin.UpdateUser(pb.UpdateUserRequest(
        user=pb.User(name=user.name, display_name="Bob", etag=user.etag),
        update_mask=field_mask_pb2.FieldMask(paths=["display_name"]))))
    assert stale == {"code": C.ABORTED, "reason": "ETAG_MISMATCH"}
    seen: list[str] = []
    token = ""
    while True:
        page = admin.ListUsers(pb.ListUsersRequest(page_size=2, page_token=token))
        assert len(page.users) <= 2
        seen += [u.username for u in page.users]
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted(seen) and set(names) <= set(seen) and ADMIN in seen
    admin.DeleteUser(pb.DeleteUserRequest(name=user.name, etag=changed.etag))
    assert fails(lambda: admin.GetUser(pb.GetUserRequest(name=user.name)))["code"] == C.NOT_FOUND
    assert fails(lambda: admin.DeleteUser(pb.DeleteUserRequest(name=f"users/{ADMIN}")))["code"] \
        == C.FAILED_PRECONDITION


def test_bad_input_names_the_fields(auth_service: AuthService) -> None:
    admin = auth_service.stub(auth_service.admin_token)
    bad_create = fails(lambda: admin.CreateUser(pb.CreateUserRequest(
        user=pb.User(username="Bad Name!", email="nope", role=9), password="short")))
    assert bad_create == {"code": C.INVALID_ARGUMENT, "reason": "INVALID_ARGUMENT",
                          "fields": ["password", "user.email", "user.role", "user.username"]}
    assert fails(lambda: admin.GetUser(pb.GetUserRequest(name="people/x")))["fields"] == ["name"]
    assert fails(lambda: auth_service.stub().Login(pb.LoginRequest()))["fields"] == ["password", "username"]
    assert fails(lambda: admin.UpdateUser(pb.UpdateUserRequest(user=pb.User(name=f"users/{ADMIN}"))))["fields"] \
        == ["update_mask"]
    assert fails(lambda: admin.UpdateUser(pb.UpdateUserRequest(
        user=pb.User(name=f"users/{ADMIN}"), update_mask=field_mask_pb2.FieldMask(paths=["username"]))))["fields"] \
        == ["update_mask.paths"]
    assert fails(lambda: admin.ListUsers(pb.ListUsersRequest(page_size=-1)))["fields"] == ["page_size"]
    assert fails(lambda: admin.ListUsers(pb.ListUsersRequest(page_token="garbage!")))["fields"] == ["page_token"]
    assert fails(lambda: admin.CreateUser(pb.CreateUserRequest(
        user=pb.User(username=ADMIN), password="long-enough-password")))["reason"] == "USER_EXISTS"


def test_change_password_ends_other_sessions(auth_service: AuthService) -> None:
    name, password, _ = auth_service.new_user()
    mine = auth_service.login(name, password).tokens
    elsewhere = auth_service.login(name, password).tokens
    stub = auth_service.stub(mine.access_token)
    assert fails(lambda: stub.ChangePassword(pb.ChangePasswordRequest(
        name="users/me", current_password="wrong-password", new_password="a-new-password-1")))["code"] \
        == C.UNAUTHENTICATED
    stub.ChangePassword(pb.ChangePasswordRequest(name="users/me", current_password=password,
                                                 new_password="a-new-password-1"))
    plain = auth_service.stub()
    plain.RefreshToken(pb.RefreshTokenRequest(refresh_token=mine.refresh_token))  # this session lives on
    assert fails(lambda: plain.RefreshToken(pb.RefreshTokenRequest(refresh_token=elsewhere.refresh_token)))[
        "code"] == C.UNAUTHENTICATED
    assert fails(lambda: auth_service.login(name, password))["code"] == C.UNAUTHENTICATED
    auth_service.login(name, "a-new-password-1")


def test_api_tokens_are_shown_once_exchanged_and_revoked(auth_service: AuthService) -> None:
    name, _, access = auth_service.new_user(role=pb.User.ROLE_VIEWER)
    stub = auth_service.stub(access)
    created = stub.CreateApiToken(pb.CreateApiTokenRequest(parent="users/me", api_token=pb.ApiToken(
        display_name="ci"))).api_token
    assert created.token.startswith("odin_") and created.name.startswith(f"users/{name}/apiTokens/")
    listed = stub.ListApiTokens(pb.ListApiTokensRequest(parent="users/me")).api_tokens
    assert [t.name for t in listed] == [created.name] and listed[0].token == ""
    exchanged = auth_service.stub().ExchangeApiToken(pb.ExchangeApiTokenRequest(api_token=created.token))
    claims = claims_of(auth_service, exchanged.access_token)
    assert claims["sub"] == f"users/{name}" and claims["role"] == "viewer"
    # The API token works directly as a bearer on the auth service too.
    assert auth_service.stub(created.token).GetUser(pb.GetUserRequest(name="users/me")).user.username == name
    used = stub.ListApiTokens(pb.ListApiTokensRequest(parent="users/me")).api_tokens[0]
    assert used.HasField("last_use_time")
    revoked = stub.RevokeApiToken(pb.RevokeApiTokenRequest(name=created.name)).api_token
    assert revoked.HasField("revoke_time")
    assert fails(lambda: auth_service.stub().ExchangeApiToken(
        pb.ExchangeApiTokenRequest(api_token=created.token)))["code"] == C.UNAUTHENTICATED
    assert fails(lambda: auth_service.stub(created.token).GetUser(pb.GetUserRequest(name="users/me")))["code"] \
        == C.UNAUTHENTICATED


def test_api_tokens_expire(auth_service: AuthService) -> None:
    _, _, access = auth_service.new_user()
    stub = auth_service.stub(access)
    past = timestamp_pb2.Timestamp(seconds=int(time.time()) - 10)
    assert fails(lambda: stub.CreateApiToken(pb.CreateApiTokenRequest(parent="users/me", api_token=pb.ApiToken(
        expire_time=past))))["fields"] == ["api_token.expire_time"]
    soon = timestamp_pb2.Timestamp()
    soon.FromNanoseconds(int((time.time() + 1.5) * 1e9))
    token = stub.CreateApiToken(pb.CreateApiTokenRequest(parent="users/me", api_token=pb.ApiToken(
        expire_time=soon))).api_token.token
    reply = auth_service.stub().ExchangeApiToken(pb.ExchangeApiTokenRequest(api_token=token))
    assert reply.access_token_expire_time.seconds <= soon.seconds + 1

    def refused() -> bool:
        try:
            auth_service.stub().ExchangeApiToken(pb.ExchangeApiTokenRequest(api_token=token))
        except grpc.RpcError as error:
            return error.code() == C.UNAUTHENTICATED
        return False

    assert_eventually(refused, timeout=10, what="an expired API token is refused")


def test_a_disabled_user_is_locked_out_everywhere(auth_service: AuthService) -> None:
    name, password, access = auth_service.new_user()
    tokens = auth_service.login(name, password).tokens
    api = auth_service.stub(access).CreateApiToken(pb.CreateApiTokenRequest(
        parent="users/me", api_token=pb.ApiToken(display_name="x"))).api_token.token
    admin = auth_service.stub(auth_service.admin_token)
    admin.UpdateUser(pb.UpdateUserRequest(user=pb.User(name=f"users/{name}", disabled=True),
                                          update_mask=field_mask_pb2.FieldMask(paths=["disabled"])))
    plain = auth_service.stub()
    assert fails(lambda: auth_service.login(name, password))["code"] == C.UNAUTHENTICATED
    assert fails(lambda: plain.RefreshToken(pb.RefreshTokenRequest(refresh_token=tokens.refresh_token)))["code"] \
        == C.UNAUTHENTICATED
    assert fails(lambda: plain.ExchangeApiToken(pb.ExchangeApiTokenRequest(api_token=api)))["code"] \
        == C.UNAUTHENTICATED
    assert fails(lambda: auth_service.stub(access).GetUser(pb.GetUserRequest(name="users/me"))) \
        == {"code": C.UNAUTHENTICATED, "reason": "USER_DISABLED"}


def test_failed_logins_are_throttled(auth_service: AuthService) -> None:
    name, password, _ = auth_service.new_user()
    for _ in range(5):
        assert fails(lambda: auth_service.login(name, "wrong-password"))["code"] == C.UNAUTHENTICATED
    throttled = fails(lambda: auth_service.login(name, password))  # even the right password waits
    assert throttled == {"code": C.RESOURCE_EXHAUSTED, "reason": "LOGIN_THROTTLED"}


def test_no_secret_reaches_the_log(auth_service: AuthService) -> None:
    name, password, _ = auth_service.new_user()
    tokens = auth_service.login(name, password).tokens
    auth_service.stub().RefreshToken(pb.RefreshTokenRequest(refresh_token=tokens.refresh_token))
    fails(lambda: auth_service.login(name, password + "x"))
    log = auth_service.process.log_text()
    assert f'"username": "{name}"' in log  # the log does record the logins
    for secret in (password, tokens.access_token, tokens.refresh_token, auth_service.admin_password):
        assert secret not in log
