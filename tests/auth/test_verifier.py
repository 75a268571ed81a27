"""Token verification and the interceptor's decisions: every forged or stale token is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from odin.runtime.auth import AuthInterceptor, check_configured, current_identity, interceptor_from_config
from odin.runtime.config import ConfigError
from odin.runtime.errors import PermissionDenied, Unauthenticated, Unavailable
from odin.runtime.server import ServerConfig
from odin.runtime.tokens import (
    Identity,
    KeyCache,
    Role,
    TokenSettings,
    TokenVerifier,
    jwks_document,
    key_id,
    sign_access_token,
)

SETTINGS = TokenSettings()
KEY = Ed25519PrivateKey.generate()
KID = key_id(KEY.public_key())


def verifier(*keys: tuple[str, Ed25519PrivateKey], clock: Any = time.monotonic) -> TokenVerifier:
    published = list(keys) or [(KID, KEY)]

    async def fetch() -> dict[str, Any]:
        return jwks_document([(kid, key.public_key()) for kid, key in published])

    return TokenVerifier(KeyCache(fetch, clock=clock), SETTINGS)


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"iss": SETTINGS.issuer, "aud": SETTINGS.audience, "sub": "users/alice", "role": "user",
            "iat": now, "nbf": now, "exp": now + 300}
    return {k: v for k, v in {**base, **overrides}.items() if v is not None}


def signed(payload: dict[str, Any], key: Ed25519PrivateKey = KEY, kid: str = KID) -> str:
    return jwt.encode(payload, key, algorithm="EdDSA", headers={"kid": kid})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


async def test_a_valid_token_gives_the_identity() -> None:
    token, _ = sign_access_token(KEY, KID, Identity("alice", Role.USER, session="s1"), SETTINGS)
    identity = await verifier().verify(token)
    assert (identity.name, identity.role, identity.session) == ("users/alice", Role.USER, "s1")


@pytest.mark.parametrize("case", ["expired", "not yet valid", "wrong issuer", "wrong audience", "no role",
                                  "unknown role", "no subject", "bad subject"])
async def test_bad_claims_are_refused(case: str) -> None:
    now = int(time.time())
    payload = {
        "expired": claims(exp=now - 120, iat=now - 600, nbf=now - 600),
        "not yet valid": claims(nbf=now + 600, exp=now + 900),
        "wrong issuer": claims(iss="someone-else"),
        "wrong audience": claims(aud="other-app"),
        "no role": claims(role=None),
        "unknown role": claims(role="superuser"),
        "no subject": claims(sub=None),
        "bad subject": claims(sub="alice"),
    }[case]
    with pytest.raises(Unauthenticated):
        await verifier().verify(signed(payload))


async def test_forged_tokens_are_refused() -> None:
    good = signed(claims())
    header, payload, signature = good.split(".")
    tampered = ".".join([header, b64(json.dumps(claims(role="admin")).encode()), signature])
    alg_none = ".".join([b64(json.dumps({"alg": "none", "kid": KID}).encode()), payload, ""])
    hs_header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": KID}).encode())
    public_raw = KEY.public_key().public_bytes_raw()
    hs_sig = b64(hmac.new(public_raw, f"{hs_header}.{payload}".encode(), hashlib.sha256).digest())
    hs256_with_public_key = f"{hs_header}.{payload}.{hs_sig}"
    other_key_same_kid = signed(claims(), key=Ed25519PrivateKey.generate())
    for forged in (tampered, alg_none, hs256_with_public_key, other_key_same_kid, "not-a-jwt", ""):
        with pytest.raises(Unauthenticated):
            await verifier().verify(forged)


async def test_unknown_kid_refreshes_the_key_set_at_most_once_per_interval() -> None:
    now = [1000.0]
    rotated = Ed25519PrivateKey.generate()
    published = [(KID, KEY)]

    async def fetch() -> dict[str, Any]:
        return jwks_document([(kid, key.public_key()) for kid, key in published])

    cache = KeyCache(fetch, min_refresh_seconds=5.0, clock=lambda: now[0])
    check = TokenVerifier(cache, SETTINGS)
    await check.verify(signed(claims()))
    assert cache.fetches == 1
    new_kid = key_id(rotated.public_key())
    new_token = signed(claims(), key=rotated, kid=new_kid)
    with pytest.raises(Unauthenticated):  # not published yet; refresh is also rate limited
        await check.verify(new_token)
    published.append((new_kid, rotated))
    for _ in range(5):  # a flood of unknown kids causes no further fetch inside the interval
        with pytest.raises(Unauthenticated):
            await check.verify(signed(claims(), key=rotated, kid="made-up"))
    assert cache.fetches == 1
    now[0] += 6
    assert (await check.verify(new_token)).username == "alice"
    assert cache.fetches == 2


async def test_no_key_set_at_all_is_unavailable_not_a_verdict() -> None:
    async def down() -> dict[str, Any]:
        raise ConnectionError("auth is down")

    with pytest.raises(Unavailable):
        await TokenVerifier(KeyCache(down), SETTINGS).verify(signed(claims()))


class FakeContext:
    def __init__(self, token: str | None) -> None:
        self.metadata = [("authorization", f"Bearer {token}")] if token else []

    def invocation_metadata(self) -> list[tuple[str, str]]:
        return self.metadata


def interceptor() -> AuthInterceptor:
    auth = AuthInterceptor(verifier=verifier())
    auth.register("odin.auth.v1.AuthService", {"Login": Role.ANONYMOUS, "GetUser": Role.VIEWER,
                                               "CreateUser": Role.ADMIN})
    return auth


async def test_interceptor_decisions() -> None:
    auth = interceptor()
    method = "/odin.auth.v1.AuthService/"
    user = signed(claims())
    with pytest.raises(Unauthenticated):
        await auth.authorize(method + "GetUser", FakeContext(None))  # type: ignore[arg-type]
    with pytest.raises(PermissionDenied):
        await auth.authorize(method + "CreateUser", FakeContext(user))  # type: ignore[arg-type]
    with pytest.raises(PermissionDenied):  # not in the table: admin only (fails closed)
        await auth.authorize(method + "ListUsers", FakeContext(user))  # type: ignore[arg-type]
    identity, _ = await auth.authorize(method + "GetUser", FakeContext(user))  # type: ignore[arg-type]
    assert identity is not None and identity.username == "alice"
    assert (await auth.authorize(method + "Login", FakeContext(None)))[0] is None  # type: ignore[arg-type]
    assert (await auth.authorize(method + "Login", FakeContext("stale")))[0] is None  # type: ignore[arg-type]
    health = "/grpc.health.v1.Health/Check"
    assert (await auth.authorize(health, FakeContext(None)))[0] is None  # type: ignore[arg-type]
    with pytest.raises(Unauthenticated):  # API tokens need an auth service to be looked up
        await auth.authorize(method + "GetUser", FakeContext("odin_secret"))  # type: ignore[arg-type]
    with pytest.raises(Unauthenticated):
        current_identity()


def test_role_table_must_name_real_methods() -> None:
    with pytest.raises(ValueError, match="NoSuchRpc"):
        AuthInterceptor().register("odin.auth.v1.AuthService", {"NoSuchRpc": Role.USER})


def test_a_service_without_auth_settings_fails_naming_the_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        check_configured(interceptor_from_config(ServerConfig()), "ODIN_SCHEDULER")
    for key in ("ODIN_SCHEDULER_AUTH_ADDRESS", "ODIN_SCHEDULER_AUTH_JWKS_FILE", "ODIN_SCHEDULER_AUTH_DISABLED"):
        assert key in str(error.value)
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(jwks_document([(KID, KEY.public_key())])))
    check_configured(interceptor_from_config(ServerConfig(auth_jwks_file=jwks)), "ODIN_SCHEDULER")
    disabled = interceptor_from_config(ServerConfig(auth_disabled=True))
    check_configured(disabled, "ODIN_SCHEDULER")
    assert disabled.disabled
