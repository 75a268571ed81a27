"""The audit log's recording side: one record per mutating call, handed to a sink (see audit_sink.py).

A call is mutating when its HTTP binding is not GET (or it has none); server streams are all
reads in the Odin API and are not recorded. A record says who (the authenticated caller),
what (method; the resource from the request's `name`, `parent` or `project`, or `users/<username>`
for Login), when, the result (status code name), the request id, the client address and the
service. It never holds a request body, so no secret reaches it.

Two interceptors cooperate: `recorder` sits outside authentication, so refused calls are recorded
too, and `actor` sits inside it, where the caller is known, and notes who it is for the recorder.
"""

from __future__ import annotations

import contextvars
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.api import annotations_pb2  # type: ignore[import-untyped]
from google.protobuf import descriptor_pool
from google.protobuf.message import Message
from grpc import aio

from odin.auth.v1 import auth_pb2
from odin.runtime.audit_sink import AuditSink, LogSink
from odin.runtime.client_address import client_address
from odin.runtime.errors import Unauthenticated
from odin.runtime.interceptors import UnaryBehavior, WrappingInterceptor, code_name
from odin.runtime.timestamps import from_seconds

log = logging.getLogger("odin.audit")

# Recording the calls that store records would record forever.
NOT_AUDITED = frozenset({"/odin.auth.v1.AuditService/WriteAuditRecords"})
_MAX_FIELD = 300  # resource names and request ids are short; anything longer is cut, never stored whole


@dataclasses.dataclass
class _Call:
    """What the inner interceptor learns about the call being recorded."""

    actor: str = ""


_call: contextvars.ContextVar[_Call | None] = contextvars.ContextVar("odin_audit_call", default=None)


def is_mutating(method: Any) -> bool:
    """Whether a method descriptor's call changes something: bound to anything but GET, or not bound at all."""
    rule = method.GetOptions().Extensions[annotations_pb2.http]
    return bool(rule.WhichOneof("pattern") != "get")


class AuditLog:
    """The runtime's audit: which methods are recorded, the two interceptors and the sink."""

    def __init__(self, service: str, trusted_proxy_hops: int = 0) -> None:
        self.service = service
        self.trusted_proxy_hops = trusted_proxy_hops
        self.methods: set[str] = set()
        self.sink: AuditSink = LogSink()
        self.recorder = AuditRecorder(self)
        self.actor = AuditActor()
        self._chosen = False

    def register(self, full_service_name: str) -> None:
        """Records every mutating unary method of `full_service_name`."""
        service = descriptor_pool.Default().FindServiceByName(full_service_name)
        for method in service.methods:
            path = f"/{full_service_name}/{method.name}"
            if path in NOT_AUDITED or not is_mutating(method):
                continue
            if method.server_streaming:
                log.warning("a mutating streaming RPC is not audited", extra={"audited_method": path})
                continue
            self.methods.add(path)

    def use(self, sink: AuditSink) -> None:
        """Sends records to `sink` instead of the default the runtime picks at start."""
        self.sink, self._chosen = sink, True

    @property
    def chosen(self) -> bool:
        return self._chosen

    def record(self, method: str, request: Any, context: aio.ServicerContext, actor: str, result: str) -> None:
        self.sink.submit(build_record(self.service, method, request, context, actor, result, self.trusted_proxy_hops))


def build_record(service: str, method: str, request: Any, context: aio.ServicerContext, actor: str,
                 result: str, trusted_proxy_hops: int = 0) -> auth_pb2.AuditRecord:
    """The record of one call: named fields of the request only, each cut to a bounded length."""
    resource, project, request_id = _what(request)
    return auth_pb2.AuditRecord(
        time=from_seconds(time.time()), actor=f"users/{actor}" if actor else "", method=method,
        resource=resource, project=project, request_id=request_id, result=result,
        client=_client(context, trusted_proxy_hops),
        service=service,
    )


