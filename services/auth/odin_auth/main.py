"""`odin-auth`: runs the auth service; `odin-auth rotate-keys` makes a new signing key.

Settings (ODIN_AUTH_<KEY>): `store_url` and `keys_path` are required; the first admin comes
from `bootstrap_admin_username` with `bootstrap_admin_password_file` (or
`bootstrap_admin_password`) and is created only when no admin exists. The service robot and
its renewed token: see odin_auth.robot. Behind the gateway set `trusted_proxy_hops` (1 behind the
suite's Envoy) so login throttling keys on the real client, not the gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from odin.auth.v1 import auth_pb2, auth_pb2_grpc
from odin.runtime.auth import RevocationFeed
from odin.runtime.config import ConfigError, load_config
from odin.runtime.server import ServerConfig, ServiceRuntime, serve_main
from odin.runtime.tokens import LEEWAY_SECONDS, KeyCache, TokenSettings, TokenVerifier, jwks_document
from odin_auth.audit import register_audit
from odin_auth.core import AuthCore
from odin_auth.keyring import KeyRing
from odin_auth.passwords import Argon2Parameters, Passwords
from odin_auth.robot import (
    SERVICE_USER,
    FileTokenStore,
    TokenStore,
    ensure_robot,
    keep_token_fresh,
    renew_token_file,
    secret_token_store,
)
from odin_auth.servicer import ROLES, AuthServicer
from odin_auth.store import Database, Store
from odin_auth.throttle import LoginThrottle

log = logging.getLogger("odin.auth")
__all__ = ["SERVICE_USER", "AuthConfig", "main"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class AuthConfig(ServerConfig):
    """Auth settings (environment: ODIN_AUTH_<KEY>)."""

    store_url: str  # sqlite:///path/auth.db or postgresql://…
    keys_path: Path  # directory of the signing keys (created with mode 0700)
    access_token_minutes: float = 10.0
    refresh_token_hours: float = 7 * 24.0
    key_rotation_days: float = 30.0  # 0: rotate only with `odin-auth rotate-keys`
    argon2_memory_kib: int = Argon2Parameters.memory_kib
    argon2_time_cost: int = Argon2Parameters.time_cost
    argon2_parallelism: int = Argon2Parameters.parallelism
    login_free_failures_per_user: int = 5
    login_free_failures_per_client: int = 20
    bootstrap_admin_username: str = ""
    bootstrap_admin_password_file: Path | None = None
    bootstrap_admin_password: str = ""  # prefer the file: environments leak
    # When set, the `odin-system` robot's API token is written here (0600) for the other services'
    # own calls (their `auth_token_file`); it expires after `service_token_hours` and is renewed
    # (the file rewritten) once half of that has passed.
    bootstrap_service_token_file: Path | None = None
    # Or a Kubernetes Secret (`namespace/name`, or `name` in the pod's namespace) the other services mount.
    bootstrap_service_token_secret: str = ""
    service_token_hours: float = 24.0
    refresh_token_gc_minutes: float = 60.0  # how often expired refresh tokens are deleted


def build_core(config: AuthConfig) -> AuthCore:
    settings = TokenSettings(config.auth_issuer, config.auth_audience, int(config.access_token_minutes * 60))
    db = Database(config.store_url)
    db.create_schema()
    return AuthCore(
        Store(db),
        Passwords(Argon2Parameters(config.argon2_memory_kib, config.argon2_time_cost, config.argon2_parallelism)),
        key_ring(config),
        settings,
        refresh_seconds=config.refresh_token_hours * 3600,
        throttle_user=LoginThrottle(free_failures=config.login_free_failures_per_user),
        throttle_client=LoginThrottle(free_failures=config.login_free_failures_per_client),
    )


def key_ring(config: AuthConfig) -> KeyRing:
    # Retired keys stay published until every token they signed has expired.
    retain = config.access_token_minutes * 60 + 2 * LEEWAY_SECONDS
    return KeyRing(config.keys_path, retain_seconds=retain, rotate_after_seconds=config.key_rotation_days * 86400)


async def setup(config: AuthConfig, runtime: ServiceRuntime) -> None:
    try:
        core = await asyncio.to_thread(build_core, config)
    except ValueError as exc:
        raise ConfigError(f"ODIN_AUTH_STORE_URL: {exc}") from None
    runtime.on_stop(lambda: asyncio.to_thread(core.store.db.close))
    await bootstrap(config, core, runtime)

    async def local_jwks() -> dict[str, object]:
        return jwks_document(core.keys.public_keys())

    async def local_revocations(after_seq: int, limit: int) -> tuple[list[tuple[str, int, int]], int]:
        rows, latest = await core.list_revocations(after_seq, limit)
        return [(r.username, r.min_version, r.seq) for r in rows], latest

    verifier = TokenVerifier(KeyCache(local_jwks, max_age_seconds=1.0, min_refresh_seconds=0.0), core.settings)
    feed = RevocationFeed(local_revocations, interval_seconds=config.auth_revocation_poll_seconds)
    runtime.auth.use(verifier, core.api_token_identity, feed)
    runtime.on_stop(feed.close)
    runtime.add_dependency_check("store", lambda: asyncio.to_thread(core.store.db.ping))
    name = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name
    runtime.add_service(name, auth_pb2_grpc.add_AuthServiceServicer_to_server,
                        AuthServicer(core, trusted_proxy_hops=config.trusted_proxy_hops), roles=ROLES)
    register_audit(runtime, core.store.db)


def robot_token_store(config: AuthConfig) -> TokenStore | None:
    """Where the robot's token goes: the file, the Kubernetes Secret, or nowhere (no robot)."""
    if config.bootstrap_service_token_file and config.bootstrap_service_token_secret:
        raise ConfigError("set one of ODIN_AUTH_BOOTSTRAP_SERVICE_TOKEN_FILE and "
                          "ODIN_AUTH_BOOTSTRAP_SERVICE_TOKEN_SECRET, not both")
    if config.bootstrap_service_token_file:
        return FileTokenStore(config.bootstrap_service_token_file)
    if config.bootstrap_service_token_secret:
        try:
            return secret_token_store(config.bootstrap_service_token_secret)
        except Exception as exc:  # no in-cluster credentials, no namespace file
            raise ConfigError(f"ODIN_AUTH_BOOTSTRAP_SERVICE_TOKEN_SECRET: cannot reach the Kubernetes API: "
                              f"{exc}") from None
    return None


