"""Finding 5 through the gateway: a non-UTF-8 string in a request field is INVALID_ARGUMENT / HTTP 400
naming the field, over gRPC and over HTTP/JSON (it was UNKNOWN / HTTP 500)."""

from __future__ import annotations

import http.client
import json

import grpc
from support.live_suite import LiveSuite
from support.rpc_errors import rpc_failure

from odin.auth.v1 import auth_pb2
from odin.scheduler.v1 import scheduler_pb2


def test_grpc_page_token_with_bad_utf8(live_suite: LiveSuite) -> None:
    good = scheduler_pb2.ListJobsRequest(page_token="abc").SerializeToString()
    with grpc.insecure_channel(live_suite.gateway) as channel:
        call = channel.unary_unary("/odin.scheduler.v1.SchedulerService/ListJobs", request_serializer=None,
                                   response_deserializer=None)
        try:
            call(good.replace(b"abc", b"\xffbc"), metadata=(("authorization", f"Bearer {live_suite.admin_token}"),),
                 timeout=10)
        except grpc.RpcError as exc:
            failure = rpc_failure(exc)
        else:
            raise AssertionError("a non-UTF-8 page token was accepted")
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert failure.violations == [("page_token", "is not valid UTF-8")]


def test_grpc_nested_field_of_another_service(live_suite: LiveSuite) -> None:
    request = auth_pb2.UpdateUserRequest(user=auth_pb2.User(name="users/fuzz", display_name="abc"))
    with grpc.insecure_channel(live_suite.gateway) as channel:
        call = channel.unary_unary("/odin.auth.v1.AuthService/UpdateUser", request_serializer=None,
                                   response_deserializer=None)
        try:
            call(request.SerializeToString().replace(b"abc", b"\xc3\x28c"),
                 metadata=(("authorization", f"Bearer {live_suite.admin_token}"),), timeout=10)
        except grpc.RpcError as exc:
            failure = rpc_failure(exc)
        else:
            raise AssertionError("a non-UTF-8 display name was accepted")
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert failure.violations == [("user.display_name", "is not valid UTF-8")]


def test_http_query_parameter_with_bad_utf8(live_suite: LiveSuite) -> None:
    host, port = live_suite.gateway.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", "/v1/jobs?pageToken=%FFabc",
                           headers={"authorization": f"Bearer {live_suite.admin_token}"})
        reply = connection.getresponse()
        status, body = reply.status, json.loads(reply.read())
    finally:
        connection.close()
    assert status == 400, body
    violations = [v for d in body["details"] for v in d.get("fieldViolations", [])]
    assert violations == [{"field": "page_token", "description": "is not valid UTF-8"}]
