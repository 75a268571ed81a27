"""Server interceptors: error mapping with per-call logging, and a base for handler wrappers.

grpc.aio interceptors see the method handler, not the call, so each interceptor here
returns a copy of the handler whose behaviour is wrapped. The first interceptor in the
server's list is the outermost, so the error interceptor goes first and maps what any
later one (authentication, say) raises.

Server streams are on the per-message path, so their wrappers do not nest: an interceptor
adds a `before_stream` hook, and the outermost one runs every hook and the handler in ONE
async generator (`stream_function`), whatever the number of interceptors. Streaming handlers
may also yield `bytes` (a response serialized once and shared by many streams); the
serializer passes them through unchanged.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import grpc
from grpc import aio

from odin.runtime.errors import OdinError, Unimplemented, to_status
from odin.runtime.request_decoding import Deserializer, Undecodable, lenient

log = logging.getLogger("odin.rpc")

UnaryBehavior = Callable[[Any, aio.ServicerContext], Awaitable[Any]]
StreamBehavior = Callable[[Any, aio.ServicerContext], AsyncIterator[Any]]
# Runs before a stream's handler; raises an OdinError to refuse the call.
StreamHook = Callable[[Any, aio.ServicerContext], Awaitable[None]]
Serializer = Callable[[Any], bytes]
# Calls that are too frequent or too dull to log at info level.
_QUIET_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")


class WrappingInterceptor(aio.ServerInterceptor):  # type: ignore[misc]
    """Wraps unary and server-streaming behaviours: subclasses implement `around` (unary calls) and
    `before_stream` (a check before a stream) or `stream_function` (around whole streams)."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        method: str = details.method
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(method, handler.unary_unary),
                request_deserializer=self.request_deserializer(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(method, handler.unary_stream),
                request_deserializer=self.request_deserializer(handler.request_deserializer),
                response_serializer=passing_bytes(handler.response_serializer),
            )
        return handler  # client-streaming methods: none in the Odin API

    def request_deserializer(self, deserializer: Deserializer | None) -> Deserializer | None:
        """The deserializer the wrapped handler uses; the inner handler's unless a subclass changes it."""
        return deserializer

    def _wrap_unary(self, method: str, behavior: UnaryBehavior) -> UnaryBehavior:
        async def call(request: Any, context: aio.ServicerContext) -> Any:
            await self.before(method, request, context)
            return await behavior(request, context)

        return self.around(method, call)

    def _wrap_stream(self, method: str, behavior: StreamBehavior) -> StreamBehavior:
        """One generator for the stream: this interceptor's hook first, then those of the inner ones."""
        inner_hooks, handler = _stream_parts(behavior)
        hooks: tuple[StreamHook, ...] = (functools.partial(self.before_stream, method), *inner_hooks)
        composed = self.stream_function(method, hooks, handler)
        composed._odin_stream_parts = (hooks, handler)  # type: ignore[attr-defined]
        return composed

    async def before(self, method: str, request: Any, context: aio.ServicerContext) -> None:
        """Runs before the handler; raise an OdinError to refuse the call."""

    async def before_stream(self, method: str, request: Any, context: aio.ServicerContext) -> None:
        """Runs before a streaming handler, in the call's task (context variables set here last for the
        whole stream); raise an OdinError to refuse the call. Defaults to `before`."""
        await self.before(method, request, context)

    def around(self, method: str, behavior: UnaryBehavior) -> UnaryBehavior:
        return behavior

    def stream_function(self, method: str, hooks: tuple[StreamHook, ...], handler: StreamBehavior) -> StreamBehavior:
        """The async generator a stream runs in: awaits each hook, then yields the handler's messages.
        Override it (not by wrapping `handler` in a generator of your own) to surround whole streams."""

        async def call(request: Any, context: aio.ServicerContext) -> AsyncIterator[Any]:
            for hook in hooks:
                await hook(request, context)
            async for item in handler(request, context):
                yield item

        return call


def _stream_parts(behavior: StreamBehavior) -> tuple[tuple[StreamHook, ...], StreamBehavior]:
    """The hooks and handler of a stream an inner WrappingInterceptor composed; else no hooks."""
    parts: tuple[tuple[StreamHook, ...], StreamBehavior] | None = getattr(behavior, "_odin_stream_parts", None)
    return parts if parts is not None else ((), behavior)


