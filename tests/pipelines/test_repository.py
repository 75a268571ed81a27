"""The repository against real git: one commit per write, revisions, history, concurrency."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pygit2
import pytest
from odin_pipelines.config import Limits
from odin_pipelines.repository import PipelineRepository
from odin_pipelines.seed import read_seed
from pipeline_samples import ALICE, BOB, SAMPLES, files, main_yml

from odin.runtime.errors import Aborted, AlreadyExists, InvalidArgument, NotFound


def test_create_is_one_commit_by_the_author(repo: PipelineRepository) -> None:
    view = repo.create("sst2", files(conf__a="x: 1\n", notes="n"), "Add sst2\n", ALICE)
    assert view.files == {"main.yml": main_yml(), "conf/a": "x: 1\n", "notes": "n"}
    git = pygit2.Repository(repo.path)
    assert git.is_bare
    head = git[git.lookup_reference("refs/heads/main").target]
    assert str(head.id) == view.revision.commit == view.etag
    assert (head.author.name, head.committer.name, head.author.email) == ("alice", "alice", "alice@odin")
    assert head.message == "Add sst2\n" and head.parents == []
    assert sorted(e.name for e in head.tree) == ["sst2"]


def test_create_twice_is_already_exists(repo: PipelineRepository) -> None:
    repo.create("sst2", files(), "one", ALICE)
    with pytest.raises(AlreadyExists) as caught:
        repo.create("sst2", files(), "two", ALICE)
    assert caught.value.reason == "PIPELINE_EXISTS"


def test_create_needs_a_main_file(repo: PipelineRepository) -> None:
    with pytest.raises(InvalidArgument) as caught:
        repo.create("p", {"other.yml": b"x"}, "m", ALICE)
    assert caught.value.violations == [("pipeline.files", "must contain main.yml or main.yml.jinja2")]
    with pytest.raises(InvalidArgument):
        repo.create("p", {"main.yml": b"a", "main.yml.jinja2": b"b"}, "m", ALICE)
    with pytest.raises(InvalidArgument, match="cannot be inside"):
        repo.create("p", {"main.yml": b"a", "conf": b"x", "conf/b": b"y"}, "m", ALICE)
    assert repo.head() is None


def test_update_upserts_and_deletes_in_one_commit(repo: PipelineRepository) -> None:
    first = repo.create("p", files(a="1", b="2"), "create", ALICE)
    second = repo.update("p", first.etag, {"a": b"changed", "c/d": b"new"}, ["b"], "edit", BOB)
    assert second.files == {"main.yml": main_yml(), "a": "changed", "c/d": "new"}
    commit = pygit2.Repository(repo.path)[second.etag]
    assert [str(p) for p in commit.parent_ids] == [first.etag]
    assert commit.author.name == "bob"
    assert second.revision.commit == second.etag


def test_update_of_missing_file_or_pipeline_is_not_found(repo: PipelineRepository) -> None:
    view = repo.create("p", files(), "create", ALICE)
    with pytest.raises(NotFound) as caught:
        repo.update("p", view.etag, {}, ["nope"], "m", ALICE)
    assert caught.value.reason == "FILE_NOT_FOUND"
    with pytest.raises(NotFound) as caught:
        repo.update("q", view.etag, {"a": b"1"}, [], "m", ALICE)
    assert caught.value.reason == "PIPELINE_NOT_FOUND"


def test_update_removing_main_is_refused(repo: PipelineRepository) -> None:
    view = repo.create("p", files(a="1"), "create", ALICE)
    with pytest.raises(InvalidArgument, match=r"must contain main\.yml"):
        repo.update("p", view.etag, {}, ["main.yml"], "m", ALICE)
    assert repo.head_id() == view.etag


def test_update_changing_nothing_makes_no_commit(repo: PipelineRepository) -> None:
    view = repo.create("p", files(a="1"), "create", ALICE)
    again = repo.update("p", view.etag, {"a": b"1"}, [], "same", ALICE)
    assert again.etag == view.etag == repo.head_id()


def test_stale_expected_revision_is_aborted_and_changes_nothing(repo: PipelineRepository) -> None:
    base = repo.create("p", files(a="1"), "create", ALICE)
    won = repo.update("p", base.etag, {"a": b"alice"}, [], "alice", ALICE)
    with pytest.raises(Aborted) as caught:
        repo.update("p", base.etag, {"a": b"bob"}, [], "bob", BOB)
    assert caught.value.reason == "REVISION_MISMATCH"
    assert caught.value.metadata["current_revision"] == won.etag
    with pytest.raises(Aborted):
        repo.delete("p", base.etag, "bob deletes", BOB)
    assert repo.head_id() == won.etag
    assert repo.get("p").files == {"main.yml": main_yml(), "a": "alice"}


def test_concurrent_updates_one_wins_the_rest_abort(repo: PipelineRepository) -> None:
    base = repo.create("p", files(a="0"), "create", ALICE)
    barrier = threading.Barrier(8)

    def edit(n: int) -> str:
        barrier.wait()
        try:
            return repo.update("p", base.etag, {"a": str(n).encode()}, [], f"edit {n}", ALICE).etag
        except Aborted:
            return "aborted"

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(edit, range(8)))
    winners = [r for r in results if r != "aborted"]
    assert len(winners) == 1 and results.count("aborted") == 7
    history, _ = repo.history("p", start="", after="", limit=50)
    assert [r.commit for r in history] == [winners[0], base.etag]


def test_two_processes_sharing_the_repository_cannot_both_win(repo: PipelineRepository, limits: Limits) -> None:
    """The ref update is a compare-and-swap, so even a writer that does not share our lock loses cleanly."""
    other = PipelineRepository(Path(repo.path), "main", limits)
    base = repo.create("p", files(a="0"), "create", ALICE)
    head = repo.head()
    assert head is not None
    other.update("p", base.etag, {"a": b"other"}, [], "other", BOB)
    tree = repo.git[head.tree.id]
    with pytest.raises(Aborted):
        repo._commit(head, tree.id, "sneaky", ALICE)  # built on the old head, as a racing writer would be
    assert repo.get("p").files["a"] == "other"


def test_history_revisions_tags_and_commits(repo: PipelineRepository) -> None:
    v1 = repo.create("p", files(a="1"), "v1", ALICE)
    repo.create("other", files(), "unrelated", ALICE)
    v2 = repo.update("p", repo.head_id(), {"a": b"2"}, [], "v2", BOB)
    git = pygit2.Repository(repo.path)
    git.references.create("refs/tags/release-1", pygit2.Oid(hex=v1.etag))
    git.create_tag("annotated", pygit2.Oid(hex=v1.etag), pygit2.GIT_OBJECT_COMMIT, pygit2.Signature("a", "a@x"), "t")
    history, walked = repo.history("p", start="", after="", limit=50)
    assert [(r.commit, r.message, r.author_name) for r in history] == [(v2.etag, "v2", "bob"), (v1.etag, "v1", "alice")]
    assert walked == repo.head_id()
    for revision in ("release-1", "annotated", v1.etag, v1.etag[:10]):
        old = repo.get("p", revision)
        assert old.files is not None and old.files["a"] == "1"
        assert old.revision.commit == v1.etag and old.etag == repo.head_id()
    assert repo.get("p", "main").files["a"] == "2"  # type: ignore[index]
    # the unrelated commit does not count as a change of p
    assert repo.get("p", "main").revision.commit == v2.etag
    assert repo.get("other").revision.commit != v2.etag


def test_history_pages_and_survives_deletion(repo: PipelineRepository) -> None:
    view = repo.create("p", files(a="0"), "c", ALICE)
    for n in range(1, 6):
        view = repo.update("p", view.etag, {"a": str(n).encode()}, [], f"e{n}", ALICE)
    deleted = repo.delete("p", view.etag, "gone", ALICE)
    first, walked = repo.history("p", start="", after="", limit=3)
    assert [r.message for r in first] == ["gone", "e5", "e4", "e3"]  # limit + 1 says more follow
    rest, _ = repo.history("p", start=walked, after=first[2].commit, limit=3)
    assert [r.message for r in rest] == ["e3", "e2", "e1", "c"]
    assert first[0].commit == deleted.commit
    with pytest.raises(NotFound):
        repo.get("p")
    assert repo.get("p", first[1].commit).files["a"] == "5"  # type: ignore[index]
    with pytest.raises(NotFound):
        repo.history("never", start="", after="", limit=3)


def test_unknown_revision_is_not_found(repo: PipelineRepository) -> None:
    repo.create("p", files(), "c", ALICE)
    for revision in ("nope", "deadbeef", "0" * 40):
        with pytest.raises(NotFound) as caught:
            repo.get("p", revision)
        assert caught.value.reason == "REVISION_NOT_FOUND"


def test_list_pages_by_id_with_prefix_and_revision(repo: PipelineRepository) -> None:
    for pid in ("b", "a", "ab", "c.x", "d"):
        repo.create(pid, files(), f"add {pid}", ALICE)
    old = repo.head_id()
    repo.create("aa", {"main.yml": main_yml(name="Pretty").encode()}, "add aa", ALICE)
    page, more = repo.list_pipelines(prefix="", after="", limit=3, revision="")
    assert [v.pipeline_id for v in page] == ["a", "aa", "ab"] and more
    page, more = repo.list_pipelines(prefix="", after="ab", limit=3, revision="")
    assert [v.pipeline_id for v in page] == ["b", "c.x", "d"] and not more
    page, _ = repo.list_pipelines(prefix="a", after="", limit=10, revision="")
    assert [v.pipeline_id for v in page] == ["a", "aa", "ab"]
    assert page[1].display_name == "Pretty" and page[1].files is None
    page, _ = repo.list_pipelines(prefix="a", after="", limit=10, revision=old)
    assert [v.pipeline_id for v in page] == ["a", "ab"]


def test_directories_without_main_are_not_pipelines(repo: PipelineRepository) -> None:
    repo.create("p", files(), "c", ALICE)
    git = repo.git
    head = repo.head()
    assert head is not None
    builder = git.TreeBuilder(head.tree)
    sub = git.TreeBuilder()
    sub.insert("readme", git.create_blob(b"x"), pygit2.GIT_FILEMODE_BLOB)
    builder.insert("docs", sub.write(), pygit2.GIT_FILEMODE_TREE)
    builder.insert("README", git.create_blob(b"x"), pygit2.GIT_FILEMODE_BLOB)
    repo._commit(head, builder.write(), "docs", ALICE)
    assert [v.pipeline_id for v in repo.list_pipelines(prefix="", after="", limit=10, revision="")[0]] == ["p"]
    with pytest.raises(NotFound):
        repo.get("docs")


def test_samples_import_and_validate(repo: PipelineRepository, limits: Limits) -> None:
    from odin.pipeline_spec import load_pipeline

    pipelines = read_seed(SAMPLES, limits)
    assert sorted(pipelines) == ["bert-ner", "imagenet-elastic", "sst2"]
    repo.import_pipelines(pipelines, "seed", ALICE)
    repo.import_pipelines(pipelines, "seed again", ALICE)  # a second import changes nothing
    history, _ = repo.history("sst2", start="", after="", limit=10)
    assert len(history) == 1
    for pid in pipelines:
        view = repo.get(pid)
        assert view.files is not None
        assert load_pipeline(view.files["main.yml"], default_name=pid).tasks


def test_projects_have_their_own_directories_and_revisions(repo: PipelineRepository) -> None:
    default = repo.create("p", files(), "default p", ALICE)
    team = repo.create("p", files(a="1"), "team p", BOB, project="team-a")
    edited = repo.update("p", team.etag, {"a": b"2"}, [], "team edit", BOB, project="team-a")
    assert repo.get("p").revision.commit == default.revision.commit  # a project's commits are not the default's
    assert repo.get("p", project="team-a").files == {"main.yml": main_yml(), "a": "2"}
    history, _ = repo.history("p", start="", after="", limit=10, project="team-a")
    assert [c.commit for c in history] == [edited.etag, team.etag]
    assert [c.commit for c in repo.history("p", start="", after="", limit=10)[0]] == [default.etag]
    assert [v.pipeline_id for v in repo.list_pipelines(prefix="", after="", limit=10, revision="")[0]] == ["p"]
    listed = repo.list_pipelines(prefix="", after="", limit=10, revision="", project="team-a")[0]
    assert [(v.project, v.pipeline_id) for v in listed] == [("team-a", "p")]
    assert repo.list_pipelines(prefix="", after="", limit=10, revision="", project="team-b") == ([], False)
    with pytest.raises(NotFound):
        repo.get("p", project="team-b")
    repo.delete("p", repo.head_id(), "gone", BOB, project="team-a")
    git = pygit2.Repository(repo.path)
    assert sorted(e.name for e in git[repo.head_id()].tree) == ["p"]  # no empty _projects/team-a left behind
    assert repo.get("p").revision.commit == default.revision.commit
