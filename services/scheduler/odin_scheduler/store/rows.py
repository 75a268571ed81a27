"""Row codecs shared by the SQL backends: one column list per table, JSON for nested values."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from odin_scheduler.model import (
    Event,
    EventType,
    FailurePolicy,
    Job,
    JobOptions,
    JobState,
    Task,
    TaskCounts,
    TaskState,
)

JOB_COLUMNS = (
    "id", "pipeline", "revision", "state", "owner", "create_us", "start_us", "end_us", "reason", "message",
    "request_id", "labels", "options", "spec", "counts", "last_event_seq", "version", "run_us", "project",
)  # fmt: skip
# What a commit may change; the rest is fixed at creation (and the spec is large: never rewritten).
JOB_MUTABLE_COLUMNS = (
    "state", "start_us", "end_us", "reason", "message", "counts", "last_event_seq", "version", "run_us",
)  # fmt: skip
TASK_COLUMNS = (
    "job_id", "name", "position", "task_id", "depends", "state", "max_attempts", "create_us", "image",
    "resource_type", "reason", "message", "attempt", "exit_code", "command", "args", "resource_id", "outputs",
    "handle", "start_us", "end_us", "next_attempt_us",
)  # fmt: skip
EVENT_COLUMNS = ("seq", "job_id", "type", "time_us", "job_state", "task", "task_state", "attempt", "reason", "message")


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def job_update_params(job: Job) -> dict[str, Any]:
    return {
        "id": job.id, "state": int(job.state), "start_us": job.start_us, "end_us": job.end_us,
        "reason": job.reason, "message": job.message, "counts": dumps(dataclasses.asdict(job.counts)),
        "last_event_seq": job.last_event_seq, "version": job.version, "run_us": job.run_us,
    }  # fmt: skip


def job_params(job: Job) -> dict[str, Any]:
    return {
        "id": job.id, "pipeline": job.pipeline, "revision": job.revision, "state": int(job.state),
        "owner": job.owner, "create_us": job.create_us, "start_us": job.start_us, "end_us": job.end_us,
        "reason": job.reason, "message": job.message, "request_id": job.request_id or None,
        "labels": dumps(dict(job.labels)), "options": dumps(_options(job.options)), "spec": dumps(job.spec),
        "counts": dumps(dataclasses.asdict(job.counts)), "last_event_seq": job.last_event_seq,
        "version": job.version, "run_us": job.run_us, "project": job.project,
    }  # fmt: skip


def job_from_row(row: Mapping[str, Any]) -> Job:
    options = _json(row["options"])
    return Job(
        id=row["id"], pipeline=row["pipeline"], revision=row["revision"], state=JobState(row["state"]),
        owner=row["owner"], create_us=row["create_us"], start_us=row["start_us"], end_us=row["end_us"],
        reason=row["reason"], message=row["message"], request_id=row["request_id"] or "",
        labels=_json(row["labels"]), spec=_json(row["spec"]), counts=TaskCounts(**_json(row["counts"])),
        options=JobOptions(options["parallelism"], FailurePolicy(options["failure_policy"]), options["timeout"]),
        last_event_seq=row["last_event_seq"], version=row["version"], run_us=row["run_us"], project=row["project"],
    )  # fmt: skip


def task_params(task: Task) -> dict[str, Any]:
    return {
        "job_id": task.job_id, "name": task.name, "position": task.position, "task_id": task.task_id,
        "depends": dumps(list(task.depends)), "state": int(task.state), "max_attempts": task.max_attempts,
        "create_us": task.create_us, "image": task.image, "resource_type": task.resource_type,
        "reason": task.reason, "message": task.message, "attempt": task.attempt, "exit_code": task.exit_code,
        "command": dumps(list(task.command)), "args": dumps(list(task.args)), "resource_id": task.resource_id,
        "outputs": dumps(dict(task.outputs)), "handle": dumps(dict(task.handle)), "start_us": task.start_us,
        "end_us": task.end_us, "next_attempt_us": task.next_attempt_us,
    }  # fmt: skip


def task_from_row(row: Mapping[str, Any]) -> Task:
    return Task(
        job_id=row["job_id"], name=row["name"], position=row["position"], task_id=row["task_id"],
        depends=tuple(_json(row["depends"])), state=TaskState(row["state"]), max_attempts=row["max_attempts"],
        create_us=row["create_us"], image=row["image"], resource_type=row["resource_type"], reason=row["reason"],
        message=row["message"], attempt=row["attempt"], exit_code=row["exit_code"],
        command=tuple(_json(row["command"])), args=tuple(_json(row["args"])), resource_id=row["resource_id"],
        outputs=_json(row["outputs"]), handle=_json(row["handle"]), start_us=row["start_us"], end_us=row["end_us"],
        next_attempt_us=row["next_attempt_us"],
    )  # fmt: skip


def event_from_row(row: Mapping[str, Any]) -> Event:
    task_state = row["task_state"]
    return Event(
        seq=row["seq"], job_id=row["job_id"], type=EventType(row["type"]), time_us=row["time_us"],
        job_state=JobState(row["job_state"]), task=row["task"],
        task_state=TaskState(task_state) if task_state else None, attempt=row["attempt"], reason=row["reason"],
        message=row["message"],
    )  # fmt: skip


def event_params(event: Event) -> dict[str, Any]:
    return {
        "seq": event.seq, "job_id": event.job_id, "type": int(event.type), "time_us": event.time_us,
        "job_state": int(event.job_state), "task": event.task,
        "task_state": int(event.task_state) if event.task_state else 0, "attempt": event.attempt,
        "reason": event.reason, "message": event.message,
    }  # fmt: skip


def insert_sql(table: str, columns: Sequence[str], mark: Callable[[str], str]) -> str:
    """INSERT of `columns`; `mark(column)` is the driver's named placeholder (`:c`, `%(c)s`, …)."""
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(mark(c) for c in columns)})"


