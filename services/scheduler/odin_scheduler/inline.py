"""Inline pipelines (`main.yml` text plus files), checked and rendered without gRPC.

`sources.py` uses this for `CreateJobRequest.inline`; the embedded engine (`odin.engine`) for the
pipelines it is handed, so both apply the same limits, the same messages and the same templating.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping
from typing import Any

from odin.runtime.errors import InvalidArgument
from odin_scheduler.jobs import MAIN_FILE, ResolvedPipeline

MAX_FILES = 100
MAX_FILES_BYTES = 1024 * 1024
# The most a rendered main.yml may hold (the in-process renderer's bound; the service's pool has its own).
MAX_RENDERED_BYTES = 1024 * 1024
TEMPLATE = f"{MAIN_FILE}.jinja2"

# Renders pipeline files with parameters as `odin.pipeline_spec.templates.render_files` does (`X.jinja2` -> `X`),
# raising its RenderError; the service passes its bounded, killable worker pool (RenderPool.render).
Renderer = Callable[[Mapping[str, str], Mapping[str, Any]], dict[str, str]]


def resolve(main_yml: str, files: Mapping[str, str], parameters: Mapping[str, Any],
            render: Renderer | None = None) -> ResolvedPipeline:
    """The pipeline as CreateJob stores it; raises InvalidArgument (fields under `inline.`) when unusable.

    Blocks while a template renders: the service calls it off its event loop."""
    violations = file_violations(main_yml, files)
    if not main_yml.strip():
        violations.insert(0, ("inline.main_yml", "is required"))
    if violations:
        raise InvalidArgument("the inline pipeline is invalid", violations)
    main = render_template(main_yml, parameters, render) if parameters else main_yml
    return ResolvedPipeline(main, dict(files))


def render_template(text: str, parameters: Mapping[str, Any], render: Renderer | None = None) -> str:
    """Renders `main.yml` as a sandboxed Jinja2 template when parameters (`--x:key value`) are given.

    Without `render` it renders in this thread with the bounded sandbox (sizes of `*`, `**` and the output are
    capped, but no time limit): what the embedded engine, which renders its own program's templates, uses."""
    from odin.pipeline_spec.templates import RenderError, render_files  # only jobs with parameters import Jinja2

    def in_process(files: Mapping[str, str], values: Mapping[str, Any]) -> dict[str, str]:
        return render_files(files, values, MAX_RENDERED_BYTES)

    try:
        return (render or in_process)({TEMPLATE: text}, parameters)[MAIN_FILE]
    except RenderError as exc:
        field = "parameters" if exc.field == "parameters" else "inline.main_yml"
        detail = exc.description.removeprefix(f"{TEMPLATE}: ")
        raise InvalidArgument.field(field, f"cannot render main.yml with these parameters: {detail}") from None


def file_violations(main_yml: str, files: Mapping[str, str]) -> list[tuple[str, str]]:
    violations: list[tuple[str, str]] = []
    if len(files) > MAX_FILES:
        violations.append(("inline.files", f"at most {MAX_FILES} files"))
    total = len(main_yml.encode()) + sum(len(v.encode()) for v in files.values())
    if total > MAX_FILES_BYTES:
        violations.append(("inline.files", f"at most {MAX_FILES_BYTES} bytes in all"))
    for path in files:
        problem = unsafe_path(path)
        if problem:
            violations.append((f"inline.files[{path!r}]", problem))
    return violations


def unsafe_path(path: str) -> str:
    """Why a pipeline file path cannot be written under WORK_PATH; empty when it is fine."""
    parts = path.split("/")
    if not path or path.startswith("/") or posixpath.normpath(path) != path:
        return "must be a relative, normalised path"
    if ".." in parts or ".git" in parts or any(ord(c) < 32 for c in path):
        return 'must not contain "..", ".git" or control characters'
    if path == MAIN_FILE:
        return f"{MAIN_FILE} goes in main_yml"
    return ""
