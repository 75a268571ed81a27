"""The store's behaviour, the same on every backend."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from odin_scheduler.model import (
    EventType,
    Job,
    JobFilter,
    JobState,
    NewEvent,
    Task,
    TaskState,
)
from odin_scheduler.store import JobCursor, StaleJob, Store, open_store


def make_job(job_id: str, create_us: int = 1_000, **fields: object) -> tuple[Job, list[Task], list[NewEvent]]:
    job = Job(id=job_id, pipeline=str(fields.pop("pipeline", "p")), revision="", state=JobState.PENDING,
              owner=str(fields.pop("owner", "users/a")), create_us=create_us, run_us=create_us,
              spec={"name": "p", "tasks": [{"name": "t"}]}, **fields)  # type: ignore[arg-type]  # fmt: skip
    tasks = [Task(job_id, name, i, f"{job_id}--{name}", (), TaskState.PENDING, 1, create_us)
             for i, name in enumerate(["t", "u"])]  # fmt: skip
    return job, tasks, [NewEvent(EventType.JOB_CREATED, JobState.PENDING, reason="Created")]


async def test_create_then_read_back(store: Store) -> None:
    job, tasks, events = make_job("j1", labels={"team": "red"}, request_id="r1")
    stored, created = await store.create_job(job, tasks, events)
    assert created and stored.last_event_seq == 1 and stored.version == 1
    assert await store.get_job("j1") == stored
    assert [t.name for t in await store.list_tasks("j1")] == ["t", "u"]
    assert await store.get_task("j1", "u") == tasks[1]
    assert await store.get_task("j1", "nope") is None and await store.get_job("nope") is None
    [event] = await store.list_events(0)
    assert (event.seq, event.job_id, event.type, event.job_state) == (1, "j1", EventType.JOB_CREATED, JobState.PENDING)


async def test_request_id_returns_the_first_job(store: Store) -> None:
    first, _ = await store.create_job(*make_job("j1", request_id="same"))
    again, created = await store.create_job(*make_job("j2", request_id="same"))
    assert not created and again.id == first.id
    assert await store.get_job("j2") is None
    assert await store.latest_seq() == 1  # the refused create wrote no event


async def test_commit_writes_rows_and_events_atomically_with_increasing_seqs(store: Store) -> None:
    job, tasks, events = make_job("j1")
    stored, _ = await store.create_job(job, tasks, events)
    running = dataclasses.replace(stored, state=JobState.RUNNING, start_us=5)
    task = dataclasses.replace(tasks[0], state=TaskState.QUEUED)
    new = [NewEvent(EventType.TASK_STATE_CHANGED, JobState.PENDING, "t", TaskState.QUEUED),
           NewEvent(EventType.JOB_STATE_CHANGED, JobState.RUNNING)]  # fmt: skip
    after, written = await store.commit(running, [task], new, expected_version=1)
    assert [e.seq for e in written] == [2, 3] and after.last_event_seq == 3 and after.version == 2
    assert (await store.get_job("j1")) == after
    assert (await store.get_task("j1", "t")).state is TaskState.QUEUED  # type: ignore[union-attr]
    with pytest.raises(StaleJob):
        await store.commit(running, [], new, expected_version=1)
    assert await store.latest_seq() == 3  # the refused commit wrote nothing
    with pytest.raises(StaleJob):
        await store.commit(dataclasses.replace(running, id="ghost"), [], new, expected_version=1)


async def test_events_filter_by_job_and_bounds(store: Store) -> None:
    for i in range(3):
        await store.create_job(*make_job(f"j{i}"))
    assert [e.job_id for e in await store.list_events(0)] == ["j0", "j1", "j2"]
    assert [e.seq for e in await store.list_events(1, up_to=2)] == [2]
    assert [e.seq for e in await store.list_events(0, job_id="j2")] == [3]
    assert [e.seq for e in await store.list_events(0, limit=2)] == [1, 2]


async def test_list_jobs_newest_first_with_keyset_paging_and_filters(store: Store) -> None:
    for i in range(6):
        await store.create_job(*make_job(f"j{i}", create_us=1000 + i // 2, pipeline=f"p{i % 2}",
                                         owner=f"users/{'a' if i < 3 else 'b'}",
                                         labels={"team": "red" if i % 3 == 0 else "blue", "x": "1"}))  # fmt: skip
    everything = JobFilter()
    order = [j.id for j in await store.list_jobs(everything, 10)]
    assert order == ["j5", "j4", "j3", "j2", "j1", "j0"]  # create time desc, then id desc
    first = await store.list_jobs(everything, 2)
    second = await store.list_jobs(everything, 2, JobCursor(first[-1].create_us, first[-1].id))
    assert [j.id for j in first + second] == order[:4]
    assert [j.id for j in await store.list_jobs(JobFilter(pipeline="p1"), 10)] == ["j5", "j3", "j1"]
    assert [j.id for j in await store.list_jobs(JobFilter(owner="users/b"), 10)] == ["j5", "j4", "j3"]
    assert [j.id for j in await store.list_jobs(JobFilter(labels={"team": "red", "x": "1"}), 10)] == ["j3", "j0"]
    assert await store.list_jobs(JobFilter(labels={"team": "green"}), 10) == []
    assert await store.list_jobs(JobFilter(states=frozenset({JobState.RUNNING})), 10) == []
    assert await store.count_jobs(JobFilter(pipeline="p0")) == 3
    assert len(await store.list_unfinished_jobs()) == 6


async def test_delete_removes_job_tasks_and_events_but_never_reuses_seqs(store: Store) -> None:
    await store.create_job(*make_job("j1"))
    await store.create_job(*make_job("j2"))
    assert await store.delete_job("j2")
    assert not await store.delete_job("j2")
    assert await store.get_job("j2") is None and await store.list_tasks("j2") == []
    assert [e.job_id for e in await store.list_events(0)] == ["j1"]
    stored, _ = await store.create_job(*make_job("j3"))
    assert stored.last_event_seq == 3


async def test_wait_for_events_wakes_on_commit_and_times_out(store: Store) -> None:
    await store.create_job(*make_job("j1"))
    await asyncio.wait_for(store.wait_for_events(0, 5), 1)  # already newer: returns at once
    waiter = asyncio.create_task(store.wait_for_events(1, 10))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await store.create_job(*make_job("j2"))
    await asyncio.wait_for(waiter, 5)
    started = asyncio.get_running_loop().time()
    await store.wait_for_events(await store.latest_seq(), 0.1)
    assert asyncio.get_running_loop().time() - started >= 0.09


async def test_concurrent_writers_never_expose_a_seq_before_the_ones_below_it(store: Store) -> None:
    """A reader polling between commits must never see seq N+1 while N is still invisible."""
    for i in range(4):
        await store.create_job(*make_job(f"j{i}"))
    stop = asyncio.Event()
    seen_gaps: list[tuple[int, int]] = []

    async def writer(job_id: str) -> None:
        version = 1
        for _ in range(15):
            job = await store.get_job(job_id)
            assert job is not None
            new = [NewEvent(EventType.JOB_STATE_CHANGED, JobState.PENDING, reason=f"n{k}") for k in range(2)]
            await store.commit(job, [], new, expected_version=version)
            version += 1

    async def reader() -> None:
        cursor = 0
        while not stop.is_set():
            for event in await store.list_events(cursor, up_to=await store.latest_seq()):
                if event.seq != cursor + 1:
                    seen_gaps.append((cursor, event.seq))
                cursor = event.seq
            await asyncio.sleep(0)

    reading = asyncio.create_task(reader())
    await asyncio.gather(*(writer(f"j{i}") for i in range(4)))
    stop.set()
    await reading
    assert seen_gaps == []
    assert [e.seq for e in await store.list_events(0, limit=10_000)] == list(range(1, 4 + 4 * 15 * 2 + 1))


async def test_reopening_keeps_everything(store_url: str) -> None:
    first = open_store(store_url)
    await first.open()
    await first.create_job(*make_job("j1"))
    await first.close()
    again = open_store(store_url)
    await again.open()  # migrations are not applied twice
    assert (await again.get_job("j1")) is not None and await again.latest_seq() == 1
    assert await again.ping()
    await again.close()
