"""Roles cell by cell on AuthService, and enforcement in a second real service (odin-scheduler)
that verifies tokens with the auth service's JWKS, including across a key rotation."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from auth_helpers import ADMIN, AuthService, auth_env, failure, start_auth
from google.protobuf import field_mask_pb2
from support import auth as test_auth
from support.clients import channel
from support.processes import BIN, ServiceProcess, start_service
from support.scheduler import scheduler_env
from support.waiting import assert_eventually

from odin.auth.v1 import auth_pb2 as pb
from odin.runtime.auth import ServiceToken
from odin.scheduler.v1 import scheduler_pb2 as spb
from odin.scheduler.v1 import scheduler_pb2_grpc as spb_grpc

OK, UNAUTH, DENIED, MISSING = "OK", "UNAUTHENTICATED", "PERMISSION_DENIED", "NOT_FOUND"
CALLERS = ("anonymous", "user A", "user B", "admin")


class Target:
    """User B (the one every call is about) with a password, a session and an API token; B is an admin
    of project `project` (which also has a viewer C)."""

    def __init__(self, service: AuthService) -> None:
        self.service = service
        self.username, self.password, _ = service.new_user(prefix="b")
        self.name = f"users/{self.username}"
        admin = service.stub(service.admin_token)
        self.api = admin.CreateApiToken(pb.CreateApiTokenRequest(parent=self.name, api_token=pb.ApiToken())).api_token
        self.project = f"projects/p-{uuid.uuid4().hex[:8]}"
        admin.CreateProject(pb.CreateProjectRequest(project_id=self.project.removeprefix("projects/")))
        admin.SetProjectMember(pb.SetProjectMemberRequest(project=self.project, member=pb.ProjectMember(
            user=self.name, role=pb.User.ROLE_ADMIN)))
        self.other = f"users/{service.new_user(prefix='c')[0]}"
        self.add_other()
        self.token = service.login(self.username, self.password).tokens.access_token  # with the membership

    def add_other(self) -> None:
        self.service.stub(self.service.admin_token).SetProjectMember(pb.SetProjectMemberRequest(
            project=self.project, member=pb.ProjectMember(user=self.other, role=pb.User.ROLE_VIEWER)))

    def refresh_token(self) -> str:
        return self.service.login(self.username, self.password).tokens.refresh_token


# RPC → (call on behalf of a caller, expected outcome for anonymous, user A, user B, admin).
TABLE: dict[str, tuple[Callable[[Any, Target], Any], tuple[str, str, str, str]]] = {
    "Login": (lambda s, b: s.Login(pb.LoginRequest(username=b.username, password=b.password)), (OK, OK, OK, OK)),
    "RefreshToken": (lambda s, b: s.RefreshToken(pb.RefreshTokenRequest(refresh_token=b.refresh_token())),
                     (OK, OK, OK, OK)),
    "Logout": (lambda s, b: s.Logout(pb.LogoutRequest(refresh_token=b.refresh_token())), (OK, OK, OK, OK)),
    "GetJwks": (lambda s, b: s.GetJwks(pb.GetJwksRequest()), (OK, OK, OK, OK)),
    "ExchangeApiToken": (lambda s, b: s.ExchangeApiToken(pb.ExchangeApiTokenRequest(api_token=b.api.token)),
                         (OK, OK, OK, OK)),
    "CreateUser": (lambda s, b: s.CreateUser(pb.CreateUserRequest(
        user=pb.User(username=f"c-{uuid.uuid4().hex[:8]}"), password="a-long-password")), (UNAUTH, DENIED, DENIED, OK)),
    "ListUsers": (lambda s, b: s.ListUsers(pb.ListUsersRequest()), (UNAUTH, DENIED, DENIED, OK)),
    "GetUser": (lambda s, b: s.GetUser(pb.GetUserRequest(name=b.name)), (UNAUTH, DENIED, OK, OK)),
    "UpdateUser": (lambda s, b: s.UpdateUser(pb.UpdateUserRequest(
        user=pb.User(name=b.name, display_name="B"), update_mask=field_mask_pb2.FieldMask(paths=["display_name"]))),
        (UNAUTH, DENIED, OK, OK)),
    "ChangePassword": (lambda s, b: s.ChangePassword(pb.ChangePasswordRequest(
        name=b.name, current_password=b.password, new_password=b.password)), (UNAUTH, DENIED, OK, OK)),
    "CreateApiToken": (lambda s, b: s.CreateApiToken(pb.CreateApiTokenRequest(parent=b.name,
                                                                               api_token=pb.ApiToken())),
                       (UNAUTH, DENIED, OK, OK)),
    "ListApiTokens": (lambda s, b: s.ListApiTokens(pb.ListApiTokensRequest(parent=b.name)), (UNAUTH, DENIED, OK, OK)),
    "RevokeApiToken": (lambda s, b: s.RevokeApiToken(pb.RevokeApiTokenRequest(name=b.api.name)),
                       (UNAUTH, DENIED, OK, OK)),
    "DeleteUser": (lambda s, b: s.DeleteUser(pb.DeleteUserRequest(name=b.name)), (UNAUTH, DENIED, DENIED, OK)),
    "CreateProject": (lambda s, b: s.CreateProject(pb.CreateProjectRequest(project_id=f"n-{uuid.uuid4().hex[:8]}")),
                      (UNAUTH, DENIED, DENIED, OK)),
    # Non-members learn nothing: NOT_FOUND, as for a project that does not exist.
    "GetProject": (lambda s, b: s.GetProject(pb.GetProjectRequest(name=b.project)), (UNAUTH, MISSING, OK, OK)),
    "ListProjects": (lambda s, b: s.ListProjects(pb.ListProjectsRequest()), (UNAUTH, OK, OK, OK)),
    "UpdateProject": (lambda s, b: s.UpdateProject(pb.UpdateProjectRequest(
        project=pb.Project(name=b.project, display_name="P"), update_mask=field_mask_pb2.FieldMask(
            paths=["display_name"]))), (UNAUTH, DENIED, OK, OK)),
    "DeleteProject": (lambda s, b: s.DeleteProject(pb.DeleteProjectRequest(name=b.project)),
                      (UNAUTH, DENIED, DENIED, OK)),
    # User A is no project admin anywhere: refused before the project is looked at (no leak either way).
    "SetProjectMember": (lambda s, b: s.SetProjectMember(pb.SetProjectMemberRequest(
        project=b.project, member=pb.ProjectMember(user=b.other, role=pb.User.ROLE_USER))), (UNAUTH, DENIED, OK, OK)),
    "RemoveProjectMember": (lambda s, b: (b.add_other(), s.RemoveProjectMember(pb.RemoveProjectMemberRequest(
        name=f"{b.project}/members/{b.other.removeprefix('users/')}"))), (UNAUTH, DENIED, OK, OK)),
    "ListProjectMembers": (lambda s, b: s.ListProjectMembers(pb.ListProjectMembersRequest(parent=b.project)),
                           (UNAUTH, MISSING, OK, OK)),
    "ListTokenRevocations": (lambda s, b: s.ListTokenRevocations(pb.ListTokenRevocationsRequest()),
                             (UNAUTH, DENIED, DENIED, OK)),
}


def test_the_table_covers_every_rpc() -> None:
    assert set(TABLE) == {m.name for m in pb.DESCRIPTOR.services_by_name["AuthService"].methods}


@pytest.mark.parametrize("rpc", sorted(TABLE))
def test_authorization_table(auth_service: AuthService, rpc: str) -> None:
    call, expected = TABLE[rpc]
    user_a = auth_service.new_user(prefix="a")[2]
    target = Target(auth_service)
    tokens = (None, user_a, target.token, auth_service.admin_token)
    got = tuple(_outcome(lambda t=token: call(auth_service.stub(t), target)) for token in tokens)  # type: ignore[misc]
    assert dict(zip(CALLERS, got, strict=True)) == dict(zip(CALLERS, expected, strict=True))


def _outcome(call: Callable[[], Any]) -> str:
    try:
        call()
    except grpc.RpcError as error:
        return str(error.code().name)
    return OK


# ---- a second service -------------------------------------------------------------------


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AuthService, ServiceProcess]]:
    state = tmp_path_factory.mktemp("enforced")
    auth = start_auth(state, f"sqlite:///{state / 'auth.db'}",
                      ODIN_AUTH_BOOTSTRAP_SERVICE_TOKEN_FILE=str(state / "service-token"))
    scheduler = start_service("scheduler", state / "logs", scheduler_env(state, auth_address=auth.address))
    yield auth, scheduler
    scheduler.terminate()
    auth.process.terminate()


def scheduler_code(address: str, token: str | None, rpc: str = "GetJob") -> str:
    stub = spb_grpc.SchedulerServiceStub(channel(address, token=token))
    request = spb.GetJobRequest(name="jobs/none") if rpc == "GetJob" else spb.CancelJobRequest(name="jobs/none")
    try:
        getattr(stub, rpc)(request, timeout=10)
    except grpc.RpcError as error:
        return str(error.code().name)
    return OK


def test_a_second_service_enforces_tokens_from_the_auth_service(suite: tuple[AuthService, ServiceProcess]) -> None:
    auth, scheduler = suite
    assert scheduler_code(scheduler.address, None) == UNAUTH
    assert scheduler_code(scheduler.address, "garbage") == UNAUTH
    assert scheduler_code(scheduler.address, test_auth.default_token()) == UNAUTH  # another issuer's key
    assert scheduler_code(scheduler.address, auth.admin_token) != UNAUTH
    viewer = auth.new_user(role=pb.User.ROLE_VIEWER)[2]
    assert scheduler_code(scheduler.address, viewer, "CancelJob") == DENIED
    admin = auth.stub(auth.admin_token)
    api = admin.CreateApiToken(pb.CreateApiTokenRequest(parent=f"users/{ADMIN}", api_token=pb.ApiToken()))
    assert scheduler_code(scheduler.address, api.api_token.token) != UNAUTH  # exchanged at the auth service
    revoked = admin.CreateApiToken(pb.CreateApiTokenRequest(parent=f"users/{ADMIN}", api_token=pb.ApiToken()))
    admin.RevokeApiToken(pb.RevokeApiTokenRequest(name=revoked.api_token.name))
    assert scheduler_code(scheduler.address, revoked.api_token.token) == UNAUTH
    assert auth.admin_token not in scheduler.log_text() and api.api_token.token not in scheduler.log_text()


def test_key_rotation_without_downtime(suite: tuple[AuthService, ServiceProcess]) -> None:
    auth, scheduler = suite
    old_token = auth.admin_token
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    assert scheduler_code(scheduler.address, old_token) != UNAUTH
    env = auth_env(auth.state, f"sqlite:///{auth.state / 'auth.db'}")
    rotated = subprocess.run([str(BIN / "odin-auth"), "rotate-keys"], env={**_path_env(), **env},
                             capture_output=True, text=True, timeout=30)
    assert rotated.returncode == 0, rotated.stderr
    new_kid = rotated.stdout.strip()
    assert new_kid and new_kid != old_kid
    assert (auth.state / "keys" / f"{new_kid}.pem").stat().st_mode & 0o777 == 0o600
    kids = [k.kid for k in auth.stub().GetJwks(pb.GetJwksRequest()).keys]
    assert kids == [new_kid, old_kid]  # the signing key first, the old one until its tokens expire
    new_token = auth.login(ADMIN, auth.admin_password).tokens.access_token
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    assert scheduler_code(scheduler.address, old_token) != UNAUTH
    assert_eventually(lambda: scheduler_code(scheduler.address, new_token) != UNAUTH, timeout=15,
                      what="the scheduler fetches the new key (unknown kid → JWKS refresh)")


async def test_services_call_each_other_with_the_bootstrapped_service_token(
        suite: tuple[AuthService, ServiceProcess]) -> None:
    auth, scheduler = suite
    token_file = auth.state / "service-token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    bearer = await ServiceToken(token_file, auth.address).bearer()
    claims = jwt.decode(bearer or "", options={"verify_signature": False})
    assert claims["sub"] == "users/odin-system" and claims["role"] == "service"
    # The robot makes the calls services make (midgard lists jobs), nothing else.
    stub = spb_grpc.SchedulerServiceStub(channel(scheduler.address, token=bearer))
    stub.ListJobs(spb.ListJobsRequest(), timeout=10)
    assert scheduler_code(scheduler.address, bearer) == DENIED
    assert scheduler_code(scheduler.address, bearer, "CancelJob") == DENIED


def _path_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/root")}


def test_a_service_without_auth_settings_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError) as error:
        # any AUTH_ key: no test default
        start_service("scheduler", tmp_path / "logs", scheduler_env(tmp_path, auth_disabled="false"))
    assert "ODIN_SCHEDULER_AUTH_ADDRESS" in str(error.value) and "ODIN_SCHEDULER_AUTH_JWKS_FILE" in str(error.value)


def test_errors_carry_reasons(auth_service: AuthService) -> None:
    with pytest.raises(grpc.RpcError) as error:
        auth_service.stub().ListUsers(pb.ListUsersRequest())
    assert failure(error.value) == {"code": grpc.StatusCode.UNAUTHENTICATED, "reason": "TOKEN_MISSING"}
