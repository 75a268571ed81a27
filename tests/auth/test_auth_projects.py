"""Projects and memberships in AuthService (SQLite and PostgreSQL), the automatic migration of an
existing store (default project, the admin robot demoted), and tokens from before projects."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path

import grpc
import jwt
import pytest
from auth_helpers import AuthService, failure, start_auth
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf import field_mask_pb2
from support.waiting import assert_eventually

from odin.auth.v1 import auth_pb2 as pb
from odin.runtime.auth import RevocationFeed
from odin.runtime.errors import Unauthenticated
from odin.runtime.tokens import Identity, KeyCache, Role, TokenSettings, TokenVerifier, jwks_document, key_id

C = grpc.StatusCode


def fails(call: object) -> dict[str, object]:
    with pytest.raises(grpc.RpcError) as error:
        call()  # type: ignore[operator]
    return failure(error.value)


def test_default_always_exists_and_cannot_be_deleted(auth_service: AuthService) -> None:
    admin = auth_service.stub(auth_service.admin_token)
    default = admin.GetProject(pb.GetProjectRequest(name="projects/default")).project
    assert default.caller_role == pb.User.ROLE_ADMIN
    assert fails(lambda: admin.DeleteProject(pb.DeleteProjectRequest(name="projects/default"))) == {
        "code": C.FAILED_PRECONDITION, "reason": "DEFAULT_PROJECT"}
    _, _, viewer = auth_service.new_user(role=pb.User.ROLE_VIEWER)
    mine = auth_service.stub(viewer).ListProjects(pb.ListProjectsRequest()).projects
    assert [(p.name, p.caller_role) for p in mine] == [("projects/default", pb.User.ROLE_VIEWER)]


def test_project_admins_manage_members_and_non_members_see_nothing(auth_service: AuthService) -> None:
    admin = auth_service.stub(auth_service.admin_token)
    project = f"projects/t-{uuid.uuid4().hex[:8]}"
    admin.CreateProject(pb.CreateProjectRequest(project_id=project, project=pb.Project(display_name="T")))
    lead, lead_password, _ = auth_service.new_user(role=pb.User.ROLE_VIEWER)  # globally only a viewer
    member, member_password, _ = auth_service.new_user()
    outsider_token = auth_service.new_user()[2]
    admin.SetProjectMember(pb.SetProjectMemberRequest(project=project, member=pb.ProjectMember(
        user=f"users/{lead}", role=pb.User.ROLE_ADMIN)))
    lead_stub = auth_service.stub(auth_service.login(lead, lead_password).tokens.access_token)
    lead_stub.SetProjectMember(pb.SetProjectMemberRequest(project=project, member=pb.ProjectMember(
        user=f"users/{member}", role=pb.User.ROLE_VIEWER)))
    assert [(m.user, m.role) for m in lead_stub.ListProjectMembers(pb.ListProjectMembersRequest(
        parent=project)).members] == sorted([(f"users/{lead}", pb.User.ROLE_ADMIN),
                                             (f"users/{member}", pb.User.ROLE_VIEWER)])
    member_stub = auth_service.stub(auth_service.login(member, member_password).tokens.access_token)
    assert member_stub.GetProject(pb.GetProjectRequest(name=project)).project.caller_role == pb.User.ROLE_VIEWER
    # A member below the role: PERMISSION_DENIED (they know it exists); a non-member: NOT_FOUND.
    assert fails(lambda: member_stub.UpdateProject(pb.UpdateProjectRequest(project=pb.Project(
        name=project, display_name="x"), update_mask=field_mask_pb2.FieldMask(paths=["display_name"]))))["code"] \
        == C.PERMISSION_DENIED
    outsider = auth_service.stub(outsider_token)
    assert fails(lambda: outsider.GetProject(pb.GetProjectRequest(name=project))) == fails(
        lambda: outsider.GetProject(pb.GetProjectRequest(name="projects/no-such-project"))) == {
        "code": C.NOT_FOUND, "reason": "PROJECT_NOT_FOUND"}
    # Bad input names the field.
    assert fails(lambda: admin.SetProjectMember(pb.SetProjectMemberRequest(project=project, member=pb.ProjectMember(
        user="users/Bad!", role=7))))["fields"] == ["member.role", "member.user"]
    assert fails(lambda: admin.CreateProject(pb.CreateProjectRequest(project_id="Bad_Id")))["fields"] == ["project_id"]
    assert fails(lambda: admin.CreateProject(pb.CreateProjectRequest(project_id=project)))["code"] == C.ALREADY_EXISTS
    admin.DeleteProject(pb.DeleteProjectRequest(name=project))
    assert fails(lambda: admin.GetProject(pb.GetProjectRequest(name=project)))["code"] == C.NOT_FOUND


OLD_SCHEMA_COMMIT = "870b6f1"


def test_an_existing_store_is_migrated(tmp_path: Path) -> None:
    """A store from before projects: default appears, the admin robot becomes SERVICE, its
    never-expiring API token stops working and a fresh expiring one is written."""
    old = subprocess.run(["git", "show", f"{OLD_SCHEMA_COMMIT}:services/auth/odin_auth/store.py"],
                         capture_output=True, text=True, check=True, cwd=Path(__file__).parents[2]).stdout
    schema = old.split('SCHEMA = """', 1)[1].split('"""', 1)[0]
    old_secret = "odin_" + uuid.uuid4().hex
    with sqlite3.connect(tmp_path / "auth.db") as db:
        db.executescript(schema)
        db.execute("INSERT INTO users VALUES ('odin-system', 'Odin services', '', 3, 0, 'x', 0, 0, 1)")
        db.execute("INSERT INTO api_tokens VALUES ('old', 'odin-system', '', ?, 0, NULL, NULL, NULL)",
                   [hashlib.sha256(old_secret.encode()).hexdigest()])
    (tmp_path / "service-token").write_text(old_secret)
    auth = start_auth(tmp_path, f"sqlite:///{tmp_path / 'auth.db'}",
                      ODIN_AUTH_BOOTSTRAP_SERVICE_TOKEN_FILE=str(tmp_path / "service-token"))
    try:
        admin = auth.stub(auth.admin_token)
        assert admin.GetProject(pb.GetProjectRequest(name="projects/default")).project.name == "projects/default"
        assert admin.GetUser(pb.GetUserRequest(name="users/odin-system")).user.role == pb.User.ROLE_SERVICE
        assert fails(lambda: auth.stub().ExchangeApiToken(pb.ExchangeApiTokenRequest(api_token=old_secret)))[
            "code"] == C.UNAUTHENTICATED
        new_secret = (tmp_path / "service-token").read_text()
        assert new_secret != old_secret
        tokens = admin.ListApiTokens(pb.ListApiTokensRequest(parent="users/odin-system")).api_tokens
        live = [t for t in tokens if not t.HasField("revoke_time")]
        assert len(live) == 1 and live[0].HasField("expire_time")
        assert 23 * 3600 < live[0].expire_time.seconds - time.time() <= 24 * 3600
        exchanged = auth.stub().ExchangeApiToken(pb.ExchangeApiTokenRequest(api_token=new_secret)).access_token
        assert jwt.decode(exchanged, options={"verify_signature": False})["role"] == "service"
        # The robot never gets a person's role back through UpdateUser.
        assert fails(lambda: admin.UpdateUser(pb.UpdateUserRequest(user=pb.User(
            name="users/odin-system", role=pb.User.ROLE_ADMIN), update_mask=field_mask_pb2.FieldMask(
            paths=["role"]))))["code"] == C.FAILED_PRECONDITION
    finally:
        auth.process.terminate()


def test_the_robot_token_is_renewed_before_it_expires(tmp_path: Path) -> None:
    token_file = tmp_path / "service-token"
    auth = start_auth(tmp_path, f"sqlite:///{tmp_path / 'auth.db'}", ODIN_AUTH_BOOTSTRAP_SERVICE_TOKEN_FILE=str(
        token_file), ODIN_AUTH_SERVICE_TOKEN_HOURS="0.001")  # 3.6 s: renewed after 1.8 s
    try:
        first = token_file.read_text()
        assert_eventually(lambda: token_file.read_text() != first, timeout=15, what="the file is rewritten")
        assert token_file.stat().st_mode & 0o777 == 0o600
        auth.stub().ExchangeApiToken(pb.ExchangeApiTokenRequest(api_token=token_file.read_text()))
    finally:
        auth.process.terminate()


# ---- tokens and the feed, in process -----------------------------------------------------

KEY = Ed25519PrivateKey.generate()
KID = key_id(KEY.public_key())


def _verifier() -> TokenVerifier:
    async def fetch() -> dict[str, object]:
        return jwks_document([(KID, KEY.public_key())])

    return TokenVerifier(KeyCache(fetch), TokenSettings())


async def test_tokens_from_before_projects_stay_valid_as_version_0() -> None:
    now = int(time.time())
    old = jwt.encode({"iss": "odin-auth", "aud": "odin", "sub": "users/alice", "role": "user", "iat": now,
                      "nbf": now, "exp": now + 300}, KEY, algorithm="EdDSA", headers={"kid": KID})
    identity = await _verifier().verify(old)
    assert identity.token_version == 0 and identity.projects == {}
    assert identity.project_role("default") is Role.USER and identity.project_role("vision") is Role.ANONYMOUS


async def test_the_feed_refuses_older_versions_and_forgets_cached_tokens() -> None:
    entries: list[tuple[str, int, int]] = []

    async def fetch(after: int, limit: int) -> tuple[list[tuple[str, int, int]], int]:
        found = [e for e in entries if e[2] > after]
        return found, max([after, *(e[2] for e in found)])

    forgotten: list[str] = []
    feed = RevocationFeed(fetch, interval_seconds=0.01)
    feed.on_revoked = forgotten.append
    alice = Identity("alice", Role.USER, token_version=1)
    await feed.check(alice)
    entries.append(("alice", 2, 1))
    await feed.poll_once()
    with pytest.raises(Unauthenticated) as error:
        await feed.check(alice)
    assert error.value.reason == "TOKEN_REVOKED" and forgotten == ["alice"]
    await feed.check(Identity("alice", Role.USER, token_version=2))
    await feed.close()
