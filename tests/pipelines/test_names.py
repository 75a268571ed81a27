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
    assert names.parse_name("pipelines/sst2") == "sst2"
    for bad in ("", "sst2", "jobs/sst2", "pipelines/../x", "pipelines/"):
        with pytest.raises(InvalidArgument) as caught:
            names.parse_name(bad)
        assert caught.value.violations[0][0] == "name"


@pytest.mark.parametrize("revision", ["main~1", "HEAD@{1}", "-all", "a b", "x..y", "a\nb"])
def test_bad_revisions(revision: str) -> None:
    assert names.revision_problem(revision)
