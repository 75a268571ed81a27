"""HTTP/JSON and gRPC-Web callers through the real Envoy: transcoding, edge errors, CORS, streams."""

from __future__ import annotations

import json
import struct
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from gateway_backend import STREAM_MESSAGES, STREAM_PAUSE
from gateway_harness import RunningGateway

from odin.scheduler.v1 import scheduler_pb2


def http(gateway: RunningGateway, method: str, path: str, body: bytes | None = None, token: str | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(f"{gateway.url}{path}", data=body, method=method, headers=headers or {})
    if token:
        request.add_header("authorization", f"Bearer {token}")
    if body is not None and not request.has_header("Content-type"):
        request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, {k.lower(): v for k, v in reply.headers.items()}, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def test_a_get_binding_is_transcoded_with_query_parameters(gateway: RunningGateway) -> None:
    status, headers, body = http(gateway, "GET", "/v1/jobs?pageSize=5", token=gateway.key.token())
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body) == {"jobs": [{"name": "jobs/j1", "message": "page_size=5 auth=True"}],
                                "nextPageToken": "next"}


def test_jwks_and_login_need_no_token(gateway: RunningGateway) -> None:
    status, _, body = http(gateway, "GET", "/v1/jwks")
    assert status == 200 and json.loads(body)["keys"][0]["kid"] == gateway.key.kid
    status, _, body = http(gateway, "POST", "/v1/auth:login", json.dumps({"username": "ann", "password": "secret"})
                           .encode())
    assert status == 200 and json.loads(body)["tokens"]["accessToken"].count(".") == 2


@pytest.mark.parametrize("token", [None, "not-a-jwt"])
def test_no_or_a_bad_token_is_401(gateway: RunningGateway, token: str | None) -> None:
    status, _, body = http(gateway, "GET", "/v1/jobs", token=token)
    assert status == 401 and b"Jwt" in body


def test_malformed_json_is_400_with_the_reason(gateway: RunningGateway) -> None:
    status, _, body = http(gateway, "POST", "/v1/jobs", b'{"requestId": ', token=gateway.key.token())
    assert status == 400
    assert b"Unexpected end of string" in body or b"Expected" in body or b"JSON" in body.upper(), body


def test_an_unknown_field_or_query_parameter_is_400(gateway: RunningGateway) -> None:
    status, _, body = http(gateway, "GET", "/v1/jobs?nope=1", token=gateway.key.token())
    assert status == 400 and b"nope" in body


def test_an_unknown_path_is_404(gateway: RunningGateway) -> None:
    status, _, _ = http(gateway, "GET", "/v1/nothing-here", token=gateway.key.token())
    assert status == 404


def test_an_oversized_body_is_413(gateway: RunningGateway) -> None:
    body = json.dumps({"requestId": "x" * 100_000}).encode()
    status, _, _ = http(gateway, "POST", "/v1/jobs", body, token=gateway.key.token())
    assert status == 413


def test_unimplemented_upstream_is_501(gateway: RunningGateway) -> None:
    status, _, body = http(gateway, "GET", "/v1/pipelines", token=gateway.key.token())
    assert status == 501 and json.loads(body)["code"] == 12


def test_grpc_errors_become_http_status_with_details(gateway: RunningGateway) -> None:
    status, _, body = http(gateway, "GET", "/v1/jobs/x", token=gateway.key.token())
    assert status == 404
    error = json.loads(body)
    assert error["code"] == 5 and error["message"] == "jobs/x not found"
    assert error["details"][0]["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    assert error["details"][0]["reason"] == "JOB_NOT_FOUND"


def test_a_server_stream_is_newline_delimited_and_incremental(gateway: RunningGateway) -> None:
    request = urllib.request.Request(f"{gateway.url}/v1/jobs/j1:watch?afterSeq=4",
                                     headers={"authorization": f"Bearer {gateway.key.token()}"})
    started = time.monotonic()
    arrivals: list[tuple[dict[str, Any], float]] = []
    with urllib.request.urlopen(request, timeout=10) as reply:
        for line in reply:
            arrivals.append((json.loads(line), time.monotonic() - started))
    assert [m["heartbeat"]["latestSeq"] for m, _ in arrivals] == [str(s) for s in range(5, 5 + STREAM_MESSAGES)]
    assert arrivals[0][1] < arrivals[-1][1] - STREAM_PAUSE, "the first event must not wait for the stream's end"


def test_cors_preflight_is_answered_for_allowed_origins(gateway: RunningGateway) -> None:
    asked = {"origin": "http://localhost:3000", "access-control-request-method": "POST",
             "access-control-request-headers": "authorization,content-type"}
    status, headers, _ = http(gateway, "OPTIONS", "/v1/jobs", headers=asked)
    assert status == 200 and headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "authorization" in headers["access-control-allow-headers"]
    status, headers, _ = http(gateway, "OPTIONS", "/v1/jobs", headers={**asked, "origin": "https://evil.example"})
    assert "access-control-allow-origin" not in headers


def test_cors_headers_are_on_refusals_too(gateway: RunningGateway) -> None:
    status, headers, _ = http(gateway, "GET", "/v1/jobs", headers={"origin": "http://localhost:3000"})
    assert status == 401 and headers["access-control-allow-origin"] == "http://localhost:3000"


def grpc_web_frames(body: bytes) -> tuple[list[bytes], dict[str, str]]:
    """Splits a gRPC-Web response into its messages and its trailers."""
    messages, trailers, offset = [], {}, 0
    while offset < len(body):
        flag, length = struct.unpack(">BI", body[offset:offset + 5])
        payload = body[offset + 5:offset + 5 + length]
        offset += 5 + length
        if flag & 0x80:
            for line in payload.decode().strip().split("\r\n"):
                key, _, value = line.partition(":")
                trailers[key.strip().lower()] = value.strip()
        else:
            messages.append(payload)
    return messages, trailers


def grpc_web_call(gateway: RunningGateway, token: str | None) -> tuple[int, dict[str, str], bytes]:
    message = scheduler_pb2.ListJobsRequest(page_size=3).SerializeToString()
    headers = {"content-type": "application/grpc-web+proto", "x-grpc-web": "1", "origin": "http://localhost:8080"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    return http(gateway, "POST", "/odin.scheduler.v1.SchedulerService/ListJobs",
                struct.pack(">BI", 0, len(message)) + message, headers=headers)


def test_grpc_web_calls_are_served(gateway: RunningGateway) -> None:
    status, headers, body = grpc_web_call(gateway, gateway.key.token())
    assert status == 200 and headers["content-type"].startswith("application/grpc-web")
    messages, trailers = grpc_web_frames(body)
    assert trailers["grpc-status"] == "0"
    reply = scheduler_pb2.ListJobsResponse.FromString(messages[0])
    assert reply.jobs[0].message == "page_size=3 auth=True"
    assert headers["access-control-allow-origin"] == "http://localhost:8080"


def test_grpc_web_calls_without_a_token_are_refused_with_401(gateway: RunningGateway) -> None:
    # Envoy answers edge refusals to gRPC-Web as plain HTTP; gRPC-Web clients map 401 to UNAUTHENTICATED.
    status, headers, _ = grpc_web_call(gateway, None)
    assert status == 401 and headers["access-control-allow-origin"] == "http://localhost:8080"


def test_healthz_reports_the_upstreams(gateway: RunningGateway) -> None:
    status, _, _ = http(gateway, "GET", "/healthz")
    assert status == 200
