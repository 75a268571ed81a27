"""Inline pipelines (`main.yml` text plus files), checked and rendered without gRPC.

`sources.py` uses this for `CreateJobRequest.inline`; the embedded engine (`odin.engine`) for the
pipelines it is handed, so both apply the same limits, the same messages and the same templating.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

from odin.runtime.errors import InvalidArgument
from odin_scheduler.jobs import MAIN_FILE, ResolvedPipeline

MAX_FILES = 100
MAX_FILES_BYTES = 1024 * 1024


def resolve(main_yml: str, files: Mapping[str, str], parameters: Mapping[str, Any]) -> ResolvedPipeline:
    """The pipeline as CreateJob stores it; raises InvalidArgument (fields under `inline.`) when unusable."""
    violations = file_violations(main_yml, files)
    if not main_yml.strip():
        violations.insert(0, ("inline.main_yml", "is required"))
    if violations:
        raise InvalidArgument("the inline pipeline is invalid", violations)
    main = render_template(main_yml, parameters) if parameters else main_yml
    return ResolvedPipeline(main, dict(files))


def render_template(text: str, parameters: Mapping[str, Any]) -> str:
    """Renders `main.yml` as a sandboxed Jinja2 template when parameters (`--x:key value`) are given."""
    import jinja2.sandbox  # only jobs with parameters pay for importing Jinja2

    environment = jinja2.sandbox.SandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    try:
        return environment.from_string(text).render(**parameters)
    except jinja2.TemplateError as exc:
        raise InvalidArgument.field("parameters", f"cannot render main.yml with these parameters: {exc}") from None


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
