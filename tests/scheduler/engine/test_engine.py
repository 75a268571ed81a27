"""Engine behaviour with the instant executor, on both stores."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import pytest
from engine_testkit import Harness, task
from odin_scheduler.engine import EngineConfig
from odin_scheduler.model import EventType, FailurePolicy, JobState, TaskState
from support.waiting import assert_eventually_async


async def test_dispatch_follows_dependencies_not_levels(harness: Harness) -> None:
    """`quick2` depends only on `quick`; it must not wait for `slow`, which sits in the same level as `quick`."""
    job = await harness.run([task("slow", "sleep", "1"), task("quick"), task("quick2", depends="quick"),
                             task("end", depends=["slow", "quick2"])])  # fmt: skip
    done = await harness.finished(job)
    assert done.state is JobState.SUCCEEDED
    tasks = await harness.tasks(job)
    assert tasks["quick2"].end_us < tasks["slow"].end_us  # type: ignore[operator]
    assert tasks["end"].start_us >= tasks["slow"].end_us  # type: ignore[operator]


async def test_per_job_parallelism_limit(harness: Harness) -> None:
    job = await harness.run([task(f"t{i}", "sleep", "0.1") for i in range(6)], parallelism=2)
    assert (await harness.finished(job)).state is JobState.SUCCEEDED
    assert _max_running(await harness.store.list_events(0, job_id=job)) == 2


async def test_pipeline_parallelism_key_is_the_default(harness: Harness) -> None:
    job = await harness.run([task(f"t{i}", "sleep", "0.1") for i in range(5)], pipeline_keys={"parallelism": 3})
    await harness.finished(job)
    assert _max_running(await harness.store.list_events(0, job_id=job)) == 3


@pytest.mark.parametrize("engine_config", [EngineConfig(max_parallel_tasks=3)])
async def test_global_limit_spans_jobs(harness: Harness) -> None:
    jobs = [await harness.run([task(f"t{i}", "sleep", "0.1") for i in range(4)]) for _ in range(2)]
    for job in jobs:
        assert (await harness.finished(job)).state is JobState.SUCCEEDED
    events = [e for e in await harness.store.list_events(0, limit=10_000)]
    assert _max_running(events) == 3


def _max_running(events: list) -> int:  # type: ignore[type-arg]
    running: set[tuple[str, str]] = set()
    peak = 0
    for event in events:
        if event.type is not EventType.TASK_STATE_CHANGED:
            continue
        key = (event.job_id, event.task)
        if event.task_state is TaskState.RUNNING:
            running.add(key)
        else:
            running.discard(key)
        peak = max(peak, len(running))
    return peak


async def test_failure_finish_running_lets_others_end_and_skips_the_rest(harness: Harness) -> None:
    job = await harness.run([task("bad", "false"), task("slow", "sleep", "0.3"), task("after", depends="bad"),
                             task("other", depends="slow")])  # fmt: skip
    done = await harness.finished(job)
    assert done.state is JobState.FAILED and done.reason == "TaskFailed" and '"bad"' in done.message
    tasks = await harness.tasks(job)
    assert tasks["slow"].state is TaskState.SUCCEEDED
    assert (tasks["after"].state, tasks["after"].reason) == (TaskState.SKIPPED, "UpstreamFailed")
    assert (tasks["other"].state, tasks["other"].reason) == (TaskState.SKIPPED, "JobFailed")


async def test_failure_cancel_running_stops_siblings(harness: Harness) -> None:
    job = await harness.run([task("bad", "false"), task("slow", "sleep", "5")], policy=FailurePolicy.CANCEL_RUNNING)
    started = time.monotonic()
    done = await harness.finished(job)
    assert done.state is JobState.FAILED and time.monotonic() - started < 3
    assert (await harness.tasks(job))["slow"].state is TaskState.CANCELLED


async def test_retries_then_failure_record_each_attempt(harness: Harness) -> None:
    job = await harness.run([task("flaky", "fail-times", "5", retries={"limit": 2, "backoff": "10ms"})])
    done = await harness.finished(job)
    assert done.state is JobState.FAILED
    flaky = (await harness.tasks(job))["flaky"]
    assert (flaky.attempt, flaky.max_attempts, flaky.state) == (3, 3, TaskState.FAILED)
    queued = [e for e in await harness.store.list_events(0, job_id=job) if e.task_state is TaskState.QUEUED]
    assert [e.attempt for e in queued] == [0, 1, 2]


async def test_job_deadline_fails_the_job_and_cancels_running_tasks(harness: Harness) -> None:
    job = await harness.run([task("slow", "sleep", "30"), task("never", depends="slow")], timeout=0.3)
    done = await harness.finished(job)
    assert (done.state, done.reason) == (JobState.FAILED, "DeadlineExceeded")
    tasks = await harness.tasks(job)
    assert tasks["slow"].state is TaskState.CANCELLED and tasks["never"].state is TaskState.SKIPPED


async def test_cancel_and_retry(harness: Harness) -> None:
    job = await harness.run([task("a"), task("b", "sleep", "30", depends="a"), task("c", depends="b")])
    await harness.until(job, "b", lambda t: t.state is TaskState.RUNNING)
    cancelled = await harness.engine.cancel_job(job, "stop")
    assert cancelled.state is JobState.CANCELLED
    assert {t.state for t in (await harness.tasks(job)).values()} == {TaskState.SUCCEEDED, TaskState.CANCELLED}
    await harness.finished(job)
    started = len(harness.executor.started)
    # Retrying re-runs b and c only; b now sleeps 30s again, so cancel once it runs to end the test.
    assert (await harness.engine.retry_job(job)).state is JobState.RUNNING
    await assert_eventually_async(_async(lambda: len(harness.executor.started) > started))
    assert [t for t, _ in harness.executor.started[started:]] == [f"{job}--b"]
    await harness.engine.cancel_job(job, "")


async def test_unresolvable_reference_fails_the_task(harness: Harness) -> None:
    job = await harness.run([task("a", "outputs", '{"x": 1}'), task("b", "echo", args=["{^a.outputs.x}"], depends="a"),
                             task("c", "echo", args=["^a.outputs.missing"])])  # fmt: skip
    done = await harness.finished(job)
    tasks = await harness.tasks(job)
    assert tasks["b"].args == ("1",) and tasks["c"].args == ("null",)
    assert done.state is JobState.SUCCEEDED


async def test_restart_with_the_instant_executor_fails_lost_attempts_by_policy(harness: Harness) -> None:
    job = await harness.run([task("slow", "sleep", "30", retries={"limit": 1, "backoff": "10ms"})])
    await harness.until(job, "slow", lambda t: bool(t.handle))  # recorded: a restart will try to adopt it
    await harness.engine.stop()
    from odin_scheduler.engine import Engine
    from odin_scheduler.executor.instant import InstantExecutor

    fresh = Engine(harness.store, InstantExecutor(), harness.engine.layout)
    await fresh.start()
    try:
        slow = await harness.until(job, "slow", lambda t: t.attempt >= 2)
        events = await harness.store.list_events(0, job_id=job)
        assert any(e.reason == "SchedulerRestarted" for e in events)
        assert slow.state is TaskState.RUNNING
    finally:
        await fresh.stop()


def _async(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def run() -> bool:
        return check()

    return run
