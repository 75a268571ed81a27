"""Authentication and authorization for every Odin service: one interceptor, one role table per service.

Each service declares which role each RPC needs (`runtime.add_service(..., roles=TABLE)`; an
RPC left out of the table needs ADMIN, so a forgotten entry fails closed). A plain `Role` is a
global role; `ProjectRole(role)` is a role in the project the request touches: the interceptor
pre-checks the caller's best role anywhere and the handler checks the project itself
(`odin.runtime.projects.require_project_role`). The suite's robot (Role.SERVICE) may call only
`SERVICE_CALLS`. The interceptor reads `authorization: Bearer <token>`, verifies it, checks the
role and makes the caller available to handlers through `current_identity()`.

Bearer tokens are either access JWTs (verified locally with the JWKS) or API tokens
(`odin_…`), which only the auth service can look up: a service with `auth_address` exchanges
them there for a JWT (`AuthService.ExchangeApiToken`) and remembers the answer for a minute.
Health and reflection are always open.

Revocation: each access token carries its user's token version (`ver`). A service with
`auth_address` and `auth_token_file` polls `AuthService.ListTokenRevocations` (every
`auth_revocation_poll_seconds`, default 2 s) and refuses tokens below a user's minimum version
with UNAUTHENTICATED reason `TOKEN_REVOKED`, so a disabled user is locked out within seconds
rather than when their token expires.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor_pool, json_format
from grpc import aio

from odin.runtime.config import ConfigError
from odin.runtime.errors import PermissionDenied, Unauthenticated, Unavailable
from odin.runtime.interceptors import UnaryBehavior, WrappingInterceptor
from odin.runtime.tokens import (
    Identity,
    JwksFetch,
    KeyCache,
    Role,
    TokenSettings,
    TokenVerifier,
    jwks_file_fetch,
)

__all__ = ["AuthInterceptor", "Identity", "ProjectRole", "Role", "Rule", "authenticated_channel",
           "current_identity"]

log = logging.getLogger("odin.auth")

API_TOKEN_PREFIX = "odin_"
OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
# Who handlers see when enforcement is switched off for a local experiment.
LOCAL_IDENTITY = Identity("local", Role.ADMIN)
_API_TOKEN_CACHE_SECONDS = 60.0

# The calls one Odin service makes to another under its own token: all the robot may do.
# Found by following `authenticated_channel`: the revocation feed (every service), audit records
# (every service), midgard's node polls and job attribution, and the scheduler rendering a stored
# pipeline when no user is behind the call (a schedule firing).
SERVICE_CALLS = frozenset({
    "/odin.auth.v1.AuthService/ListTokenRevocations",
    "/odin.auth.v1.AuditService/WriteAuditRecords",
    "/odin.midgard.v1.AgentService/GetNodeInfo",
    "/odin.scheduler.v1.SchedulerService/ListJobs",
    "/odin.scheduler.v1.SchedulerService/ListTasks",
})


@dataclasses.dataclass(frozen=True)
class ProjectRole:
    """A role needed in the project a request touches (checked by the handler), not globally."""

    role: Role


# What an RPC needs: a global role or a role in the request's project.
Rule = Role | ProjectRole

_identity: contextvars.ContextVar[Identity | None] = contextvars.ContextVar("odin_identity", default=None)
_bearer: contextvars.ContextVar[str | None] = contextvars.ContextVar("odin_bearer", default=None)


def current_identity() -> Identity:
    """The caller of the RPC being handled; raises Unauthenticated outside an authenticated call."""
    identity = _identity.get()
    if identity is None:
        raise Unauthenticated("this call has no authenticated caller", reason="UNAUTHENTICATED")
    return identity


def current_bearer() -> str | None:
    """The bearer token of the RPC being handled, to forward on calls made on the caller's behalf."""
    return _bearer.get()


# Looks up an API token's caller (the auth service locally, others by exchanging it there).
ApiTokenResolver = Callable[[str], Awaitable[Identity]]


