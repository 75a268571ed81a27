"""Readable names for the job and task state enums: `RUNNING` for `Job.STATE_RUNNING` and back."""

from __future__ import annotations

from odin.scheduler.v1 import scheduler_pb2 as pb

JobState = pb.Job.State
TaskState = pb.Task.State

JOB_TERMINAL = frozenset({pb.Job.STATE_SUCCEEDED, pb.Job.STATE_FAILED, pb.Job.STATE_CANCELLED})
TASK_TERMINAL = frozenset(
    {pb.Task.STATE_SUCCEEDED, pb.Task.STATE_FAILED, pb.Task.STATE_CANCELLED, pb.Task.STATE_SKIPPED}
)


def job_state_name(state: int) -> str:
    """`RUNNING` for `STATE_RUNNING`; `UNKNOWN(9)` for a value this client does not know yet."""
    return _short(pb.Job.State, state)


def task_state_name(state: int) -> str:
    return _short(pb.Task.State, state)


def parse_job_state(text: str) -> pb.Job.State.ValueType:
    """The enum value for `running`, `RUNNING` or `STATE_RUNNING`; ValueError names the choices."""
    key = text.strip().upper()
    key = key if key.startswith("STATE_") else f"STATE_{key}"
    try:
        return pb.Job.State.Value(key)
    except ValueError:
        choices = ", ".join(n.removeprefix("STATE_").lower() for n in pb.Job.State.keys()[1:])
        raise ValueError(f'unknown job state "{text}" (choose from {choices})') from None


def is_job_terminal(state: int) -> bool:
    return state in JOB_TERMINAL


def _short(enum: object, value: int) -> str:
    try:
        name: str = enum.Name(value)  # type: ignore[attr-defined]
    except ValueError:
        return f"UNKNOWN({value})"
    return name.removeprefix("STATE_")
