"""The auth domain: logins, sessions, users, API tokens and token versions. Imports no grpc.

Blocking work (argon2, the database) runs in worker threads so the event loop stays free.
Rules in one place: admins manage everyone; others read and edit only themselves (and
only `display_name` and `email`); secrets are stored as hashes and never logged. Access tokens
carry the user's project memberships and token version; every change that must void them
(disable, delete, role, membership, password) raises the version in the same transaction.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import re
import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from odin.runtime.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from odin.runtime.tokens import Identity, Role, TokenSettings, sign_access_token
from odin_auth.keyring import KeyRing
from odin_auth.passwords import Passwords, validate_new_password
from odin_auth.store import ApiTokenRow, RefreshRow, RevocationRow, Store, UserRow
from odin_auth.throttle import LoginThrottle

log = logging.getLogger("odin.auth")

USERNAME = re.compile(r"^[a-z][a-z0-9._-]{0,62}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
REFRESH_PREFIX = "odinrt_"
API_TOKEN_PREFIX = "odin_"
SELF_EDITABLE = frozenset({"display_name", "email"})
ADMIN_EDITABLE = SELF_EDITABLE | {"role", "disabled"}
_BAD_LOGIN = "wrong username or password"
# Longer input cannot be a valid login: refused before any lookup, hash or throttle key.
MAX_USERNAME = 63
MAX_PASSWORD = 1024
T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class TokenPair:
    access_token: str
    access_expire_time: float
    refresh_token: str
    refresh_expire_time: float


@dataclasses.dataclass(frozen=True)
class NewApiToken:
    row: ApiTokenRow
    secret: str


def digest(secret: str) -> str:
    """The stored form of a high-entropy secret (refresh or API token)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def validate_username(username: str, field: str) -> None:
    if username == "me" or not USERNAME.match(username):
        raise InvalidArgument.field(field, "must be 1-63 characters of a-z, 0-9, '.', '_', '-', starting with a "
                                           "letter ('me' is reserved)")


def validate_profile(display_name: str, email: str, prefix: str) -> None:
    problems = []
    if len(display_name) > 200:
        problems.append((f"{prefix}.display_name", "must be at most 200 characters"))
    if email and (len(email) > 254 or not EMAIL.match(email)):
        problems.append((f"{prefix}.email", "must be an e-mail address like name@example.org"))
    if problems:
        raise InvalidArgument("; ".join(f"{f}: {d}" for f, d in problems), problems)


