"""Validate a parsed main.yml document and build the PipelineSpec (names, graph, all tasks)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from .errors import Collector, PipelineInvalid, Violation
from .fields import did_you_mean, read_int
from .graph import find_cycles
from .model import PipelineSpec, TaskSpec
from .references import iter_whole_references
from .task_fields import parse_duration_field, parse_object_name
from .task_parser import parse_depends, parse_task

PIPELINE_NAME_PATTERN = r"[a-z0-9\-.]+"
# DNS-1123 label: task ids end up in pod names and label values.
TASK_NAME_PATTERN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
MAX_TASK_NAME_LENGTH = 63
DEFAULT_PIPELINE_NAME = "flow"

Indexed = list[tuple[int, Mapping[str, Any]]]


def build_pipeline(
    document: object, *, default_name: str = DEFAULT_PIPELINE_NAME, warnings: Iterable[Violation] = ()
) -> PipelineSpec:
    """Validate ``document`` completely; raise PipelineInvalid listing every violation."""
    if not isinstance(document, Mapping):
        hint = " (got a plain string: pass a pathlib.Path to load a file)" if isinstance(document, str) else ""
        raise PipelineInvalid([Violation("", f'a pipeline must be a mapping with a "tasks" list{hint}')])
    out = Collector()
    out.warnings.extend(warnings)
    name = _pipeline_name(document.get("name"), default_name, out)
    parallelism = read_int(document.get("parallelism"), "parallelism", out, minimum=1)
    timeout = parse_duration_field(document.get("timeout"), "timeout", out)
    queue = parse_object_name(document.get("queue"), "queue", out)
    raws = _task_mappings(document.get("tasks"), out)
    names = _task_names(raws, out)
    specs = [parse_task(raw, f"tasks[{index}]", out) for index, raw in raws]
    depends = _edges(raws, names, out)
    for cycle in find_cycles(list(names.values()), depends):
        out.error("tasks", "cycle: " + " -> ".join(cycle))
    if out.errors:
        raise PipelineInvalid(out.errors)
    tasks = tuple(_with_depends(spec, depends, queue) for spec in specs)
    return PipelineSpec(name, tasks, parallelism, timeout, tuple(out.warnings), queue)


def _with_depends(spec: TaskSpec | None, depends: Mapping[str, tuple[str, ...]], queue: str | None) -> TaskSpec:
    """The task with its dependencies and, unless it names its own, the pipeline's queue."""
    assert spec is not None  # no errors means every task parsed
    return replace(spec, depends=depends[spec.name], queue=spec.queue or queue)


def _pipeline_name(value: object, default: str, out: Collector) -> str:
    name = default if value is None else value
    if not isinstance(name, str) or not re.fullmatch(PIPELINE_NAME_PATTERN, name):
        out.error("name", f'"{name}" must match [a-z0-9-.]+ (lowercase letters, digits, "-" and ".")')
        return default
    return name


def _task_mappings(value: object, out: Collector) -> Indexed:
    if value is None:
        out.error("tasks", "is required")
        return []
    if not isinstance(value, list) or not value:
        out.error("tasks", "must be a non-empty list of tasks")
        return []
    raws: Indexed = []
    for index, item in enumerate(value):
        if isinstance(item, Mapping):
            raws.append((index, item))
        else:
            out.error(f"tasks[{index}]", "must be a mapping")
    return raws


def _task_names(raws: Indexed, out: Collector) -> dict[int, str]:
    """Valid, unique task names by task index (first definition wins)."""
    first: dict[str, int] = {}
    names: dict[int, str] = {}
    for index, raw in raws:
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            continue  # reported by the task parser
        if name in first:
            out.error(
                f"tasks[{index}].name",
                f'duplicate task name "{name}" (first defined at tasks[{first[name]}])',
            )
            continue
        first[name] = index
        if _name_ok(name, index, out):
            names[index] = name
    return names


def _name_ok(name: str, index: int, out: Collector) -> bool:
    """Record what is wrong with a task name; True when it is fine."""
    field = f"tasks[{index}].name"
    if "." in name:
        out.error(field, f'"{name}" must not contain "." (it separates parts of a ^reference)')
    elif len(name) > MAX_TASK_NAME_LENGTH:
        out.error(field, f'"{name}" is longer than {MAX_TASK_NAME_LENGTH} characters')
    elif not re.fullmatch(TASK_NAME_PATTERN, name):
        out.error(
            field,
            f'"{name}" is not a valid Kubernetes name: use lowercase letters, digits and "-", '
            "starting and ending with a letter or digit",
        )
    else:
        return True
    return False


def _edges(raws: Indexed, names: Mapping[int, str], out: Collector) -> dict[str, tuple[str, ...]]:
    """Explicit depends plus whole-value references, checked against the task names."""
    known = {raw["name"] for _, raw in raws if isinstance(raw.get("name"), str)}
    edges: dict[str, tuple[str, ...]] = {}
    for index, raw in raws:
        if index not in names:
            continue
        name, path = names[index], f"tasks[{index}]"
        found: list[str] = []
        for dep in parse_depends(raw.get("depends"), f"{path}.depends", Collector()):
            found += _edge(name, dep, f"{path}.depends", "", known, out)
        for field, ref, target in iter_whole_references(raw):
            found += _edge(name, target, f"{path}.{field}", f' in reference "{ref}"', known, out)
        edges[name] = tuple(dict.fromkeys(d for d in found if d in names.values()))
    return edges


def _edge(name: str, dep: str, field: str, context: str, known: set[str], out: Collector) -> list[str]:
    if dep == name:
        out.error(field, f'task "{name}" depends on itself{context}')
        return []
    if dep not in known:
        out.error(field, f'unknown task "{dep}"{context}{did_you_mean(dep, known)}')
        return []
    return [dep]
