"""Names a caller sends are checked before anything touches git."""

from __future__ import annotations

import pytest
from odin_pipelines import names

from odin.runtime.errors import InvalidArgument


@pytest.mark.parametrize("pipeline_id", ["a", "sst2", "bert-ner", "a.b_c-d", "x" * 63])
def test_good_pipeline_ids(pipeline_id: str) -> None:
    assert names.pipeline_id_problem(pipeline_id) is None


@pytest.mark.parametrize("pipeline_id", ["", "-a", "a-", "A", "a/b", "..", ".git", "x" * 64, "a b", "é"])
def test_bad_pipeline_ids(pipeline_id: str) -> None:
    assert names.pipeline_id_problem(pipeline_id)


@pytest.mark.parametrize("path", ["main.yml", "conf/a.yml", "a/b/c.txt", ".hidden", "x..y", ".gitignore"])
def test_good_file_paths(path: str) -> None:
    assert names.file_path_problem(path) is None


@pytest.mark.parametrize("path", [
    "", "../etc/passwd", "a/../../b", "..", "/etc/passwd", ".git/config", "a/.git/hooks/x", ".GIT/config",
    "a/.git./x", "a\\b", "a//b", "a/", "./a", "a\x00b", "a\nb", "a\x1bb", "a\u202eb",
])
def test_bad_file_paths(path: str) -> None:
    assert names.file_path_problem(path)


def test_resource_names() -> None:
    assert names.parse_name("pipelines/sst2") == names.PipelineRef("default", "sst2")
    assert names.parse_name("projects/default/pipelines/sst2") == names.PipelineRef("default", "sst2")
    team = names.parse_name("projects/team-a/pipelines/sst2")
    assert team == names.PipelineRef("team-a", "sst2")
    assert (team.path, team.name) == ("_projects/team-a/sst2", "projects/team-a/pipelines/sst2")
    assert names.parse_name("projects/default/pipelines/x").name == "pipelines/x"  # the short form stays
    for bad in ("", "sst2", "jobs/sst2", "pipelines/../x", "pipelines/"):
        with pytest.raises(InvalidArgument) as caught:
            names.parse_name(bad)
        assert caught.value.violations[0][0] == "name"


@pytest.mark.parametrize("name", [
    "projects/../pipelines/x", "projects/a/../b/pipelines/x", "projects/a/pipelines/../../x",
    "projects/_projects/pipelines/x", "pipelines/_projects", "projects/a/pipelines/_projects",
    "projects/a/pipelines/x/y", "projects/a/b/pipelines/x", "projects//pipelines/x", "projects/a",
    "projects/a/pipelines/", "projects/A/pipelines/x", "projects/a.b/pipelines/x", "projects/a%2f/pipelines/x",
])
def test_names_cannot_leave_their_project(name: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        names.parse_name(name, "pipeline.name")
    assert caught.value.violations[0][0] == "pipeline.name"


@pytest.mark.parametrize("revision", ["main~1", "HEAD@{1}", "-all", "a b", "x..y", "a\nb"])
def test_bad_revisions(revision: str) -> None:
    assert names.revision_problem(revision)
