"""CreateJob's limits and ListJobs' views against a real scheduler process: templates render in bounded,
killable workers off the event loop; parameters and specs have size limits; request ids are per owner."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import grpc
import pytest
from google.protobuf import struct_pb2
from odin_scheduler import limits
from scheduler_testkit import Stub, field_violations, inline, scheduler_env
from support.auth import token_for
from support.clients import channel
from support.processes import ServiceProcess

from odin.runtime.errors import InvalidArgument
from odin.scheduler.v1 import scheduler_pb2 as pb

PIPELINE = "name: p\ntasks:\n  - name: t\n    image: x\n    command: [sleep, '3600']\n"
# Two nested loops of 10^5: hours of work, unless something kills it.
SLOW = "name: {{ n }}\n{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"


@pytest.fixture
def limited(service_factory: Callable[..., ServiceProcess], state_dir: object) -> ServiceProcess:
    env = scheduler_env(state_dir, max_render_seconds="1", executor="instant")  # type: ignore[arg-type]
    return service_factory("scheduler", env)


@pytest.fixture
def api(limited: ServiceProcess) -> Iterator[Stub]:
    with channel(limited.address) as ch:
        yield Stub(ch)


def params(**values: object) -> struct_pb2.Struct:
    found = struct_pb2.Struct()
    found.update(values)
    return found


def test_a_template_bomb_is_refused_quickly_while_other_calls_keep_answering(api: Stub) -> None:
    job = api.CreateJob(inline(PIPELINE)).job
    latencies: list[float] = []
    done = threading.Event()

    def probe() -> None:
        while not done.is_set():
            started = time.monotonic()
            api.GetJob(pb.GetJobRequest(name=job.name), timeout=5)
            latencies.append(time.monotonic() - started)
            time.sleep(0.02)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        for template, field in ((SLOW, "parameters"), ("name: p{{ 'x' * 200000000 }}", "inline.main_yml")):
            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as caught:
                api.CreateJob(inline(template, parameters=params(n="x")), timeout=30)
            elapsed = time.monotonic() - started
            assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            assert field in field_violations(caught.value), field_violations(caught.value)
            assert elapsed < 10, elapsed  # the 1 s limit, plus a fresh worker pool
    finally:
        done.set()
        prober.join()
    assert len(latencies) > 5 and max(latencies) < 0.5, latencies  # the event loop never stalled
    # The renderer recovered from the killed worker.
    templated = PIPELINE.replace("name: p", "name: {{ n }}")
    rendered = api.CreateJob(inline(templated, parameters=params(n="ok"), validate_only=True))
    assert rendered.job.pipeline == "ok"


def test_parameters_are_bounded_in_size_and_depth(api: Stub) -> None:
    with pytest.raises(grpc.RpcError) as big:
        api.CreateJob(inline(PIPELINE, parameters=params(blob="x" * 70_000)))
    assert big.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "at most 65536" in field_violations(big.value)["parameters"]
    nested: object = 1
    for _ in range(12):
        nested = {"a": nested}
    with pytest.raises(grpc.RpcError) as deep:
        api.CreateJob(inline(PIPELINE, parameters=params(top=nested)))
    assert deep.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert any(f.startswith("parameters.top.a") for f in field_violations(deep.value))
    with pytest.raises(grpc.RpcError) as labels:
        api.CreateJob(inline(PIPELINE, labels={f"k{i}": "v" for i in range(40)}))
    assert "labels" in field_violations(labels.value)  # labels were already bounded (32, Kubernetes syntax)


def test_the_rendered_spec_is_bounded(api: Stub) -> None:
    huge = "name: p\ntasks:\n  - name: t\n    image: x\n    command: [echo, {{ v }}]\n    env:\n" + "".join(
        f"      K{i}: '{{{{ v }}}}'\n" for i in range(400))
    with pytest.raises(grpc.RpcError) as caught:
        api.CreateJob(inline(huge, parameters=params(v="y" * 4000)))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "1048576" in field_violations(caught.value)["inline.main_yml"]  # the rendered text's bound


def test_the_stored_spec_is_bounded_too() -> None:
    # A spec can grow past its text (YAML flow style, defaults filled in): the stored JSON has its own bound.
    with pytest.raises(InvalidArgument) as caught:
        limits.check_spec({"tasks": [{"env": {"K": "v" * limits.MAX_SPEC_BYTES}}]}, "pipeline.main_yml")
    assert caught.value.violations[0][0] == "pipeline.main_yml"


def test_list_jobs_is_basic_by_default_and_many_large_jobs_still_list(api: Stub) -> None:
    # Each job's spec is ~900 KB: twelve of them are more than a whole 8 MiB message.
    big = PIPELINE + "    env:\n" + "".join(f"      K{i}: '{'v' * 9000}'\n" for i in range(100))
    names = [api.CreateJob(inline(big, parameters=params(run=i))).job.name for i in range(12)]
    basic = api.ListJobs(pb.ListJobsRequest(page_size=50))
    assert {j.name for j in basic.jobs} == set(names)
    assert all(not j.HasField("spec") and not j.HasField("parameters") for j in basic.jobs)
    assert all(j.project == "projects/default" for j in basic.jobs)
    full: list[pb.Job] = []
    token = ""
    while True:  # FULL pages end before they outgrow a message
        page = api.ListJobs(pb.ListJobsRequest(page_size=50, view=pb.JOB_VIEW_FULL, page_token=token))
        assert 0 < page.ByteSize() < 8 * 1024 * 1024 and len(page.jobs) < 12
        full += page.jobs
        token = page.next_page_token
        if not token:
            break
    assert {j.name for j in full} == set(names)
    assert all(j.spec.fields["tasks"] and "run" in j.parameters.fields for j in full)
    one = api.GetJob(pb.GetJobRequest(name=names[0])).job  # GetJob is FULL unless asked otherwise
    assert one.HasField("spec") and one.parameters.fields["run"].number_value == 0
    assert not api.GetJob(pb.GetJobRequest(name=names[0], view=pb.JOB_VIEW_BASIC)).job.HasField("spec")


def test_request_ids_are_per_owner(limited: ServiceProcess) -> None:
    amy_token, ben_token = token_for("amy", "user"), token_for("ben", "user")
    with channel(limited.address, amy_token) as a, channel(limited.address, ben_token) as b:
        amy, ben = Stub(a), Stub(b)
        mine = amy.CreateJob(inline(PIPELINE, request_id="same")).job
        theirs = ben.CreateJob(inline(PIPELINE, request_id="same")).job
        assert theirs.name != mine.name and theirs.owner == "users/ben"
        assert amy.CreateJob(inline(PIPELINE, request_id="same")).job.name == mine.name


def test_the_project_comes_from_the_request_or_the_pipeline_reference(api: Stub) -> None:
    assert api.CreateJob(inline(PIPELINE, project="projects/red")).job.project == "projects/red"
    assert api.CreateJob(inline(PIPELINE)).job.project == "projects/default"
    conflict = pb.CreateJobRequest(pipeline=pb.PipelineRef(name="projects/blue/pipelines/x"), project="red")
    with pytest.raises(grpc.RpcError) as caught:
        api.CreateJob(conflict)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "project" in field_violations(caught.value)
    listed = api.ListJobs(pb.ListJobsRequest(project="red"))
    assert [j.project for j in listed.jobs] == ["projects/red"]


def test_a_user_outside_a_project_sees_none_of_its_jobs(limited: ServiceProcess, api: Stub) -> None:
    red = api.CreateJob(inline(PIPELINE, project="red")).job
    with channel(limited.address, token_for("amy", "user")) as ch:
        amy = Stub(ch)
        with pytest.raises(grpc.RpcError) as hidden:
            amy.GetJob(pb.GetJobRequest(name=red.name))
        assert hidden.value.code() is grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as creating:
            amy.CreateJob(inline(PIPELINE, project="red"))
        assert creating.value.code() is grpc.StatusCode.NOT_FOUND
        listed = amy.ListJobs(pb.ListJobsRequest(include_total_size=True))
        assert red.name not in {j.name for j in listed.jobs}
        assert listed.total_size == len(listed.jobs)