async def bootstrap(config: AuthConfig, core: AuthCore, runtime: ServiceRuntime) -> None:
    if config.trusted_proxy_hops < 0:
        raise ConfigError("ODIN_AUTH_TRUSTED_PROXY_HOPS: must be 0 or more")
    # The robot first: an old admin robot must not count as "an admin exists" for the bootstrap admin.
    robot = await asyncio.to_thread(core.store.get_user, SERVICE_USER)
    store = robot_token_store(config)
    if store is not None or robot is not None:
        await ensure_robot(core)
    if config.bootstrap_admin_username:
        await core.bootstrap_admin(config.bootstrap_admin_username, _bootstrap_password(config))
    stopping = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    if store is not None:
        lifetime = config.service_token_hours * 3600
        # Written before serving: the other services may already be waiting for the token.
        await renew_token_file(core, store, lifetime)
        tasks.append(asyncio.create_task(keep_token_fresh(core, store, lifetime, stopping)))
    tasks.append(asyncio.create_task(_collect_refresh_tokens(core, config.refresh_token_gc_minutes * 60, stopping)))

    async def stop() -> None:
        stopping.set()
        await asyncio.gather(*tasks, return_exceptions=True)

    runtime.on_stop(stop)


async def _collect_refresh_tokens(core: AuthCore, every_seconds: float, stopping: asyncio.Event) -> None:
    """Deletes expired refresh tokens now and then (they are useless and would pile up forever)."""
    while not stopping.is_set():
        try:
            await core.purge_refresh_tokens()
        except Exception as exc:
            log.warning("cannot delete expired refresh tokens", extra={"error": repr(exc)})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), every_seconds)


def _bootstrap_password(config: AuthConfig) -> str:
    path = config.bootstrap_admin_password_file
    if path is None:
        if not config.bootstrap_admin_password:
            raise ConfigError("ODIN_AUTH_BOOTSTRAP_ADMIN_USERNAME is set but neither "
                              "ODIN_AUTH_BOOTSTRAP_ADMIN_PASSWORD_FILE nor ODIN_AUTH_BOOTSTRAP_ADMIN_PASSWORD is")
        return config.bootstrap_admin_password
    try:
        if path.stat().st_mode & 0o077:
            log.warning("the bootstrap password file is readable by others", extra={"path": str(path)})
        return path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"ODIN_AUTH_BOOTSTRAP_ADMIN_PASSWORD_FILE: cannot read {path}: {exc.strerror}") from None


def rotate_keys(argv: Sequence[str]) -> int:
    """`odin-auth rotate-keys [--config FILE]`: a new signing key; old ones verify until their tokens expire."""
    parser = argparse.ArgumentParser(prog="odin-auth rotate-keys", description=rotate_keys.__doc__)
    parser.add_argument("--config", help="YAML configuration file (also ODIN_AUTH_CONFIG)")
    args = parser.parse_args(argv)
    try:
        config = load_config(AuthConfig, "ODIN_AUTH", file=args.config)
    except ConfigError as exc:
        print(f"odin-auth: {exc}", file=sys.stderr)
        return 2
    print(key_ring(config).rotate())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["rotate-keys"]:
        return rotate_keys(args[1:])
    return serve_main("auth", AuthConfig, setup, args)
