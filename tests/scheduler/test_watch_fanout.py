"""Watch fan-out: many concurrent watchers, batched wakeups and shared responses lose and duplicate
nothing, also for a watcher that falls behind the hub's buffer or reconnects with its cursor."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest
from odin_scheduler.convert import EventResponses
from odin_scheduler.model import Event, EventType, Job, JobFilter, JobState
from odin_scheduler.watch import EventHub, Heartbeat, JobLookup, watch_events
from scheduler_testkit import inline, pipeline, task_yaml
from support.clients import aio_channel
from support.processes import ServiceProcess

from odin.scheduler.v1 import scheduler_pb2 as pb
from odin.scheduler.v1 import scheduler_pb2_grpc

JOBS = ("a", "b")


class MemoryEvents:
    """The store's event log in memory (the hub's collaborator), appended in bursts by the test."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.job_reads = 0
        self.fail_next_read = False
        self._appended = asyncio.Event()

    def append(self, count: int) -> None:
        for _ in range(count):
            seq = len(self.events) + 1
            self.events.append(Event(seq, JOBS[seq % 2], EventType.JOB_STATE_CHANGED, seq, JobState.RUNNING))
        self._appended.set()
        self._appended = asyncio.Event()

    async def latest_seq(self) -> int:
        return len(self.events)

    async def list_events(self, after_seq: int, *, job_id: str | None = None, up_to: int | None = None,
                          limit: int = 1000) -> list[Event]:  # fmt: skip
        await asyncio.sleep(0)  # a real read yields to other tasks
        upper = len(self.events) if up_to is None else up_to
        found = [e for e in self.events[after_seq:upper] if job_id is None or e.job_id == job_id]
        return found[:limit]

    async def wait_for_events(self, after_seq: int, timeout: float) -> None:
        if len(self.events) > after_seq:
            return
        try:
            async with asyncio.timeout(timeout):
                await self._appended.wait()
        except TimeoutError:
            pass

    async def get_job(self, job_id: str) -> Job | None:
        self.job_reads += 1
        await asyncio.sleep(0.01)
        if self.fail_next_read:
            self.fail_next_read = False
            raise ConnectionError("store briefly down")
        return Job(job_id, f"p-{job_id}", "rev", JobState.RUNNING, "users/alice", 1, {}, labels={"team": job_id})


async def follow(hub: EventHub, store: MemoryEvents, after: int, last: int, job_id: str | None,
                 drop_at: int | None = None) -> list[int]:  # fmt: skip
    """Seqs a watcher receives up to `last`; with `drop_at`, it disconnects there and resumes."""
    seen: list[int] = []
    while not seen or seen[-1] < last:
        cursor = seen[-1] if seen else after
        async for item in watch_events(hub, store, cursor, job_id=job_id, heartbeat_seconds=0.05):  # type: ignore[arg-type]
            if isinstance(item, Heartbeat):
                continue
            assert item, "batches are never empty"
            seen += [e.seq for e in item]
            if drop_at is not None and seen[-1] >= drop_at:
                drop_at = None
                break  # the stream ends; the watcher reconnects with its cursor
            if seen[-1] >= last:
                break
    return seen


async def test_concurrent_watchers_see_every_event_once_in_order() -> None:
    store = MemoryEvents()
    store.append(30)
    hub = EventHub(store, buffer_size=64)  # type: ignore[arg-type]  # small: slow watchers replay from the store
    await hub.start()
    total, rng = 1500, random.Random(7)
    last_of = {None: total, "a": total - total % 2, "b": total - 1 + total % 2}
    plans = [(rng.choice([0, 10, 30]), rng.choice([None, *JOBS]), rng.choice([None, None, rng.randint(40, 1400)]))
             for _ in range(150)]  # fmt: skip
    watchers = [asyncio.create_task(follow(hub, store, after, last_of[job], job, drop)) for after, job, drop in plans]

    async def produce() -> None:
        while len(store.events) < total:
            store.append(min(rng.randint(1, 40), total - len(store.events)))
            for _ in range(rng.randint(0, 30)):
                await asyncio.sleep(0)  # let some watchers run, not all: bursts overlap sends

    await produce()
    results = await asyncio.wait_for(asyncio.gather(*watchers), 60)
    await hub.close()
    for (after, job, _), seen in zip(plans, results, strict=True):
        expected = [e.seq for e in store.events if e.seq > after and (job is None or e.job_id == job)]
        assert seen == expected, f"watcher after {after} of {job}: lost or duplicated events"


