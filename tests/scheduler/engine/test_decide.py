"""The engine's rules (engine/decide.py) as the pure functions they are: a job and its tasks in, a Change out."""

from __future__ import annotations

import random
from collections.abc import Mapping

import pytest
from odin_scheduler.engine.change import Change
from odin_scheduler.engine.decide import NotRetryable, advance, cancel_job, finish_attempt, retry_job
from odin_scheduler.engine.plan import Rendered, RenderError, TaskPlan
from odin_scheduler.executor.base import Outcome
from odin_scheduler.model import FailurePolicy, Job, JobOptions, JobState, Task, TaskState

from odin.pipeline_spec.model import RetryPolicy

US = 1_000_000
NOW = 1_000 * US


def job(state: JobState = JobState.PENDING, **options: object) -> Job:
    return Job(id="j", pipeline="p", revision="", state=state, owner="users/u", create_us=0, spec={},
               options=JobOptions(**options))  # type: ignore[arg-type]


def task(name: str, state: TaskState = TaskState.PENDING, *depends: str, position: int = 0, **fields: object) -> Task:
    return Task(job_id="j", name=name, position=position, task_id=f"j--{name}", depends=tuple(depends), state=state,
                max_attempts=int(fields.pop("max_attempts", 1)), create_us=0, **fields)  # type: ignore[arg-type]


def plans(*names: str, limit: int = 0, backoff: float = 10.0) -> dict[str, TaskPlan]:
    retries = RetryPolicy(limit=limit, backoff_seconds=backoff)
    return {n: TaskPlan(name=n, image="", command=("true",), args=(), env={}, depends=(), resource_type="Process",
                        retries=retries, timeout_seconds=None) for n in names}


def render(name: str, tasks: Mapping[str, Task]) -> Rendered:
    return Rendered(command=("run", name), args=(), env={})


def change(j: Job, *tasks: Task) -> Change:
    return Change(j, {t.name: t for t in tasks})


def states(c: Change) -> dict[str, TaskState]:
    return {name: t.state for name, t in c.tasks.items()}


def test_ready_tasks_are_queued_and_started_in_pipeline_order_and_the_job_starts_with_the_first() -> None:
    c = change(job(), task("a", position=0), task("b", TaskState.PENDING, "a", position=1), task("c", position=2))
    assert advance(c, plans("a", "b", "c"), NOW, free_slots=10, render=render) is None
    assert states(c) == {"a": TaskState.RUNNING, "b": TaskState.PENDING, "c": TaskState.RUNNING}
    assert c.to_start == ["a", "c"] and c.job.state is JobState.RUNNING and c.job.start_us == NOW
    assert c.tasks["a"].attempt == 1 and c.tasks["a"].command == ("run", "a")


def test_parallelism_and_free_slots_limit_what_starts() -> None:
    c = change(job(parallelism=2), *(task(n, TaskState.QUEUED, position=i) for i, n in enumerate("abc")))
    advance(c, plans(*"abc"), NOW, free_slots=10, render=render)
    assert c.to_start == ["a", "b"] and not c.blocked_on_slots

    starved = change(job(), task("a", TaskState.QUEUED))
    advance(starved, plans("a"), NOW, free_slots=0, render=render)
    assert starved.to_start == [] and starved.blocked_on_slots  # the engine wakes it when a slot frees


def test_a_task_waiting_for_its_retry_backoff_is_not_started_and_sets_the_wake_up() -> None:
    later = NOW + 5 * US
    c = change(job(JobState.RUNNING), task("a", TaskState.QUEUED, next_attempt_us=later, attempt=1, max_attempts=3))
    assert advance(c, plans("a"), NOW, free_slots=10, render=render) == later
    assert c.to_start == []
    assert advance(c, plans("a"), later, free_slots=10, render=render) is None and c.to_start == ["a"]


def test_a_job_whose_tasks_all_succeeded_succeeds() -> None:
    c = change(job(JobState.RUNNING), task("a", TaskState.RUNNING, attempt=1))
    assert finish_attempt(c, "a", 1, Outcome(True, 0, outputs={"model": "m.json"}), plans("a")["a"], NOW)
    assert c.tasks["a"].state is TaskState.SUCCEEDED and c.tasks["a"].outputs == {"model": "m.json"}
    advance(c, plans("a"), NOW, free_slots=10, render=render)
    assert c.job.state is JobState.SUCCEEDED and c.job.end_us == NOW


def test_a_failed_attempt_with_retries_left_is_queued_after_a_jittered_backoff() -> None:
    c = change(job(JobState.RUNNING), task("a", TaskState.RUNNING, attempt=1, max_attempts=3))
    outcome = Outcome(False, 1, "NonZeroExit", "exited with status 1")
    assert finish_attempt(c, "a", 1, outcome, plans("a", limit=2, backoff=4.0)["a"], NOW, random.Random(7))
    queued = c.tasks["a"]
    assert queued.state is TaskState.QUEUED and queued.reason == "NonZeroExit"
    assert NOW + 2 * US <= queued.next_attempt_us <= NOW + 4 * US  # equal jitter: half fixed, half random
    assert "retrying in" in queued.message


@pytest.mark.parametrize("outcome", [Outcome(False, 1, "NonZeroExit"), Outcome(False, None, "InvalidOutputs",
                                                                               retryable=False)])
