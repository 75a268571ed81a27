"""Python gRPC, plain HTTP/JSON and grpcurl against the live suite, all through the gateway."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any

import grpc
import pytest
from client_harness import LiveSuite
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support.waiting import assert_eventually

from odin.auth.v1 import auth_pb2, auth_pb2_grpc
from odin.gateway import DESCRIPTOR_SET
from odin.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc


def http(suite: LiveSuite, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://{suite.gateway}{path}", data=data, method=method)
    if data is not None:
        request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read() or b"null")
    except urllib.error.HTTPError as exc:
        text = exc.read()
        try:
            return exc.code, json.loads(text)
        except ValueError:
            return exc.code, text.decode(errors="replace")


@pytest.fixture(scope="module")
def token(live_suite: LiveSuite) -> str:
    status, reply = http(live_suite, "POST", "/v1/auth:login",
                         {"username": "admin", "password": live_suite.admin_password})
    assert status == 200, reply
    assert reply["tokens"]["tokenType"] == "Bearer"
    return str(reply["tokens"]["accessToken"])


def test_every_service_is_healthy_through_the_gateway(live_suite: LiveSuite) -> None:
    with grpc.insecure_channel(live_suite.gateway) as channel:
        for name in ("auth", "pipelines", "scheduler", "midgard"):
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), metadata=(("x-odin-service", name),), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, name
    assert live_suite.suite.status()["gateway"] == "SERVING"


def test_jwks_over_http_is_open_and_verifies_the_login_token(live_suite: LiveSuite, token: str) -> None:
    status, jwks = http(live_suite, "GET", "/v1/jwks")
    assert status == 200
    import jwt

    kid = jwt.get_unverified_header(token)["kid"]
    assert kid in {key["kid"] for key in jwks["keys"]}


def test_an_authenticated_http_call_reaches_the_auth_service(live_suite: LiveSuite, token: str) -> None:
    status, reply = http(live_suite, "GET", "/v1/users/admin", token=token)
    assert status == 200 and reply["user"]["username"] == "admin"


def test_requests_without_a_token_are_refused_at_the_edge(live_suite: LiveSuite) -> None:
    status, body = http(live_suite, "GET", "/v1/jobs")
    assert status == 401 and "Jwt is missing" in body
    with grpc.insecure_channel(live_suite.gateway) as channel, pytest.raises(grpc.RpcError) as caught:
        scheduler_pb2_grpc.SchedulerServiceStub(channel).ListJobs(scheduler_pb2.ListJobsRequest(), timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


PIPELINE = """name: curl-smoke
tasks:
  - name: hello
    image: busybox
    command: echo
    args: ["hello over http"]
