"""Finding 5: request bytes that do not parse get INVALID_ARGUMENT naming the field, never UNKNOWN."""

from __future__ import annotations

import json

import grpc
import pytest
from support import auth
from support.processes import ServiceProcess
from support.rpc_errors import rpc_failure
from support.waiting import assert_eventually

from odin.runtime.request_decoding import Undecodable, bad_string_path, lenient
from odin.scheduler.v1 import scheduler_pb2 as pb

LIST_JOBS = "/odin.scheduler.v1.SchedulerService/ListJobs"
CREATE_JOB = "/odin.scheduler.v1.SchedulerService/CreateJob"


def raw_call(address: str, method: str, payload: bytes, token: str | None = None) -> grpc.RpcError:
    """Sends `payload` as the request bytes of `method`; returns the error it must end with."""
    metadata = (("authorization", f"Bearer {token or auth.default_token()}"),) if token != "" else ()
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as failed:
            call(payload, metadata=metadata, timeout=5)
    return failed.value


def with_bad_utf8(message: bytes, good: bytes) -> bytes:
    """`message` with the string `good` made invalid UTF-8 (same length, so lengths stay right)."""
    assert good in message
    return message.replace(good, b"\xff" + good[1:], 1)


def test_a_bad_page_token_is_invalid_argument_naming_the_field(slow_server: ServiceProcess) -> None:
    payload = with_bad_utf8(pb.ListJobsRequest(page_size=5, page_token="abc").SerializeToString(), b"abc")
    failure = rpc_failure(raw_call(slow_server.address, LIST_JOBS, payload))
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT  # it was UNKNOWN (HTTP 500 through the gateway)
    assert failure.violations == [("page_token", "is not valid UTF-8")]
    assert failure.reason == "INVALID_UTF8"


def test_nested_and_map_fields_are_named(slow_server: ServiceProcess) -> None:
    request = pb.CreateJobRequest(project="default", labels={"team": "vision"})
    failure = rpc_failure(raw_call(slow_server.address, CREATE_JOB,
                                   with_bad_utf8(request.SerializeToString(), b"vision")))
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert failure.violations == [('labels["team"]', "is not valid UTF-8")]


def test_truncated_and_mistyped_bytes_are_invalid_argument(slow_server: ServiceProcess) -> None:
    whole = pb.ListJobsRequest(page_size=5, page_token="abcdef").SerializeToString()
    for payload in (whole[:-2], b"\x12\xff\xff\xff\xff\x0f", b"\x0c", b"\x0f", b"\x08"):
        failure = rpc_failure(raw_call(slow_server.address, LIST_JOBS, payload))
        assert failure.code == grpc.StatusCode.INVALID_ARGUMENT, payload
        assert failure.reason == "MALFORMED_REQUEST"
        assert "Traceback" not in failure.message and "DecodeError" not in failure.message


def test_authentication_still_comes_first(slow_server: ServiceProcess) -> None:
    payload = with_bad_utf8(pb.ListJobsRequest(page_token="abc").SerializeToString(), b"abc")
    assert raw_call(slow_server.address, LIST_JOBS, payload, token="").code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_refused_mutating_call_is_audited_with_its_caller(slow_server: ServiceProcess) -> None:
    """slow_server has no auth service to send records to, so its records go to the log."""
    payload = with_bad_utf8(pb.CreateJobRequest(project="default", request_id="r-1").SerializeToString(), b"default")
    raw_call(slow_server.address, CREATE_JOB, payload)

    def audited() -> bool:
        for line in slow_server.log_text().splitlines():
            if '"audit"' in line and "CreateJob" in line:
                record = json.loads(line)
                return bool(record["actor"] == f"users/{auth.ADMIN}" and record["result"] == "INVALID_ARGUMENT")
        return False

    assert_eventually(audited, what="an audit log line for the refused CreateJob")


@pytest.mark.parametrize(("request_bytes", "path"), [
    (pb.CreateJobRequest(inline=pb.InlinePipeline(main_yml="x"), request_id="abc"), "request_id"),
    (pb.CreateJobRequest(inline=pb.InlinePipeline(main_yml="abc")), "inline.main_yml"),
    (pb.ListJobsRequest(owner="zz", labels={"k": "v"}, states=[1], page_token="abc"), "page_token"),
])
def test_bad_string_path_names_the_field(request_bytes: pb.CreateJobRequest | pb.ListJobsRequest, path: str) -> None:
    data = with_bad_utf8(request_bytes.SerializeToString(), b"abc")
    assert bad_string_path(type(request_bytes).DESCRIPTOR, data) == path


def test_lenient_deserializer_passes_good_bytes_and_flags_bad_ones() -> None:
    deserialize = lenient(pb.ListJobsRequest.FromString)
    assert deserialize is not None
    good = pb.ListJobsRequest(page_token="abc")
    assert deserialize(good.SerializeToString()) == good
    bad = deserialize(with_bad_utf8(good.SerializeToString(), b"abc"))
    assert isinstance(bad, Undecodable) and bad.error.violations == [("page_token", "is not valid UTF-8")]
