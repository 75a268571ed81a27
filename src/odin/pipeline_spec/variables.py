"""``${VAR}`` processing variables (string.Template semantics, as the original used)."""

from __future__ import annotations

import posixpath
import string
from collections.abc import Mapping, Sequence

KNOWN_VARIABLES: frozenset[str] = frozenset(
    {
        "ROOT_PATH",
        "WORK_PATH",
        "DATA_PATH",
        "RUN_PATH",
        "PIPE_ID",
        "JOB_ID",
        "TASK_IDS",
        "TASK_ID",
        "TASK_NAME",
        "TASK_PATH",
    }
)

TASK_ID_DELIMITER = "--"
_PATTERN = string.Template.pattern


class VariableError(ValueError):
    """An unknown ``${NAME}`` or a malformed ``$`` in a template string."""


def template_problems(text: str, known: frozenset[str] = KNOWN_VARIABLES) -> list[str]:
    """Describe every unknown variable and bad ``$`` in ``text`` (empty when fine)."""
    problems: list[str] = []
    for match in _PATTERN.finditer(text):
        name = match.group("named") or match.group("braced")
        if name is not None and name not in known:
            problems.append(f'unknown variable "{name}"')
        elif match.group("invalid") is not None:
            problems.append(f'invalid "$" at position {match.start()} (write "$$" for a literal "$", or "${{NAME}}")')
    return problems


def substitute(text: str, variables: Mapping[str, str]) -> str:
    """``string.Template.substitute`` with a clear error for unknown names and bad ``$``."""
    try:
        return string.Template(text).substitute(variables)
    except KeyError as exc:
        raise VariableError(f'unknown variable "{exc.args[0]}" in {text!r}') from None
    except ValueError as exc:
        raise VariableError(f"{exc} in {text!r}") from None


def task_id(job_id: str, task_name: str) -> str:
    """Runtime id of a task: ``<job>--<task>``."""
    return f"{job_id}{TASK_ID_DELIMITER}{task_name}"


def task_variables(
    task_name: str,
    *,
    task_names: Sequence[str],
    job_id: str,
    root_path: str,
    work_path: str,
    data_path: str | None = None,
    run_path: str | None = None,
) -> dict[str, str]:
    """Variables for one task; DATA_PATH defaults to ROOT_PATH, RUN_PATH to DATA_PATH/job_id."""
    data = root_path if data_path is None else data_path
    run = posixpath.join(data, job_id) if run_path is None else run_path
    return {
        "ROOT_PATH": root_path,
        "WORK_PATH": work_path,
        "DATA_PATH": data,
        "RUN_PATH": run,
        "PIPE_ID": job_id,
        "JOB_ID": job_id,
        # The original substituted the Python list repr; tasks parse it that way.
        "TASK_IDS": str([task_id(job_id, name) for name in task_names]),
        "TASK_ID": task_id(job_id, task_name),
        "TASK_NAME": task_name,
        "TASK_PATH": posixpath.join(run, task_name),
    }