class AuthInterceptor(WrappingInterceptor):
    """Refuses calls without a valid token (UNAUTHENTICATED) or the role the RPC needs (PERMISSION_DENIED)."""

    def __init__(self, *, verifier: TokenVerifier | None = None, api_tokens: ApiTokenResolver | None = None,
                 disabled: bool = False, revocations: RevocationFeed | None = None) -> None:
        self.verifier = verifier
        self.api_tokens = api_tokens
        self.disabled = disabled
        self.revocations = revocations
        self.rules: dict[str, Rule] = {}
        if revocations is not None and verifier is not None:
            revocations.on_revoked = verifier.forget

    def use(self, verifier: TokenVerifier, api_tokens: ApiTokenResolver | None,
            revocations: RevocationFeed | None = None) -> None:
        """Verifies with these (the auth service verifies with its own keys and store)."""
        self.verifier, self.api_tokens = verifier, api_tokens
        if revocations is not None:
            self.revocations = revocations
            revocations.on_revoked = verifier.forget

    def register(self, service: str, roles: Mapping[str, Rule] | None) -> None:
        """Adds `service`'s role table (method name → rule); unlisted methods need ADMIN."""
        methods = [m.name for m in descriptor_pool.Default().FindServiceByName(service).methods]
        unknown = set(roles or {}) - set(methods)
        if unknown:
            raise ValueError(f"role table of {service} names unknown methods: {', '.join(sorted(unknown))}")
        missing = [m for m in methods if m not in (roles or {})]
        if missing:
            log.warning("RPCs without a role need admin", extra={"grpc_service": service, "methods": missing})
        for method in methods:
            self.rules[f"/{service}/{method}"] = (roles or {}).get(method, Role.ADMIN)

    def required_role(self, method: str) -> Rule:
        if method.startswith(OPEN_PREFIXES):
            return Role.ANONYMOUS
        return self.rules.get(method, Role.ADMIN)

    def around(self, method: str, behavior: UnaryBehavior) -> UnaryBehavior:
        async def call(request: Any, context: aio.ServicerContext) -> Any:
            identity, bearer = await self.authorize(method, context)
            tokens = _identity.set(identity), _bearer.set(bearer)
            try:
                return await behavior(request, context)
            finally:
                _identity.reset(tokens[0])
                _bearer.reset(tokens[1])

        return call

    async def before_stream(self, method: str, request: Any, context: aio.ServicerContext) -> None:
        """Checks before the stream starts and adds no per-message step (see interceptors.py)."""
        identity, bearer = await self.authorize(method, context)
        _identity.set(identity)  # each RPC runs in its own task, so this ends with the stream
        _bearer.set(bearer)

    async def authorize(self, method: str, context: aio.ServicerContext) -> tuple[Identity | None, str | None]:
        """The caller of `method` (None on an open RPC without a token), after the role check."""
        required = self.required_role(method)
        if self.disabled:
            return LOCAL_IDENTITY, None
        bearer = _bearer_token(context.invocation_metadata())
        if bearer is None:
            if required is Role.ANONYMOUS:
                return None, None
            raise Unauthenticated("this call needs `authorization: Bearer <token>`", reason="TOKEN_MISSING")
        try:
            identity = await self.identify(bearer)
        except Unauthenticated:
            if required is Role.ANONYMOUS:
                return None, None  # a stale token must not block Login or RefreshToken
            raise
        if not allowed(identity, method, required):
            needed = required.role if isinstance(required, ProjectRole) else required
            raise PermissionDenied(
                f"{method.rsplit('/', 1)[-1]} needs the {needed.name.lower()} role",
                reason="ROLE_REQUIRED", metadata={"required_role": needed.name.lower()},
            )
        return identity, bearer

    async def identify(self, bearer: str) -> Identity:
        if bearer.startswith(API_TOKEN_PREFIX):
            if self.api_tokens is None:
                raise Unauthenticated("this service cannot check API tokens (no auth_address); send an access "
                                      "token from AuthService.ExchangeApiToken", reason="API_TOKEN_NOT_ACCEPTED")
            identity = await self.api_tokens(bearer)
        elif self.verifier is None:
            raise Unavailable("this service cannot verify tokens yet", reason="AUTH_NOT_READY")
        else:
            identity = await self.verifier.verify(bearer)
        if self.revocations is not None:
            await self.revocations.check(identity)
        return identity


def allowed(identity: Identity, method: str, required: Rule) -> bool:
    """The interceptor's check: the robot by SERVICE_CALLS, project rules by the best role anywhere."""
    if identity.is_service:
        return method in SERVICE_CALLS
    if required is Role.ANONYMOUS:
        return True
    if isinstance(required, ProjectRole):
        return identity.best_role() >= required.role
    return identity.has(required)


