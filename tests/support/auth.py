"""Test identities: one Ed25519 key per test session, its JWKS file, and tokens minted with it.

Services started by `support.processes.start_service` verify tokens with this JWKS file
(`ODIN_<SVC>_AUTH_JWKS_FILE`) and send `default_token()` on their own outgoing calls
(`ODIN_<SVC>_AUTH_TOKEN_FILE`), unless the test sets auth settings itself.
`support.clients.channel(address)` sends `default_token()`, an admin's.
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from odin.runtime.tokens import Identity, Role, TokenSettings, jwks_document, key_id, sign_access_token

SESSION_SECONDS = 12 * 3600
ADMIN = "test-admin"
SETTINGS = TokenSettings(access_seconds=SESSION_SECONDS)


@functools.cache
def _session() -> tuple[Ed25519PrivateKey, str, Path]:
    """The session's signing key, its kid and the temp dir holding jwks.json and token files."""
    key = Ed25519PrivateKey.generate()
    kid = key_id(key.public_key())
    root = Path(tempfile.mkdtemp(prefix="odin-test-auth-"))
    atexit.register(shutil.rmtree, root, True)
    (root / "jwks.json").write_text(json.dumps(jwks_document([(kid, key.public_key())])))
    token_file = root / "service-token"
    token_file.touch(mode=0o600)
    token_file.write_text(token_for(ADMIN, "admin", key=key, kid=kid))
    return key, kid, root


def jwks_file() -> Path:
    """The JWKS file that verifies every token minted here."""
    return _session()[2] / "jwks.json"


def service_token_file() -> Path:
    """A file holding the admin token, for a service's own outgoing calls."""
    return _session()[2] / "service-token"


def signing_key() -> tuple[Ed25519PrivateKey, str]:
    key, kid, _ = _session()
    return key, kid


def token_for(username: str, role: str | Role = Role.USER, *, lifetime: float = SESSION_SECONDS,
              key: Ed25519PrivateKey | None = None, kid: str | None = None) -> str:
    """A valid access token for `username` with `role` ("viewer", "user", "admin")."""
    if key is None or kid is None:
        key, kid = signing_key()
    role = role if isinstance(role, Role) else Role[role.upper()]
    token, _ = sign_access_token(key, kid, Identity(username, role), SETTINGS, lifetime=lifetime)
    return token


@functools.cache
def default_token() -> str:
    """The token test channels send by default: an admin's, valid for the whole session."""
    return token_for(ADMIN, Role.ADMIN)


def service_env(name: str) -> dict[str, str]:
    """The auth settings `start_service` gives a non-auth service by default."""
    prefix = "ODIN_" + name.upper().replace("-", "_")
    return {f"{prefix}_AUTH_JWKS_FILE": str(jwks_file()), f"{prefix}_AUTH_TOKEN_FILE": str(service_token_file())}
