"""A real odin-pipelines process with an upstream remote: push after commit, periodic pull, divergence."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipeline_samples import SAMPLES, main_yml
from rpc import pipeline, stub
from support.processes import ServiceProcess
from support.waiting import assert_eventually
from test_sync import commit_upstream, upstream_head

from odin.pipelines.v1 import pipelines_pb2 as pb


def test_push_pull_and_divergence(service_factory: Callable[..., ServiceProcess], tmp_path: Path,
                                  upstream_path: Path) -> None:
    seeded = commit_upstream(upstream_path, "from-upstream", main_yml(), "already upstream")
    service = service_factory("pipelines", {
        "ODIN_PIPELINES_REPO_PATH": str(tmp_path / "repo"),
        "ODIN_PIPELINES_REMOTE": str(upstream_path),
        "ODIN_PIPELINES_SYNC_INTERVAL_SECONDS": "0.2",
        "ODIN_PIPELINES_SEED_PATH": str(SAMPLES),
    })
    api = stub(service.address)
    # start-up adopted the upstream history, then seeded on top of it and pushed the seed
    repository = api.GetRepository(pb.GetRepositoryRequest(), timeout=10).repository
    assert repository.sync_state == pb.Repository.SYNC_STATE_IN_SYNC and repository.remote == str(upstream_path)
    assert upstream_head(upstream_path) == repository.head.commit != seeded
    assert api.GetPipeline(pb.GetPipelineRequest(name="pipelines/from-upstream"), timeout=10).pipeline.files

    # a commit through the service is pushed at once
    created = api.CreatePipeline(pb.CreatePipelineRequest(
        pipeline_id="local", pipeline=pipeline(**{"main.yml": main_yml()})), timeout=10).pipeline
    assert upstream_head(upstream_path) == created.etag

    # a commit made directly upstream is pulled by the interval
    pushed = commit_upstream(upstream_path, "remote-only", main_yml("r"), "pushed with plain git")
    assert_eventually(lambda: api.GetRepository(pb.GetRepositoryRequest(), timeout=10).repository.head.commit
                      == pushed, what="the periodic pull fast-forwards")
    assert api.GetPipeline(pb.GetPipelineRequest(name="pipelines/remote-only"), timeout=10).pipeline.revision \
        .author_name == "carol"

    # both sides move: reported as DIVERGED, nothing overwritten
    theirs = commit_upstream(upstream_path, "theirs", main_yml(), "theirs")
    service.terminate()
    service = service_factory("pipelines", {**service.env, "ODIN_PIPELINES_SYNC_INTERVAL_SECONDS": "0",
                                            "ODIN_PIPELINES_PULL_BEFORE_WRITE": "false"})
    api = stub(service.address)
    assert api.GetRepository(pb.GetRepositoryRequest(), timeout=10).repository.head.commit == theirs
    commit_upstream(upstream_path, "theirs-2", main_yml(), "theirs again")
    ours = api.CreatePipeline(pb.CreatePipelineRequest(
        pipeline_id="ours", pipeline=pipeline(**{"main.yml": main_yml()})), timeout=10).pipeline.etag
    repository = api.SyncRepository(pb.SyncRepositoryRequest(), timeout=10).repository
    assert repository.sync_state == pb.Repository.SYNC_STATE_DIVERGED
    assert "nothing was overwritten" in repository.sync_message
    assert repository.head.commit == ours and upstream_head(upstream_path) != ours
    assert api.GetPipeline(pb.GetPipelineRequest(name="pipelines/ours"), timeout=10).pipeline.files


def test_a_bad_seed_stops_start_up_and_creates_nothing(service_factory: Callable[..., ServiceProcess],
                                                         tmp_path: Path) -> None:
    seed = tmp_path / "seed" / "evil"
    seed.mkdir(parents=True)
    (seed / "main.yml").write_text(main_yml())
    (seed / "blob.bin").write_bytes(b"\xff\xfe")
    service = service_factory("pipelines", {"ODIN_PIPELINES_REPO_PATH": str(tmp_path / "repo"),
                                            "ODIN_PIPELINES_SEED_PATH": str(tmp_path / "seed")}, wait_healthy=False)
    assert service.process.wait(30) == 2
    assert "blob.bin is not UTF-8" in service.log_text()
    assert not (tmp_path / "repo").exists()
