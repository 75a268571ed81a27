"""Access tokens: Ed25519-signed JWTs, their verification, and the key sets that verify them.

The auth service signs; every service verifies with the public keys of a JSON Web Key Set
(from `AuthService.GetJwks` or a static file). Only `EdDSA` is accepted: `none`, HMAC and
anything else is refused before a key is even looked up, so a public key can never be
mistaken for an HMAC secret.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import enum
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from odin.runtime.errors import Unauthenticated, Unavailable

log = logging.getLogger("odin.auth")

ALGORITHM = "EdDSA"
DEFAULT_ISSUER = "odin-auth"
DEFAULT_AUDIENCE = "odin"
# Clock skew tolerated between the auth service and the verifying service.
LEEWAY_SECONDS = 30
_REQUIRED_CLAIMS = ["exp", "iat", "nbf", "iss", "aud", "sub", "role"]


class Role(enum.IntEnum):
    """What a caller may do; the numbers equal `odin.auth.v1.User.Role`. ANONYMOUS marks open RPCs.

    VIEWER < USER < ADMIN are ordered. SERVICE (the suite's own robot) is outside that order: it
    may make only the calls listed in `odin.runtime.auth.SERVICE_CALLS`, never compare it with `>=`.
    """

    ANONYMOUS = 0
    VIEWER = 1
    USER = 2
    ADMIN = 3
    SERVICE = 4

    @classmethod
    def from_claim(cls, name: object) -> Role:
        try:
            role = cls[str(name).upper()]
        except KeyError:
            raise Unauthenticated("the token names no known role", reason="TOKEN_INVALID") from None
        if role is Role.ANONYMOUS:
            raise Unauthenticated("the token names no known role", reason="TOKEN_INVALID")
        return role


DEFAULT_PROJECT = "default"


@dataclasses.dataclass(frozen=True)
class Identity:
    """The verified caller: `users/<username>`, global role and project roles.

    `session` and `api_token` say how it logged in; `token_version` is the `ver` claim, checked
    against the revocation feed. `projects` holds explicit memberships (project id → role).
    """

    username: str
    role: Role
    session: str = ""
    api_token: str = ""
    expires_at: float = 0.0
    projects: Mapping[str, Role] = dataclasses.field(default_factory=dict)
    token_version: int = 0

    @property
    def name(self) -> str:
        return f"users/{self.username}"

    @property
    def is_service(self) -> bool:
        return self.role is Role.SERVICE

    def has(self, required: Role) -> bool:
        """Whether the global role is at least `required` (the robot's role never is)."""
        return not self.is_service and self.role >= required

    def project_role(self, project: str) -> Role:
        """The caller's role in `project` (a bare id); ANONYMOUS when not a member.

        Admins are admins everywhere; in the default project everyone has their global role
        (so a single-team setup needs no memberships); elsewhere only memberships count. The
        robot is a viewer everywhere (it can reach only SERVICE_CALLS anyway).
        """
        if self.is_service:
            # The robot reads across projects, but only through SERVICE_CALLS (the interceptor's gate),
            # e.g. midgard's job attribution and a schedule's RenderPipeline.
            return Role.VIEWER
        if self.role is Role.ADMIN:
            return Role.ADMIN
        implicit = self.role if project == DEFAULT_PROJECT else Role.ANONYMOUS
        return max(implicit, self.projects.get(project, Role.ANONYMOUS))

    def best_role(self) -> Role:
        """The highest role the caller has anywhere: what a project-scoped RPC is pre-checked against."""
        if self.is_service:
            return Role.ANONYMOUS
        return max([self.role, *self.projects.values()])

    def visible_projects(self) -> frozenset[str] | None:
        """The projects whose resources the caller may read; None means every project (admins, the robot)."""
        if self.role is Role.ADMIN or self.is_service:
            return None
        members = {p for p, r in self.projects.items() if r >= Role.VIEWER}
        if self.role >= Role.VIEWER and not self.is_service:
            members.add(DEFAULT_PROJECT)
        return frozenset(members)


# ---- keys ----------------------------------------------------------------------------------


def public_jwk(key: Ed25519PublicKey, kid: str) -> dict[str, str]:
    """The JWK (RFC 8037) of an Ed25519 public key."""
    raw = key.public_bytes_raw()
    x = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": ALGORITHM, "use": "sig"}


def key_id(key: Ed25519PublicKey) -> str:
    """A stable key id: the RFC 7638 thumbprint of the public key, shortened."""
    jwk = public_jwk(key, "")
    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x")}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")[:16]


def keys_from_jwks(jwks: Mapping[str, Any]) -> dict[str, Ed25519PublicKey]:
    """The Ed25519 keys of a JWKS document by kid; other key types are skipped."""
    found: dict[str, Ed25519PublicKey] = {}
    for entry in jwks.get("keys", []):
        if entry.get("kty") != "OKP" or entry.get("crv") != "Ed25519" or not entry.get("kid"):
            continue
        raw = base64.urlsafe_b64decode(str(entry["x"]) + "=" * (-len(str(entry["x"])) % 4))
        found[str(entry["kid"])] = Ed25519PublicKey.from_public_bytes(raw)
    return found


# ---- signing -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TokenSettings:
    """Issuer, audience and access token lifetime, shared by signer and verifiers."""

    issuer: str = DEFAULT_ISSUER
    audience: str = DEFAULT_AUDIENCE
    access_seconds: int = 600


def sign_access_token(
    key: Ed25519PrivateKey, kid: str, identity: Identity, settings: TokenSettings, *, now: float | None = None,
    lifetime: float | None = None,
) -> tuple[str, float]:
    """A signed JWT for `identity`, and when it expires."""
    issued = time.time() if now is None else now
    expires = issued + (settings.access_seconds if lifetime is None else lifetime)
    claims: dict[str, Any] = {
        "iss": settings.issuer,
        "aud": settings.audience,
        "sub": identity.name,
        "role": identity.role.name.lower(),
        "iat": int(issued),
        "nbf": int(issued),
        "exp": int(expires),
        "jti": uuid.uuid4().hex,
    }
    if identity.session:
        claims["sid"] = identity.session
    if identity.api_token:
        claims["tok"] = identity.api_token
    if identity.projects:
        claims["prj"] = {project: role.name.lower() for project, role in sorted(identity.projects.items())}
    claims["ver"] = identity.token_version
    token = jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": kid})
    return token, float(int(expires))


# ---- verification --------------------------------------------------------------------------

JwksFetch = Callable[[], Awaitable[Mapping[str, Any]]]


class KeyCache:
    """Public keys by kid, fetched on demand, refreshed when stale or when an unknown kid shows up.

    Refreshes are rate limited (`min_refresh_seconds`), so a flood of tokens with made-up kids
    cannot turn into a flood of JWKS fetches.
    """

    def __init__(self, fetch: JwksFetch, *, max_age_seconds: float = 300.0, min_refresh_seconds: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._max_age = max_age_seconds
        self._min_refresh = min_refresh_seconds
        self._clock = clock
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def key(self, kid: str) -> Ed25519PublicKey | None:
        stale = self._fetched_at is None or self._clock() - self._fetched_at > self._max_age
        if kid not in self._keys or stale:
            await self._refresh()
        return self._keys.get(kid)

    async def _refresh(self) -> None:
        async with self._lock:
            if self._fetched_at is not None and self._clock() - self._fetched_at < self._min_refresh:
                return
            self._fetched_at = self._clock()
            self.fetches += 1
            try:
                self._keys = keys_from_jwks(await self._fetch())
            except Exception as exc:  # keep the keys we have; no keys at all means we cannot judge
                log.warning("cannot fetch the JWKS", extra={"error": repr(exc)})
                if not self._keys:
                    raise Unavailable("the keys that verify tokens are unavailable", reason="JWKS_UNAVAILABLE") \
                        from None


def jwks_file_fetch(path: Path) -> JwksFetch:
    """Reads a JWKS file (re-read on refresh, so a rotated Kubernetes secret is picked up)."""

    async def fetch() -> Mapping[str, Any]:
        loaded: Mapping[str, Any] = json.loads(await asyncio.to_thread(path.read_text))
        return loaded

    return fetch


class TokenVerifier:
    """Turns a bearer JWT into an Identity, or raises Unauthenticated.

    Verified tokens are remembered until they expire (bounded), so the signature check runs
    once per token rather than once per call.
    """

    def __init__(self, keys: KeyCache, settings: TokenSettings, *, cache_size: int = 4096,
                 clock: Callable[[], float] = time.time) -> None:
        self.keys = keys
        self.settings = settings
        self._clock = clock
        self._cache: dict[str, Identity] = {}
        self._cache_size = cache_size

    async def verify(self, token: str) -> Identity:
        cached = self._cache.get(token)
        if cached is not None and cached.expires_at > self._clock():
            return cached
        identity = await self._verify_uncached(token)
        if len(self._cache) >= self._cache_size:
            self._cache.pop(next(iter(self._cache)))
        self._cache[token] = identity
        return identity

    async def _verify_uncached(self, token: str) -> Identity:
        header = _header(token)
        key = await self.keys.key(str(header.get("kid", "")))
        if key is None:
            raise Unauthenticated("the token was signed by an unknown key", reason="TOKEN_INVALID")
        claims = self.decode(token, key)
        subject = str(claims["sub"])
        if not subject.startswith("users/") or len(subject) <= len("users/"):
            raise Unauthenticated("the token has no valid subject", reason="TOKEN_INVALID")
        # Tokens from before projects have no `prj`/`ver`: version 0, no memberships (rolling upgrades).
        return Identity(subject.removeprefix("users/"), Role.from_claim(claims["role"]),
                        session=str(claims.get("sid", "")), api_token=str(claims.get("tok", "")),
                        expires_at=float(claims["exp"]), projects=_memberships(claims.get("prj", {})),
                        token_version=_version(claims.get("ver", 0)))

    def forget(self, username: str) -> int:
        """Drops the cached identities of `username` (their tokens were revoked); how many."""
        stale = [token for token, identity in self._cache.items() if identity.username == username]
        for token in stale:
            self._cache.pop(token, None)
        return len(stale)

    def decode(self, token: str, key: Ed25519PublicKey) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=[ALGORITHM], audience=self.settings.audience, issuer=self.settings.issuer,
                leeway=LEEWAY_SECONDS, options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired", reason="TOKEN_EXPIRED") from None
        except jwt.PyJWTError:
            raise Unauthenticated("the token is not valid", reason="TOKEN_INVALID") from None
        return claims


_MEMBER_ROLES = {"viewer": Role.VIEWER, "user": Role.USER, "admin": Role.ADMIN}


def _memberships(claim: object) -> dict[str, Role]:
    """The `prj` claim ({project: role name}); anything else makes the token invalid."""
    if not isinstance(claim, dict) or not all(isinstance(v, str) and v in _MEMBER_ROLES for v in claim.values()):
        raise Unauthenticated("the token's project memberships are malformed", reason="TOKEN_INVALID")
    return {str(project): _MEMBER_ROLES[role] for project, role in claim.items()}


def _version(claim: object) -> int:
    if not isinstance(claim, int) or isinstance(claim, bool) or claim < 0:
        raise Unauthenticated("the token's version is malformed", reason="TOKEN_INVALID")
    return claim


def _header(token: str) -> dict[str, Any]:
    """The unverified header, refused unless it names the one allowed algorithm."""
    try:
        header: dict[str, Any] = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise Unauthenticated("the token is not a JWT", reason="TOKEN_INVALID") from None
    if header.get("alg") != ALGORITHM:
        raise Unauthenticated("the token's algorithm is not allowed", reason="TOKEN_INVALID")
    return header


def jwks_document(keys: Sequence[tuple[str, Ed25519PublicKey]]) -> dict[str, Any]:
    """A JWKS document for (kid, public key) pairs, in the given order."""
    return {"keys": [public_jwk(key, kid) for kid, key in keys]}
