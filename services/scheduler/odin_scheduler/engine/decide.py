"""The engine's rules: given a job and its tasks as stored, what changes now.

Pure functions over a `Change` (no I/O, no clock, no randomness of their own), so they are tested
directly and the engine applies them the same way after a restart as before it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

from odin.backoff import equal_jitter
from odin_scheduler.engine.change import Change
from odin_scheduler.engine.plan import Rendered, RenderError, TaskPlan
from odin_scheduler.executor.base import Outcome
from odin_scheduler.model import (
    TASK_RETRYABLE,
    FailurePolicy,
    JobState,
    Task,
    TaskState,
    attempt_is_current,
)

Renderer = Callable[[str, Mapping[str, Task]], Rendered]
US = 1_000_000


class NotRetryable(Exception):
    """RetryJob on a job that is running or succeeded."""


def advance(c: Change, plans: Mapping[str, TaskPlan], now_us: int, free_slots: int, render: Renderer) -> int | None:
    """Moves a live job forward; returns when to look again (a retry backoff or the job deadline)."""
    if c.job.state.terminal:
        return None
    deadline = c.job.deadline_us
    if deadline is not None and now_us >= deadline:
        _deadline_exceeded(c, now_us)
        return None
    wake = None
    if not c.counts[TaskState.FAILED]:
        if c.counts[TaskState.PENDING]:
            _promote(c)
        if c.counts[TaskState.QUEUED]:
            wake = _dispatch(c, now_us, free_slots, render)
    if c.counts[TaskState.FAILED]:
        _wind_down(c, now_us)
    elif c.counts[TaskState.SUCCEEDED] == len(c.tasks):
        c.set_job(JobState.SUCCEEDED, "Succeeded", "every task succeeded", end_us=now_us)
        return None
    return min((w for w in (wake, deadline) if w is not None), default=None)


def finish_attempt(c: Change, name: str, attempt: int, outcome: Outcome, plan: TaskPlan, now_us: int,
                   rng: random.Random | None = None) -> bool:  # fmt: skip
    """Records how an attempt ended: success, a retry after backoff, or failure. False when stale."""
    task = c.tasks[name]
    if not attempt_is_current(task, attempt):
        return False
    if outcome.succeeded:
        c.set_task(name, TaskState.SUCCEEDED, "Succeeded", "", exit_code=outcome.exit_code, end_us=now_us,
                   outputs=dict(outcome.outputs))  # fmt: skip
    elif outcome.retryable and task.attempt < task.max_attempts:
        # Equal jitter on the policy's ceiling, so many failing tasks do not all retry at once.
        delay = equal_jitter(plan.retries.delay(task.attempt), rng)
        message = f"attempt {task.attempt} failed ({outcome.message or outcome.reason}); retrying in {delay:.1f}s"
        c.set_task(name, TaskState.QUEUED, outcome.reason, message, exit_code=outcome.exit_code,
                   next_attempt_us=now_us + int(delay * US))  # fmt: skip
    else:
        c.set_task(name, TaskState.FAILED, outcome.reason, outcome.message, exit_code=outcome.exit_code,
                   end_us=now_us)  # fmt: skip
    return True


def cancel_job(c: Change, message: str, now_us: int) -> None:
    """Records the cancel at once: unfinished tasks become CANCELLED, running ones are stopped after."""
    if c.job.state.terminal:
        return
    message = message or "cancelled by a user"
    for task in list(c.tasks.values()):
        if not task.state.terminal:
            c.stop_task(task.name, TaskState.CANCELLED, "Cancelled", message, now_us)
    c.set_job(JobState.CANCELLED, "Cancelled", message, end_us=now_us)


def retry_job(c: Change, plans: Mapping[str, TaskPlan], now_us: int) -> None:
    """Sends failed, cancelled and skipped tasks back to PENDING; each gets its full retries again."""
    if c.job.state not in (JobState.FAILED, JobState.CANCELLED):
        raise NotRetryable(c.job.state.name)
    c.set_job(JobState.RUNNING, "Retried", "retried by a user", end_us=None, run_us=now_us)
    for task in list(c.tasks.values()):
        if task.state in TASK_RETRYABLE:
            attempts = task.attempt + 1 + plans[task.name].retries.limit
            c.set_task(task.name, TaskState.PENDING, "Retried", "", max_attempts=attempts, end_us=None,
                       next_attempt_us=None)  # fmt: skip


def _promote(c: Change) -> None:
    tasks = c.tasks
    ready = []
    for task in tasks.values():
        if task.state is not TaskState.PENDING:
            continue
        for dep in task.depends:
            if tasks[dep].state is not TaskState.SUCCEEDED:
                break
        else:
            ready.append(task.name)
    for name in ready:
        c.set_task(name, TaskState.QUEUED)


def _dispatch(c: Change, now_us: int, free_slots: int, render: Renderer) -> int | None:
    """Starts queued tasks in pipeline order within the per-job and global limits."""
    running = c.counts[TaskState.RUNNING]
    limit = c.job.options.parallelism or len(c.tasks)
    wake: int | None = None
    for task in list(c.tasks.values()):
        if task.state is not TaskState.QUEUED:
            continue
        if task.next_attempt_us is not None and task.next_attempt_us > now_us:
            wake = task.next_attempt_us if wake is None else min(wake, task.next_attempt_us)
            continue
        if running >= limit or free_slots <= 0:
            c.blocked_on_slots = free_slots <= 0
            break
        if _start(c, task, now_us, render):
            running += 1
            free_slots -= 1
    return wake


def _start(c: Change, task: Task, now_us: int, render: Renderer) -> bool:
    try:
        rendered = render(task.name, c.tasks)
    except RenderError as exc:
        c.set_task(task.name, TaskState.FAILED, "InvalidReference", str(exc), end_us=now_us)
        return False
    c.rendered[task.name] = rendered
    if c.job.state is JobState.PENDING:
        c.set_job(JobState.RUNNING, "Running", "", start_us=now_us)
    c.set_task(task.name, TaskState.RUNNING, "", "", attempt=task.attempt + 1, start_us=now_us, end_us=None,
               next_attempt_us=None, exit_code=None, handle={}, resource_id="", command=rendered.command,
               args=rendered.args)  # fmt: skip
    c.to_start.append(task.name)
    return True


def _wind_down(c: Change, now_us: int) -> None:
    """A task failed: start nothing new, stop or let finish the running ones, then fail the job."""
    failed = [t for t in c.tasks.values() if t.state is TaskState.FAILED]
    downstream = _downstream_of(c, {t.name for t in failed})
    first = failed[0]
    why = f'task "{first.name}" failed'
    for task in list(c.tasks.values()):
        if task.state in (TaskState.PENDING, TaskState.QUEUED):
            reason = "UpstreamFailed" if task.name in downstream else "JobFailed"
            c.stop_task(task.name, TaskState.SKIPPED, reason, why, now_us)
        elif task.state is TaskState.RUNNING and c.job.options.failure_policy is FailurePolicy.CANCEL_RUNNING:
            c.stop_task(task.name, TaskState.CANCELLED, "JobFailed", why, now_us)
    if not c.counts[TaskState.RUNNING]:
        detail = f": {first.message}" if first.message else ""
        c.set_job(JobState.FAILED, "TaskFailed", why + detail, end_us=now_us)


def _deadline_exceeded(c: Change, now_us: int) -> None:
    timeout = c.job.options.timeout_seconds
    why = f"the job exceeded its timeout of {timeout:g}s"
    for task in list(c.tasks.values()):
        if task.state is TaskState.RUNNING:
            c.stop_task(task.name, TaskState.CANCELLED, "DeadlineExceeded", why, now_us)
        elif not task.state.terminal:
            c.stop_task(task.name, TaskState.SKIPPED, "DeadlineExceeded", why, now_us)
    c.set_job(JobState.FAILED, "DeadlineExceeded", why, end_us=now_us)


def _downstream_of(c: Change, roots: set[str]) -> set[str]:
    found: set[str] = set()
    changed = True
    while changed:
        changed = False
        for task in c.tasks.values():
            if task.name not in found and any(d in roots or d in found for d in task.depends):
                found.add(task.name)
                changed = True
    return found
