"""gRPC channels for tests, carrying a bearer token so they pass the services' auth interceptor.

Use `channel(address)` (sync) or `aio_channel(address)` (asyncio) instead of the bare grpc
functions. `token=None` sends no token (to test refusals); the default is the test admin token.
"""

from __future__ import annotations

from typing import Any

import grpc
from grpc import aio

from support import auth

DEFAULT = object()


def _token(token: object) -> str | None:
    if token is DEFAULT:
        return auth.default_token()
    return token if isinstance(token, str) else None


def channel(address: str, token: object = DEFAULT) -> grpc.Channel:
    """A sync channel that sends `authorization: Bearer <token>` on every call."""
    value = _token(token)
    base = grpc.insecure_channel(address)
    if not value:
        return base
    return grpc.intercept_channel(base, _BearerInterceptor(value))


def aio_channel(address: str, token: object = DEFAULT) -> aio.Channel:
    """An asyncio channel that sends the bearer token on every call."""
    value = _token(token)
    # grpc.aio files each interceptor under the first call type it implements, so one object per type.
    interceptors: list[Any] = [_AioUnaryBearer(value), _AioStreamBearer(value)] if value else []
    return aio.insecure_channel(address, interceptors=interceptors)


def metadata(token: object = DEFAULT) -> tuple[tuple[str, str], ...]:
    value = _token(token)
    return (("authorization", f"Bearer {value}"),) if value else ()


class _BearerInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):  # type: ignore[misc]
    def __init__(self, token: str) -> None:
        self.token = token

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(_Details.of(details, self.token), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(_Details.of(details, self.token), request)


class _Details(grpc.ClientCallDetails):  # type: ignore[misc]
    def __init__(self, method: str, timeout: Any, metadata: Any, credentials: Any, wait_for_ready: Any,
                 compression: Any) -> None:
        self.method, self.timeout, self.metadata = method, timeout, metadata
        self.credentials, self.wait_for_ready, self.compression = credentials, wait_for_ready, compression

    @classmethod
    def of(cls, details: Any, token: str) -> _Details:
        extra = [*(details.metadata or ()), ("authorization", f"Bearer {token}")]
        return cls(details.method, details.timeout, extra, details.credentials,
                   getattr(details, "wait_for_ready", None), getattr(details, "compression", None))


class _AioBearer:
    def __init__(self, token: str | None) -> None:
        self.token = token or ""

    def _details(self, details: Any) -> Any:
        extra = aio.Metadata(*(details.metadata or ()), ("authorization", f"Bearer {self.token}"))
        return aio.ClientCallDetails(details.method, details.timeout, extra, details.credentials,
                                     details.wait_for_ready)


class _AioUnaryBearer(_AioBearer, aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _AioStreamBearer(_AioBearer, aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)
