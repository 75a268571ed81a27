"""The project a command works in: `--project`, else `ODIN_PROJECT`, else the one `odin projects use` chose.

Empty means "let the server decide" (the default project, or the project a name already carries).
"""

from __future__ import annotations

import os
from pathlib import Path

from odin.client.credentials import config_dir

PROJECT_ENV = "ODIN_PROJECT"
PROJECT_FILE_NAME = "project"


def project_file() -> Path:
    return config_dir() / PROJECT_FILE_NAME


def current_project(flag: str | None = None) -> str:
    """The project id to send: the flag, the environment, the session's choice, or ''."""
    if flag:
        return flag.removeprefix("projects/")
    if os.environ.get(PROJECT_ENV):
        return os.environ[PROJECT_ENV].removeprefix("projects/")
    try:
        return project_file().read_text().strip().removeprefix("projects/")
    except (FileNotFoundError, NotADirectoryError):
        return ""


def use_project(project: str) -> Path:
    """Makes `project` the session's default (empty: back to the server's default)."""
    path = project_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    if project:
        path.write_text(project.removeprefix("projects/") + "\n")
    else:
        path.unlink(missing_ok=True)
    return path
