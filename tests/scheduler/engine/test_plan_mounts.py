"""Mount paths: expanded like any other `${VAR}`, and kept inside what the job may touch."""

from __future__ import annotations

from pathlib import Path

import pytest
from odin_scheduler.engine.plan import expand_mount_paths, job_variables, mount_path_problem
from odin_scheduler.paths import Layout

LAYOUT = Layout(Path("/srv/runs"))


@pytest.mark.parametrize("path", ["/data", "/srv/runs/j1/extra", "/srv/runs/j1/j1--t/cache", "/srv/runsx"])
def test_allowed_mount_paths(path: str) -> None:
    assert mount_path_problem(path, "j1", LAYOUT) == ""


@pytest.mark.parametrize(("path", "words"), [
    ("data", "absolute"),
    ("/srv/runs/j1/../j2", '".."'),
    ("/srv/runs", "runs root"),
    ("/srv", "runs root"),
    ("/", "runs root"),
    ("/srv/runs/j2/data", "outside this job"),
    ("/srv/runs/j1", "outside this job"),
    ("/srv/runs/.pipelines/j1", "outside this job"),
])
def test_refused_mount_paths(path: str, words: str) -> None:
    assert words in mount_path_problem(path, "j1", LAYOUT)


def test_mount_paths_expand_variables_and_nothing_else_changes() -> None:
    task = {"name": "t", "mounts": [{"name": "d", "claim": "c", "path": "${RUN_PATH}/${TASK_NAME}"}], "x": 1}
    expanded = expand_mount_paths(task, job_variables("t", "j1", LAYOUT))
    assert expanded["mounts"] == [{"name": "d", "claim": "c", "path": "/srv/runs/j1/t"}]
    assert expanded["x"] == 1 and task["mounts"][0]["path"] == "${RUN_PATH}/${TASK_NAME}"


def test_bookkeeping_lives_apart_from_task_data() -> None:
    assert LAYOUT.state_root == Path("/srv/runs-state")
    assert not LAYOUT.attempt_dir("j1", "t", 1).is_relative_to(LAYOUT.root)
    assert Layout(Path("/a/runs"), Path("/b/state")).log_file("j", "t", 2) == Path("/b/state/attempts/j/t/2/output.log")
