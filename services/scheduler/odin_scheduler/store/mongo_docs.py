"""Document codecs of the MongoDB store: the SQL backends' row codecs, with Mongo's `_id` and extras.

Nested values (labels, spec, outputs, …) are stored as JSON text, exactly as in SQLite: user-supplied
keys may contain `.` or start with `$`, which MongoDB-wire servers refuse or treat specially in field
names. Labels are *also* stored as `label_pairs`, an array of JSON `[key, value]` strings, so a label
filter is an `$all` match that a multikey index serves.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from odin_scheduler.model import DEFAULT_PROJECT, Event, Job, NewEvent, Task
from odin_scheduler.store import rows

Doc = dict[str, Any]
# Fields of an event document that a deletion strips (the tombstone keeps _id, page, key, commit, ready).
EVENT_PAYLOAD = ("job_id", "type", "time_us", "job_state", "task", "task_state", "attempt", "reason", "message")


def label_pair(key: str, value: str) -> str:
    return json.dumps([key, value], separators=(",", ":"))


def request_key(owner: str, request_id: str) -> str:
    """The unique key of a CreateJob request id: scoped to its owner, so another user's equal id never matches."""
    return "o:" + json.dumps([owner, request_id], separators=(",", ":"))


def job_doc(job: Job) -> Doc:
    params = rows.job_params(job)
    doc: Doc = {"_id": params.pop("id"), **params}
    doc["label_pairs"] = sorted(label_pair(k, v) for k, v in job.labels.items())
    doc["deleting"] = False
    return doc


def job_update(job: Job) -> Doc:
    """The fields a commit may change (the rest is fixed at creation)."""
    params = rows.job_update_params(job)
    del params["id"]
    return params


def job_from_doc(doc: Mapping[str, Any]) -> Job:
    # A job written by a commit record from before projects (replayed after the migration) has none: `default`.
    return rows.job_from_row({"project": DEFAULT_PROJECT, **doc, "id": doc["_id"]})


def task_key(job_id: str, name: str) -> str:
    # Job ids never contain "/" (they are the last segment of the resource name `jobs/<id>`).
    return f"{job_id}/{name}"


def task_doc(task: Task, version: int) -> Doc:
    """`version` is the job version that wrote the row: a late replay of an older commit never overwrites it."""
    return {"_id": task_key(task.job_id, task.name), **rows.task_params(task), "version": version}


def task_from_doc(doc: Mapping[str, Any]) -> Task:
    return rows.task_from_row(doc)


def commit_id(job_id: str, version: int) -> str:
    return f"{job_id}@{version}"


def event_key(commit: str, index: int) -> str:
    return f"{commit}#{index}"


def pending_events(job_id: str, commit: str, events: Sequence[NewEvent], time_us: int) -> list[Doc]:
    """Event documents before the log gives them a seq (`_id`); they enter the log not ready."""
    docs = []
    for i, e in enumerate(events):
        params = rows.event_params(Event(0, job_id, e.type, time_us, e.job_state, e.task, e.task_state, e.attempt,
                                         e.reason, e.message))  # fmt: skip
        del params["seq"]
        docs.append({**params, "key": event_key(commit, i), "commit": commit, "ready": False})
    return docs


def event_from_doc(doc: Mapping[str, Any]) -> Event:
    return rows.event_from_row({**doc, "seq": doc["_id"]})
