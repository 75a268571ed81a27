"""A pipeline directory on this machine, packed as an `InlinePipeline` for CreateJob.

`main.yml` becomes the pipeline text; every other file (what `${WORK_PATH}` holds) travels by relative
path. Hidden files and caches stay behind. The service's limits are checked here first so the user
learns which file is at fault before anything is sent.
"""

from __future__ import annotations

from pathlib import Path

from odin.client.errors import InvalidArgument
from odin.scheduler.v1 import scheduler_pb2 as pb

MAIN_FILE = "main.yml"
MAX_FILES = 100
MAX_TOTAL_BYTES = 1024 * 1024
_SKIPPED_DIRS = frozenset({"__pycache__", "node_modules"})


def is_local_pipeline(source: str) -> bool:
    """Whether `source` names a directory or a main.yml here rather than a pipeline of the repository."""
    if Path(source).exists() or source.endswith((".yml", ".yaml")) or source.startswith((".", "/", "~")):
        return True
    return "/" in source and not source.startswith("pipelines/")


def pack_pipeline(source: str | Path) -> pb.InlinePipeline:
    """The InlinePipeline for a job directory, or for the directory of a given main.yml file."""
    path = Path(source).expanduser()
    directory, main = (path, path / MAIN_FILE) if path.is_dir() else (path.parent, path)
    if not main.is_file():
        raise InvalidArgument(f"{main}: no such file (a pipeline directory holds a {MAIN_FILE})")
    files = {rel: _read_text(directory / rel) for rel in _job_files(directory, main)}
    total = sum(len(text.encode()) for text in files.values()) + main.stat().st_size
    if len(files) > MAX_FILES:
        raise InvalidArgument(f"{directory}: {len(files)} files; a pipeline may carry at most {MAX_FILES}")
    if total > MAX_TOTAL_BYTES:
        raise InvalidArgument(f"{directory}: {total} bytes of files; at most {MAX_TOTAL_BYTES} are allowed")
    return pb.InlinePipeline(main_yml=_read_text(main), files=files)


def _job_files(directory: Path, main: Path) -> list[str]:
    found = []
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory)
        if any(part.startswith(".") or part in _SKIPPED_DIRS for part in rel.parts):
            continue
        if path.is_file() and path != main:
            found.append(rel.as_posix())
    return found


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidArgument(f"{path}: not UTF-8 text; pipelines carry text files only") from None
    except OSError as exc:
        raise InvalidArgument(f"{path}: cannot read: {exc.strerror or exc}") from None
