"""The executor interface every backend implements (local processes, Kubernetes objects, in-memory attempts).

An executor runs one *attempt* of a task. Its `handle` is a small JSON-able mapping the engine
stores with the task, so that after a scheduler restart `adopt` can find the attempt again.
Errors say whether to retry: `TemporaryError` (the engine retries the call after `delay`) or
`PermanentError` (the attempt fails; the task's retry policy decides what happens next).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

Handle = Mapping[str, Any]


class ExecutorError(Exception):
    def __init__(self, message: str, *, reason: str = "ExecutorError") -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


class TemporaryError(ExecutorError):
    """Try the same call again after `delay` seconds (e.g. the API server is briefly down)."""

    def __init__(self, message: str, *, delay: float = 1.0, reason: str = "ExecutorUnavailable") -> None:
        super().__init__(message, reason=reason)
        self.delay = delay


class PermanentError(ExecutorError):
    """This attempt cannot run or be found (bad spec, lost process); it ends as failed."""


@dataclass(frozen=True)
class SharedPaths:
    """The job's task-visible directories as the engine computed them: a pod mounts `run` (read-write) and `work`
    (read-only) from the runs volume, whose root is `root`, at these same absolute paths."""

    root: Path
    run: Path
    work: Path


@dataclass(frozen=True)
class TaskRun:
    """Everything an executor needs to run one attempt; rebuilt from the store after a restart."""

    job_id: str
    task: str
    task_id: str
    attempt: int
    command: tuple[str, ...]
    args: tuple[str, ...]
    image: str
    resource_type: str
    cwd: Path
    # Where the executor keeps the attempt's bookkeeping and its output (`output.log`).
    attempt_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    # The task's entry of the stored job spec (`render_spec_dict` form: resources, GPUs, volumes, ...);
    # `command`, `args` and `env` above are its rendered values and take precedence.
    spec: Mapping[str, Any] = field(default_factory=dict)
    # Who the job belongs to (labels the objects an executor creates).
    owner: str = ""
    shared: SharedPaths | None = None

    @property
    def log_file(self) -> Path:
        return self.attempt_dir / "output.log"


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended. `retryable=False` fails the task regardless of its retry policy."""

    succeeded: bool
    exit_code: int | None = None
    reason: str = ""
    message: str = ""
    outputs: Mapping[str, Any] = field(default_factory=dict)
    retryable: bool = True


@dataclass(frozen=True)
class Progress:
    """Where a started attempt stands before it ends, e.g. pending with reason `Unschedulable`."""

    phase: str  # "pending" or "running"
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class ClusterEvent:
    """An event the executor's platform recorded about an attempt (a Kubernetes Event)."""

    type: str  # Normal, Warning
    reason: str
    message: str
    source: str  # the component that reported it (default-scheduler, kubelet, job-controller)
    time_us: int  # when it last happened; 0 when unknown
    object: str  # what it is about, `pod/<name>`, `job/<name>`
    count: int = 1


ProgressListener = Callable[[TaskRun, Progress], None]
# Says whether an attempt (job id, task name, attempt number) is one the engine follows right now.
LivePredicate = Callable[[str, str, int], bool]


class Executor(Protocol):
    name: str

    async def start(self, run: TaskRun) -> Handle:
        """Starts the attempt and returns its handle.

        Idempotent per (task, attempt): when the attempt already exists (the scheduler died between
        starting it and recording the handle) it is adopted instead of started twice.
        """

    async def adopt(self, run: TaskRun, handle: Handle) -> Handle:
        """Finds a recorded attempt again after a restart; `wait` then follows it.

        Raises PermanentError (reason `SchedulerRestarted`) when it is gone without a result.
        """

    async def wait(self, run: TaskRun, handle: Handle) -> Outcome:
        """Waits until the attempt ends and says how."""

    async def cancel(self, run: TaskRun, handle: Handle) -> None:
        """Stops the attempt and everything it started; returns once it is stopped."""

    async def release(self, run: TaskRun, handle: Handle, outcome: Outcome) -> None:
        """Cleans up after an attempt whose outcome (from `wait`) the store now holds, e.g. deletes its object.

        `wait` itself removes nothing that `adopt` + `wait` need to find the result again: until the outcome is
        stored a restarted scheduler must still be able to read it. Not called after a crash in between; the
        next start's `sweep` removes what is left.
        """

    def resource_id(self, handle: Handle) -> str:
        """The id users see for the running object (a pid, a pod name)."""

    def on_progress(self, listener: ProgressListener) -> None:
        """Registers the engine's callback for progress of waited-on attempts (called on the event loop
        whenever an attempt's phase or reason changes). Executors without such detail never call it."""

    async def events(self, handle: Handle) -> list[ClusterEvent]:
        """The platform's events about the attempt, oldest first (empty where there are none)."""

    async def sweep(self, live: LivePredicate) -> list[str]:
        """Removes what attempts the engine no longer follows left running; returns what it removed."""

    async def remove_job(self, job_id: str) -> None:
        """Removes everything the job's attempts left behind (kept objects); DeleteJob calls it."""

    async def close(self) -> None:
        """Releases connections and threads; running attempts keep running (adopted on the next start)."""


class NoPlatformHooks:
    """The optional parts of `Executor` for executors with no platform behind them (host processes,
    in-memory attempts): no progress detail, no events, nothing left behind to sweep or remove."""

    def on_progress(self, listener: ProgressListener) -> None:
        return None

    async def release(self, run: TaskRun, handle: Handle, outcome: Outcome) -> None:
        return None

    async def events(self, handle: Handle) -> list[ClusterEvent]:
        return []

    async def sweep(self, live: LivePredicate) -> list[str]:
        return []

    async def remove_job(self, job_id: str) -> None:
        return None

    async def close(self) -> None:
        return None
