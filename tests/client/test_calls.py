"""Unary calls: typed errors from google.rpc details, safe retries, paging, the bearer token."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.fake_scheduler import FakeScheduler, serve

from odin.client import (
    InvalidArgument,
    NotFound,
    RetryPolicy,
    SchedulerClient,
    Unavailable,
    job_options,
    pack_pipeline,
)
from odin.scheduler.v1 import scheduler_pb2 as pb

FAST = RetryPolicy(initial_backoff=0.01, max_backoff=0.05)


async def test_not_found_carries_reason_and_metadata() -> None:
    async with serve(FakeScheduler()) as address, SchedulerClient.connect(address) as client:
        with pytest.raises(NotFound) as caught:
            await client.get_job("nope-12345678")
    assert caught.value.code == "NOT_FOUND"
    assert caught.value.reason == "JOB_NOT_FOUND"
    assert caught.value.metadata == {"job": "jobs/nope-12345678"}


async def test_invalid_argument_carries_each_field_violation() -> None:
    async with serve(FakeScheduler()) as address, SchedulerClient.connect(address) as client:
        with pytest.raises(InvalidArgument) as caught:
            await client.create_job(pb.InlinePipeline(main_yml="bad: true"))
    assert [(v.field, v.description) for v in caught.value.violations] == [
        ("tasks[0].depends", 'unknown task "trian"'), ("tasks[1].name", "must not be empty")]
    assert caught.value.to_dict()["violations"][0]["field"] == "tasks[0].depends"


async def test_create_is_retried_with_the_same_request_id() -> None:
    fake = FakeScheduler(unary_failures={"CreateJob": 2})
    async with serve(fake) as address, SchedulerClient.connect(address, retry=FAST) as client:
        job = await client.create_job(client.pipeline_ref("hello"), labels={"team": "nlp"},
                                      options=job_options(parallelism=2, failure_policy="cancel", timeout=90))
    ids = {request.request_id for method, request in fake.requests if method == "CreateJob"}
    assert len(ids) == 1 and job.request_id in ids and len(job.request_id) == 36
    assert len([m for m, _ in fake.requests if m == "CreateJob"]) == 3
    assert job.options.timeout.seconds == 90 and job.options.parallelism == 2


async def test_retry_job_is_not_retried() -> None:
    fake = FakeScheduler(unary_failures={"RetryJob": 1})
    fake.add_job("hello-abcd1234", [], [("", 0, pb.Job.STATE_FAILED)])
    async with serve(fake) as address, SchedulerClient.connect(address, retry=FAST) as client:
        with pytest.raises(Unavailable):
            await client.retry_job("hello-abcd1234")
    assert [m for m, _ in fake.requests] == ["RetryJob"]


async def test_reads_give_up_after_their_attempts() -> None:
    fake = FakeScheduler(unary_failures={"GetJob": 10})
    async with serve(fake) as address, SchedulerClient.connect(address, retry=FAST) as client:
        with pytest.raises(Unavailable):
            await client.get_job("x-12345678")
    assert len(fake.requests) == FAST.max_attempts


async def test_list_jobs_pages_until_the_limit() -> None:
    fake = FakeScheduler()
    for i in range(7):
        fake.add_job(f"p-{i:08d}", [], [("", 0, pb.Job.STATE_SUCCEEDED)])
    async with serve(fake) as address, SchedulerClient.connect(address) as client:
        every = [job.name async for job in client.list_jobs(page_size=3)]
        first_five = [job.name async for job in client.list_jobs(page_size=3, limit=5)]
    assert every == sorted(every, reverse=True) and len(every) == 7
    assert first_five == every[:5]
    tokens = [request.page_token for method, request in fake.requests if method == "ListJobs"]
    assert tokens == ["", "3", "6", "", "3"]


async def test_the_token_is_sent_as_a_bearer_header() -> None:
    fake = FakeScheduler()
    async with serve(fake) as address:
        async with SchedulerClient.connect(address, token="t0k") as client:
            with pytest.raises(NotFound):
                await client.get_job("x-12345678")
        async with SchedulerClient.connect(address) as client:
            with pytest.raises(NotFound):
                await client.get_job("x-12345678")
    assert fake.metadata_seen[0]["authorization"] == "Bearer t0k"
    assert "authorization" not in fake.metadata_seen[1]


def test_a_pipeline_directory_is_packed_with_its_files(tmp_path: Path) -> None:
    (tmp_path / "main.yml").write_text("name: x\n")
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "a.json").write_text("{}")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref")
    packed = pack_pipeline(tmp_path / "main.yml")
    assert packed.main_yml == "name: x\n"
    assert dict(packed.files) == {"conf/a.json": "{}"}
    with pytest.raises(InvalidArgument, match=r"main\.yml"):
        pack_pipeline(tmp_path / "conf")
    (tmp_path / "blob.bin").write_bytes(b"\xff\xfe")
    with pytest.raises(InvalidArgument, match="not UTF-8"):
        pack_pipeline(tmp_path)
