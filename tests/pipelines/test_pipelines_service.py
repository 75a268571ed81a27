"""Every RPC against a real odin-pipelines process, through gRPC with real tokens."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from google.protobuf import struct_pb2
from pipeline_samples import main_yml
from rpc import failure, pipeline, pipeline_files, stub
from support import auth
from support.processes import ServiceProcess

from odin.pipelines.v1 import pipelines_pb2 as pb

BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(8)) + "tasks: *i\n"


def params(**values: object) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(values)
    return struct


def test_samples_are_seeded_and_valid(pipelines_service: ServiceProcess) -> None:
    api = stub(pipelines_service.address)
    listed = api.ListPipelines(pb.ListPipelinesRequest(), timeout=10).pipelines
    names = [p.name for p in listed]
    for sample in ("pipelines/bert-ner", "pipelines/imagenet-elastic", "pipelines/sst2"):
        assert sample in names
        verdict = api.ValidatePipeline(pb.ValidatePipelineRequest(name=sample), timeout=10)
        assert not verdict.violations and verdict.task_order
    sst2 = api.GetPipeline(pb.GetPipelineRequest(name="pipelines/sst2"), timeout=10).pipeline
    assert {f.path for f in sst2.files} == {"main.yml", "sst2.yml"}
    assert sst2.revision.author_name == "odin" and sst2.etag


def test_create_get_update_history_delete(pipelines_service: ServiceProcess) -> None:
    alice = stub(pipelines_service.address, auth.token_for("alice", "user"))
    created = alice.CreatePipeline(pb.CreatePipelineRequest(
        pipeline_id="crud", pipeline=pipeline(**{"main.yml": main_yml(name="crud-flow"), "conf/a.yml": "x: 1\n"}),
        message="Add crud"), timeout=10).pipeline
    assert created.name == "pipelines/crud" and created.display_name == "crud-flow" and not created.templated
    assert (created.revision.author_name, created.revision.author_email) == ("alice", "alice@odin")
    assert created.revision.message == "Add crud" and created.etag == created.revision.commit

    updated = alice.UpdatePipeline(pb.UpdatePipelineRequest(
        name="pipelines/crud", expected_revision=created.etag,
        upsert_files=[pb.PipelineFile(path="conf/b.yml", content="y: 2\n")], delete_paths=["conf/a.yml"]),
        timeout=10).pipeline
    assert {f.path for f in updated.files} == {"main.yml", "conf/b.yml"}
    assert updated.revision.message == "Update pipeline crud"

    old = alice.GetPipeline(pb.GetPipelineRequest(name="pipelines/crud", revision=created.etag), timeout=10).pipeline
    assert {f.path for f in old.files} == {"main.yml", "conf/a.yml"}
    assert old.revision.commit == created.etag and old.etag == updated.etag

    deleted = alice.DeletePipeline(pb.DeletePipelineRequest(name="pipelines/crud", expected_revision=updated.etag),
                                   timeout=10).revision
    history = alice.ListPipelineRevisions(pb.ListPipelineRevisionsRequest(name="pipelines/crud", page_size=2),
                                          timeout=10)
    assert [r.commit for r in history.revisions] == [deleted.commit, updated.etag] and history.next_page_token
    rest = alice.ListPipelineRevisions(pb.ListPipelineRevisionsRequest(
        name="pipelines/crud", page_size=2, page_token=history.next_page_token), timeout=10)
    assert [r.commit for r in rest.revisions] == [created.etag] and not rest.next_page_token
    gone = failure(lambda: alice.GetPipeline(pb.GetPipelineRequest(name="pipelines/crud"), timeout=10))
    assert (gone.code, gone.reason) == (grpc.StatusCode.NOT_FOUND, "PIPELINE_NOT_FOUND")


def test_errors_carry_reasons_and_field_paths(pipelines_service: ServiceProcess) -> None:
    api = stub(pipelines_service.address)
    traversal = failure(lambda: api.CreatePipeline(pb.CreatePipelineRequest(
        pipeline_id="evil", pipeline=pipeline_files(("main.yml", main_yml()), ("../../etc/passwd", "x"),
                                                    (".git/hooks/post-commit", "x"), ("/abs", "x"))), timeout=10))
    assert traversal.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in traversal.violations] == ["pipeline.files[1].path", "pipeline.files[2].path",
                                                    "pipeline.files[3].path"]
    bad_id = failure(lambda: api.CreatePipeline(pb.CreatePipelineRequest(
        pipeline_id="../x", pipeline=pipeline(**{"main.yml": main_yml()})), timeout=10))
    assert bad_id.violations[0][0] == "pipeline_id"
    typo = "tasks:\n- name: a\n  image: x\n  command: c\n  depends: trian\n"
    invalid = failure(lambda: api.CreatePipeline(pb.CreatePipelineRequest(
        pipeline_id="invalid", pipeline=pipeline(**{"main.yml": typo})), timeout=10))
    assert (invalid.code, invalid.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "PIPELINE_INVALID")
    assert invalid.violations[0][0] == "pipeline.files[0].content" and "trian" in invalid.violations[0][1]
    too_big = failure(lambda: api.CreatePipeline(pb.CreatePipelineRequest(
        pipeline_id="big", pipeline=pipeline(**{"main.yml": main_yml(), "data": "x" * (1024 * 1024 + 1)})),
        timeout=10))
    assert too_big.violations[0][0] == "pipeline.files[1].content"
    negative = failure(lambda: api.ListPipelines(pb.ListPipelinesRequest(page_size=-1), timeout=10))
    assert negative.violations == [("page_size", "must not be negative")]
    missing = failure(lambda: api.GetPipeline(pb.GetPipelineRequest(name="pipelines/sst2", revision="nope"),
                                              timeout=10))
    assert (missing.code, missing.reason) == (grpc.StatusCode.NOT_FOUND, "REVISION_NOT_FOUND")
    exists = failure(lambda: api.CreatePipeline(pb.CreatePipelineRequest(
        pipeline_id="sst2", pipeline=pipeline(**{"main.yml": main_yml()})), timeout=10))
    assert (exists.code, exists.reason) == (grpc.StatusCode.ALREADY_EXISTS, "PIPELINE_EXISTS")
    stale = failure(lambda: api.UpdatePipeline(pb.UpdatePipelineRequest(
        name="pipelines/sst2", expected_revision="0" * 40, upsert_files=[pb.PipelineFile(path="x", content="y")]),
        timeout=10))
    assert (stale.code, stale.reason) == (grpc.StatusCode.ABORTED, "REVISION_MISMATCH")


def test_billion_laughs_is_refused_quickly(pipelines_service: ServiceProcess) -> None:
    api = stub(pipelines_service.address)
    started = time.monotonic()
    refused = failure(lambda: api.CreatePipeline(pb.CreatePipelineRequest(
        pipeline_id="laughs", pipeline=pipeline(**{"main.yml": BILLION_LAUGHS})), timeout=10))
    verdict = api.ValidatePipeline(pb.ValidatePipelineRequest(pipeline=pipeline(**{"main.yml": BILLION_LAUGHS})),
                                   timeout=10)
    assert time.monotonic() - started < 2
    assert refused.code == grpc.StatusCode.INVALID_ARGUMENT
    assert verdict.violations and verdict.violations[0].field == "yaml"


def test_roles_are_enforced(pipelines_service: ServiceProcess) -> None:
    viewer = stub(pipelines_service.address, auth.token_for("vic", "viewer"))
    assert viewer.ListPipelines(pb.ListPipelinesRequest(), timeout=10).pipelines
    denied = failure(lambda: viewer.CreatePipeline(pb.CreatePipelineRequest(
        pipeline_id="nope", pipeline=pipeline(**{"main.yml": main_yml()})), timeout=10))
    assert denied.code == grpc.StatusCode.PERMISSION_DENIED
    anonymous = failure(lambda: stub(pipelines_service.address, None).ListPipelines(pb.ListPipelinesRequest(),
                                                                                    timeout=10))
    assert anonymous.code == grpc.StatusCode.UNAUTHENTICATED


def test_concurrent_updates_one_wins_nothing_lost(pipelines_service: ServiceProcess) -> None:
    api = stub(pipelines_service.address)
    base = api.CreatePipeline(pb.CreatePipelineRequest(
        pipeline_id="race", pipeline=pipeline(**{"main.yml": main_yml(), "n": "0"})), timeout=10).pipeline
    barrier = threading.Barrier(6)

    def edit(n: int) -> str:
        barrier.wait()
        try:
            return str(api.UpdatePipeline(pb.UpdatePipelineRequest(
                name="pipelines/race", expected_revision=base.etag,
                upsert_files=[pb.PipelineFile(path="n", content=str(n + 1))]), timeout=10).pipeline.etag)
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.ABORTED
            return "aborted"

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(edit, range(6)))
    winners = [r for r in results if r != "aborted"]
    assert len(winners) == 1
    history = api.ListPipelineRevisions(pb.ListPipelineRevisionsRequest(name="pipelines/race"), timeout=10)
    assert [r.commit for r in history.revisions] == [winners[0], base.etag]
    # the loser re-reads and retries: nothing lost
    fresh = api.GetPipeline(pb.GetPipelineRequest(name="pipelines/race"), timeout=10).pipeline
    retried = api.UpdatePipeline(pb.UpdatePipelineRequest(
        name="pipelines/race", expected_revision=fresh.etag,
        upsert_files=[pb.PipelineFile(path="m", content="retry")]), timeout=10).pipeline
    assert {f.path: f.content for f in retried.files}["m"] == "retry"


def test_validate_inline_reports_paths(pipelines_service: ServiceProcess) -> None:
    api = stub(pipelines_service.address)
    text = "tasks:\n- name: a\n  image: x\n  command: c\n- name: b\n  image: x\n  command: c\n  depends: [a, trian]\n"
    verdict = api.ValidatePipeline(pb.ValidatePipelineRequest(pipeline=pipeline(**{"main.yml": text})), timeout=10)
    assert [v.field for v in verdict.violations] == ["tasks[1].depends"]
    assert "trian" in verdict.violations[0].description
    good = "tasks:\n- name: b\n  image: x\n  command: c\n  depends: a\n- name: a\n  image: x\n  command: c\n"
    verdict = api.ValidatePipeline(pb.ValidatePipelineRequest(pipeline=pipeline(**{"main.yml": good})), timeout=10)
    assert not verdict.violations and list(verdict.task_order) == ["a", "b"]
    refused = failure(lambda: api.ValidatePipeline(pb.ValidatePipelineRequest(
        pipeline=pipeline_files(("main.yml", good), ("a/../../x", "y"))), timeout=10))
    assert refused.violations[0][0] == "pipeline.files[1].path"


TEMPLATE = ("name: {{ name }}\ntasks:\n- name: train\n  image: \"{{ 'meadml/mead2-' ~ backend|default('pytorch') }}\"\n"
            "  command: [mead-train]\n  args: [--epochs, '{{ epochs }}']\n")


def test_templated_pipelines_render_and_validate(pipelines_service: ServiceProcess) -> None:
    api = stub(pipelines_service.address)
    created = api.CreatePipeline(pb.CreatePipelineRequest(
        pipeline_id="tmpl", pipeline=pipeline(**{"main.yml.jinja2": TEMPLATE, "conf.yml.jinja2": "e: {{ epochs }}",
                                                  "plain.yml": "{{ kept }}"})), timeout=10).pipeline
    assert created.templated and not created.display_name
    rendered = api.RenderPipeline(pb.RenderPipelineRequest(name="pipelines/tmpl", parameters=params(epochs=3)),
                                  timeout=10)
    out = {f.path: f.content for f in rendered.files}
    assert set(out) == {"main.yml", "conf.yml", "plain.yml"}
    assert "name: tmpl" in out["main.yml"] and "meadml/mead2-pytorch" in out["main.yml"] and "'3'" in out["main.yml"]
    assert out["conf.yml"] == "e: 3" and out["plain.yml"] == "{{ kept }}"
    assert rendered.revision.commit == created.revision.commit
    undefined = failure(lambda: api.RenderPipeline(pb.RenderPipelineRequest(name="pipelines/tmpl"), timeout=10))
    assert (undefined.code, undefined.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "TEMPLATE_INVALID")
    assert undefined.violations[0][0] == "parameters" and "epochs" in undefined.violations[0][1]
    verdict = api.ValidatePipeline(pb.ValidatePipelineRequest(name="pipelines/tmpl", parameters=params(epochs=1)),
                                   timeout=10)
    assert not verdict.violations and list(verdict.task_order) == ["train"]
    verdict = api.ValidatePipeline(pb.ValidatePipelineRequest(name="pipelines/tmpl"), timeout=10)
    assert verdict.violations[0].field == "parameters"


def test_render_refuses_sandbox_escapes(pipelines_service: ServiceProcess) -> None:
    api = stub(pipelines_service.address)
    api.CreatePipeline(pb.CreatePipelineRequest(pipeline_id="escape", pipeline=pipeline(**{
        "main.yml.jinja2": "name: \"{{ ''.__class__.__mro__[1].__subclasses__() }}\"\ntasks: []\n"})), timeout=10)
    refused = failure(lambda: api.RenderPipeline(pb.RenderPipelineRequest(name="pipelines/escape"), timeout=10))
    assert (refused.code, refused.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "TEMPLATE_INVALID")
    assert "__class__" in refused.violations[0][1] and "not allowed" in refused.violations[0][1]


def test_list_pages_and_prefix(pipelines_service: ServiceProcess) -> None:
    api = stub(pipelines_service.address)
    for n in range(5):
        api.CreatePipeline(pb.CreatePipelineRequest(pipeline_id=f"page-{n}", pipeline=pipeline(
            **{"main.yml": main_yml()})), timeout=10)
    seen, token = [], ""
    while True:
        page = api.ListPipelines(pb.ListPipelinesRequest(prefix="page-", page_size=2, page_token=token), timeout=10)
        seen += [p.name for p in page.pipelines]
        token = page.next_page_token
        if not token:
            break
    assert seen == [f"pipelines/page-{n}" for n in range(5)]
    foreign = failure(lambda: api.ListPipelines(pb.ListPipelinesRequest(prefix="x", page_token=token or "abc"),
                                                timeout=10))
    assert foreign.code == grpc.StatusCode.INVALID_ARGUMENT


def test_repository_without_remote(pipelines_service: ServiceProcess) -> None:
    api = stub(pipelines_service.address)
    repository = api.SyncRepository(pb.SyncRepositoryRequest(), timeout=10).repository
    assert repository.sync_state == pb.Repository.SYNC_STATE_NO_REMOTE and repository.branch == "main"
    assert repository.head.commit == api.GetRepository(pb.GetRepositoryRequest(), timeout=10).repository.head.commit


def test_grpcurl_lists_pipelines(pipelines_service: ServiceProcess, grpcurl: str) -> None:
    result = subprocess.run(
        [grpcurl, "-plaintext", "-H", f"authorization: Bearer {auth.default_token()}", "-d",
         json.dumps({"name": "pipelines/sst2"}), pipelines_service.address,
         "odin.pipelines.v1.PipelinesService/GetPipeline"], capture_output=True, text=True, timeout=30, check=True)
    answer = json.loads(result.stdout)
    assert answer["pipeline"]["name"] == "pipelines/sst2"
    assert {f["path"] for f in answer["pipeline"]["files"]} == {"main.yml", "sst2.yml"}


@pytest.mark.parametrize("timeout_s", [5])
def test_health_reports_the_repository(pipelines_service: ServiceProcess, timeout_s: int) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(pipelines_service.address) as chan:
        reply = health_pb2_grpc.HealthStub(chan).Check(health_pb2.HealthCheckRequest(
            service="odin.pipelines.v1.PipelinesService"), timeout=timeout_s)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
