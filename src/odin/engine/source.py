"""What `odin.engine` accepts as a pipeline, turned into what a CreateJob with an inline pipeline carries.

A mapping is dumped as YAML; a `str` is the text of `main.yml`; a path names a `main.yml` or the directory
holding one, whose other files become `${WORK_PATH}` files exactly as `odin run DIR` sends them
(hidden files and caches stay behind). The scheduler's own checks then apply unchanged
(`odin_scheduler.inline.resolve`): the same limits, the same templating with `params`, the same messages.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeAlias

from odin_scheduler.inline import resolve
from odin_scheduler.jobs import ResolvedPipeline

from odin.pipeline_spec.directory import companion_files, locate
from odin.runtime.errors import InvalidArgument

Pipeline: TypeAlias = "Mapping[str, Any] | str | os.PathLike[str]"


def resolve_pipeline(pipeline: Pipeline, params: Mapping[str, Any] | None) -> ResolvedPipeline:
    """The pipeline's `main.yml` text (rendered with `params`) and files; raises InvalidArgument like the service."""
    main_yml, files = _text_and_files(pipeline)
    return resolve(main_yml, files, params or {})


def _text_and_files(pipeline: Pipeline) -> tuple[str, dict[str, str]]:
    if isinstance(pipeline, str):
        return pipeline, {}
    if isinstance(pipeline, os.PathLike):
        return _read_directory(Path(pipeline))
    if isinstance(pipeline, Mapping):
        return _dump(pipeline), {}
    raise TypeError(f"a pipeline is a mapping, YAML text or a path, not {type(pipeline).__name__}")


def _dump(pipeline: Mapping[str, Any]) -> str:
    import yaml  # the service reads main.yml with the same YAML library

    try:
        return yaml.safe_dump(dict(pipeline), sort_keys=False, allow_unicode=True)
    except yaml.YAMLError as exc:
        raise TypeError(f"the pipeline mapping holds a value YAML cannot represent: {exc}") from None


def _read_directory(path: Path) -> tuple[str, dict[str, str]]:
    """`main.yml` and the other files of its directory (a path to the directory or to the file itself)."""
    directory, main = locate(path)
    files = {rel: _read_text(directory / rel, rel) for rel in companion_files(directory, main)}
    return _read_text(main, "main_yml"), files


def _read_text(path: Path, name: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        field = "inline.main_yml" if name == "main_yml" else f"inline.files[{name!r}]"
        raise InvalidArgument.field(field, f"{path} is not UTF-8 text; pipelines carry text files only") from None