class AuthCore:
    def __init__(self, store: Store, passwords: Passwords, keys: KeyRing, settings: TokenSettings, *,
                 refresh_seconds: float, throttle_user: LoginThrottle, throttle_client: LoginThrottle,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.passwords = passwords
        self.keys = keys
        self.settings = settings
        self.refresh_seconds = refresh_seconds
        self.throttle_user = throttle_user
        self.throttle_client = throttle_client
        self.clock = clock

    @staticmethod
    async def _bg(fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    # ---- sessions

    async def login(self, username: str, password: str, client: str) -> tuple[TokenPair, UserRow]:
        if len(username) > MAX_USERNAME or len(password) > MAX_PASSWORD:
            raise Unauthenticated(_BAD_LOGIN, reason="LOGIN_FAILED")
        user_key, client_key = f"user:{username}", f"client:{client}"
        # Check both, then count this attempt as a failure before the first await: concurrent
        # guesses each see the ones before them. A success takes its count back below.
        self.throttle_user.check(user_key)
        self.throttle_client.check(client_key)
        self.throttle_user.failed(user_key)
        client_stamp = self.throttle_client.failed(client_key)
        user = await self._bg(self.store.get_user, username)
        matches = await self._bg(self.passwords.check, user.password_hash if user else None, password)
        if user is None or not matches or user.disabled or user.role == Role.SERVICE:
            log.info("login failed", extra={"username": username, "client": client})
            raise Unauthenticated(_BAD_LOGIN, reason="LOGIN_FAILED")
        self.throttle_user.succeeded(user_key)
        self.throttle_client.forgive(client_key, client_stamp)
        if self.passwords.needs_rehash(user.password_hash):
            await self._bg(self._set_password, username, password)
        log.info("login", extra={"username": username, "client": client})
        return await self._new_session(user, uuid.uuid4().hex), user

    async def refresh(self, refresh_token: str) -> TokenPair:
        outcome, row = await self._bg(self.store.use_refresh_token, digest(refresh_token), self.clock())
        if outcome == "reused" and row is not None:
            log.warning("refresh token re-used: session revoked", extra={"username": row.username,
                                                                         "session": row.family})
        if outcome != "ok" or row is None:
            raise Unauthenticated("the refresh token is not valid", reason="REFRESH_TOKEN_INVALID")
        user = await self._bg(self.store.get_user, row.username)
        if user is None or user.disabled:
            await self._bg(self.store.revoke_family, row.family)
            raise Unauthenticated("the refresh token is not valid", reason="REFRESH_TOKEN_INVALID")
        return await self._new_session(user, row.family)

    async def logout(self, refresh_token: str) -> None:
        family = await self._bg(self.store.family_of, digest(refresh_token))
        if family is not None:
            await self._bg(self.store.revoke_family, family)

    async def _new_session(self, user: UserRow, family: str) -> TokenPair:
        now = self.clock()
        identity = await self._identity(user, session=family)
        access, access_expires = self._sign(identity, now)
        refresh = REFRESH_PREFIX + secrets.token_urlsafe(32)
        row = RefreshRow(digest(refresh), family, user.username, "active", now + self.refresh_seconds)
        await self._bg(self.store.add_refresh_token, row, now)
        return TokenPair(access, access_expires, refresh, row.expire_time)

    async def _identity(self, user: UserRow, **extra: Any) -> Identity:
        """`user` as a token describes them: global role, memberships and current token version."""
        version, members = await self._bg(self.store.token_claims, user.username)
        return Identity(user.username, Role(user.role), projects={p: Role(r) for p, r in members.items()},
                        token_version=version, **extra)

    def _sign(self, identity: Identity, now: float, lifetime: float | None = None) -> tuple[str, float]:
        kid, key = self.keys.signing_key(now)
        return sign_access_token(key, kid, identity, self.settings, now=now, lifetime=lifetime)

    # ---- callers

    async def caller(self, identity: Identity) -> UserRow:
        """The caller's current record; a deleted or disabled user's token stops working here at once."""
        user = await self._bg(self.store.get_user, identity.username)
        if user is None or user.disabled:
            raise Unauthenticated("the caller's account is disabled or gone", reason="USER_DISABLED")
        # The auth service applies revocations directly (others learn them from the feed).
        version, _ = await self._bg(self.store.token_claims, identity.username)
        if identity.token_version < version:
            raise Unauthenticated("the token was revoked (account or permissions changed); refresh or log in again",
                                  reason="TOKEN_REVOKED")
        return user

    @staticmethod
    def resolve(identity: Identity, username: str) -> str:
        """`me` names the caller."""
        return identity.username if username == "me" else username

    @staticmethod
    def require_self_or_admin(identity: Identity, username: str) -> None:
        if username != identity.username and not identity.has(Role.ADMIN):
            raise PermissionDenied("only admins may act on other users", reason="ROLE_REQUIRED",
                                   metadata={"required_role": "admin"})

    # ---- users

    async def create_user(self, username: str, display_name: str, email: str, role: Role, password: str) -> UserRow:
        now = self.clock()
        hashed = await self._bg(self.passwords.hash, password)
        user = UserRow(username, display_name, email, int(role), False, hashed, now, now, 1)
        await self._bg(self.store.insert_user, user)
        log.info("user created", extra={"user": username, "role": role.name.lower()})
        return user

    async def get_user(self, username: str) -> UserRow:
        user = await self._bg(self.store.get_user, username)
        if user is None:
            raise NotFound(f"user users/{username} does not exist", reason="USER_NOT_FOUND",
                           metadata={"user": f"users/{username}"})
        return user

    async def list_users(self, after: str, limit: int) -> list[UserRow]:
        return await self._bg(self.store.list_users, after, limit)

    async def update_user(self, caller: Identity, username: str, changes: dict[str, Any],
                          revision: int | None) -> UserRow:
        allowed = ADMIN_EDITABLE if caller.has(Role.ADMIN) else SELF_EDITABLE
        forbidden = sorted(set(changes) - allowed)
        if forbidden:
            raise PermissionDenied(f"only admins may change {', '.join(forbidden)}", reason="ROLE_REQUIRED",
                                   metadata={"required_role": "admin"})
        if username == caller.username and (changes.get("disabled") or changes.get("role", Role.ADMIN) < Role.ADMIN):
            raise FailedPrecondition("admins cannot demote or disable themselves; ask another admin",
                                     reason="SELF_LOCKOUT")
        if "role" in changes and (await self.get_user(username)).role == Role.SERVICE:
            raise FailedPrecondition("the service robot's role cannot be changed", reason="SERVICE_ACCOUNT")
        voids = "role" in changes or bool(changes.get("disabled"))
        user = await self._bg(lambda: self.store.update_user(username, changes, revision, self.clock(),
                                                             revoke=voids))
        if user.disabled:
            await self._bg(self.store.revoke_sessions, username, "")
        log.info("user updated", extra={"user": username, "fields": sorted(changes), "by": caller.username})
        return user

    async def delete_user(self, caller: Identity, username: str, revision: int | None) -> None:
        if username == caller.username:
            raise FailedPrecondition("admins cannot delete themselves", reason="SELF_LOCKOUT")
        await self._bg(self.store.delete_user, username, revision)
        log.info("user deleted", extra={"user": username, "by": caller.username})

    async def change_password(self, caller: Identity, username: str, current: str, new: str) -> None:
        self.require_self_or_admin(caller, username)
        user = await self.get_user(username)
        if username == caller.username or not caller.has(Role.ADMIN):
            if not current:
                raise InvalidArgument.field("current_password", "is required to change your own password")
            if len(current) > MAX_PASSWORD:
                raise Unauthenticated("the current password is wrong", reason="LOGIN_FAILED")
            # A stolen access token must not become an unthrottled password oracle: same counts as Login.
            key = f"user:{username}"
            self.throttle_user.attempt(key)
            if not await self._bg(self.passwords.check, user.password_hash, current):
                raise Unauthenticated("the current password is wrong", reason="LOGIN_FAILED")
            self.throttle_user.succeeded(key)
        validate_new_password(new, "new_password")
        hashed = await self._bg(self.passwords.hash, new)
        await self._bg(lambda: self.store.update_user(username, {"password_hash": hashed}, None, self.clock(),
                                                      revoke=True))
        keep = caller.session if username == caller.username else ""
        await self._bg(self.store.revoke_sessions, username, keep)
        log.info("password changed", extra={"user": username, "by": caller.username})

    def _set_password(self, username: str, password: str) -> None:
        self.store.update_user(username, {"password_hash": self.passwords.hash(password)}, None, self.clock())

    async def bootstrap_admin(self, username: str, password: str) -> bool:
        """Creates the first admin unless an admin exists; True when it did."""
        if await self._bg(self.store.has_admin, int(Role.ADMIN)):
            return False
        validate_username(username, "bootstrap_admin_username")
        validate_new_password(password, "bootstrap_admin_password")
        await self.create_user(username, "Administrator", "", Role.ADMIN, password)
        log.warning("bootstrap admin created", extra={"user": username})
        return True

    # ---- API tokens

    async def create_api_token(self, username: str, display_name: str, expire_time: float | None) -> NewApiToken:
        now = self.clock()
        if expire_time is not None and expire_time <= now:
            raise InvalidArgument.field("api_token.expire_time", "must be in the future")
        if len(display_name) > 200:
            raise InvalidArgument.field("api_token.display_name", "must be at most 200 characters")
        await self.get_user(username)
        secret = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = ApiTokenRow(secrets.token_hex(8), username, display_name, digest(secret), now, expire_time, None, None)
        await self._bg(self.store.insert_api_token, row)
        log.info("API token created", extra={"user": username, "token_id": row.id})
        return NewApiToken(row, secret)

    async def list_api_tokens(self, username: str, before: tuple[float, str] | None, limit: int) -> list[ApiTokenRow]:
        return await self._bg(self.store.list_api_tokens, username, before, limit)

    async def revoke_api_token(self, username: str, token_id: str) -> ApiTokenRow:
        row = await self._bg(self.store.revoke_api_token, username, token_id, self.clock())
        if row is None:
            raise NotFound(f"API token users/{username}/apiTokens/{token_id} does not exist",
                           reason="API_TOKEN_NOT_FOUND")
        log.info("API token revoked", extra={"user": username, "token_id": token_id})
        return row

    async def api_token_identity(self, secret: str) -> Identity:
        """Who an API token belongs to; Unauthenticated when revoked, expired or the user is disabled."""
        now = self.clock()
        row = await self._bg(self.store.api_token_by_hash, digest(secret), now)
        user = await self._bg(self.store.get_user, row.username) if row else None
        usable = row is not None and row.revoke_time is None and (row.expire_time is None or row.expire_time > now)
        if row is None or user is None or user.disabled or not usable:
            raise Unauthenticated("the API token is not valid", reason="TOKEN_INVALID")
        expires = min(now + self.settings.access_seconds, row.expire_time or float("inf"))
        return await self._identity(user, api_token=row.id, expires_at=expires)

    async def exchange_api_token(self, secret: str) -> tuple[str, float]:
        identity = await self.api_token_identity(secret)
        now = self.clock()
        return self._sign(identity, now, lifetime=identity.expires_at - now)

    # ---- revocations and housekeeping

    async def list_revocations(self, after_seq: int, limit: int) -> tuple[list[RevocationRow], int]:
        return await self._bg(self.store.list_revocations, after_seq, limit)

    async def purge_refresh_tokens(self) -> int:
        """Deletes expired refresh tokens; how many."""
        purged = await self._bg(self.store.purge_refresh_tokens, self.clock())
        if purged:
            log.info("expired refresh tokens deleted", extra={"count": purged})
        return purged
