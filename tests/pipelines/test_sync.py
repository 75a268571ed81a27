"""Sync with an upstream remote: a second local bare repository stands in for it."""

from __future__ import annotations

from pathlib import Path

import pygit2
import pytest
from odin_pipelines.config import Limits
from odin_pipelines.repository import PipelineRepository
from odin_pipelines.sync import SyncState, Upstream, redact_url
from pipeline_samples import ALICE, files, main_yml


def commit_upstream(path: Path, pipeline_id: str, text: str, message: str) -> str:
    """A commit made directly in the upstream (as a user pushing with plain git would)."""
    git = pygit2.Repository(str(path))
    try:
        head = git[git.lookup_reference("refs/heads/main").target]
        parents, root = [head.id], head.tree
    except KeyError:
        parents, root = [], None
    sub = git.TreeBuilder()
    sub.insert("main.yml", git.create_blob(text.encode()), pygit2.GIT_FILEMODE_BLOB)
    builder = git.TreeBuilder(root) if root is not None else git.TreeBuilder()
    builder.insert(pipeline_id, sub.write(), pygit2.GIT_FILEMODE_TREE)
    signature = pygit2.Signature("carol", "carol@example.com")
    return str(git.create_commit("refs/heads/main", signature, signature, message, builder.write(), parents))


def upstream_head(path: Path) -> str:
    git = pygit2.Repository(str(path))
    return str(git.lookup_reference("refs/heads/main").target)


def test_local_commits_are_pushed(repo: PipelineRepository, upstream_path: Path) -> None:
    upstream = Upstream(repo, str(upstream_path))
    assert upstream.sync().state is SyncState.IN_SYNC  # both empty
    view = repo.create("p", files(), "create", ALICE)
    status = upstream.sync()
    assert status.state is SyncState.IN_SYNC and status.last_sync_time
    assert upstream_head(upstream_path) == view.etag


def test_upstream_commits_are_pulled_fast_forward(repo: PipelineRepository, upstream_path: Path) -> None:
    upstream = Upstream(repo, str(upstream_path))
    repo.create("p", files(), "create", ALICE)
    upstream.sync()
    pushed = commit_upstream(upstream_path, "q", main_yml("remote"), "made upstream")
    assert upstream.sync().state is SyncState.IN_SYNC
    assert repo.head_id() == pushed
    view = repo.get("q")
    assert view.files == {"main.yml": main_yml("remote")}
    assert (view.revision.author_name, view.revision.message) == ("carol", "made upstream")


def test_a_new_repository_adopts_the_upstream_history(tmp_path: Path, upstream_path: Path) -> None:
    pushed = commit_upstream(upstream_path, "p", main_yml(), "first")
    repo, created = PipelineRepository.open_or_create(tmp_path / "fresh.git", "main", Limits())
    assert created
    assert Upstream(repo, str(upstream_path)).sync().state is SyncState.IN_SYNC
    assert repo.head_id() == pushed


def test_divergence_is_reported_and_nothing_is_overwritten(repo: PipelineRepository, upstream_path: Path) -> None:
    upstream = Upstream(repo, str(upstream_path))
    base = repo.create("p", files(), "create", ALICE)
    upstream.sync()
    theirs = commit_upstream(upstream_path, "q", main_yml(), "theirs")
    ours = repo.update("p", base.etag, {"a": b"ours"}, [], "ours", ALICE).etag
    status = upstream.sync()
    assert status.state is SyncState.DIVERGED
    assert "1 commit(s) the upstream lacks" in status.message and "nothing was overwritten" in status.message
    assert repo.head_id() == ours and upstream_head(upstream_path) == theirs
    # a later sync still refuses, and both sides keep their commits
    assert upstream.sync().state is SyncState.DIVERGED
    assert repo.head_id() == ours and upstream_head(upstream_path) == theirs


def test_an_unreachable_remote_is_reported(repo: PipelineRepository, tmp_path: Path) -> None:
    status = Upstream(repo, str(tmp_path / "missing.git")).sync()
    assert status.state is SyncState.UNREACHABLE and status.message and status.last_sync_time is None


def test_credentials_never_appear(repo: PipelineRepository, caplog: pytest.LogCaptureFixture) -> None:
    upstream = Upstream(repo, "https://deploy:s3cr3t-token@127.0.0.1:1/pipelines.git")
    status = upstream.sync()
    assert status.state is SyncState.UNREACHABLE
    assert status.remote == "https://127.0.0.1:1/pipelines.git"
    assert "s3cr3t" not in status.message and "s3cr3t" not in status.remote
    assert "s3cr3t" not in (Path(repo.path) / "config").read_text()  # an anonymous remote: never stored
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "127.0.0.1:1" in logged and "s3cr3t" not in logged


def test_redact_url() -> None:
    assert redact_url("https://u:p@host/x.git") == "https://host/x.git"
    assert redact_url("ssh://git@host:22/x") == "ssh://host:22/x"
    assert redact_url("/srv/git/x.git") == "/srv/git/x.git"
