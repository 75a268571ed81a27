"""Resource names as users type them: `abc`, `jobs/abc`, `abc/train`, `jobs/abc/tasks/train`, `abc--train`."""

from __future__ import annotations

import re

# A task id is `<job id>--<task name>` and a job id ends in `-<8 lower-case letters and digits>`.
_TASK_ID = re.compile(r"^(?P<job>.+-[a-z0-9]{8})--(?P<task>[^/]+)$")


class InvalidName(ValueError):
    """A name that is not a job or task name; the message says what is accepted."""


def job_name(text: str) -> str:
    """`jobs/{job}` for a bare job id or a job name."""
    value = text.strip().removeprefix("jobs/").strip("/")
    if not value or "/" in value or value == "jobs":
        raise InvalidName(f'"{text}" is not a job: give its id ("hello-ab12cd34") or "jobs/<id>"')
    return f"jobs/{value}"


def job_id(name: str) -> str:
    """The bare id of a job name (`jobs/abc` → `abc`)."""
    return job_name(name)[len("jobs/"):]


def task_name(text: str) -> str:
    """`jobs/{job}/tasks/{task}` for `job/task`, `jobs/job/tasks/task` or a task id `job--task`."""
    value = text.strip().strip("/")
    parts = value.split("/")
    if len(parts) == 4 and parts[0] == "jobs" and parts[2] == "tasks" and all(parts):
        return value
    if len(parts) == 3 and parts[0] == "jobs" and all(parts[1:]):
        return f"jobs/{parts[1]}/tasks/{parts[2]}"
    if len(parts) == 2 and all(parts) and parts[0] != "jobs":
        return f"jobs/{parts[0]}/tasks/{parts[1]}"
    match = _TASK_ID.match(value) if len(parts) == 1 else None
    if match:
        return f"jobs/{match['job']}/tasks/{match['task']}"
    raise InvalidName(f'"{text}" is not a task: give "<job>/<task>", "jobs/<job>/tasks/<task>" or a task id')


def split_task_name(name: str) -> tuple[str, str]:
    """(`jobs/{job}`, `{task}`) of a full task name."""
    full = task_name(name)
    _, job, _, task = full.split("/")
    return f"jobs/{job}", task


def short_task(name: str) -> str:
    """The task's own name (`train`) of `jobs/x/tasks/train`; other text unchanged."""
    return name.rsplit("/tasks/", 1)[-1]
