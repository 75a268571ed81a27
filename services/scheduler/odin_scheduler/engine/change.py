"""`Change`: the new state of one job and its tasks, built up by the rules and persisted once.

Every state change goes through `set_task` / `set_job`, which check the transition table and
append the matching event, so a row can never change state without its event.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping
from typing import Any

from odin_scheduler.model import (
    EventType,
    Job,
    JobState,
    NewEvent,
    Task,
    TaskCounts,
    TaskState,
    check_job_transition,
    check_task_transition,
)


class Change:
    def __init__(self, job: Job, tasks: Mapping[str, Task]) -> None:
        self.job = job
        self.tasks = dict(tasks)
        self.changed: dict[str, Task] = {}
        self.events: list[NewEvent] = []
        self.job_touched = False
        self.blocked_on_slots = False
        # Tasks per state, kept current by set_task so the rules never count by scanning.
        self.counts: Counter[TaskState] = Counter(t.state for t in self.tasks.values())
        # The command, args and env each task dispatched in this change was rendered with.
        self.rendered: dict[str, Any] = {}
        # Side effects to run once the commit succeeded.
        self.to_start: list[str] = []
        self.to_stop: list[Task] = []

    def update_task(self, name: str, **fields: Any) -> Task:
        """Changes fields other than the state (no event)."""
        task = dataclasses.replace(self.tasks[name], **fields)
        self.tasks[name] = self.changed[name] = task
        return task

    def set_task(self, name: str, state: TaskState, reason: str = "", message: str = "", **fields: Any) -> Task:
        old = self.tasks[name].state
        check_task_transition(old, state)
        self.counts[old] -= 1
        self.counts[state] += 1
        task = self.update_task(name, state=state, reason=reason, message=message, **fields)
        event = NewEvent(EventType.TASK_STATE_CHANGED, self.job.state, name, state, task.attempt, reason, message)
        self.events.append(event)
        return task

    def stop_task(self, name: str, state: TaskState, reason: str, message: str, now_us: int) -> None:
        """Ends a running task on the scheduler's decision; its attempt is stopped after the commit."""
        old = self.tasks[name]
        self.set_task(name, state, reason, message, end_us=now_us, next_attempt_us=None)
        if name in self.to_start:  # dispatched in this same change: never start it
            self.to_start.remove(name)
        elif old.state is TaskState.RUNNING:
            self.to_stop.append(old)

    def set_job(self, state: JobState, reason: str = "", message: str = "", **fields: Any) -> None:
        check_job_transition(self.job.state, state)
        self.job = dataclasses.replace(self.job, state=state, reason=reason, message=message, **fields)
        self.job_touched = True
        self.events.append(NewEvent(EventType.JOB_STATE_CHANGED, state, reason=reason, message=message))

    @property
    def dirty(self) -> bool:
        return bool(self.changed) or self.job_touched

    def finish(self) -> Job:
        """The job row to store, with task counts recomputed from the tasks."""
        counts = TaskCounts(**{state.name.lower(): self.counts[state] for state in TaskState})
        if counts != self.job.counts:
            self.job = dataclasses.replace(self.job, counts=counts)
        return self.job
