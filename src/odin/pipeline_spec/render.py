"""``render_spec_dict``: the normalised, JSON-able form of a pipeline stored on a job."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from .model import PipelineSpec, TaskSpec

# ``raw`` is the user's text as parsed; the rendered form carries only normalised values.
_SKIPPED_TASK_FIELDS = frozenset({"raw"})


def render_spec_dict(spec: PipelineSpec) -> dict[str, Any]:
    """Plain dicts, lists, strings and numbers only (safe for json.dumps)."""
    return {
        "name": spec.name,
        "parallelism": spec.parallelism,
        "timeout_seconds": spec.timeout_seconds,
        "queue": spec.queue,
        "tasks": [_task(task) for task in spec.tasks],
        "warnings": [str(warning) for warning in spec.warnings],
    }


def _task(task: TaskSpec) -> dict[str, Any]:
    return {
        f.name: _plain(getattr(task, f.name)) for f in dataclasses.fields(task) if f.name not in _SKIPPED_TASK_FIELDS
    }


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
