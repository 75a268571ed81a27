"""Importing a directory of pipelines (e.g. the samples) into a new repository."""

from __future__ import annotations

import logging
from pathlib import Path

from odin.runtime.config import ConfigError
from odin_pipelines import files as pipeline_files
from odin_pipelines.config import Limits
from odin_pipelines.names import pipeline_id_problem

log = logging.getLogger("odin.pipelines.seed")


def read_seed(root: Path, limits: Limits) -> dict[str, dict[str, bytes]]:
    """Each sub-directory of `root` holding main.yml(.jinja2) becomes a pipeline; a bad one stops start-up."""
    if not root.is_dir():
        raise ConfigError(f"seed_path {root} is not a directory")
    pipelines = {}
    for directory in sorted(p for p in root.iterdir() if p.is_dir()):
        if pipeline_id_problem(directory.name) or not _has_main(directory):
            log.warning("seed: skipping a directory that is not a pipeline", extra={"directory": directory.name})
            continue
        pipelines[directory.name] = _read_pipeline(directory, limits)
    return pipelines


def _has_main(directory: Path) -> bool:
    return (directory / pipeline_files.MAIN).is_file() or (directory / pipeline_files.MAIN_TEMPLATE).is_file()


def _read_pipeline(directory: Path, limits: Limits) -> dict[str, bytes]:
    given = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and not p.is_symlink()):
        relative = path.relative_to(directory).as_posix()
        try:
            given.append((relative, path.read_bytes().decode("utf-8")))
        except UnicodeDecodeError:
            raise ConfigError(f"seed pipeline {directory.name}: {relative} is not UTF-8 text") from None
    entries, problems = pipeline_files.entries(given, "files", limits)
    problems += pipeline_files.whole_problems(entries, "files", limits)
    if problems:
        raise ConfigError(f"seed pipeline {directory.name}: " + "; ".join(f"{f}: {d}" for f, d in problems))
    return entries
