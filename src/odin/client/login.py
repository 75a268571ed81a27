"""The session `odin login` keeps: a JSON token file (mode 0600) that `load_token()` reads.

The file holds `access_token` (what `load_token` sends), `refresh_token`, their expiry times
and the auth service's address. `fresh_access_token()` renews the pair with the refresh token
when the access token is about to expire, so a login lasts as long as its refresh token.
Channels opened with the session (odin.client.renewal) also renew it when a service refuses it as
revoked (TOKEN_REVOKED: e.g. the user's project memberships changed) or expired, and repeat the call.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, TypeVar

from grpc import aio

from odin.auth.v1 import auth_pb2 as pb
from odin.auth.v1 import auth_pb2_grpc as pb_grpc
from odin.client.channel import open_channel
from odin.client.credentials import load_token, token_paths
from odin.client.errors import from_rpc_error

# Renew this long before the access token expires.
REFRESH_MARGIN_SECONDS = 60
# Refusals a new access token (from a still valid refresh token) may cure.
T = TypeVar("T")
Metadata = tuple[tuple[str, str], ...]


def session_path(suite_state_dir: Path | None = None) -> Path:
    """Where `odin login` writes: the first place `load_token()` looks."""
    return token_paths(suite_state_dir)[0]


def save_session(path: Path, auth_address: str, username: str, tokens: pb.TokenPair) -> None:
    document = {
        "auth_address": auth_address,
        "username": username,
        "access_token": tokens.access_token,
        "access_token_expire_time": tokens.access_token_expire_time.seconds,
        "refresh_token": tokens.refresh_token,
        "refresh_token_expire_time": tokens.refresh_token_expire_time.seconds,
    }
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(document, out)
    temporary.replace(path)


def load_session(path: Path) -> dict[str, Any] | None:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) and "refresh_token" in document else None


async def fresh_access_token(path: Path, *, force: bool = False) -> str | None:
    """The stored access token, renewed first when it expires within a minute (or `force`); None without a
    session."""
    session = load_session(path)
    if session is None:
        return None
    if not force and float(session.get("access_token_expire_time", 0)) - REFRESH_MARGIN_SECONDS > time.time():
        return str(session["access_token"])
    async with open_channel(str(session["auth_address"])) as channel:
        reply = await pb_grpc.AuthServiceStub(channel).RefreshToken(
            pb.RefreshTokenRequest(refresh_token=str(session["refresh_token"])), timeout=10)
    save_session(path, str(session["auth_address"]), str(session.get("username", "")), reply.tokens)
    return str(reply.tokens.access_token)


async def current_token(suite_state_dir: Path | None = None) -> str | None:
    """What a command sends: the session's access token (renewed when about to expire), else load_token()'s."""
    try:
        token = await fresh_access_token(session_path(suite_state_dir))
    except aio.AioRpcError as exc:
        raise from_rpc_error(exc) from None
    return token or load_token(suite_state_dir)
