"""Pipelines belong to projects: each rule against the servicer (identities built directly) and against a
real odin-pipelines process (tokens with a `prj` claim; run once the verifier reads that claim)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pygit2
import pytest
from odin_pipelines.config import PipelinesConfig
from odin_pipelines.main import ROLES
from odin_pipelines.repository import PipelineRepository
from odin_pipelines.servicer import PipelinesServicer
from pipeline_samples import main_yml
from project_tokens import identity_of, token_of, verifier_reads_projects
from rpc import pipeline, stub
from support.processes import ServiceProcess, start_service
from support.rpc_errors import rpc_failure

from odin.pipeline_spec.render_pool import RenderPool
from odin.pipelines.v1 import pipelines_pb2 as pb
from odin.runtime import auth as runtime_auth
from odin.runtime.errors import OdinError

TEMPLATE = "tasks:\n- name: t\n  image: '{{ image }}'\n  command: [echo]\n"


@dataclass
class Refusal(Exception):
    code: str
    reason: str
    violations: list[tuple[str, str]] = field(default_factory=list)


Invoke = Callable[[str, str, Any], Any]


@dataclass
class Backend:
    """Calls PipelinesService as a named person (project_tokens.PEOPLE); `repo_path` is the git repository."""

    invoke: Invoke
    repo_path: Path

    def call(self, who: str, method: str, request: Any) -> Any:
        return self.invoke(who, method, request)

    def refused(self, who: str, method: str, request: Any) -> Refusal:
        try:
            self.invoke(who, method, request)
        except Refusal as refusal:
            return refusal
        raise AssertionError(f"{who}'s {method} succeeded")

    def tree_paths(self) -> set[str]:
        git = pygit2.Repository(str(self.repo_path))
        head = git[git.lookup_reference("refs/heads/main").target]
        found: set[str] = set()

        def walk(tree: pygit2.Tree, prefix: str) -> None:
            for entry in tree:
                path = f"{prefix}{entry.name}"
                found.add(path)
                if entry.filemode == pygit2.GIT_FILEMODE_TREE:
                    walk(git[entry.id], f"{path}/")

        walk(head.tree, "")
        return found


def _servicer_backend(path: Path) -> Iterator[Backend]:
    config = PipelinesConfig(repo_path=path)
    repo, _ = PipelineRepository.open_or_create(path, "main", config.limits())
    renderer = RenderPool(config.limits(), workers=1)
    servicer = PipelinesServicer(config, repo, None, renderer)

    def invoke(who: str, method: str, request: Any) -> Any:
        identity = identity_of(who)
        # What the interceptor does before the handler: the role table's pre-check and the caller's identity.
        if not runtime_auth.allowed(identity, f"/odin.pipelines.v1.PipelinesService/{method}", ROLES[method]):
            raise Refusal("PERMISSION_DENIED", "ROLE_REQUIRED")
        token = runtime_auth._identity.set(identity)
        try:
            return asyncio.run(getattr(servicer, method)(request, None))
        except OdinError as error:
            raise Refusal(error.code, error.reason, getattr(error, "violations", [])) from None
        finally:
            runtime_auth._identity.reset(token)

    try:
        yield Backend(invoke, path)
    finally:
        renderer.close()


def _process_backend(state: Path) -> Iterator[Backend]:
    if not verifier_reads_projects():
        pytest.skip("odin.runtime.tokens does not read the `prj` claim yet; the servicer backend covers the rules")
    service: ServiceProcess = start_service("pipelines", state / "logs", {
        "ODIN_PIPELINES_REPO_PATH": str(state / "repo")})
    stubs = {}

    def invoke(who: str, method: str, request: Any) -> Any:
        if who not in stubs:
            stubs[who] = stub(service.address, token_of(who))
        try:
            return getattr(stubs[who], method)(request, timeout=15)
        except grpc.RpcError as error:
            failure = rpc_failure(error)
            raise Refusal(failure.code.name, failure.reason, failure.violations) from None

    try:
        yield Backend(invoke, state / "repo")
    finally:
        service.terminate()


@pytest.fixture(scope="module", params=["servicer", "process"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    state = tmp_path_factory.mktemp(f"projects-{request.param}")
    if request.param == "servicer":
        yield from _servicer_backend(state / "repo")
    else:
        yield from _process_backend(state)


def _create(backend: Backend, who: str, pipeline_id: str, project: str = "", **texts: str) -> pb.Pipeline:
    files = texts or {"main.yml": main_yml()}
    created: pb.Pipeline = backend.call(who, "CreatePipeline", pb.CreatePipelineRequest(
        pipeline_id=pipeline_id, project=project, pipeline=pipeline(**files))).pipeline
    return created


def _get(backend: Backend, who: str, name: str) -> pb.Pipeline:
    found: pb.Pipeline = backend.call(who, "GetPipeline", pb.GetPipelineRequest(name=name)).pipeline
    return found


def _listed(backend: Backend, who: str, project: str = "") -> list[str]:
    reply = backend.call(who, "ListPipelines", pb.ListPipelinesRequest(project=project, page_size=500))
    return [p.name for p in reply.pipelines]


def _head(backend: Backend) -> str:
    return str(backend.call("admin", "GetRepository", pb.GetRepositoryRequest()).repository.head.commit)


def test_project_pipelines_live_under_their_project(backend: Backend) -> None:
    created = _create(backend, "alice", "train", "projects/team-a")
    assert (created.name, created.project) == ("projects/team-a/pipelines/train", "projects/team-a")
    assert (created.revision.author_name, created.revision.author_email) == ("alice", "alice@odin")
    assert created.revision.message == "Create pipeline projects/team-a/pipelines/train"
    same_id = _create(backend, "carol", "train")  # the default project's `train` is another pipeline
    assert (same_id.name, same_id.project) == ("pipelines/train", "projects/default")

    assert _listed(backend, "alice", "team-a") == ["projects/team-a/pipelines/train"]
    assert "projects/team-a/pipelines/train" not in _listed(backend, "admin")
    assert _get(backend, "alice", "projects/team-a/pipelines/train").revision.commit == created.revision.commit
    assert _get(backend, "carol", "pipelines/train").revision.commit == same_id.revision.commit
    history = backend.call("alice", "ListPipelineRevisions", pb.ListPipelineRevisionsRequest(
        name="projects/team-a/pipelines/train"))
    assert [r.commit for r in history.revisions] == [created.revision.commit]
    paths = backend.tree_paths()
    assert {"_projects/team-a/train/main.yml", "train/main.yml"} <= paths


def test_members_of_another_project_cannot_read_list_or_change_it(backend: Backend) -> None:
    secret = _create(backend, "alice", "secret", "team-a", **{"main.yml.jinja2": TEMPLATE})
    name = "projects/team-a/pipelines/secret"
    missing = "projects/team-a/pipelines/never-created"
    for who in ("bob", "carol"):  # bob: a user of team-b; carol: a user of the default project only
        for target in (name, missing):  # an existing pipeline looks exactly like a missing one
            for method, request in (
                ("GetPipeline", pb.GetPipelineRequest(name=target)),
                ("ListPipelineRevisions", pb.ListPipelineRevisionsRequest(name=target)),
                ("RenderPipeline", pb.RenderPipelineRequest(name=target)),
                ("ValidatePipeline", pb.ValidatePipelineRequest(name=target)),
                ("UpdatePipeline", pb.UpdatePipelineRequest(
                    name=target, expected_revision=_head(backend),
                    upsert_files=[pb.PipelineFile(path="main.yml.jinja2", content="tasks: []\n")])),
                ("DeletePipeline", pb.DeletePipelineRequest(name=target, expected_revision=_head(backend))),
            ):
                refused = backend.refused(who, method, request)
                assert (refused.code, refused.reason) == ("NOT_FOUND", "PIPELINE_NOT_FOUND"), (who, method)
        listing = backend.refused(who, "ListPipelines", pb.ListPipelinesRequest(project="team-a"))
        assert listing.code == "NOT_FOUND"
        create = backend.refused(who, "CreatePipeline", pb.CreatePipelineRequest(
            pipeline_id="injected", project="team-a", pipeline=pipeline(**{"main.yml": main_yml()})))
        assert create.code == "NOT_FOUND"
    after = _get(backend, "alice", name)
    assert after.revision.commit == secret.revision.commit
    assert [f.content for f in after.files] == [TEMPLATE]
    assert "projects/team-a/pipelines/injected" not in _listed(backend, "alice", "team-a")
    assert not any("injected" in path for path in backend.tree_paths())


def test_a_viewer_reads_but_cannot_write(backend: Backend) -> None:
    made = _create(backend, "alice", "viewed", "team-a")
    name = "projects/team-a/pipelines/viewed"
    assert _get(backend, "vera", name).revision.commit == made.revision.commit
    assert name in _listed(backend, "vera", "projects/team-a")
    verdict = backend.call("vera", "ValidatePipeline", pb.ValidatePipelineRequest(name=name))
    assert not verdict.violations
    head = _head(backend)
    for method, request in (
        ("CreatePipeline", pb.CreatePipelineRequest(pipeline_id="by-vera", project="team-a",
                                                    pipeline=pipeline(**{"main.yml": main_yml()}))),
        ("UpdatePipeline", pb.UpdatePipelineRequest(name=name, expected_revision=head,
                                                    upsert_files=[pb.PipelineFile(path="x", content="y")])),
        ("DeletePipeline", pb.DeletePipelineRequest(name=name, expected_revision=head)),
    ):
        refused = backend.refused("vera", method, request)
        assert (refused.code, refused.reason) == ("PERMISSION_DENIED", "PROJECT_ROLE_REQUIRED"), method
    assert _head(backend) == head


def test_the_default_project_works_as_before(backend: Backend) -> None:
    created = _create(backend, "carol", "plain")
    assert (created.name, created.project) == ("pipelines/plain", "projects/default")
    assert created.revision.message == "Create pipeline plain"
    for project in ("", "default", "projects/default"):
        assert "pipelines/plain" in _listed(backend, "carol", project)
    long_form = _get(backend, "carol", "projects/default/pipelines/plain")
    assert long_form.name == "pipelines/plain"  # responses keep the short name
    updated = backend.call("carol", "UpdatePipeline", pb.UpdatePipelineRequest(
        name="projects/default/pipelines/plain", expected_revision=long_form.etag,
        upsert_files=[pb.PipelineFile(path="notes", content="n")])).pipeline
    assert updated.name == "pipelines/plain" and updated.revision.message == "Update pipeline plain"
    assert "plain/notes" in backend.tree_paths()
    # everyone reads the default project with their global role: alice is a global viewer
    assert _get(backend, "alice", "pipelines/plain").revision.commit == updated.revision.commit
    denied = backend.refused("alice", "DeletePipeline", pb.DeletePipelineRequest(
        name="pipelines/plain", expected_revision=updated.etag))
    assert (denied.code, denied.reason) == ("PERMISSION_DENIED", "PROJECT_ROLE_REQUIRED")


@pytest.mark.parametrize("project", ["..", "../team-b", "_projects", "team-a/../team-b", "projects/../x",
                                     "team-a/x", "Team-A", "a.b", "projects/"])
def test_a_project_id_cannot_traverse(backend: Backend, project: str) -> None:
    head = _head(backend)
    refused = backend.refused("admin", "CreatePipeline", pb.CreatePipelineRequest(
        pipeline_id="trav", project=project, pipeline=pipeline(**{"main.yml": main_yml()})))
    assert (refused.code, refused.violations[0][0]) == ("INVALID_ARGUMENT", "project")
    listing = backend.refused("admin", "ListPipelines", pb.ListPipelinesRequest(project=project))
    assert (listing.code, listing.violations[0][0]) == ("INVALID_ARGUMENT", "project")
    assert _head(backend) == head


@pytest.mark.parametrize("name", ["projects/../pipelines/x", "projects/team-a/pipelines/../../train",
                                  "pipelines/_projects", "projects/team-a/pipelines/_projects",
                                  "projects/_projects/pipelines/team-a", "projects/team-a/pipelines/train/main.yml",
                                  "pipelines/../_projects/team-a/train"])
def test_a_name_cannot_traverse(backend: Backend, name: str) -> None:
    refused = backend.refused("admin", "GetPipeline", pb.GetPipelineRequest(name=name))
    assert (refused.code, refused.violations[0][0]) == ("INVALID_ARGUMENT", "name")
    delete = backend.refused("admin", "DeletePipeline", pb.DeletePipelineRequest(name=name, expected_revision="x"))
    assert delete.code == "INVALID_ARGUMENT"
    bad_id = backend.refused("admin", "CreatePipeline", pb.CreatePipelineRequest(
        pipeline_id="_projects", pipeline=pipeline(**{"main.yml": main_yml()})))
    assert (bad_id.code, bad_id.violations[0][0]) == ("INVALID_ARGUMENT", "pipeline_id")


def test_the_repository_calls_need_an_admin(backend: Backend) -> None:
    for method, request in (("GetRepository", pb.GetRepositoryRequest()),
                            ("SyncRepository", pb.SyncRepositoryRequest())):
        for who in ("carol", "alice"):
            refused = backend.refused(who, method, request)
            assert refused.code == "PERMISSION_DENIED", (who, method)
        assert backend.call("admin", method, request).repository.branch == "main"


def test_deleting_a_projects_last_pipeline_leaves_no_directory(backend: Backend) -> None:
    made = _create(backend, "bob", "only", "team-b")
    backend.call("bob", "DeletePipeline", pb.DeletePipelineRequest(name=made.name, expected_revision=made.etag))
    assert not any(path.startswith("_projects/team-b") for path in backend.tree_paths())
    assert _listed(backend, "bob", "team-b") == []



def _old_layout_repository(path: Path) -> tuple[str, str]:
    """A repository as the service wrote it before projects: pipelines as top-level directories, plus a
    README. Returns the commits that last changed `legacy` and `other`."""
    git = pygit2.init_repository(str(path), bare=True, initial_head="main")
    signature = pygit2.Signature("dana", "dana@odin", 1_700_000_000, 0)

    def directory(files: dict[str, bytes]) -> pygit2.Oid:
        builder = git.TreeBuilder()
        for name, data in files.items():
            builder.insert(name, git.create_blob(data), pygit2.GIT_FILEMODE_BLOB)
        oid: pygit2.Oid = builder.write()
        return oid

    def commit(entries: dict[str, pygit2.Oid], readme: bytes, parents: list[pygit2.Oid], message: str
               ) -> pygit2.Oid:
        root = git.TreeBuilder()
        root.insert("README.md", git.create_blob(readme), pygit2.GIT_FILEMODE_BLOB)
        for name, oid in entries.items():
            root.insert(name, oid, pygit2.GIT_FILEMODE_TREE)
        made: pygit2.Oid = git.create_commit("refs/heads/main", signature, signature, message, root.write(),
                                             parents)
        return made

    legacy = directory({"main.yml": main_yml(name="legacy-flow").encode()})
    first = commit({"legacy": legacy}, b"old", [], "Create pipeline legacy\n")
    other = directory({"main.yml": main_yml("other").encode()})
    second = commit({"legacy": legacy, "other": other}, b"old", [first], "Create pipeline other\n")
    return str(first), str(second)


def test_a_repository_made_before_projects_works_unchanged(service_factory: Callable[..., ServiceProcess],
                                                           tmp_path: Path) -> None:
    repo_path = tmp_path / "old.git"
    legacy_commit, other_commit = _old_layout_repository(repo_path)
    service = service_factory("pipelines", {"ODIN_PIPELINES_REPO_PATH": str(repo_path)})
    carol = stub(service.address, token_of("carol"))  # a user of the default project, no memberships
    listed = carol.ListPipelines(pb.ListPipelinesRequest(), timeout=10).pipelines
    assert [(p.name, p.project, p.revision.commit) for p in listed] == [
        ("pipelines/legacy", "projects/default", legacy_commit), ("pipelines/other", "projects/default", other_commit)]
    assert listed[0].display_name == "legacy-flow"
    history = carol.ListPipelineRevisions(pb.ListPipelineRevisionsRequest(name="pipelines/legacy"), timeout=10)
    assert [r.commit for r in history.revisions] == [legacy_commit]
    same = carol.GetPipeline(pb.GetPipelineRequest(name="projects/default/pipelines/legacy"), timeout=10).pipeline
    assert same.name == "pipelines/legacy" and same.revision.author_name == "dana"

    # writes go on in place: the old pipelines are not moved, and a project's land beside them
    admin = stub(service.address)
    admin.CreatePipeline(pb.CreatePipelineRequest(pipeline_id="legacy", project="team-a", pipeline=pipeline(
        **{"main.yml": main_yml()})), timeout=10)
    edited = carol.UpdatePipeline(pb.UpdatePipelineRequest(
        name="pipelines/other", expected_revision=_repo_head(repo_path),
        upsert_files=[pb.PipelineFile(path="notes", content="n")]), timeout=10).pipeline
    assert edited.name == "pipelines/other"
    after = {p.name: p.revision.commit for p in carol.ListPipelines(pb.ListPipelinesRequest(), timeout=10).pipelines}
    assert after == {"pipelines/legacy": legacy_commit, "pipelines/other": edited.revision.commit}
    git = pygit2.Repository(str(repo_path))
    root = git[git.lookup_reference("refs/heads/main").target].tree
    assert sorted(e.name for e in root) == ["README.md", "_projects", "legacy", "other"]
    assert "_projects/team-a/legacy/main.yml" in root


def _repo_head(path: Path) -> str:
    git = pygit2.Repository(str(path))
    return str(git.lookup_reference("refs/heads/main").target)