async def test_a_quiet_watcher_gets_heartbeats_then_wakes_for_new_events() -> None:
    store = MemoryEvents()
    hub = EventHub(store)  # type: ignore[arg-type]
    await hub.start()
    stream = watch_events(hub, store, 0, heartbeat_seconds=0.05)  # type: ignore[arg-type]
    first = await asyncio.wait_for(anext(stream), 5)
    assert isinstance(first, Heartbeat) and first.latest_seq == 0
    store.append(3)
    batch = await asyncio.wait_for(anext(stream), 5)
    assert not isinstance(batch, Heartbeat) and [e.seq for e in batch] == [1, 2, 3]  # one wakeup, one batch
    await stream.aclose()
    await hub.close()


async def test_job_lookups_are_shared_and_failures_retried() -> None:
    store = MemoryEvents()
    store.append(4)
    lookup = JobLookup(store)  # type: ignore[arg-type]
    select = lookup.selector(JobFilter(labels={"team": "a"}))
    store.fail_next_read = True
    with pytest.raises(ConnectionError):
        await select(store.events)
    picked = await asyncio.gather(*(select(store.events) for _ in range(200)))
    assert all([e.seq for e in p] == [2, 4] for p in picked)
    assert store.job_reads == 3  # the failed read, then one per job for 200 watchers


def test_one_serialized_event_serves_both_watch_responses() -> None:
    responses = EventResponses(capacity=2)
    event = Event(5, "j1", EventType.JOB_STATE_CHANGED, 1_700_000_000_000_000, JobState.SUCCEEDED)
    wire = responses(event)
    assert responses(event) is wire  # built once, shared
    as_job = pb.WatchJobResponse.FromString(wire)
    as_jobs = pb.WatchJobsResponse.FromString(wire)
    assert as_job.event.seq == as_jobs.event.seq == 5 and as_jobs.event.job == "jobs/j1"
    assert as_jobs.WhichOneof("kind") == "event" and as_jobs.SerializeToString() == wire  # no unknown fields
    assert as_job.event == as_jobs.event
    for seq in (6, 7):
        responses(Event(seq, "j1", EventType.JOB_STATE_CHANGED, 1, JobState.RUNNING))
    assert responses(event) is not wire and responses(event) == wire  # evicted (bounded), rebuilt alike


async def test_many_streams_of_a_real_scheduler_agree_with_the_store(scheduler: ServiceProcess) -> None:
    tasks = [task_yaml(f"t{i}", "true") for i in range(20)]
    async with aio_channel(scheduler.address) as channel:
        stub = scheduler_pb2_grpc.SchedulerServiceStub(channel)
        job = (await stub.CreateJob(inline(pipeline("fan", *tasks, extra="parallelism: 4\n"),
                                           labels={"team": "red"}), timeout=10)).job  # fmt: skip

        async def watch(after: int = 0, stop_after: Callable[[list[int]], bool] = lambda _: False) -> list[int]:
            seen: list[int] = []
            async for message in stub.WatchJob(pb.WatchJobRequest(name=job.name, after_seq=after), timeout=60):
                if message.HasField("event"):
                    seen.append(message.event.seq)
                if stop_after(seen):
                    break
            return seen

        async def watch_jobs() -> list[int]:
            seen: list[int] = []
            request = pb.WatchJobsRequest(after_seq=job.last_event_seq, labels=["team=red"])
            stream = stub.WatchJobs(request, timeout=60)
            async for message in stream:
                if message.HasField("event"):
                    seen.append(message.event.seq)
                    if message.event.job_state == pb.Job.STATE_SUCCEEDED:
                        stream.cancel()
                        break
            return seen

        async def reconnecting() -> list[int]:
            first = await watch(stop_after=lambda seen: len(seen) >= 10)
            return first + await watch(after=first[-1])

        results = await asyncio.gather(*(watch() for _ in range(40)), reconnecting(), *(watch_jobs() for _ in range(5)))
        page = await stub.ListJobEvents(pb.ListJobEventsRequest(parent=job.name, page_size=1000), timeout=10)
    stored = [e.seq for e in page.events]
    assert all(seen == stored for seen in results[:41]), "a WatchJob stream lost or duplicated events"
    assert all(seen == [s for s in stored if s > job.last_event_seq] for seen in results[41:]), "WatchJobs differs"
