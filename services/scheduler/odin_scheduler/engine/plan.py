"""What each task of a job is to run, read from the job's stored spec, and its rendering at dispatch.

The stored spec (`render_spec_dict` of the validated pipeline) is the only source: after a restart
the engine rebuilds every plan from it. `${VAR}` variables and `^task.key` references are resolved
when a task is dispatched, references against the stored records of the tasks they name.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from odin.pipeline_spec import RetryPolicy, resolve_references, substitute, task_variables
from odin_scheduler.model import Task
from odin_scheduler.paths import Layout


class RenderError(Exception):
    """A variable or reference that cannot be resolved at dispatch time."""


@dataclass(frozen=True)
class TaskPlan:
    name: str
    image: str
    command: tuple[str, ...]
    args: tuple[str, ...]
    env: Mapping[str, str]
    depends: tuple[str, ...]
    resource_type: str
    retries: RetryPolicy
    timeout_seconds: float | None

    @classmethod
    def from_spec(cls, task: Mapping[str, Any]) -> TaskPlan:
        retries = task.get("retries") or {}
        return cls(
            name=task["name"],
            image=task.get("image", ""),
            command=tuple(task.get("command") or ()),
            args=tuple(task.get("args") or ()),
            env=dict(task.get("env") or {}),
            depends=tuple(task.get("depends") or ()),
            resource_type=task.get("resource_type", "Pod"),
            retries=RetryPolicy(**retries) if retries else RetryPolicy(),
            timeout_seconds=task.get("timeout_seconds"),
        )


def plans(spec: Mapping[str, Any]) -> dict[str, TaskPlan]:
    return {t["name"]: TaskPlan.from_spec(t) for t in spec["tasks"]}


@dataclass(frozen=True)
class Rendered:
    command: tuple[str, ...]
    args: tuple[str, ...]
    env: Mapping[str, str]


def render(plan: TaskPlan, job_id: str, layout: Layout, task_ids: str, tasks: Mapping[str, Task]) -> Rendered:
    """Substitutes variables, then resolves `^` references against the stored task records.

    `task_ids` is `${TASK_IDS}` (see `task_ids_variable`), computed once per job.
    """
    variables = job_variables(plan.name, job_id, layout, task_ids)

    def lookup(name: str, keys: Sequence[str]) -> Any:
        if name not in tasks:
            raise RenderError(f'reference to unknown task "{name}"')
        value: Any = task_record(tasks[name])
        for key in keys:
            value = value.get(key) if isinstance(value, Mapping) else None
        return value

    try:
        command = [_text(resolve_references(substitute(c, variables), lookup)) for c in plan.command]
        args = [_text(resolve_references(substitute(a, variables), lookup)) for a in plan.args]
        env = {k: _text(resolve_references(substitute(v, variables), lookup)) for k, v in plan.env.items()}
    except (ValueError, KeyError) as exc:  # VariableError is a ValueError
        raise RenderError(str(exc)) from None
    return Rendered(tuple(command), tuple(args), env)


def job_variables(task: str, job_id: str, layout: Layout, task_ids: str = "[]") -> dict[str, str]:
    """`${VAR}` values of one task of a job under `layout` (`task_ids`: see `task_ids_variable`)."""
    variables = task_variables(
        task, task_names=(), job_id=job_id, root_path=str(layout.root_path),
        work_path=str(layout.work_path(job_id)), data_path=str(layout.root), run_path=str(layout.run_path(job_id)),
    )  # fmt: skip
    variables["TASK_IDS"] = task_ids
    return variables


def mount_path_problem(path: str, job_id: str, layout: Layout) -> str:
    """Why a task's (variable-expanded) mount path is refused; empty when it is fine.

    A mount must be absolute and may not reach into Odin's runs root except strictly inside the job's own
    `${RUN_PATH}`: over WORK_PATH, ROOT_PATH or another job's directory it would hide or expose what is not its own.
    """
    pure = PurePosixPath(path)
    if not pure.is_absolute():
        return "must be an absolute path"
    if ".." in pure.parts:
        return 'must not contain ".."'
    normal = PurePosixPath(posixpath.normpath(path))
    root, run = PurePosixPath(layout.root), PurePosixPath(layout.run_path(job_id))
    if normal == root or root.is_relative_to(normal):
        return f"would cover Odin's runs root {root}"
    if normal.is_relative_to(root) and not (normal.is_relative_to(run) and normal != run):
        return f"is under Odin's runs root {root} but outside this job's ${{RUN_PATH}}"
    return ""


def expand_mount_paths(task: Mapping[str, Any], variables: Mapping[str, str]) -> Mapping[str, Any]:
    """The stored task with `${VAR}`s in its `mounts[].path` expanded (CreateJob already checked they expand)."""
    mounts = task.get("mounts")
    if not mounts:
        return task
    expanded = [{**m, "path": substitute(str(m.get("path", "")), variables)} for m in mounts]
    return {**task, "mounts": expanded}


def task_ids_variable(job_id: str, task_names: Sequence[str]) -> str:
    """`${TASK_IDS}`: every task id of the job, as the original substituted it (a Python list repr)."""
    return task_variables("", task_names=task_names, job_id=job_id, root_path="", work_path="")["TASK_IDS"]


def task_record(task: Task) -> dict[str, Any]:
    """What `^task.key` can read: the task's stored fields, as in the original's job store record."""
    return {
        "name": task.name,
        "task_id": task.task_id,
        "state": task.state.name,
        "attempt": task.attempt,
        "exit_code": task.exit_code,
        "image": task.image,
        "command": list(task.command),
        "args": list(task.args),
        "resource_type": task.resource_type,
        "resource_id": task.resource_id,
        "outputs": dict(task.outputs),
    }


def cwd(layout: Layout, job_id: str, task: Task) -> Path:
    return layout.task_dir(job_id, task.task_id)


def _text(value: Any) -> str:
    # A whole-value reference may yield a list or mapping; a process argument must be text.
    return value if isinstance(value, str) else json.dumps(value)
