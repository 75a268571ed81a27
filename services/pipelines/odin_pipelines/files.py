"""The files of one pipeline as the service accepts them: safe paths, UTF-8, within limits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from odin.runtime.errors import InvalidArgument
from odin_pipelines.config import Limits
from odin_pipelines.names import file_path_problem

MAIN = "main.yml"
MAIN_TEMPLATE = "main.yml.jinja2"
TEMPLATE_SUFFIX = ".jinja2"

Violations = list[tuple[str, str]]


def entries(files: Sequence[tuple[str, str]], field: str, limits: Limits) -> tuple[dict[str, bytes], Violations]:
    """Checks each (path, text) pair; violations name `field[i].path` / `field[i].content`."""
    accepted: dict[str, bytes] = {}
    problems: Violations = []
    for index, (path, text) in enumerate(files):
        where = f"{field}[{index}]"
        problem = file_path_problem(path)
        if problem:
            problems.append((f"{where}.path", problem))
            continue
        if path in accepted:
            problems.append((f"{where}.path", f"{path!r} is given twice"))
            continue
        data = text.encode("utf-8", errors="strict")
        if len(data) > limits.max_file_bytes:
            problems.append((f"{where}.content", f"is {len(data)} bytes; the limit is {limits.max_file_bytes}"))
            continue
        accepted[path] = data
    return accepted, problems


def deletions(paths: Sequence[str], field: str) -> tuple[list[str], Violations]:
    problems: Violations = []
    for index, path in enumerate(paths):
        problem = file_path_problem(path)
        if problem:
            problems.append((f"{field}[{index}]", problem))
    return list(paths), problems


def whole_problems(files: Mapping[str, bytes], field: str, limits: Limits) -> Violations:
    """Checks that need every file of the pipeline: count, total size, main file, path clashes."""
    problems: Violations = []
    if len(files) > limits.max_files:
        problems.append((field, f"has {len(files)} files; the limit is {limits.max_files}"))
    total = sum(len(data) for data in files.values())
    if total > limits.max_total_bytes:
        problems.append((field, f"holds {total} bytes; the limit is {limits.max_total_bytes}"))
    mains = [name for name in (MAIN, MAIN_TEMPLATE) if name in files]
    if not mains:
        problems.append((field, f"must contain {MAIN} or {MAIN_TEMPLATE}"))
    elif len(mains) == 2:
        problems.append((field, f"must contain only one of {MAIN} and {MAIN_TEMPLATE}"))
    problems.extend((field, clash) for clash in _clashes(files))
    return problems


def _clashes(files: Mapping[str, bytes]) -> list[str]:
    """A path cannot be a file and a directory at once (`a` and `a/b`)."""
    clashes = []
    for path in files:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            prefix = "/".join(parts[:depth])
            if prefix in files:
                clashes.append(f"{prefix!r} is a file, so {path!r} cannot be inside it")
    return clashes


def raise_if(problems: Violations, what: str = "the pipeline is not acceptable") -> None:
    if problems:
        first_field, first_description = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InvalidArgument(f"{what}: {first_field}: {first_description}{more}", problems)


def is_templated(files: Mapping[str, object]) -> bool:
    return MAIN_TEMPLATE in files
