"""Calls refused because the access token was revoked or expired are renewed through the session and made again.

The auth service voids a user's access tokens when their roles or memberships change (the revocation feed,
docs/auth.md): a command holding such a token gets UNAUTHENTICATED `TOKEN_REVOKED` although its session (the
refresh token `odin login` stored) is still good. The channel interceptor renews the access token once and repeats
the call, which is safe: a refused call did nothing. Server streams do the same when they (re)open
(`resilient_stream`'s `renew`), where the caller's cursor says where to resume.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from grpc import aio

from odin.client.errors import from_rpc_error

RENEWABLE_REASONS = frozenset({"TOKEN_REVOKED", "TOKEN_EXPIRED"})


def renewable(error: aio.AioRpcError) -> bool:
    return error.code() == grpc.StatusCode.UNAUTHENTICATED and from_rpc_error(error).reason in RENEWABLE_REASONS


class SessionRenewal:
    """Renews the session at `path` at most once per failed token (concurrent refusals share one renewal)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = asyncio.Lock()
        self._renewed: dict[str, str] = {}  # refused token -> its replacement

    async def replacement(self, refused: str) -> str | None:
        from odin.client.login import fresh_access_token, load_session  # login imports the channel module

        async with self._lock:
            if refused in self._renewed:
                return self._renewed[refused]
            session = load_session(self.path)
            if session is None or session.get("access_token") != refused:
                return None  # not the session's token (ODIN_TOKEN, an API token): nothing to renew it with
            try:
                token = await fresh_access_token(self.path, force=True)
            except aio.AioRpcError:
                return None  # the refresh token is no good either: the original refusal stands
            if token:
                self._renewed[refused] = token
            return token


def _bearer(details: Any) -> str:
    for key, value in details.metadata or ():
        if key == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
            return value.removeprefix("Bearer ")
    return ""


def _with_bearer(details: Any, token: str) -> Any:
    kept = [(k, v) for k, v in (details.metadata or ()) if k != "authorization"]
    metadata = aio.Metadata(*kept, ("authorization", f"Bearer {token}"))
    return aio.ClientCallDetails(details.method, details.timeout, metadata, details.credentials,
                                 details.wait_for_ready)


class _Renewing:
    def __init__(self, renewal: SessionRenewal) -> None:
        self.renewal = renewal

    async def _retry_details(self, details: Any, error: aio.AioRpcError) -> Any | None:
        refused = _bearer(details)
        if not refused or not renewable(error):
            return None
        token = await self.renewal.replacement(refused)
        return _with_bearer(details, token) if token else None


class _UnaryRenewing(_Renewing, aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        call = await continuation(details, request)
        try:
            await call
        except aio.AioRpcError as error:
            retry = await self._retry_details(details, error)
            if retry is None:
                raise
            return await continuation(retry, request)
        return call


def renewing_interceptors(session: Path) -> list[aio.ClientInterceptor]:
    """For unary calls; server streams renew at their (re)opening instead (odin.client.streams)."""
    return [_UnaryRenewing(SessionRenewal(session))]
