"""A pipeline directory on this machine, packed as an `InlinePipeline` for CreateJob.

`main.yml` becomes the pipeline text; every other file (what `${WORK_PATH}` holds) travels by relative
path. Hidden files and caches stay behind. The service's limits are checked here first so the user
learns which file is at fault before anything is sent.
"""

from __future__ import annotations

from pathlib import Path

from odin.client.errors import InvalidArgument
from odin.pipeline_spec.directory import companion_files, locate
from odin.scheduler.v1 import scheduler_pb2 as pb

MAX_FILES = 100
MAX_TOTAL_BYTES = 1024 * 1024


def is_local_pipeline(source: str) -> bool:
    """Whether `source` names a directory or a main.yml here rather than a pipeline of the repository."""
    if Path(source).exists() or source.endswith((".yml", ".yaml")) or source.startswith((".", "/", "~")):
        return True
    return "/" in source and not source.startswith("pipelines/")


def pack_pipeline(source: str | Path) -> pb.InlinePipeline:
    """The InlinePipeline for a job directory, or for the directory of a given main.yml file."""
    try:
        directory, main = locate(Path(source))
    except FileNotFoundError as exc:
        raise InvalidArgument(str(exc)) from None
    files = {rel: _read_text(directory / rel) for rel in companion_files(directory, main)}
    total = sum(len(text.encode()) for text in files.values()) + main.stat().st_size
    if len(files) > MAX_FILES:
        raise InvalidArgument(f"{directory}: {len(files)} files; a pipeline may carry at most {MAX_FILES}")
    if total > MAX_TOTAL_BYTES:
        raise InvalidArgument(f"{directory}: {total} bytes of files; at most {MAX_TOTAL_BYTES} are allowed")
    return pb.InlinePipeline(main_yml=_read_text(main), files=files)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidArgument(f"{path}: not UTF-8 text; pipelines carry text files only") from None
    except OSError as exc:
        raise InvalidArgument(f"{path}: cannot read: {exc.strerror or exc}") from None