def _bearer_token(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("the authorization header must be `Bearer <token>`", reason="TOKEN_INVALID")
            return token.strip()
    return None


# ---- wiring from ServerConfig ------------------------------------------------------------


def interceptor_from_config(config: Any) -> AuthInterceptor:
    """The interceptor for `config`'s `auth_*` keys; `check_configured` later insists one is set."""
    if config.auth_disabled:
        return AuthInterceptor(disabled=True)
    settings = TokenSettings(issuer=config.auth_issuer, audience=config.auth_audience)
    fetch: JwksFetch | None = None
    if config.auth_jwks_file:
        fetch = jwks_file_fetch(Path(config.auth_jwks_file))
    elif config.auth_address:
        fetch = _auth_service_fetch(config.auth_address)
    if fetch is None:
        return AuthInterceptor()
    verifier = TokenVerifier(KeyCache(fetch), settings)
    exchange = RemoteApiTokens(config.auth_address, verifier) if config.auth_address else None
    feed = None
    if config.auth_address and config.auth_token_file:
        own = ServiceToken(config.auth_token_file, config.auth_address)
        interval = float(config.auth_revocation_poll_seconds)
        feed = RevocationFeed(remote_revocations(config.auth_address, own), interval_seconds=interval)
    elif config.auth_address:
        log.warning("no auth_token_file: revoked tokens keep working here until they expire",
                    extra={"setting": "auth_token_file"})
    return AuthInterceptor(verifier=verifier, api_tokens=exchange, revocations=feed)


def check_configured(interceptor: AuthInterceptor, prefix: str) -> None:
    """Fails start-up when nothing can verify tokens and enforcement is on."""
    if interceptor.disabled:
        log.warning("AUTHENTICATION IS DISABLED: every caller is treated as an admin. Local experiments only!",
                    extra={"setting": f"{prefix}_AUTH_DISABLED"})
        return
    if interceptor.verifier is None:
        raise ConfigError(f"no way to verify tokens: set {prefix}_AUTH_ADDRESS (the auth service) or "
                          f"{prefix}_AUTH_JWKS_FILE (a JWKS file), or {prefix}_AUTH_DISABLED=true for a local "
                          f"experiment")


def _auth_service_fetch(address: str) -> JwksFetch:
    from odin.auth.v1 import auth_pb2, auth_pb2_grpc  # the runtime needs the auth stubs only here

    async def fetch() -> Mapping[str, Any]:
        async with aio.insecure_channel(address) as channel:
            reply = await auth_pb2_grpc.AuthServiceStub(channel).GetJwks(auth_pb2.GetJwksRequest(), timeout=5)
        loaded: Mapping[str, Any] = json_format.MessageToDict(reply, preserving_proto_field_name=True)
        return loaded

    return fetch


# ---- the revocation feed -------------------------------------------------------------------

DEFAULT_POLL_SECONDS = 2.0
# How long the first call waits for the feed before going ahead without it.
_FIRST_LOAD_SECONDS = 3.0
_FEED_PAGE = 10_000
# (after_seq, page size) → ([(username, min version, seq)], latest seq)
RevocationFetch = Callable[[int, int], Awaitable[tuple[list[tuple[str, int, int]], int]]]


class RevocationFeed:
    """The lowest accepted token version per user, kept current by polling the auth service.

    Started by the first authenticated call (the interceptor is built before the event loop
    runs). If the auth service cannot be reached the feed keeps what it has and retries: an
    outage of auth must not take down every service, and tokens still expire on their own.
    """

    def __init__(self, fetch: RevocationFetch, *, interval_seconds: float = DEFAULT_POLL_SECONDS) -> None:
        self._fetch = fetch
        self.interval_seconds = interval_seconds
        self.minimum: dict[str, int] = {}
        self.seq = 0
        self.on_revoked: Callable[[str], object] = lambda username: None
        self._task: asyncio.Task[None] | None = None
        self._loaded = asyncio.Event()

    async def check(self, identity: Identity) -> None:
        """Raises UNAUTHENTICATED `TOKEN_REVOKED` when `identity`'s token is older than its user's minimum."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="odin-revocation-feed")
        if not self._loaded.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._loaded.wait(), _FIRST_LOAD_SECONDS)
        if identity.token_version < self.minimum.get(identity.username, 0):
            raise Unauthenticated("the token was revoked (account or permissions changed); refresh or log in again",
                                  reason="TOKEN_REVOKED")

    async def poll_once(self) -> None:
        while True:
            entries, latest = await self._fetch(self.seq, _FEED_PAGE)
            for username, min_version, seq in entries:
                if min_version > self.minimum.get(username, 0):
                    self.minimum[username] = min_version
                    self.on_revoked(username)
                self.seq = max(self.seq, seq)
            if len(entries) < _FEED_PAGE:
                self.seq = max(self.seq, latest)
                return

    async def _run(self) -> None:
        failing = False
        while True:
            try:
                await self.poll_once()
                self._loaded.set()
                if failing:
                    log.info("the revocation feed is back")
                failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not failing:
                    log.warning("cannot read the revocation feed; retrying", extra={"error": repr(exc)})
                failing = True
                self._loaded.set()  # do not hold up calls while auth is away
            await asyncio.sleep(self.interval_seconds)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def remote_revocations(address: str, own: ServiceToken) -> RevocationFetch:
    """Reads the feed from the auth service at `address` with this service's own token."""
    from odin.auth.v1 import auth_pb2, auth_pb2_grpc

    channel: aio.Channel | None = None

    async def fetch(after_seq: int, limit: int) -> tuple[list[tuple[str, int, int]], int]:
        nonlocal channel
        if channel is None:
            channel = aio.insecure_channel(address)
        bearer = await own.bearer()
        metadata = (("authorization", f"Bearer {bearer}"),) if bearer else ()
        reply = await auth_pb2_grpc.AuthServiceStub(channel).ListTokenRevocations(
            auth_pb2.ListTokenRevocationsRequest(after_seq=after_seq, page_size=limit), metadata=metadata, timeout=5)
        entries = [(r.user.removeprefix("users/"), int(r.min_token_version), int(r.seq)) for r in reply.revocations]
        return entries, int(reply.latest_seq)

    return fetch


class RemoteApiTokens:
    """Exchanges API tokens at the auth service and remembers each caller for a minute.

    So a revoked API token stops working within `_API_TOKEN_CACHE_SECONDS` on other services.
    """

    def __init__(self, address: str, verifier: TokenVerifier, clock: Callable[[], float] = time.time) -> None:
        self.address = address
        self.verifier = verifier
        self._clock = clock
        self._known: dict[str, tuple[Identity, float]] = {}

    async def __call__(self, token: str) -> Identity:
        digest = hashlib.sha256(token.encode()).hexdigest()
        known = self._known.get(digest)
        if known and known[1] > self._clock():
            return known[0]
        access = await exchange_api_token(self.address, token)
        identity = await self.verifier.verify(access)
        if len(self._known) > 4096:
            self._known.clear()
        self._known[digest] = (identity, min(identity.expires_at, self._clock() + _API_TOKEN_CACHE_SECONDS))
        return identity


async def exchange_api_token(address: str, token: str) -> str:
    """An access JWT for an API token, from the auth service at `address`."""
    from odin.auth.v1 import auth_pb2, auth_pb2_grpc

    try:
        async with aio.insecure_channel(address) as channel:
            reply = await auth_pb2_grpc.AuthServiceStub(channel).ExchangeApiToken(
                auth_pb2.ExchangeApiTokenRequest(api_token=token), timeout=5)
    except aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
            raise Unauthenticated("the API token is not valid", reason="TOKEN_INVALID") from None
        raise Unavailable("the auth service cannot check API tokens right now", reason="AUTH_UNAVAILABLE") from None
    return str(reply.access_token)


# ---- outgoing calls ---------------------------------------------------------------------


class ServiceToken:
    """The bearer a service sends on its own calls: `auth_token_file` holds a JWT or an API token.

    The file is read on every call (the auth service renews the robot's expiring token in place); an
    API token is exchanged at `auth_address` and the JWT reused until a minute before it expires.
    """

    def __init__(self, token_file: Path | None, auth_address: str, clock: Callable[[], float] = time.time) -> None:
        self.token_file = token_file
        self.auth_address = auth_address
        self._clock = clock
        self._access: tuple[str, str, float] | None = None

    async def bearer(self) -> str | None:
        secret = await asyncio.to_thread(_read_secret, self.token_file)
        if not secret:
            return None
        if not secret.startswith(API_TOKEN_PREFIX):
            return secret
        # Keyed by the secret: the auth service rewrites the file when it renews the robot's token.
        if self._access and self._access[0] == secret and self._access[2] - 60 > self._clock():
            return self._access[1]
        access = await exchange_api_token(self.auth_address, secret)
        expires = float(json.loads(_jwt_payload(access)).get("exp", 0))
        self._access = (secret, access, expires)
        return access


def _read_secret(path: Path | None) -> str:
    """The file's secret; empty when there is no file (yet: the auth service may still write it)."""
    try:
        return path.read_text().strip() if path else ""
    except FileNotFoundError:
        return ""


def _jwt_payload(token: str) -> bytes:
    part = token.split(".")[1]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def authenticated_channel(address: str, config: Any) -> aio.Channel:
    """A channel to another Odin service that sends the caller's token when handling a call on their
    behalf, and otherwise the service's own token (`auth_token_file`)."""
    own = ServiceToken(config.auth_token_file, config.auth_address)
    # grpc.aio files each interceptor under the first call type it implements: one object per type.
    return aio.insecure_channel(address, interceptors=[_UnaryBearer(own.bearer), _StreamBearer(own.bearer)])


class _BearerClient:
    def __init__(self, own: Callable[[], Awaitable[str | None]]) -> None:
        self.own = own

    async def _details(self, details: Any) -> Any:
        token = current_bearer() or await self.own()
        if not token:
            return details
        metadata = aio.Metadata(*(details.metadata or ()), ("authorization", f"Bearer {token}"))
        return aio.ClientCallDetails(details.method, details.timeout, metadata, details.credentials,
                                     details.wait_for_ready)


class _UnaryBearer(_BearerClient, aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(await self._details(details), request)


class _StreamBearer(_BearerClient, aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(await self._details(details), request)
