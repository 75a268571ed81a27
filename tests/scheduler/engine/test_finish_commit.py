"""Finding 8: an attempt's end survives a store that refuses the commit (PostgreSQL restart, full disk).

The finishing commit is retried until it lands, the task runs once, and the executor cleans up only after the
outcome is stored (before the fix the runner was dropped, the task stayed RUNNING and was run again on restart,
and a Kubernetes object was deleted before its result was stored).
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest
from engine_testkit import Harness, task
from odin_scheduler.engine import Engine, EngineConfig
from odin_scheduler.executor.base import Handle, Outcome, TaskRun
from odin_scheduler.executor.instant import InstantExecutor
from odin_scheduler.executor.local import LocalExecutor
from odin_scheduler.model import Job, JobState, NewEvent, Task, TaskState
from odin_scheduler.paths import Layout
from odin_scheduler.store import Store, open_store
from support.postgres import PostgresServer, _as_owner, postgres_bin_dir, private_postgres
from support.waiting import assert_eventually_async

FAST_RETRY = EngineConfig(finish_retry_seconds=0.01, finish_retry_max_seconds=0.05)


class FlakyStore:
    """The real store, except that the next `failures` commits that end an attempt raise (as a dropped
    connection or a full disk would)."""

    def __init__(self, store: Store, failures: int) -> None:
        self.store = store
        self.failures = failures
        self.refused = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def commit(self, job: Job, tasks: Sequence[Task], events: Sequence[NewEvent],
                     expected_version: int) -> tuple[Job, list[Any]]:  # fmt: skip
        if self.failures and any(t.state is TaskState.SUCCEEDED for t in tasks):
            self.failures -= 1
            self.refused += 1
            raise OSError(28, "No space left on device")
        return await self.store.commit(job, tasks, events, expected_version)


class CountingStore:
    """The real store, counting the commits it refused (the engine's, while PostgreSQL is down)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.refused = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def commit(self, job: Job, tasks: Sequence[Task], events: Sequence[NewEvent],
                     expected_version: int) -> tuple[Job, list[Any]]:  # fmt: skip
        try:
            return await self.store.commit(job, tasks, events, expected_version)
        except Exception:
            self.refused += 1
            raise


class RecordingExecutor(InstantExecutor):
    """Notes, when the engine releases an attempt, what the store held for its task at that moment."""

    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store
        self.released: list[tuple[str, TaskState | None]] = []

    async def release(self, run: TaskRun, handle: Handle, outcome: Outcome) -> None:
        stored = await self.store.get_task(run.job_id, run.task)
        self.released.append((run.task_id, stored.state if stored else None))


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    store = open_store(f"sqlite:///{tmp_path / 'scheduler.db'}")
    await store.open()
    yield store
    await store.close()


async def test_a_refused_finishing_commit_is_retried_and_cleanup_waits_for_it(sqlite_store: Store,
                                                                              tmp_path: Path) -> None:
    flaky = FlakyStore(sqlite_store, failures=3)
    executor = RecordingExecutor(sqlite_store)
    engine = Engine(flaky, executor, Layout(tmp_path / "runs"), FAST_RETRY)  # type: ignore[arg-type]
    await engine.start()
    try:
        harness = Harness(sqlite_store, engine, executor)
        job = await harness.run([task("one"), task("two", depends="one")])
        assert (await harness.finished(job)).state is JobState.SUCCEEDED
        assert flaky.refused == 3
        # Each task ran once: the refused commits did not lose the attempt or start it again.
        assert sorted(task_id for task_id, _ in executor.started) == [f"{job}--one", f"{job}--two"]
        tasks = await harness.tasks(job)
        assert (tasks["one"].attempt, tasks["two"].attempt) == (1, 1)
        # Released only once the store said SUCCEEDED, never while it still said RUNNING.
        await assert_eventually_async(lambda: _true(len(executor.released) == 2), 5, what="both attempts released")
        assert executor.released == [(f"{job}--one", TaskState.SUCCEEDED), (f"{job}--two", TaskState.SUCCEEDED)]
    finally:
        await engine.stop()


