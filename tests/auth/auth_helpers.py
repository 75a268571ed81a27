"""Helpers for the auth tests: start a real odin-auth with a bootstrapped admin, read failures."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path

import grpc
import psycopg
from support.clients import channel
from support.postgres import PostgresServer
from support.processes import ServiceProcess, start_service
from support.rpc_errors import rpc_failure

from odin.auth.v1 import auth_pb2 as pb
from odin.auth.v1 import auth_pb2_grpc as pb_grpc

ADMIN = "root-admin"


@dataclass
class AuthService:
    process: ServiceProcess
    admin_password: str
    admin_token: str
    state: Path

    @property
    def address(self) -> str:
        return self.process.address

    def stub(self, token: str | None = None) -> pb_grpc.AuthServiceStub:
        return pb_grpc.AuthServiceStub(channel(self.address, token=token))

    def login(self, username: str, password: str) -> pb.LoginResponse:
        reply: pb.LoginResponse = self.stub().Login(pb.LoginRequest(username=username, password=password), timeout=10)
        return reply

    def new_user(self, role: int = pb.User.ROLE_USER, prefix: str = "u") -> tuple[str, str, str]:
        """Creates a user; returns (username, password, access token)."""
        username = f"{prefix}-{uuid.uuid4().hex[:8]}"
        password = secrets.token_urlsafe(16)
        self.stub(self.admin_token).CreateUser(
            pb.CreateUserRequest(user=pb.User(username=username, role=role), password=password), timeout=10)
        return username, password, self.login(username, password).tokens.access_token


def auth_env(state: Path, store_url: str, **extra: str) -> dict[str, str]:
    password_file = state / "admin-password"
    if not password_file.exists():
        password_file.touch(mode=0o600)
        password_file.write_text(secrets.token_urlsafe(18))
    return {
        "ODIN_AUTH_STORE_URL": store_url,
        "ODIN_AUTH_KEYS_PATH": str(state / "keys"),
        "ODIN_AUTH_BOOTSTRAP_ADMIN_USERNAME": ADMIN,
        "ODIN_AUTH_BOOTSTRAP_ADMIN_PASSWORD_FILE": str(password_file),
        **extra,
    }


def start_auth(state: Path, store_url: str, **extra: str) -> AuthService:
    state.mkdir(parents=True, exist_ok=True)
    env = auth_env(state, store_url, **extra)
    process = start_service("auth", state / "logs", env)
    password = (state / "admin-password").read_text()
    service = AuthService(process, password, "", state)
    service.admin_token = service.login(ADMIN, password).tokens.access_token
    return service


def store_url(backend: str, state: Path, postgres: PostgresServer | None) -> str:
    if backend == "sqlite":
        return f"sqlite:///{state / 'auth.db'}"
    assert postgres is not None
    database = f"auth_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres.url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {database}")
    return postgres.url(database)


def code_of(call: object) -> grpc.StatusCode:
    """The status code of a failing call (`pytest.raises(grpc.RpcError)` value)."""
    assert isinstance(call, grpc.RpcError)
    return call.code()  # type: ignore[no-any-return]


def failure(call: object) -> dict[str, object]:
    """A failed call's code, reason and field violations."""
    assert isinstance(call, grpc.RpcError)
    decoded = rpc_failure(call)
    found: dict[str, object] = {"code": decoded.code}
    if decoded.reason:
        found["reason"] = decoded.reason
    if decoded.violations:
        found["fields"] = sorted(f for f, _ in decoded.violations)
    return found
