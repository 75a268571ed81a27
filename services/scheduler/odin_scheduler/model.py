"""The scheduler's records (jobs, tasks, events), their states and the allowed transitions.

The enums mirror the proto values one to one so conversion is `int(state)`; the rows are plain
dataclasses the store reads and writes and the engine copies before changing (never mutated in place
while shared).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from enum import IntEnum
from typing import Any

# Jobs created before projects existed, and jobs created without one, belong here.
DEFAULT_PROJECT = "default"


class JobState(IntEnum):
    PENDING = 1
    RUNNING = 2
    SUCCEEDED = 3
    FAILED = 4
    CANCELLED = 5

    @property
    def terminal(self) -> bool:
        return self in JOB_TERMINAL


class TaskState(IntEnum):
    PENDING = 1
    QUEUED = 2
    RUNNING = 3
    SUCCEEDED = 4
    FAILED = 5
    CANCELLED = 6
    SKIPPED = 7

    @property
    def terminal(self) -> bool:
        return self in TASK_TERMINAL


class EventType(IntEnum):
    JOB_CREATED = 1
    JOB_STATE_CHANGED = 2
    TASK_STATE_CHANGED = 3
    # A running task's reason changed without a state change (its pod is Unschedulable, then scheduled).
    TASK_PROGRESS = 4


class FailurePolicy(IntEnum):
    FINISH_RUNNING = 1
    CANCEL_RUNNING = 2


JOB_TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
TASK_TERMINAL = frozenset({TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED, TaskState.SKIPPED})
# Task states RetryJob sends back to PENDING; succeeded tasks keep their results.
TASK_RETRYABLE = frozenset({TaskState.FAILED, TaskState.CANCELLED, TaskState.SKIPPED})

# Job transitions. A terminal job only leaves its state through RetryJob (→ RUNNING), and only
# when it did not succeed.
JOB_ALLOWED: dict[JobState, frozenset[JobState]] = {
    JobState.PENDING: frozenset({JobState.RUNNING, JobState.FAILED, JobState.CANCELLED, JobState.SUCCEEDED}),
    JobState.RUNNING: frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset({JobState.RUNNING}),
    JobState.CANCELLED: frozenset({JobState.RUNNING}),
}

# Task transitions. RUNNING → QUEUED is a retry (the attempt number grows on the next dispatch);
# RUNNING → RUNNING never happens (a new attempt goes through QUEUED); terminal → PENDING is RetryJob.
TASK_ALLOWED: dict[TaskState, frozenset[TaskState]] = {
    TaskState.PENDING: frozenset({TaskState.QUEUED, TaskState.SKIPPED, TaskState.CANCELLED}),
    # FAILED from QUEUED: its command could not be rendered (a `^task.outputs.key` with no such output), so it
    # never started.
    TaskState.QUEUED: frozenset({TaskState.RUNNING, TaskState.FAILED, TaskState.SKIPPED, TaskState.CANCELLED}),
    TaskState.RUNNING: frozenset(
        {TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED, TaskState.QUEUED, TaskState.SKIPPED}
    ),
    TaskState.SUCCEEDED: frozenset(),
    TaskState.FAILED: frozenset({TaskState.PENDING}),
    TaskState.CANCELLED: frozenset({TaskState.PENDING}),
    TaskState.SKIPPED: frozenset({TaskState.PENDING}),
}


class TransitionError(Exception):
    """A state change the table does not allow; always a bug or a lost race, never user input."""


def check_job_transition(old: JobState, new: JobState) -> None:
    if new not in JOB_ALLOWED[old]:
        raise TransitionError(f"job cannot go from {old.name} to {new.name}")


def check_task_transition(old: TaskState, new: TaskState) -> None:
    if new not in TASK_ALLOWED[old]:
        raise TransitionError(f"task cannot go from {old.name} to {new.name}")


def attempt_is_current(task: Task, attempt: int) -> bool:
    """Guard for executor outcomes: only the running attempt may end the task.

    Prevents the race where a cancel (or a restart that already failed the attempt) recorded a
    terminal state and the late exit of the killed process would overwrite it.
    """
    return task.state is TaskState.RUNNING and task.attempt == attempt


@dataclasses.dataclass(frozen=True)
class JobOptions:
    """Options after defaults: parallelism 0 means no per-job limit; timeout None means none."""

    parallelism: int = 0
    failure_policy: FailurePolicy = FailurePolicy.FINISH_RUNNING
    timeout_seconds: float | None = None


@dataclasses.dataclass(frozen=True)
class TaskCounts:
    pending: int = 0
    queued: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    skipped: int = 0

    @classmethod
    def of(cls, states: list[TaskState]) -> TaskCounts:
        counts = dict.fromkeys((f.name for f in dataclasses.fields(cls)), 0)
        for state in states:
            counts[state.name.lower()] += 1
        return cls(**counts)


@dataclasses.dataclass(frozen=True)
class Job:
    id: str
    pipeline: str
    revision: str
    state: JobState
    owner: str
    create_us: int
    spec: Mapping[str, Any]
    options: JobOptions = JobOptions()
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    reason: str = ""
    message: str = ""
    request_id: str = ""
    start_us: int | None = None
    end_us: int | None = None
    last_event_seq: int = 0
    version: int = 1
    counts: TaskCounts = TaskCounts()
    # When the current run began: the creation, or the last RetryJob. The job deadline counts from it.
    run_us: int = 0
    # The project (a bare id) the job belongs to: who may see and change it.
    project: str = DEFAULT_PROJECT

    @property
    def parameters(self) -> Mapping[str, Any]:
        """The parameters the job was created with (stored with the spec)."""
        found = self.spec.get("parameters")
        return found if isinstance(found, Mapping) else {}

    @property
    def deadline_us(self) -> int | None:
        if self.options.timeout_seconds is None:
            return None
        return (self.run_us or self.create_us) + int(self.options.timeout_seconds * 1_000_000)


@dataclasses.dataclass(frozen=True)
class Task:
    job_id: str
    name: str
    position: int
    task_id: str
    depends: tuple[str, ...]
    state: TaskState
    max_attempts: int
    create_us: int
    image: str = ""
    resource_type: str = "Process"
    reason: str = ""
    message: str = ""
    attempt: int = 0
    exit_code: int | None = None
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    resource_id: str = ""
    outputs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    # The executor's durable handle of the running attempt (JSON-able), used to re-adopt it.
    handle: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    start_us: int | None = None
    end_us: int | None = None
    next_attempt_us: int | None = None


@dataclasses.dataclass(frozen=True)
class NewEvent:
    """An event before the store gave it a `seq` and a time."""

    type: EventType
    job_state: JobState
    task: str = ""
    task_state: TaskState | None = None
    attempt: int = 0
    reason: str = ""
    message: str = ""


@dataclasses.dataclass(frozen=True)
class Event:
    seq: int
    job_id: str
    type: EventType
    time_us: int
    job_state: JobState
    task: str = ""
    task_state: TaskState | None = None
    attempt: int = 0
    reason: str = ""
    message: str = ""

    @property
    def ends_job(self) -> bool:
        return self.type is EventType.JOB_STATE_CHANGED and self.job_state.terminal


@dataclasses.dataclass(frozen=True)
class JobFilter:
    """ListJobs / WatchJobs filters; empty fields match everything."""

    pipeline: str = ""
    states: frozenset[JobState] = frozenset()
    owner: str = ""
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    project: str = ""
    # The projects the caller may see (None: all): applied by the store query, so counts and pages never
    # include a job the caller may not see.
    visible: frozenset[str] | None = None

    @property
    def narrows(self) -> bool:
        """Whether anything is filtered out (else every event matches)."""
        return bool(self.pipeline or self.states or self.owner or self.labels or self.project) \
            or self.visible is not None

    def matches(self, job: Job) -> bool:
        return (
            (not self.project or job.project == self.project)
            and (self.visible is None or job.project in self.visible)
            and (not self.pipeline or job.pipeline == self.pipeline)
            and (not self.states or job.state in self.states)
            and (not self.owner or job.owner == self.owner)
            and all(job.labels.get(k) == v for k, v in self.labels.items())
        )


def now_us() -> int:
    """Wall-clock time in microseconds since the epoch: the unit every stored time uses."""
    return time.time_ns() // 1000