async def test_the_retry_backs_off_instead_of_spinning(sqlite_store: Store, tmp_path: Path) -> None:
    flaky = FlakyStore(sqlite_store, failures=1_000_000)
    config = EngineConfig(finish_retry_seconds=0.05, finish_retry_max_seconds=0.2)
    engine = Engine(flaky, InstantExecutor(), Layout(tmp_path / "runs"), config)  # type: ignore[arg-type]
    await engine.start()
    try:
        harness = Harness(sqlite_store, engine, engine.executor)  # type: ignore[arg-type]
        job = await harness.run([task("one")])
        await asyncio.sleep(1.0)  # the duration under test: how many commits the retry makes in it
        # 0.05, 0.1, 0.2, 0.2, ... with jitter down to half: at most ~10 tries in a second, not thousands.
        assert 2 <= flaky.refused <= 12, flaky.refused
        assert engine.running_attempts == 1  # still held, slot and all, for the commit that will land
        flaky.failures = 0
        assert (await harness.finished(job)).state is JobState.SUCCEEDED
    finally:
        await engine.stop()


# -- against a real PostgreSQL that restarts while the task ends ----------------------------------------------------


@pytest.fixture
def restartable_postgres() -> Any:
    """A cluster of this test's own: stopping it must not disturb the session's shared one."""
    with private_postgres() as server:
        yield server


def _pg_ctl(server: PostgresServer, *args: str) -> None:
    owner = "postgres" if subprocess.run(["id", "-u"], capture_output=True, text=True).stdout.strip() == "0" else None
    subprocess.run(_as_owner([str(postgres_bin_dir() / "pg_ctl"), "-D", str(server.data_dir), *args], owner),
                   check=True, capture_output=True)  # fmt: skip


def _stop(server: PostgresServer) -> None:
    _pg_ctl(server, "-m", "fast", "-w", "stop")


def _start(server: PostgresServer) -> None:
    root = server.data_dir.parent
    options = f"-p {server.port} -k {root / 'sock'} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300"
    _pg_ctl(server, "-o", options, "-l", str(root / "server.log"), "-w", "start")


async def test_a_postgresql_restart_while_a_task_ends_does_not_rerun_it(
        restartable_postgres: PostgresServer, tmp_path: Path) -> None:  # fmt: skip
    with psycopg.connect(restartable_postgres.url(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE scheduler")
    store = open_store(restartable_postgres.url("scheduler"))
    await store.open()
    counting = CountingStore(store)
    layout = Layout(tmp_path / "runs")
    config = EngineConfig(finish_retry_seconds=0.05, finish_retry_max_seconds=0.5)
    # The gate and the run counter live outside the run path: the task runs as the scheduler's user here.
    executor = LocalExecutor(is_root=lambda: False)
    engine = Engine(counting, executor, layout, config)  # type: ignore[arg-type]
    await engine.start()
    runs, gate = tmp_path / "runs.log", tmp_path / "go"
    try:
        harness = Harness(store, engine, InstantExecutor())
        # Counts its runs, then waits for the test to let it end.
        script = f"echo run >> {runs}; while [ ! -e {gate} ]; do sleep 0.02; done"
        job = await harness.run([task("work", "sh", "-c", script), task("after", "true", depends="work")])
        await harness.until(job, "work", lambda t: t.state is TaskState.RUNNING and bool(t.handle))
        await asyncio.to_thread(_stop, restartable_postgres)
        try:
            gate.touch()  # the task ends while the store is down

            async def refused() -> bool:
                return counting.refused > 0

            await assert_eventually_async(refused, 20, what="the finishing commit failed while PostgreSQL was down")
        finally:
            await asyncio.to_thread(_start, restartable_postgres)
        done = await harness.finished(job, timeout=60)
        assert done.state is JobState.SUCCEEDED, done
        assert runs.read_text().splitlines() == ["run"]  # ran once: not re-run after the restart
        assert (await harness.tasks(job))["work"].attempt == 1
    finally:
        await engine.stop()
        await store.close()


async def _true(value: bool) -> bool:
    return value
