"""watch_job and stream_logs resume from their cursor: no gap, no duplicate, whatever the server does."""

from __future__ import annotations

import asyncio

import pytest
from support.fake_scheduler import Cut, FakeScheduler, serve

from odin.client import RetryPolicy, SchedulerClient, Unavailable
from odin.scheduler.v1 import scheduler_pb2 as pb

FAST = RetryPolicy(initial_backoff=0.01, max_backoff=0.05, reconnect_timeout=5.0)
RUN, OK = pb.Task.STATE_RUNNING, pb.Task.STATE_SUCCEEDED
JOB_RUNNING, JOB_OK = pb.Job.STATE_RUNNING, pb.Job.STATE_SUCCEEDED


def _hello(fake: FakeScheduler) -> str:
    events = [("", 0, JOB_RUNNING)]
    for task in ("prepare", "train", "evaluate"):
        events += [(task, RUN, JOB_RUNNING), (task, OK, JOB_RUNNING)]
    events.append(("", 0, JOB_OK))
    return fake.add_job("hello-abcd1234", ["prepare", "train", "evaluate"], events)


def _watch_cursors(fake: FakeScheduler) -> list[int]:
    return [request.after_seq for method, request in fake.requests if method == "WatchJob"]


async def _collect(client: SchedulerClient, job: str, after_seq: int = 0) -> list[int]:
    return [event.seq async for event in client.watch_job(job, after_seq=after_seq)]


async def test_watch_reconnects_with_last_seq_after_drops_and_clean_early_ends() -> None:
    fake = FakeScheduler(watch_script=[Cut(2, "drop"), Cut(0, "drop"), Cut(3, "end"), Cut(1, "drop")])
    job = _hello(fake)
    expected = [e.seq for e in fake.events[job]]
    async with serve(fake) as address, SchedulerClient.connect(address, retry=FAST) as client:
        received = await _collect(client, job)
    assert received == expected  # every event, once, in order
    assert _watch_cursors(fake) == [0, expected[1], expected[1], expected[4], expected[5]]


async def test_watch_skips_an_event_the_server_sends_again() -> None:
    fake = FakeScheduler(watch_script=[Cut(3, "drop"), Cut(100, "all", resend_previous=True)])
    job = _hello(fake)
    async with serve(fake) as address, SchedulerClient.connect(address, retry=FAST) as client:
        received = await _collect(client, job)
    assert received == [e.seq for e in fake.events[job]]


async def test_watch_resumes_after_the_server_process_restarts_on_the_same_port() -> None:
    fake = FakeScheduler(watch_script=[Cut(4, "silent")])
    job = _hello(fake)
    expected = [e.seq for e in fake.events[job]]
    received: list[int] = []
    async with serve(fake) as address:
        port = int(address.rsplit(":", 1)[1])
        client = SchedulerClient.connect(address, retry=FAST)
        stream = client.watch_job(job)
        received += [(await anext(stream)).seq for _ in range(4)]
    # The server is gone; a new one on the same port has the rest.
    async with serve(fake, port=port):
        received += [event.seq async for event in stream]
    await client.close()
    assert received == expected
    assert _watch_cursors(fake)[-1] == expected[3]


async def test_watch_reconnects_when_the_stream_goes_silent() -> None:
    fake = FakeScheduler(watch_script=[Cut(1, "silent")])
    job = _hello(fake)
    async with serve(fake) as address, SchedulerClient.connect(address, retry=FAST, idle_timeout=0.3) as client:
        received = await _collect(client, job)
    assert received == [e.seq for e in fake.events[job]]
    assert len(_watch_cursors(fake)) == 2


async def test_watch_from_a_cursor_replays_only_later_events() -> None:
    fake = FakeScheduler()
    job = _hello(fake)
    seqs = [e.seq for e in fake.events[job]]
    async with serve(fake) as address, SchedulerClient.connect(address, retry=FAST) as client:
        assert await _collect(client, job, after_seq=seqs[5]) == seqs[6:]


async def test_watch_gives_up_when_the_server_stays_away() -> None:
    fake = FakeScheduler()
    job = _hello(fake)
    async with serve(fake) as address:
        pass
    policy = RetryPolicy(initial_backoff=0.01, max_backoff=0.05, reconnect_timeout=0.3)
    async with SchedulerClient.connect(address, retry=policy, timeout=0.5) as client:
        with pytest.raises(Unavailable):
            await asyncio.wait_for(_collect(client, job), 10)


async def test_logs_resume_at_the_byte_after_the_last_piece() -> None:
    task = "jobs/hello-abcd1234/tasks/train"
    fake = FakeScheduler(log_script=[Cut(2, "drop"), Cut(3, "drop", resend_previous=True)])
    fake.add_job("hello-abcd1234", ["train"], [("train", OK, JOB_OK)])
    fake.tasks["jobs/hello-abcd1234"][0].state = OK
    fake.logs[task] = b"epoch 1: loss 0.5\nepoch 2: loss 0.2\ndone\n"
    async with serve(fake) as address, SchedulerClient.connect(address, retry=FAST) as client:
        text = "".join([piece.data async for piece in client.stream_logs("hello-abcd1234/train", follow=True)])
    assert text == fake.logs[task].decode()
    offsets = [request.offset for method, request in fake.requests if method == "StreamTaskLogs"]
    assert offsets == [0, 8, 18]  # the resent overlap (bytes 6-7) was trimmed, not shown twice