def passing_bytes(serializer: Serializer | None) -> Serializer | None:
    """`serializer`, except that `bytes` (an already serialized response) pass through unchanged."""
    if serializer is None or getattr(serializer, "_odin_passes_bytes", False):
        return serializer

    def serialize(message: Any) -> bytes:
        return message if message.__class__ is bytes else serializer(message)

    serialize._odin_passes_bytes = True  # type: ignore[attr-defined]
    return serialize


class CallObserver(Protocol):
    """Told how each call ended (odin.runtime.metrics.RpcMetrics)."""

    def unary_ended(self, method: str, code: str, seconds: float) -> None: ...

    def stream_opened(self, method: str) -> None: ...

    def stream_ended(self, method: str, code: str, messages: int) -> None: ...


class ErrorInterceptor(WrappingInterceptor):
    """Maps exceptions to statuses, never leaking internals, and logs each call with its duration (and tells
    `observer`, the metrics, the same: one place that sees every call end)."""

    def __init__(self, observer: CallObserver | None = None) -> None:
        self.observer = observer

    def around(self, method: str, behavior: UnaryBehavior) -> UnaryBehavior:
        observer = self.observer

        async def call(request: Any, context: aio.ServicerContext) -> Any:
            started = time.perf_counter()
            code = "OK"
            try:
                return await behavior(request, context)
            except BaseException as exc:
                code = code_name(exc)
                await _abort_for(exc, method, context)
                raise
            finally:
                _log_call(method, code, started)
                if observer is not None:
                    observer.unary_ended(method, code, time.perf_counter() - started)

        return call

    def stream_function(self, method: str, hooks: tuple[StreamHook, ...], handler: StreamBehavior) -> StreamBehavior:
        observer = self.observer

        async def call(request: Any, context: aio.ServicerContext) -> AsyncIterator[Any]:
            started = time.perf_counter()
            code, sent = "OK", 0
            if observer is not None:
                observer.stream_opened(method)
            try:
                for hook in hooks:
                    await hook(request, context)
                async for item in handler(request, context):
                    sent += 1
                    yield item
            except BaseException as exc:
                code = code_name(exc)
                await _abort_for(exc, method, context)
                raise
            finally:
                _log_call(method, code, started, messages=sent)
                if observer is not None:
                    observer.stream_ended(method, code, sent)

        return call


class DecodeGuard(WrappingInterceptor):
    """Refuses requests whose bytes do not parse (bad UTF-8, truncated, wrong wire types) with
    INVALID_ARGUMENT naming the field, where grpc.aio would answer UNKNOWN.

    It goes LAST in the server's list: its deserializer reaches the server through every outer
    handler copy, while its check runs after authentication, so a caller without a token still
    gets UNAUTHENTICATED and the audit log sees who sent the bad request.
    """

    def request_deserializer(self, deserializer: Deserializer | None) -> Deserializer | None:
        return lenient(deserializer)

    async def before(self, method: str, request: Any, context: aio.ServicerContext) -> None:
        if isinstance(request, Undecodable):
            raise request.error


def code_name(exc: BaseException) -> str:
    """The status code name a call ending with `exc` gets (`ABORTED_BY_HANDLER`: the handler aborted itself)."""
    if isinstance(exc, NotImplementedError):
        return "UNIMPLEMENTED"
    if isinstance(exc, OdinError):
        return exc.code
    if isinstance(exc, aio.AbortError):
        return "ABORTED_BY_HANDLER"
    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        return "CANCELLED"
    return "INTERNAL"


async def _abort_for(exc: BaseException, method: str, context: aio.ServicerContext) -> None:
    """Aborts the call with the status for `exc`; `context.abort` raises, ending the handler."""
    if isinstance(exc, aio.AbortError | asyncio.CancelledError | GeneratorExit):
        return
    if isinstance(exc, OdinError):
        error = exc
    elif isinstance(exc, NotImplementedError):  # the generated base servicer's answer
        error = Unimplemented(f"{method} is not implemented yet")
    else:
        incident = uuid.uuid4().hex[:12]
        log.error("unhandled error", exc_info=exc, extra={"method": method, "incident": incident})
        error = OdinError(f"internal error (incident {incident})", reason="INTERNAL")
    status = to_status(error)
    await context.abort(
        grpc.StatusCode[error.code],
        error.message,
        trailing_metadata=(("grpc-status-details-bin", status.SerializeToString()),),
    )


def _log_call(method: str, code: str, started: float, **fields: Any) -> None:
    level = logging.DEBUG if method.startswith(_QUIET_PREFIXES) else logging.INFO
    duration_ms = round((time.perf_counter() - started) * 1000, 3)
    log.log(level, "rpc", extra={"method": method, "code": code, "duration_ms": duration_ms, **fields})