class AuditRecorder(WrappingInterceptor):
    """Outside authentication: times nothing, catches the outcome of every audited call and records it."""

    def __init__(self, audit: AuditLog) -> None:
        self.audit = audit

    def around(self, method: str, behavior: UnaryBehavior) -> UnaryBehavior:
        if method not in self.audit.methods:
            return behavior

        async def call(request: Any, context: aio.ServicerContext) -> Any:
            noted = _Call()
            token = _call.set(noted)
            result = "OK"
            try:
                return await behavior(request, context)
            except BaseException as exc:
                result = _result(exc, context)
                raise
            finally:
                _call.reset(token)
                try:
                    self.audit.record(method, request, context, noted.actor, result)
                except Exception:  # recording must never fail the call it records
                    log.exception("cannot build an audit record", extra={"audited_method": method})

        return call


class AuditActor(WrappingInterceptor):
    """Inside authentication: notes the verified caller for the recorder."""

    async def before(self, method: str, request: Any, context: aio.ServicerContext) -> None:
        noted = _call.get()
        if noted is None:
            return
        try:
            from odin.runtime.auth import current_identity  # auth imports this package's interceptors

            noted.actor = current_identity().username
        except Unauthenticated:  # an open RPC called without a token (Login)
            noted.actor = ""


def _result(exc: BaseException, context: aio.ServicerContext) -> str:
    if isinstance(exc, aio.AbortError):  # the handler aborted with its own code
        code = _context_code(context)
        return code.name if code is not None else "UNKNOWN"
    name = code_name(exc)
    return "UNKNOWN" if name == "ABORTED_BY_HANDLER" else name


def _context_code(context: aio.ServicerContext) -> grpc.StatusCode | None:
    reader: Callable[[], Any] | None = getattr(context, "code", None)
    try:
        code = reader() if reader else None
    except Exception:  # older grpc: no code() on the context
        return None
    return code if isinstance(code, grpc.StatusCode) else None


def _what(request: Any) -> tuple[str, str, str]:
    """The resource, project and request id named by `request` (empty where it has none)."""
    if not isinstance(request, Message):  # a request that did not parse: nothing to read
        return "", "", ""
    project = _text(request, "project")
    project = project if project.startswith("projects/") or not project else f"projects/{project}"
    resource = _resource(request) or project
    project = project or ("/".join(resource.split("/", 2)[:2]) if resource.startswith("projects/") else "")
    return _cut(resource), _cut(project), _cut(_text(request, "request_id"))


def _resource(request: Message) -> str:
    """`name` or `parent`; else the `name` of the message an Update carries; else the user or project a
    Login, CreateUser or CreateProject names."""
    found = _text(request, "name") or _text(request, "parent")
    if found:
        return found
    for field in request.DESCRIPTOR.fields:
        if field.type == field.TYPE_MESSAGE and not _repeated(field) and request.HasField(field.name):
            inner = getattr(request, field.name)
            if _text(inner, "name"):
                return _text(inner, "name")
            if _text(inner, "username"):
                return f"users/{_text(inner, 'username')}"
    if _text(request, "username"):
        return f"users/{_text(request, 'username')}"
    if _text(request, "project_id"):
        return f"projects/{_text(request, 'project_id')}"
    return ""


def _text(request: Message, field: str) -> str:
    descriptor = request.DESCRIPTOR.fields_by_name.get(field)
    if descriptor is None or descriptor.type != descriptor.TYPE_STRING or _repeated(descriptor):
        return ""
    return str(getattr(request, field))


def _repeated(field: Any) -> bool:
    return bool(field.is_repeated)


def _cut(value: str) -> str:
    return value if len(value) <= _MAX_FIELD else value[:_MAX_FIELD] + "…"


def _client(context: aio.ServicerContext, trusted_hops: int) -> str:
    """The caller's address (behind `trusted_hops` proxies, the one they forwarded), without a scheme."""
    peer = client_address(context, trusted_hops)
    for scheme in ("ipv4:", "ipv6:"):
        peer = peer.removeprefix(scheme)
    return _cut(peer)


# Opens a sink at start-up (the runtime's default for services that are not the auth service).
SinkFactory = Callable[[], tuple[AuditSink, Callable[[], Awaitable[None]]]]
