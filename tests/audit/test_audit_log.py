"""The audit log with real processes: every service records its mutating calls; admins list them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from support.live_suite import LiveSuite
from support.waiting import assert_eventually

from odin.auth.v1 import auth_pb2, auth_pb2_grpc
from odin.pipelines.v1 import pipelines_pb2, pipelines_pb2_grpc
from odin.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc

BIN = Path(sys.executable).parent
MAIN_YML = ("name: audited\ntasks:\n  - name: hello\n    image: python:3.12-slim\n"
            "    command: [python3, -c, 'print(1)']\n")
WRONG_PASSWORD = "not-the-password-Zq8x"  # must never show up in a record
ALICE_PASSWORD = "alice-password-Kd93-long-enough"


def auth_md(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def list_records(suite: LiveSuite, token: str, **filters: str) -> list[auth_pb2.AuditRecord]:
    with grpc.insecure_channel(suite.gateway) as channel:
        stub = auth_pb2_grpc.AuditServiceStub(channel)
        records: list[auth_pb2.AuditRecord] = []
        token_ = ""
        while True:
            reply = stub.ListAuditRecords(auth_pb2.ListAuditRecordsRequest(page_size=2, page_token=token_, **filters),
                                          metadata=auth_md(token), timeout=10)
            records += reply.records
            token_ = reply.next_page_token
            if not token_:
                return records


@pytest.fixture(scope="module")
def activity(live_suite: LiveSuite) -> dict[str, str]:
    """A CreateJob, a CreatePipeline, a failed Login and a new user (alice), all through the gateway."""
    md = auth_md(live_suite.admin_token)
    with grpc.insecure_channel(live_suite.gateway) as channel:
        job = scheduler_pb2_grpc.SchedulerServiceStub(channel).CreateJob(scheduler_pb2.CreateJobRequest(
            request_id="audit-req-1", inline=scheduler_pb2.InlinePipeline(main_yml=MAIN_YML), project="default"),
            metadata=md, timeout=30).job
        pipelines_pb2_grpc.PipelinesServiceStub(channel).CreatePipeline(pipelines_pb2.CreatePipelineRequest(
            pipeline_id="audited", project="default", pipeline=pipelines_pb2.Pipeline(
                files=[pipelines_pb2.PipelineFile(path="main.yml", content=MAIN_YML)])), metadata=md, timeout=30)
        auth = auth_pb2_grpc.AuthServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            auth.Login(auth_pb2.LoginRequest(username="admin", password=WRONG_PASSWORD), timeout=30)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        auth.CreateUser(auth_pb2.CreateUserRequest(user=auth_pb2.User(username="alice", role=auth_pb2.User.ROLE_USER),
                                                   password=ALICE_PASSWORD), metadata=md, timeout=30)
        alice = auth.Login(auth_pb2.LoginRequest(username="alice", password=ALICE_PASSWORD), timeout=30)
    return {"job": job.name, "alice_token": alice.tokens.access_token}


def test_mutating_calls_of_every_service_are_recorded(live_suite: LiveSuite, activity: dict[str, str]) -> None:
    def recorded() -> dict[str, auth_pb2.AuditRecord]:
        found = {r.method.rsplit("/", 1)[1]: r for r in list_records(live_suite, live_suite.admin_token)
                 if r.result != "OK" or r.method.endswith(("CreateJob", "CreatePipeline", "CreateUser"))}
        return found if {"CreateJob", "CreatePipeline", "CreateUser", "Login"} <= set(found) else {}

    records = assert_eventually(recorded, what="records of CreateJob, CreatePipeline, CreateUser and the failed Login")
    job = records["CreateJob"]
    assert (job.actor, job.result, job.service, job.request_id) == ("users/admin", "OK", "scheduler", "audit-req-1")
    assert job.project == "projects/default" and job.client and job.name.startswith("auditRecords/")
    pipeline = records["CreatePipeline"]
    assert (pipeline.actor, pipeline.service, pipeline.project) == ("users/admin", "pipelines", "projects/default")
    login = records["Login"]
    assert (login.actor, login.result, login.resource, login.service) == ("", "UNAUTHENTICATED", "users/admin", "auth")
    assert records["CreateUser"].resource == "users/alice"


def test_filters_and_newest_first(live_suite: LiveSuite, activity: dict[str, str]) -> None:
    assert_eventually(lambda: list_records(live_suite, live_suite.admin_token, method="CreateJob"),
                      what="the CreateJob record")
    jobs = list_records(live_suite, live_suite.admin_token, method="CreateJob", actor="admin", project="default")
    assert jobs and all(r.method.endswith("/CreateJob") and r.actor == "users/admin" for r in jobs)
    assert not list_records(live_suite, live_suite.admin_token, actor="users/nobody")
    everything = list_records(live_suite, live_suite.admin_token)
    times = [r.time.ToNanoseconds() for r in everything]
    assert times == sorted(times, reverse=True)
    assert len({r.name for r in everything}) == len(everything)  # paging (2 per page) repeats nothing


def test_only_admins_list(live_suite: LiveSuite, activity: dict[str, str]) -> None:
    with pytest.raises(grpc.RpcError) as denied:
        list_records(live_suite, activity["alice_token"])
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with grpc.insecure_channel(live_suite.gateway) as channel, pytest.raises(grpc.RpcError) as forged:
        auth_pb2_grpc.AuditServiceStub(channel).WriteAuditRecords(
            auth_pb2.WriteAuditRecordsRequest(records=[auth_pb2.AuditRecord(method="/x/Forged")]),
            metadata=auth_md(live_suite.admin_token), timeout=10)
    assert forged.value.code() == grpc.StatusCode.PERMISSION_DENIED  # people never write records


def test_no_password_is_ever_recorded(live_suite: LiveSuite, activity: dict[str, str]) -> None:
    assert_eventually(lambda: list_records(live_suite, live_suite.admin_token, method="CreateUser"),
                      what="the CreateUser record")
    text = "".join(str(r) for r in list_records(live_suite, live_suite.admin_token))
    raw = (live_suite.suite.state_dir / "auth.db").read_bytes()
    for secret in (WRONG_PASSWORD, ALICE_PASSWORD, live_suite.admin_password):
        assert secret not in text
        assert secret.encode() not in raw


def test_odin_audit_command(live_suite: LiveSuite, activity: dict[str, str], tmp_path: Path) -> None:
    assert_eventually(lambda: list_records(live_suite, live_suite.admin_token, method="CreateJob"),
                      what="the CreateJob record")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODIN_")}
    token_file = tmp_path / "token"
    token_file.write_text(live_suite.admin_token)
    env.update({"ODIN_ADDRESS": live_suite.gateway, "ODIN_TOKEN_FILE": str(token_file)})
    shown = subprocess.run([str(BIN / "odin"), "audit", "--actor", "admin", "--method", "CreateJob"], env=env,
                           capture_output=True, text=True, timeout=60, check=False)
    assert shown.returncode == 0, shown.stderr
    assert "CreateJob" in shown.stdout and "audit-req-1" in shown.stdout and "admin" in shown.stdout
    token_file.write_text(activity["alice_token"])
    refused = subprocess.run([str(BIN / "odin"), "audit"], env=env, capture_output=True, text=True, timeout=60,
                             check=False)
    assert refused.returncode == 1 and "needs the admin role" in refused.stdout + refused.stderr
