"""The MongoDB store's own guarantees on FerretDB v1 (no transactions, non-atomic updates):
a commit interrupted at any step is finished exactly once, seqs stay dense and unique across
processes, the watermark never passes an event that is not ready, and a newer schema is refused."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from odin_scheduler.model import EventType, JobState, NewEvent, Task, TaskState
from odin_scheduler.store import StaleJob, StoreError, mongo_docs
from odin_scheduler.store.mongo import SCHEMA_VERSION, MongoStore
from support.ferretdb import FerretServer, ferretdb_binary, new_mongo_database
from support.waiting import assert_eventually_async
from test_store import make_job


class Crash(Exception):
    """Stands for the writer process dying at this point."""


@pytest.fixture
def mongo_url(ferretdb_server: FerretServer) -> str:
    return new_mongo_database(ferretdb_server)


@pytest.fixture
async def opener(mongo_url: str) -> AsyncIterator[Callable[[], Any]]:
    """Opens MongoStores on one database (as separate scheduler processes would); closes them after."""
    opened: list[MongoStore] = []

    async def open_one() -> MongoStore:
        store = MongoStore(mongo_url, poll_interval=0.05, settle_after=0.3)
        await store.open()
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        await store.close()


def crash_at(store: MongoStore, target: object, method: str) -> None:
    """Makes `target.method` raise, as if the process died just before that step: its follower
    (poller and janitor) stops too, so only another store can finish the commit."""

    async def die(*args: object, **kwargs: object) -> None:
        if store._follower is not None:
            store._follower.cancel()
        raise Crash(method)

    setattr(target, method, die)


def queued(n: int) -> list[NewEvent]:
    return [NewEvent(EventType.TASK_STATE_CHANGED, JobState.RUNNING, "t", TaskState.QUEUED, reason=f"r{i}")
            for i in range(n)]  # fmt: skip


async def all_events(store: MongoStore) -> list[tuple[int, str, str]]:
    return [(e.seq, e.job_id, e.reason) for e in await store.list_events(0, limit=10_000)]


@pytest.mark.parametrize("step", ["append", "mark_ready"])
async def test_a_commit_cut_short_is_finished_exactly_once_after_a_restart(opener: Any, step: str) -> None:
    first = await opener()
    job, tasks, created = make_job("j1")
    stored, _ = await first.create_job(job, tasks, created)
    running = dataclasses.replace(stored, state=JobState.RUNNING)
    crash_at(first, first.log, step)  # after the record (append) or after events + rows (mark_ready)
    with pytest.raises(Crash):
        await first.commit(running, [dataclasses.replace(tasks[0], state=TaskState.QUEUED)], queued(2), 1)
    assert await first.latest_seq() == 1  # nothing past the watermark is visible
    assert [e.seq for e in await first.list_events(0)] == [1]

    again = await opener()  # the restart replays the record once it is `settle_after` old
    after = await again.get_job("j1")
    assert after is not None and after.version == 2 and after.state is JobState.RUNNING
    assert after.last_event_seq == 3
    assert (await again.get_task("j1", "t")).state is TaskState.QUEUED  # type: ignore[union-attr]
    assert await all_events(again) == [(1, "j1", "Created"), (2, "j1", "r0"), (3, "j1", "r1")]
    assert await again.latest_seq() == 3
    assert await again.settle(older_than=0) == 0  # nothing left to replay
    with pytest.raises(StaleJob):  # the replayed version counts: the old expectation is stale
        await again.commit(running, [], queued(1), 1)


async def test_replaying_a_record_again_never_duplicates_or_rolls_back(opener: Any) -> None:
    store = await opener()
    job, tasks, created = make_job("j1")
    stored, _ = await store.create_job(job, tasks, created)
    v2, _ = await store.commit(stored, [dataclasses.replace(tasks[0], state=TaskState.QUEUED)], queued(1), 1)
    await store._finish("j1")  # step 5 (record applied) runs after the commit returns
    record = await store.commits.find_one({"_id": "j1@2"})
    assert record is not None and record["applied"] and "events" not in record  # payload dropped once applied
    # A slow replayer holding the full record of v2 finishes after v3 was committed.
    late = {**record, "applied": False, "job": {"state": int(JobState.RUNNING), "version": 2, "last_event_seq": 2},
            "tasks": [{"_id": "j1/t", "state": int(TaskState.QUEUED), "version": 2}],
            "events": mongo_docs.pending_events("j1", "j1@2", queued(1), 0)}  # fmt: skip
    v3, _ = await store.commit(v2, [dataclasses.replace(tasks[0], state=TaskState.CANCELLED)], queued(1), 2)
    await store._apply(late)
    assert await store.get_job("j1") == v3
    assert (await store.get_task("j1", "t")).state is TaskState.CANCELLED  # type: ignore[union-attr]
    assert [s for s, _, _ in await all_events(store)] == [1, 2, 3]


async def test_two_processes_share_one_dense_seq_space(opener: Any) -> None:
    a, b = await opener(), await opener()
    for store, name in ((a, "a"), (b, "b")):
        for i in range(3):
            await store.create_job(*make_job(f"{name}{i}"))
    # Both stores' allocation hints are now stale for the other's writes: they collide and move on.
    versions = {f"{n}{i}": 1 for n in "ab" for i in range(3)}

    async def write(store: MongoStore, name: str) -> None:
        for _ in range(6):
            for i in range(3):
                job = await store.get_job(f"{name}{i}")
                assert job is not None
                await store.commit(job, [], queued(2), versions[f"{name}{i}"])
                versions[f"{name}{i}"] += 1

    await asyncio.gather(write(a, "a"), write(b, "b"))
    reader = await opener()
    seqs = [s for s, _, _ in await all_events(reader)]
    assert seqs == list(range(1, 6 + 2 * 6 * 3 * 2 + 1))
    for store in (a, b):  # each sees the other's events through its poller
        await _until(lambda s=store: s.log.watermark == len(seqs))  # type: ignore[misc]


async def test_the_same_version_is_committed_once_across_processes(opener: Any) -> None:
    a, b = await opener(), await opener()
    stored, _ = await a.create_job(*make_job("j1"))
    results = await asyncio.gather(a.commit(stored, [], queued(1), 1), b.commit(stored, [], queued(1), 1),
                                   return_exceptions=True)  # fmt: skip
    assert sorted(type(r).__name__ for r in results) == ["StaleJob", "tuple"]
    await _until(lambda: a.log.watermark == 2)  # the winner may be b: a sees it through its poller
    assert [s for s, _, _ in await all_events(a)] == [1, 2]


async def test_watermark_stops_below_an_event_that_is_not_ready(opener: Any) -> None:
    a, b = await opener(), await opener()
    b.settle_after = 3600  # b's janitor leaves a's record alone until the end of the test
    stored, _ = await a.create_job(*make_job("j1"))
    crash_at(a, a.log, "mark_ready")
    with pytest.raises(Crash):
        await a.commit(stored, [], queued(1), 1)  # seq 2 exists, not ready, its writer "died"
    await b.create_job(*make_job("j2"))  # seq 3, ready
    await _until(lambda: b.log.watermark == 1)
    for _ in range(5):  # polls go on; the watermark stays below the event that is not ready
        await b.wait_for_events(1, 0.05)
        assert await b.latest_seq() == 1 and [e.seq for e in await b.list_events(0)] == [1]
    assert await b.settle(older_than=0) == 1  # what b's janitor does once the record is old enough
    await _until(lambda: b.log.watermark == 3)
    assert [(s, j) for s, j, _ in await all_events(b)] == [(1, "j1"), (2, "j1"), (3, "j2")]


async def test_deleted_events_keep_their_seq_from_every_process(opener: Any) -> None:
    a = await opener()
    await a.create_job(*make_job("j1"))
    b = await opener()  # b's allocation hint is 2
    await a.create_job(*make_job("j2"))
    assert await a.delete_job("j2")
    stored, _ = await b.create_job(*make_job("j3"))
    assert stored.last_event_seq == 3  # not 2: the tombstone holds it
    await _until(lambda: b.log.watermark == 3)  # b's poller passes a's tombstone
    assert [(s, j) for s, j, _ in await all_events(b)] == [(1, "j1"), (3, "j3")]


async def test_a_newer_schema_is_refused_and_the_current_one_recorded(opener: Any, mongo_url: str) -> None:
    store = await opener()
    assert await store.schema_version() == SCHEMA_VERSION
    indexes = await store.log.events.index_information()
    assert indexes["events_by_key"].get("unique")
    await store.meta.update_one({"_id": "schema"}, {"$set": {"version": SCHEMA_VERSION + 1}})
    newer = MongoStore(mongo_url)
    with pytest.raises(StoreError, match="newer than this scheduler"):
        await newer.open()
    await newer.close()


def test_a_missing_ferretdb_binary_fails_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ODIN_FERRETDB_TOOLS", str(tmp_path))
    with pytest.raises(RuntimeError, match=r"tools/ferretdb/install\.sh"):
        ferretdb_binary()


async def _until(check: Callable[[], bool]) -> None:
    await assert_eventually_async(_as_async(check), timeout=5, interval=0.02)


def _as_async(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def run() -> bool:
        return check()

    return run


async def test_a_commit_of_many_task_rows_does_not_exhaust_ferretdb(opener: Any) -> None:
    """FerretDB v1 holds a PostgreSQL connection per update statement until the command ends (pool of 50):
    one bulk update of 120 rows used to hang forever."""
    store = await opener()
    job, _, created = make_job("j1")
    tasks = [Task("j1", f"t{i:03d}", i, f"j1--t{i:03d}", (), TaskState.PENDING, 1, 1) for i in range(120)]
    stored, _ = await store.create_job(job, tasks, created)
    skipped = [dataclasses.replace(t, state=TaskState.SKIPPED) for t in tasks]
    await asyncio.wait_for(store.commit(stored, skipped, queued(1), 1), 30)
    assert {t.state for t in await store.list_tasks("j1")} == {TaskState.SKIPPED}
