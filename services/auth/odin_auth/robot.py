"""The service robot `users/odin-system`: the identity Odin services use for their own calls.

It has role SERVICE (not admin): the interceptors let it make only `SERVICE_CALLS`. Its
credential is an API token with an expiry, kept in a `TokenStore`: a file (`bootstrap_service_token_file`,
0600, what `odin dev` uses) or a Kubernetes Secret (`bootstrap_service_token_secret`, which the other
services mount; the kubelet refreshes mounted Secrets within a minute or two). The auth service renews
it once less than half its lifetime is left, and every service's `ServiceToken` re-reads the file on
each call. A robot from before this
change (an admin with a never-expiring token) is migrated at start: demoted to SERVICE, its
older tokens voided (token version) and its never-expiring API tokens revoked.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import secrets
from pathlib import Path
from typing import Any, Protocol

from odin.runtime.errors import Unauthenticated
from odin.runtime.tokens import Role
from odin_auth.core import AuthCore, digest

log = logging.getLogger("odin.auth")
SERVICE_USER = "odin-system"
RECHECK_SECONDS = 300.0


async def ensure_robot(core: AuthCore) -> None:
    """Creates the robot, or migrates an admin robot to the SERVICE role."""
    user = await asyncio.to_thread(core.store.get_user, SERVICE_USER)
    if user is None:
        # A random password nobody keeps (and Login refuses the robot anyway).
        await core.create_user(SERVICE_USER, "Odin services", "", Role.SERVICE, secrets.token_urlsafe(48))
        return
    if user.role != Role.SERVICE:
        await asyncio.to_thread(lambda: core.store.update_user(SERVICE_USER, {"role": int(Role.SERVICE)}, None,
                                                                core.clock(), revoke=True))
        log.warning("the service robot was migrated to the service role", extra={"user": SERVICE_USER,
                                                                                 "was": Role(user.role).name.lower()})
    revoked = await asyncio.to_thread(core.store.revoke_unexpiring_api_tokens, SERVICE_USER, core.clock())
    if revoked:
        log.warning("never-expiring service robot tokens revoked", extra={"count": revoked})


class TokenStore(Protocol):
    """Where the robot's current token is kept for the other services (blocking calls)."""

    def read(self) -> str: ...

    def write(self, secret: str) -> None: ...


class FileTokenStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> str:
        return _read_if_exists(self.path)

    def write(self, secret: str) -> None:
        write_secret(self.path, secret)

    def __str__(self) -> str:
        return str(self.path)


class SecretTokenStore:
    """The key `token` of a Kubernetes Secret that already exists (deploy/ ships it empty), so the auth
    service needs only `get` and `patch` on that one Secret."""

    KEY = "token"

    def __init__(self, core_api: Any, namespace: str, name: str) -> None:
        self.api, self.namespace, self.name = core_api, namespace, name

    def read(self) -> str:
        data = self.api.read_namespaced_secret(self.name, self.namespace).data or {}
        return base64.b64decode(data.get(self.KEY, "")).decode().strip()

    def write(self, secret: str) -> None:
        body = {"data": {self.KEY: base64.b64encode(secret.encode()).decode()}}
        self.api.patch_namespaced_secret(self.name, self.namespace, body)

    def __str__(self) -> str:
        return f"secret {self.namespace}/{self.name}"


def secret_token_store(reference: str) -> SecretTokenStore:
    """`namespace/name`, or `name` in the namespace this pod runs in, with in-cluster credentials."""
    from kubernetes import client, config  # only the Kubernetes deployment needs the client

    namespace, _, name = reference.rpartition("/")
    if not namespace:
        namespace = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read_text().strip()
    config.load_incluster_config()  # type: ignore[no-untyped-call]
    return SecretTokenStore(client.CoreV1Api(), namespace, name)


async def renew_token_file(core: AuthCore, store: TokenStore, lifetime_seconds: float) -> float:
    """Makes sure `store` holds a robot API token with more than half its lifetime left; returns when
    it should be checked next (seconds)."""
    existing = await asyncio.to_thread(store.read)
    now = core.clock()
    if existing:
        try:
            identity = await core.api_token_identity(existing)
            row = await asyncio.to_thread(core.store.api_token_by_hash, digest(existing), now)
            left = (row.expire_time - now) if row and row.expire_time is not None else 0.0
            if identity.username == SERVICE_USER and left > lifetime_seconds / 2:
                return max(1.0, left - lifetime_seconds / 2)
        except Unauthenticated:
            log.warning("the service token store holds no valid token; writing a new one",
                        extra={"store": str(store)})
    new = await core.create_api_token(SERVICE_USER, "service calls between Odin services", now + lifetime_seconds)
    await asyncio.to_thread(store.write, new.secret)
    log.info("service robot token renewed", extra={"store": str(store), "token_id": new.row.id})
    return max(1.0, lifetime_seconds / 2)


async def keep_token_fresh(core: AuthCore, store: TokenStore, lifetime_seconds: float,
                           stopping: asyncio.Event) -> None:
    """Renews the robot's token for as long as the service runs."""
    while not stopping.is_set():
        try:
            # At least every 5 minutes, so a store emptied by hand (a re-run of make_secrets.py) is refilled soon.
            wait = min(await renew_token_file(core, store, lifetime_seconds), RECHECK_SECONDS)
        except Exception as exc:  # the store may be away for a moment; the current token still works
            log.warning("cannot renew the service robot token; retrying", extra={"error": repr(exc)})
            wait = min(60.0, lifetime_seconds / 10)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), wait)


def _read_if_exists(path: Path) -> str:
    return path.read_text().strip() if path.exists() else ""


def write_secret(path: Path, secret: str) -> None:
    """Replaces the file atomically, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secret)
    temporary.replace(path)