def update_sql(table: str, columns: Sequence[str], keys: Sequence[str], mark: Callable[[str], str]) -> str:
    """UPDATE of the non-key `columns` WHERE every key matches, with `mark` as in insert_sql."""
    sets = ", ".join(f"{c} = {mark(c)}" for c in columns if c not in keys)
    return f"UPDATE {table} SET {sets} WHERE {' AND '.join(f'{k} = {mark(k)}' for k in keys)}"


def project_clauses(project: str, visible: frozenset[str] | None, mark: str) -> tuple[list[str], list[Any]]:
    """The SQL conditions of JobFilter.project / .visible with `mark` as the placeholder."""
    clauses: list[str] = []
    params: list[Any] = []
    if project:
        clauses.append(f"project = {mark}")
        params.append(project)
    if visible is not None:
        if not visible:
            clauses.append("1 = 0")  # a member of nothing sees nothing
        else:
            clauses.append(f"project IN ({', '.join([mark] * len(visible))})")
            params += sorted(visible)
    return clauses, params


def where_sql(clauses: list[str]) -> str:
    return f"WHERE {' AND '.join(clauses)}" if clauses else ""


def events_query(
    after_seq: int, job_id: str | None, up_to: int | None, limit: int, mark: str
) -> tuple[str, list[Any]]:
    """The SQL (with `mark` as the driver's placeholder) and parameters for Store.list_events."""
    clauses, params = [f"seq > {mark}"], [after_seq]
    if job_id is not None:
        clauses.append(f"job_id = {mark}")
        params.append(job_id)  # type: ignore[arg-type]
    if up_to is not None:
        clauses.append(f"seq <= {mark}")
        params.append(up_to)
    return f"SELECT * FROM events {where_sql(clauses)} ORDER BY seq LIMIT {mark}", [*params, limit]


def _options(options: JobOptions) -> dict[str, Any]:
    return {
        "parallelism": options.parallelism,
        "failure_policy": int(options.failure_policy),
        "timeout": options.timeout_seconds,
    }


def _json(value: Any) -> Any:
    # PostgreSQL returns jsonb already decoded; SQLite returns text.
    return json.loads(value) if isinstance(value, str | bytes) else value
