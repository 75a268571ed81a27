"""Random and malformed requests to every RPC of every public service, through the real gateway.

gRPC: well-typed random messages (huge numbers, invalid UTF-8 in strings) and broken encodings
(truncated, wrong wire types, bad lengths, noise). HTTP/JSON: the RPC's binding with random path
segments, query parameters and bodies, JSON or not. Every reply must be a deliberate answer: no
INTERNAL/UNKNOWN/HTTP 5xx, no stack trace or SQL in it, and the service still SERVING after.

The budget is bounded and derandomized for CI (`ODIN_FUZZ_EXAMPLES` examples per RPC and
transport, default 25); raise it to search longer, e.g. `ODIN_FUZZ_EXAMPLES=200`.
"""

from __future__ import annotations

import http.client
import os
import random
import re
import threading
import urllib.parse

import grpc
import pytest
from fuzz_messages import json_body, malformed_bytes, message_bytes, path_segments, query_values
from google.protobuf import descriptor as d
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.live_suite import LiveSuite

import odin.auth.v1.auth_pb2
import odin.midgard.v1.midgard_pb2
import odin.pipelines.v1.pipelines_pb2
import odin.scheduler.v1.scheduler_pb2  # noqa: F401 - registers the request types in the default pool
from odin.gateway.methods import Method, load_methods

EXAMPLES = int(os.environ.get("ODIN_FUZZ_EXAMPLES", "25"))
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
METHODS = load_methods()
STREAM_SECONDS = 0.5
UNARY_SECONDS = 15.0
BAD_CODES = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS,
             grpc.StatusCode.UNAVAILABLE}
# What a reply must never show: stack traces, SQL, driver and file names.
LEAKS = re.compile(r"Traceback|File \"/|\bSELECT\b|\bINSERT INTO\b|\bUPDATE \w+ SET\b|sqlite3?\.|psycopg|"
                   r"DecodeError|\.py\", line", re.IGNORECASE)


def request_type(method: Method) -> d.Descriptor:
    return descriptor_pool.Default().FindServiceByName(method.service).methods_by_name[method.name].input_type


def assert_no_leak(text: str, what: str) -> None:
    leak = LEAKS.search(text)
    assert leak is None, f"{what} shows internals ({leak.group(0)!r}): {text[:500]!r}"


def grpc_reply(channel: grpc.Channel, method: Method, payload: bytes, token: str) -> tuple[grpc.StatusCode, str]:
    """The status code and details of one call with `payload` as the request bytes."""
    metadata = (("authorization", f"Bearer {token}"),)
    try:
        if method.server_streaming:
            # The client cancels: an expiring deadline is reset by Envoy as INTERNAL once the stream has started
            # (reported separately); the deadline stays as the backstop.
            open_stream = channel.unary_stream(method.grpc_path, request_serializer=None, response_deserializer=None)
            stream = open_stream(payload, metadata=metadata, timeout=UNARY_SECONDS)
            timer = threading.Timer(STREAM_SECONDS, stream.cancel)
            timer.start()
            try:
                for _ in stream:
                    pass
            finally:
                timer.cancel()
        else:
            call = channel.unary_unary(method.grpc_path, request_serializer=None, response_deserializer=None)
            call(payload, metadata=metadata, timeout=UNARY_SECONDS)
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or ""  # type: ignore[attr-defined]
    return grpc.StatusCode.OK, ""


def assert_grpc_reply(method: Method, payload: bytes, code: grpc.StatusCode, details: str) -> None:
    shown = f"{method.grpc_path} with {payload[:200]!r} -> {code.name}: {details[:300]!r}"
    assert code not in BAD_CODES, shown
    assert code != grpc.StatusCode.DEADLINE_EXCEEDED, f"the call hung: {shown}"
    assert code != grpc.StatusCode.CANCELLED or method.server_streaming, shown
    assert_no_leak(details, shown)


def assert_serving(suite: LiveSuite, method: Method) -> None:
    with grpc.insecure_channel(suite.gateway) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), metadata=(("x-odin-service", method.upstream),), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING, f"{method.upstream} after fuzzing {method.name}"


@pytest.mark.parametrize("method", METHODS, ids=lambda m: f"{m.service.rsplit('.', 1)[1]}.{m.name}")
def test_grpc_requests(live_suite: LiveSuite, method: Method) -> None:
    descriptor = request_type(method)
    with grpc.insecure_channel(live_suite.gateway) as channel:

        @FUZZ
        @given(payload=st.one_of(message_bytes(descriptor), malformed_bytes(descriptor)))
        def fuzz(payload: bytes) -> None:
            code, details = grpc_reply(channel, method, payload, live_suite.admin_token)
            assert_grpc_reply(method, payload, code, details)

        fuzz()
    assert_serving(live_suite, method)


HTTP_METHODS = [m for m in METHODS if m.http_verb and m.http_path and not m.server_streaming]


@pytest.mark.parametrize("method", HTTP_METHODS, ids=lambda m: f"{m.http_verb} {m.http_path}")
def test_http_requests(live_suite: LiveSuite, method: Method) -> None:
    descriptor = request_type(method)
    query_names = [f.json_name for f in descriptor.fields] + ["pageToken", "bogus"]
    host, port = live_suite.gateway.rsplit(":", 1)

    @FUZZ
    @given(data=st.data())
    def fuzz(data: st.DataObject) -> None:
        path = fill_template(str(method.http_path), data)
        query = data.draw(st.dictionaries(st.sampled_from(query_names), query_values, max_size=3))
        if query:
            path += "?" + "&".join(f"{urllib.parse.quote(k)}={v}" for k, v in query.items())
        body = data.draw(json_body(descriptor)) if method.http_verb != "get" else None
        status, text = http_reply(host, int(port), str(method.http_verb).upper(), path, body,
                                  live_suite.admin_token)
        shown = f"{method.http_verb} {path} body={body[:200] if body else b''!r} -> {status}: {text[:300]!r}"
        assert status < 500 or status == 501, shown  # 501: UNIMPLEMENTED, a deliberate answer
        assert_no_leak(text, shown)

    fuzz()
    assert_serving(live_suite, method)


def fill_template(template: str, data: st.DataObject) -> str:
    """`/v1/{name=jobs/*}` with random segments in place of each variable."""

    def segment(match: re.Match[str]) -> str:
        pattern = match.group(2) or "*"
        return re.sub(r"\*\*?", lambda _: data.draw(path_segments), pattern)

    return re.sub(r"\{([^}=]+)(?:=([^}]*))?\}", segment, template)


def http_reply(host: str, port: int, verb: str, path: str, body: bytes | None, token: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection(host, port, timeout=UNARY_SECONDS)
    try:
        headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
        connection.request(verb, path, body=body, headers=headers)
        reply = connection.getresponse()
        return reply.status, reply.read().decode(errors="replace")
    finally:
        connection.close()


def test_the_suite_survived(live_suite: LiveSuite) -> None:
    """Every service still answers after the whole run (the module's last test)."""
    for method in random.Random(0).sample(METHODS, 1) + [m for m in METHODS if m.name == "ListJobs"]:
        assert_serving(live_suite, method)
    assert set(live_suite.suite.status().values()) == {"SERVING"}
