"""A pipeline directory on disk: its `main.yml` and the other files its tasks read (`${WORK_PATH}`).

One rule for every place that packs a local directory (the CLI's inline submission, the embedded
engine): hidden files and caches stay behind, paths are relative and `/`-separated.
"""

from __future__ import annotations

from pathlib import Path

MAIN_FILE = "main.yml"
SKIPPED_DIRS = frozenset({"__pycache__", "node_modules"})


def locate(path: Path) -> tuple[Path, Path]:
    """(directory, main.yml) for a pipeline directory or a path to its main.yml; FileNotFoundError if absent."""
    path = path.expanduser()
    directory, main = (path, path / MAIN_FILE) if path.is_dir() else (path.parent, path)
    if not main.is_file():
        raise FileNotFoundError(f"{main}: no such file (a pipeline directory holds a {MAIN_FILE})")
    return directory, main


def companion_files(directory: Path, main: Path | None = None) -> list[str]:
    """Relative paths of the directory's files but `main`, sorted, without hidden files and caches."""
    found = []
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory)
        if any(part.startswith(".") or part in SKIPPED_DIRS for part in rel.parts):
            continue
        if path.is_file() and path != main:
            found.append(rel.as_posix())
    return found