"""


def stream_lines(suite: LiveSuite, path: str, token: str) -> list[tuple[dict[str, Any], float]]:
    """A transcoded server stream: one JSON object per line, each with its arrival time."""
    request = urllib.request.Request(f"http://{suite.gateway}{path}", headers={"authorization": f"Bearer {token}"})
    started, lines = time.monotonic(), []
    with urllib.request.urlopen(request, timeout=60) as reply:
        assert reply.status == 200
        for line in reply:
            lines.append((json.loads(line), time.monotonic() - started))
    return lines


def test_a_job_over_plain_http_json(live_suite: LiveSuite, token: str) -> None:
    status, created = http(live_suite, "POST", "/v1/jobs",
                           {"requestId": f"curl-{time.time_ns()}", "inline": {"mainYml": PIPELINE}}, token=token)
    assert status == 200, created
    job = created["job"]["name"]
    events = [m["event"] for m, _ in stream_lines(live_suite, f"/v1/{job}:watch", token) if "event" in m]
    assert events[0]["type"] == "TYPE_JOB_CREATED" and events[-1]["jobState"] == "STATE_SUCCEEDED", events
    assert [int(e["seq"]) for e in events] == sorted(int(e["seq"]) for e in events)
    logs = stream_lines(live_suite, f"/v1/{job}/tasks/hello:logs", token)
    assert "hello over http" in "".join(m.get("data", "") for m, _ in logs)
    status, listed = http(live_suite, "GET", "/v1/jobs?pageSize=50", token=token)
    assert status == 200 and job in {j["name"] for j in listed["jobs"]}


def test_a_python_grpc_watch_through_the_gateway(live_suite: LiveSuite, token: str) -> None:
    meta = (("authorization", f"Bearer {token}"),)
    with grpc.insecure_channel(live_suite.gateway) as channel:
        stub = scheduler_pb2_grpc.SchedulerServiceStub(channel)
        job = stub.CreateJob(scheduler_pb2.CreateJobRequest(
            request_id=f"py-{time.time_ns()}", inline=scheduler_pb2.InlinePipeline(main_yml=PIPELINE)),
            metadata=meta, timeout=10).job
        states = [m.event.job_state for m in stub.WatchJob(scheduler_pb2.WatchJobRequest(name=job.name),
                                                           metadata=meta, timeout=60) if m.HasField("event")]
    assert states[-1] == scheduler_pb2.Job.STATE_SUCCEEDED


def test_malformed_json_and_unknown_paths_are_refused_clearly(live_suite: LiveSuite, token: str) -> None:
    request = urllib.request.Request(f"http://{live_suite.gateway}/v1/auth:login", data=b"{nope", method="POST",
                                     headers={"content-type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 400 and caught.value.read()
    status, _ = http(live_suite, "GET", "/v1/no-such-thing", token=token)
    assert status == 404


def test_a_wrong_password_is_unauthenticated_as_401(live_suite: LiveSuite) -> None:
    status, body = http(live_suite, "POST", "/v1/auth:login", {"username": "admin", "password": "wrong"})
    assert status == 401 and body["code"] == 16


def test_grpcurl_through_the_gateway(live_suite: LiveSuite, grpcurl: str, token: str) -> None:
    base = [grpcurl, "-plaintext", "-protoset", str(DESCRIPTOR_SET)]
    health = subprocess.run([*base, "-H", "x-odin-service: scheduler", live_suite.gateway,
                             "grpc.health.v1.Health/Check"], capture_output=True, text=True, timeout=30, check=False)
    assert health.returncode == 0 and json.loads(health.stdout) == {"status": "SERVING"}, health.stderr
    users = subprocess.run([*base, "-H", f"authorization: Bearer {token}", live_suite.gateway,
                            "odin.auth.v1.AuthService/ListUsers"], capture_output=True, text=True, timeout=30,
                           check=False)
    assert users.returncode == 0, users.stderr
    assert "admin" in {u["username"] for u in json.loads(users.stdout)["users"]}


def test_python_stubs_log_in_through_the_gateway(live_suite: LiveSuite) -> None:
    with grpc.insecure_channel(live_suite.gateway) as channel:
        reply = auth_pb2_grpc.AuthServiceStub(channel).Login(
            auth_pb2.LoginRequest(username="admin", password=live_suite.admin_password), timeout=10)
    assert reply.user.username == "admin" and reply.tokens.access_token


def test_create_user_over_http_takes_the_password_in_the_body_and_never_logs_it(live_suite: LiveSuite,
                                                                                 token: str) -> None:
    """Finding 3 of #16: `body: "*"`, so the password is not a query parameter the access log would record."""
    password = f"pw-{time.time_ns()}-Correct-Horse"
    username = f"http-{time.time_ns() % 10**9}"
    status, reply = http(live_suite, "POST", "/v1/users",
                         {"user": {"username": username, "role": "ROLE_VIEWER"}, "password": password}, token=token)
    assert status == 200, reply
    assert reply["user"]["name"] == f"users/{username}"
    status, tokens = http(live_suite, "POST", "/v1/auth:login", {"username": username, "password": password})
    assert status == 200 and tokens["tokens"]["accessToken"]
    access_log = live_suite.suite.state_dir / "logs" / "gateway-access.log"

    def logged() -> str:
        text = access_log.read_text()
        assert "/v1/users" in text  # the call is there (Envoy writes the log with a short delay)
        return text

    assert password not in assert_eventually(logged, timeout=15, what="the CreateUser call in the access log")