def test_a_failure_without_retries_left_or_not_retryable_fails_the_task(outcome: Outcome) -> None:
    attempts = 1 if outcome.retryable else 5
    c = change(job(JobState.RUNNING), task("a", TaskState.RUNNING, attempt=1, max_attempts=attempts))
    finish_attempt(c, "a", 1, outcome, plans("a", limit=attempts - 1)["a"], NOW)
    assert c.tasks["a"].state is TaskState.FAILED and c.tasks["a"].reason == outcome.reason


def test_an_outcome_of_an_old_attempt_changes_nothing() -> None:
    c = change(job(JobState.RUNNING), task("a", TaskState.RUNNING, attempt=2, max_attempts=3))
    assert not finish_attempt(c, "a", 1, Outcome(True, 0), plans("a")["a"], NOW)
    assert not c.dirty


def test_a_failure_skips_what_waits_and_fails_the_job_once_nothing_runs() -> None:
    c = change(job(JobState.RUNNING), task("bad", TaskState.FAILED, message="boom"),
               task("after", TaskState.PENDING, "bad"), task("other", TaskState.QUEUED),
               task("busy", TaskState.RUNNING, attempt=1))
    advance(c, plans("bad", "after", "other", "busy"), NOW, free_slots=10, render=render)
    assert (c.tasks["after"].state, c.tasks["after"].reason) == (TaskState.SKIPPED, "UpstreamFailed")
    assert (c.tasks["other"].state, c.tasks["other"].reason) == (TaskState.SKIPPED, "JobFailed")
    assert c.tasks["busy"].state is TaskState.RUNNING and c.job.state is JobState.RUNNING  # finish-running policy

    finish_attempt(c, "busy", 1, Outcome(True, 0), plans("busy")["busy"], NOW)
    advance(c, plans("bad", "after", "other", "busy"), NOW, free_slots=10, render=render)
    assert c.job.state is JobState.FAILED and c.job.message == 'task "bad" failed: boom'


def test_the_cancel_running_policy_stops_running_tasks_at_once() -> None:
    c = change(job(JobState.RUNNING, failure_policy=FailurePolicy.CANCEL_RUNNING),
               task("bad", TaskState.FAILED), task("busy", TaskState.RUNNING, attempt=1))
    advance(c, plans("bad", "busy"), NOW, free_slots=10, render=render)
    assert c.tasks["busy"].state is TaskState.CANCELLED and [t.name for t in c.to_stop] == ["busy"]
    assert c.job.state is JobState.FAILED


def test_the_job_deadline_cancels_running_and_skips_the_rest() -> None:
    c = change(job(JobState.RUNNING, timeout_seconds=60.0), task("busy", TaskState.RUNNING, attempt=1),
               task("later", TaskState.PENDING, "busy"))
    c.job = c.job.__class__(**{**c.job.__dict__, "run_us": NOW - 61 * US})
    assert advance(c, plans("busy", "later"), NOW, free_slots=10, render=render) is None
    assert states(c) == {"busy": TaskState.CANCELLED, "later": TaskState.SKIPPED}
    assert (c.job.state, c.job.reason) == (JobState.FAILED, "DeadlineExceeded")


def test_a_reference_that_cannot_be_rendered_fails_the_task_without_starting_it() -> None:
    def broken(name: str, tasks: Mapping[str, Task]) -> Rendered:
        raise RenderError('"up" has no output "model"')

    c = change(job(JobState.RUNNING), task("a", TaskState.QUEUED))
    advance(c, plans("a"), NOW, free_slots=10, render=broken)
    assert (c.tasks["a"].state, c.tasks["a"].reason) == (TaskState.FAILED, "InvalidReference")
    assert c.to_start == []


def test_cancel_ends_everything_unfinished_and_is_a_no_op_on_an_ended_job() -> None:
    c = change(job(JobState.RUNNING), task("done", TaskState.SUCCEEDED), task("busy", TaskState.RUNNING, attempt=1),
               task("next", TaskState.PENDING, "busy"))
    cancel_job(c, "", NOW)
    assert states(c) == {"done": TaskState.SUCCEEDED, "busy": TaskState.CANCELLED, "next": TaskState.CANCELLED}
    assert c.job.state is JobState.CANCELLED and c.job.message == "cancelled by a user"
    ended = change(job(JobState.SUCCEEDED), task("done", TaskState.SUCCEEDED))
    cancel_job(ended, "stop", NOW)
    assert not ended.dirty


def test_retry_reruns_only_what_did_not_succeed_with_its_retries_again() -> None:
    c = change(job(JobState.FAILED), task("ok", TaskState.SUCCEEDED, attempt=1),
               task("bad", TaskState.FAILED, attempt=3, max_attempts=3), task("skipped", TaskState.SKIPPED, "bad"))
    retry_job(c, plans("ok", "bad", "skipped", limit=2), NOW)
    assert states(c) == {"ok": TaskState.SUCCEEDED, "bad": TaskState.PENDING, "skipped": TaskState.PENDING}
    assert c.tasks["bad"].max_attempts == 3 + 1 + 2 and c.job.state is JobState.RUNNING and c.job.run_us == NOW
    for state in (JobState.RUNNING, JobState.SUCCEEDED):
        with pytest.raises(NotRetryable):
            retry_job(change(job(state)), plans(), NOW)
