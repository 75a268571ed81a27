"""Checks on the names a caller sends: pipeline ids, resource names, file paths, revisions.

Every check returns a description of what is wrong (or None), so callers can attach the
request's own field path, e.g. `pipeline.files[3].path`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from odin.runtime.errors import InvalidArgument
from odin.runtime.projects import DEFAULT_PROJECT, PROJECT_ID, project_name

PIPELINE_ID = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,61}[a-z0-9])?$")
NAME_PREFIX = "pipelines/"
PROJECT_PREFIX = "projects/"
# Pipelines of project `p` live under `_projects/p/` in the tree; a pipeline id never starts with `_`,
# so this directory cannot clash with a default-project pipeline (which stay top-level, as before projects).
PROJECTS_DIR = "_projects"
MAX_PATH_CHARS = 1024
MAX_COMPONENT_CHARS = 255
MAX_REVISION_CHARS = 256
# Names git gives meaning to inside a tree; `.git` in any case would be the repository itself on
# case-insensitive file systems when the pipeline is materialised.
_RESERVED_COMPONENTS = frozenset({".", "..", ".git"})


def pipeline_id_problem(pipeline_id: str) -> str | None:
    if not pipeline_id:
        return "is required"
    if not PIPELINE_ID.match(pipeline_id):
        return ("must be 1-63 characters of a-z, 0-9, '.', '_', '-', "
                "starting and ending with a letter or digit")
    return None


@dataclass(frozen=True)
class PipelineRef:
    """A pipeline of a project: where it is stored and what it is called."""

    project: str
    pipeline_id: str

    @property
    def directory(self) -> tuple[str, ...]:
        """The tree path of the project's pipelines: the root for the default project."""
        return () if self.project == DEFAULT_PROJECT else project_directory(self.project)

    @property
    def path(self) -> str:
        """The pipeline's directory in the repository tree."""
        return "/".join((*self.directory, self.pipeline_id))

    @property
    def name(self) -> str:
        """The resource name; the default project keeps the short form existing clients know."""
        return pipeline_name(self.project, self.pipeline_id)


def project_directory(project: str) -> tuple[str, ...]:
    """Where `project`'s pipelines are in the tree (() for the default project: the top level)."""
    return () if project == DEFAULT_PROJECT else (PROJECTS_DIR, project)


def pipeline_name(project: str, pipeline_id: str) -> str:
    if project == DEFAULT_PROJECT:
        return f"{NAME_PREFIX}{pipeline_id}"
    return f"{project_name(project)}/{NAME_PREFIX}{pipeline_id}"


def parse_name(name: str, field: str = "name") -> PipelineRef:
    """`projects/{project}/pipelines/{id}` or `pipelines/{id}` (the default project); INVALID_ARGUMENT
    naming `field` otherwise. Both ids are checked against their patterns (no `/`, `.`, `..` or leading
    `_`), so a name can never reach outside its project's directory."""
    if not name:
        raise InvalidArgument.field(field, "is required")
    project = DEFAULT_PROJECT
    rest = name
    if name.startswith(PROJECT_PREFIX):
        project, _, rest = name[len(PROJECT_PREFIX):].partition("/")
        if not PROJECT_ID.match(project):
            raise InvalidArgument.field(field, "project id must be 1-63 characters of a-z, 0-9, '-', starting "
                                               "with a letter")
        rest = rest if rest.startswith(NAME_PREFIX) else "/"  # anything else fails the check below
    if not rest.startswith(NAME_PREFIX):
        raise InvalidArgument.field(field, "must look like projects/{project}/pipelines/{pipeline} or "
                                           "pipelines/{pipeline}")
    pipeline_id = rest[len(NAME_PREFIX):]
    problem = pipeline_id_problem(pipeline_id)
    if problem:
        raise InvalidArgument.field(field, f"pipeline id {problem}")
    return PipelineRef(project, pipeline_id)


def file_path_problem(path: str) -> str | None:
    """Why `path` cannot name a file inside a pipeline directory, or None."""
    if not path:
        return "is required"
    if len(path) > MAX_PATH_CHARS:
        return f"must be at most {MAX_PATH_CHARS} characters"
    if "\\" in path:
        return "must use '/' separators, not backslashes"
    if any(_is_control(ch) for ch in path):
        return "must not contain control characters"
    if path.startswith("/"):
        return "must be relative, not absolute"
    for component in path.split("/"):
        problem = _component_problem(component)
        if problem:
            return problem
    return None


def _component_problem(component: str) -> str | None:
    if not component:
        return "must not contain empty components ('//' or a trailing '/')"
    if component.casefold() in _RESERVED_COMPONENTS or component.casefold().rstrip(". ") == ".git":
        return f"must not contain a {component!r} component"
    if len(component) > MAX_COMPONENT_CHARS:
        return f"components must be at most {MAX_COMPONENT_CHARS} characters"
    return None


def _is_control(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp")


def revision_problem(revision: str) -> str | None:
    if len(revision) > MAX_REVISION_CHARS:
        return f"must be at most {MAX_REVISION_CHARS} characters"
    if any(_is_control(ch) or ch.isspace() for ch in revision):
        return "must not contain spaces or control characters"
    # Characters git forbids in ref names, so revision expressions (`main~1`, `HEAD@{1}`) never reach it.
    if revision.startswith("-") or ".." in revision or "@{" in revision or set(revision) & set("~^:?*[\\"):
        return "must be a branch, tag or commit id"
    return None


def check_revision(revision: str, field: str = "revision") -> str:
    problem = revision_problem(revision)
    if problem:
        raise InvalidArgument.field(field, problem)
    return revision


def check_prefix(prefix: str, field: str = "prefix") -> str:
    if prefix and not re.fullmatch(r"[a-z0-9._-]{1,63}", prefix):
        raise InvalidArgument.field(field, "must be the start of a pipeline id")
    return prefix
