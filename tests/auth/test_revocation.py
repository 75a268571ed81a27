"""The revocation feed (finding 9) against real processes: odin-auth and an odin-scheduler that polls it.

A disabled, demoted or re-membered user's tokens are refused everywhere within 5 s (not when the
access token expires after 10 min); a still-valid refresh token gets a fresh access token.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import jwt
import pytest
from auth_helpers import AuthService, failure, start_auth
from google.protobuf import field_mask_pb2
from support.clients import channel
from support.processes import ServiceProcess, start_service
from support.scheduler import scheduler_env
from support.waiting import assert_eventually

from odin.auth.v1 import auth_pb2 as pb
from odin.scheduler.v1 import scheduler_pb2 as spb
from odin.scheduler.v1 import scheduler_pb2_grpc as spb_grpc

LIMIT_SECONDS = 5.0


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AuthService, ServiceProcess]]:
    state = tmp_path_factory.mktemp("revocation")
    token_file = state / "service-token"
    auth = start_auth(state, f"sqlite:///{state / 'auth.db'}", ODIN_AUTH_BOOTSTRAP_SERVICE_TOKEN_FILE=str(token_file))
    scheduler = start_service("scheduler", state / "logs", scheduler_env(
        state, auth_address=auth.address, auth_token_file=str(token_file)))
    yield auth, scheduler
    scheduler.terminate()
    auth.process.terminate()


def scheduler_outcome(scheduler: ServiceProcess, token: str) -> dict[str, object]:
    """GetJob of a job that does not exist: NOT_FOUND while the token is good."""
    try:
        spb_grpc.SchedulerServiceStub(channel(scheduler.address, token=token)).GetJob(
            spb.GetJobRequest(name="jobs/none"), timeout=10)
    except grpc.RpcError as error:
        return failure(error)
    return {"code": grpc.StatusCode.OK}


def refused_within(scheduler: ServiceProcess, token: str, started: float) -> float:
    assert_eventually(lambda: scheduler_outcome(scheduler, token) == {
        "code": grpc.StatusCode.UNAUTHENTICATED, "reason": "TOKEN_REVOKED"}, timeout=LIMIT_SECONDS + 5,
        interval=0.1, what="the scheduler refuses the revoked token")
    return time.monotonic() - started


def test_a_disabled_users_tokens_are_refused_by_another_service_within_5_s(
        suite: tuple[AuthService, ServiceProcess]) -> None:
    auth, scheduler = suite
    username, _, token = auth.new_user()
    assert scheduler_outcome(scheduler, token)["code"] == grpc.StatusCode.NOT_FOUND  # accepted (and cached)
    started = time.monotonic()
    auth.stub(auth.admin_token).UpdateUser(pb.UpdateUserRequest(
        user=pb.User(name=f"users/{username}", disabled=True), update_mask=field_mask_pb2.FieldMask(
            paths=["disabled"])))
    elapsed = refused_within(scheduler, token, started)
    print(f"disabled user refused by the scheduler after {elapsed:.2f} s")
    assert elapsed < LIMIT_SECONDS, f"refused after {elapsed:.1f} s"
    # The auth service applies it to itself at once.
    with pytest.raises(grpc.RpcError) as error:
        auth.stub(token).GetUser(pb.GetUserRequest(name="users/me"))
    assert failure(error.value)["code"] == grpc.StatusCode.UNAUTHENTICATED


def test_a_membership_change_voids_the_token_and_a_refresh_brings_the_new_membership(
        suite: tuple[AuthService, ServiceProcess]) -> None:
    auth, scheduler = suite
    username, password, _ = auth.new_user()
    tokens = auth.login(username, password).tokens
    assert scheduler_outcome(scheduler, tokens.access_token)["code"] == grpc.StatusCode.NOT_FOUND
    admin = auth.stub(auth.admin_token)
    admin.CreateProject(pb.CreateProjectRequest(project_id=f"r-{username[2:]}"))
    admin.SetProjectMember(pb.SetProjectMemberRequest(project=f"projects/r-{username[2:]}", member=pb.ProjectMember(
        user=f"users/{username}", role=pb.User.ROLE_USER)))
    elapsed = refused_within(scheduler, tokens.access_token, time.monotonic())
    assert elapsed < LIMIT_SECONDS
    renewed = auth.stub().RefreshToken(pb.RefreshTokenRequest(refresh_token=tokens.refresh_token)).tokens
    claims = jwt.decode(renewed.access_token, options={"verify_signature": False})
    assert claims["prj"] == {f"r-{username[2:]}": "user"} and claims["ver"] >= 1
    assert scheduler_outcome(scheduler, renewed.access_token)["code"] == grpc.StatusCode.NOT_FOUND


def test_the_feed_lists_each_users_minimum_version(suite: tuple[AuthService, ServiceProcess]) -> None:
    auth, _ = suite
    username, password, _ = auth.new_user()
    admin = auth.stub(auth.admin_token)
    before = admin.ListTokenRevocations(pb.ListTokenRevocationsRequest()).latest_seq
    admin.UpdateUser(pb.UpdateUserRequest(user=pb.User(name=f"users/{username}", role=pb.User.ROLE_VIEWER),
                                          update_mask=field_mask_pb2.FieldMask(paths=["role"])))
    admin.ChangePassword(pb.ChangePasswordRequest(name=f"users/{username}", new_password=password + "-new"))
    after = admin.ListTokenRevocations(pb.ListTokenRevocationsRequest(after_seq=before))
    assert [(r.user, r.min_token_version) for r in after.revocations] == [(f"users/{username}", 2)]
    assert after.latest_seq == before + 2 == after.revocations[0].seq
    with pytest.raises(grpc.RpcError) as error:
        admin.ListTokenRevocations(pb.ListTokenRevocationsRequest(after_seq=-1))
    assert failure(error.value)["fields"] == ["after_seq"]


def test_expired_refresh_tokens_are_deleted(tmp_path: Path) -> None:
    auth = start_auth(tmp_path, f"sqlite:///{tmp_path / 'auth.db'}", ODIN_AUTH_REFRESH_TOKEN_HOURS="0.0005",
                      ODIN_AUTH_REFRESH_TOKEN_GC_MINUTES="0.01")  # refresh tokens live 1.8 s; collected every 0.6 s
    username, password, _ = auth.new_user()
    auth.login(username, password)

    def stored() -> int:
        with sqlite3.connect(auth.state / "auth.db") as db:
            return int(db.execute("SELECT count(*) FROM refresh_tokens WHERE username = ?", [username]).fetchone()[0])

    assert stored() >= 1
    try:
        assert_eventually(lambda: stored() == 0, timeout=15, what="the expired refresh tokens are deleted")
    finally:
        auth.process.terminate()
