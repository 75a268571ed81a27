"""Checking pipelines with the scheduler's validator (`odin.pipeline_spec`), after rendering."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from odin.pipeline_spec import PipelineInvalid, Violation, load_pipeline
from odin.runtime.errors import InvalidArgument
from odin_pipelines.files import MAIN, MAIN_TEMPLATE, TEMPLATE_SUFFIX
from odin_pipelines.templates import RenderError, check_syntax

Renderer = Callable[[Mapping[str, str], Mapping[str, Any]], dict[str, str]]


@dataclass(frozen=True)
class Verdict:
    violations: tuple[Violation, ...]
    task_order: tuple[str, ...] = ()


def template_parameters(pipeline_id: str, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The render context: `name` defaults to the pipeline id."""
    return {"name": pipeline_id, **parameters}


def validate(pipeline_id: str, files: Mapping[str, str], parameters: Mapping[str, Any],
             render: Renderer) -> Verdict:
    """Every problem of the pipeline; a templated one is rendered with `parameters` first."""
    if MAIN_TEMPLATE in files:
        try:
            files = render(files, template_parameters(pipeline_id, parameters))
        except RenderError as exc:
            return Verdict((Violation(exc.field, exc.description),))
    try:
        spec = load_pipeline(files[MAIN], default_name=pipeline_id)
    except PipelineInvalid as exc:
        return Verdict(exc.violations)
    return Verdict((), tuple(spec.topological_order()))


def check_written(pipeline_id: str, written: Mapping[str, str], field_of: Mapping[str, str]) -> None:
    """Refuses a write whose new main.yml is invalid or whose templates do not parse.

    `field_of` maps a written path to its request field (`pipeline.files[0]`). Templates are
    checked for syntax only: they are validated for real once rendered with parameters.
    """
    problems: list[tuple[str, str]] = []
    if MAIN in written:
        try:
            load_pipeline(written[MAIN], default_name=pipeline_id)
        except PipelineInvalid as exc:
            problems.extend((f"{field_of[MAIN]}.content", str(v)) for v in exc.violations)
    for path, text in written.items():
        if path.endswith(TEMPLATE_SUFFIX):
            try:
                check_syntax(path, text)
            except RenderError as exc:
                problems.append((f"{field_of[path]}.content", f"{path} {exc.description}"))
    if problems:
        raise InvalidArgument(f"the pipeline is invalid: {problems[0][0]}: {problems[0][1]}", problems,
                              reason="PIPELINE_INVALID")
