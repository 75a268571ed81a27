"""The live view of `odin watch` / `odin run --watch`: a job's tasks, kept current from its events.

`JobView` is the model: it starts from ListTasks and applies each JobEvent (state, attempt, times,
reason). `TableScreen` redraws it in place on a terminal; `LinePrinter` prints one line per event when
the output is a file or a pipe.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

from odin.cli.output import duration_text, state_text, table, to_datetime
from odin.client.names import short_task
from odin.client.states import TASK_TERMINAL, job_state_name, task_state_name
from odin.scheduler.v1 import scheduler_pb2 as pb


@dataclass
class TaskRow:
    """What the view shows for one task."""

    name: str
    state: int
    attempt: int
    max_attempts: int
    started: datetime | None
    ended: datetime | None
    reason: str

    @classmethod
    def of(cls, task: pb.Task) -> TaskRow:
        return cls(short_task(task.name), task.state, task.attempt, task.max_attempts,
                   to_datetime(task.start_time), to_datetime(task.end_time), task.reason)

    def duration(self, now: datetime) -> str:
        if self.started is None:
            return "-"
        return duration_text(((self.ended or now) - self.started).total_seconds())

    def attempts(self) -> str:
        return f"{self.attempt}/{self.max_attempts}" if self.max_attempts > 1 else str(self.attempt or "-")


class JobView:
    """A job and its tasks as far as the events seen so far tell."""

    def __init__(self, job: pb.Job, tasks: list[pb.Task]) -> None:
        self.job = job
        self.rows = {task.name: TaskRow.of(task) for task in tasks}

    def apply(self, event: pb.JobEvent) -> None:
        self.job.state = event.job_state
        if event.type == pb.JobEvent.TYPE_JOB_STATE_CHANGED:
            self.job.reason, self.job.message = event.reason, event.message
        if not event.task:
            return
        row = self.rows.get(event.task)
        if row is None:
            row = self.rows[event.task] = TaskRow(short_task(event.task), 0, 0, 1, None, None, "")
        self._apply_task(row, event)

    @staticmethod
    def _apply_task(row: TaskRow, event: pb.JobEvent) -> None:
        moment = to_datetime(event.time)
        row.state, row.reason = event.task_state, event.reason
        if event.type == pb.JobEvent.TYPE_TASK_PROGRESS:
            return  # a running task's new reason (e.g. Unschedulable): it did not start again
        row.attempt = max(row.attempt, event.attempt)
        row.max_attempts = max(row.max_attempts, row.attempt)
        if event.task_state == pb.Task.STATE_RUNNING:
            row.started, row.ended = moment, None
        elif event.task_state in TASK_TERMINAL:
            row.ended = moment
        elif event.task_state in (pb.Task.STATE_QUEUED, pb.Task.STATE_PENDING):
            row.ended = None

    def lines(self, colour: bool, now: datetime | None = None, max_rows: int | None = None) -> list[str]:
        """The header line and the task table."""
        moment = now or datetime.now(UTC)
        rows = list(self.rows.values())
        hidden = 0
        if max_rows is not None and len(rows) > max_rows:
            rows, hidden = _most_interesting(rows, max_rows), len(rows) - max_rows
        body = [[row.name, state_text(task_state_name(row.state), colour), row.attempts(), row.duration(moment),
                 row.reason] for row in rows]
        lines = [self.header(colour, moment), *table(body, ["TASK", "STATE", "ATTEMPT", "DURATION", "REASON"])]
        if hidden:
            lines.append(f"… {hidden} more tasks")
        return lines

    def header(self, colour: bool, now: datetime) -> str:
        state = state_text(job_state_name(self.job.state), colour)
        started = to_datetime(self.job.start_time) or to_datetime(self.job.create_time)
        ended = to_datetime(self.job.end_time)
        took = duration_text(((ended or now) - started).total_seconds()) if started else "-"
        reason = f" ({self.job.reason})" if self.job.reason else ""
        return f"{self.job.name.removeprefix('jobs/')}  {state}{reason}  {took}"


def _most_interesting(rows: list[TaskRow], limit: int) -> list[TaskRow]:
    """Running and failed tasks first, then the rest in pipeline order, `limit` in all (kept in order)."""
    rank: dict[int, int] = {pb.Task.STATE_RUNNING: 0, pb.Task.STATE_FAILED: 1, pb.Task.STATE_QUEUED: 2}
    chosen = sorted(range(len(rows)), key=lambda i: (rank.get(rows[i].state, 3), i))[:limit]
    return [rows[i] for i in sorted(chosen)]


class TableScreen:
    """Redraws the view in place (cursor up, clear to end of screen)."""

    def __init__(self, stream: TextIO | None = None, colour: bool = True) -> None:
        self.stream = stream or sys.stdout
        self.colour = colour
        self.drawn = 0

    def draw(self, view: JobView) -> None:
        height = shutil.get_terminal_size((100, 40)).lines
        lines = view.lines(self.colour, max_rows=max(height - 4, 3))
        prefix = f"\x1b[{self.drawn}F\x1b[J" if self.drawn else ""
        self.stream.write(prefix + "\n".join(lines) + "\n")
        self.stream.flush()
        self.drawn = len(lines)


class LinePrinter:
    """One line per event, for logs and pipes."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def event(self, event: pb.JobEvent) -> None:
        moment = to_datetime(event.time)
        clock = moment.astimezone().strftime("%H:%M:%S.%f")[:-3] if moment else "-"
        self.stream.write(f"{clock}  {event_text(event)}\n")
        self.stream.flush()


def event_text(event: pb.JobEvent, gap: str = " ") -> str:
    """`task train RUNNING attempt 1 (Reason: message)`: what changed and why; `gap` goes before the reason."""
    if event.task:
        attempt = f" attempt {event.attempt}" if event.attempt else ""
        what = f"task {short_task(event.task)} {task_state_name(event.task_state)}{attempt}"
    else:
        what = f"job {job_state_name(event.job_state)}"
    why = f"{gap}({event.reason}{': ' + event.message if event.message else ''})" if event.reason else ""
    return what + why
