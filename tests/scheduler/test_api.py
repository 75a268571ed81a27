"""SchedulerService end to end against a real `odin-scheduler` process with the local executor."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2
from scheduler_testkit import Stub, field_violations, inline, pipeline, task_yaml, tasks_of, wait_job

from odin.scheduler.v1 import scheduler_pb2 as pb

S = pb.Task


def test_a_job_runs_its_tasks_in_dependency_order_and_passes_outputs(stub: Stub) -> None:
    yml = pipeline(
        "demo",
        task_yaml("make", """echo making; echo '{"answer": 42}' > $$ODIN_OUTPUTS"""),
        task_yaml("use", 'echo "got $$0 in $$PWD as $$ODIN_TASK_ID"', 'args: ["^make.outputs.answer"]'),
    )
    job = stub.CreateJob(inline(yml), timeout=10).job
    assert job.name.startswith("jobs/demo-") and len(job.name) == len("jobs/demo-") + 8
    assert job.state == pb.Job.STATE_PENDING and job.owner == "users/test-admin" and job.spec["name"] == "demo"
    done = wait_job(stub, job.name)
    assert done.state == pb.Job.STATE_SUCCEEDED and done.task_counts.succeeded == 2
    tasks = tasks_of(stub, job.name)
    assert tasks["make"].outputs["answer"] == 42 and tasks["make"].exit_code == 0
    assert list(tasks["use"].args) == ["42"] and tasks["use"].resource_type == "Process"
    assert tasks["use"].start_time.ToNanoseconds() >= tasks["make"].end_time.ToNanoseconds()
    log = "".join(m.data for m in stub.StreamTaskLogs(pb.StreamTaskLogsRequest(name=f"{job.name}/tasks/use")))
    job_id = job.name.removeprefix("jobs/")
    assert log == f"got 42 in {Path(log.split(' in ')[1].split(' as ')[0])} as {job_id}--use\n"
    assert log.split(" in ")[1].startswith("/") and f"/{job_id}/{job_id}--use " in log


def test_events_are_a_gapless_ordered_history(stub: Stub) -> None:
    job = stub.CreateJob(inline(pipeline("ev", task_yaml("a", "true"), task_yaml("b", "true", "depends: a"))))
    wait_job(stub, job.job.name)
    events = stub.ListJobEvents(pb.ListJobEventsRequest(parent=job.job.name), timeout=5).events
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    story = [(e.task.rsplit("/", 1)[-1] if e.task else "job", e.task_state or e.job_state) for e in events]
    assert story == [
        ("job", pb.Job.STATE_PENDING), ("a", S.STATE_QUEUED), ("job", pb.Job.STATE_RUNNING), ("a", S.STATE_RUNNING),
        ("a", S.STATE_SUCCEEDED), ("b", S.STATE_QUEUED), ("b", S.STATE_RUNNING), ("b", S.STATE_SUCCEEDED),
        ("job", pb.Job.STATE_SUCCEEDED),
    ]  # fmt: skip
    page = stub.ListJobEvents(pb.ListJobEventsRequest(parent=job.job.name, page_size=4, after_seq=seqs[0]))
    assert [e.seq for e in page.events] == seqs[1:5] and page.next_page_token
    rest = stub.ListJobEvents(pb.ListJobEventsRequest(parent=job.job.name, page_size=100, after_seq=seqs[0],
                                                      page_token=page.next_page_token))  # fmt: skip
    assert [e.seq for e in rest.events] == seqs[5:] and not rest.next_page_token


BAD_PIPELINES = {
    "tasks:\n  - name: a\n    image: x\n    command: x\n    depends: trian\n": "inline.main_yml.tasks[0].depends",
    "tasks:\n  - name: a\n    image: x\n    command: x\n    args: ['${NOPE}']\n": "inline.main_yml.tasks[0].args[0]",
    "tasks: [{name: a, image: x, command: x, depends: b}, {name: b, image: x, command: x, depends: a}]":
        "inline.main_yml.tasks",
    "tasks: [{name: a, image: x, command: x}, {name: a, image: x, command: x}]": "inline.main_yml.tasks[1].name",
    "tasks: [": "inline.main_yml",
    "": "inline.main_yml",
}  # fmt: skip


@pytest.mark.parametrize("main_yml", list(BAD_PIPELINES))
def test_bad_pipelines_are_invalid_argument_with_field_paths_and_store_nothing(
    stub: Stub, state_dir: Path, main_yml: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.CreateJob(inline(main_yml, request_id="bad-1"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(caught.value)
    assert any(f.startswith(BAD_PIPELINES[main_yml]) for f in violations), violations
    assert stub.ListJobs(pb.ListJobsRequest(include_total_size=True), timeout=5).total_size == 0
    assert not [p for p in (state_dir / "runs").glob("*") if p.name != ".pipelines"] or _only_empty(state_dir / "runs")


def _only_empty(runs: Path) -> bool:
    return all(not any(p.iterdir()) for p in runs.glob("**/") if p != runs and p.name == ".pipelines")


BAD_REQUESTS = [
    (pb.CreateJobRequest(), "source"),
    (inline("tasks: [{name: a, image: x, command: x}]", labels={"Bad Key": "v"}), "labels['Bad Key']"),
    (inline("tasks: [{name: a, image: x, command: x}]", options=pb.JobOptions(parallelism=-1)), "options.parallelism"),
    (inline("tasks: [{name: a, image: x, command: x}]",
            options=pb.JobOptions(timeout=duration_pb2.Duration(seconds=-1))), "options.timeout"),
    (pb.CreateJobRequest(inline=pb.InlinePipeline(main_yml="tasks: [{name: a, image: x, command: x}]",
                                                  files={"../escape": "x"})), "inline.files['../escape']"),
]  # fmt: skip


@pytest.mark.parametrize(("request_", "field"), BAD_REQUESTS)
def test_bad_requests_name_the_field(stub: Stub, request_: pb.CreateJobRequest, field: str) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.CreateJob(request_, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(caught.value)
    assert stub.ListJobs(pb.ListJobsRequest(include_total_size=True), timeout=5).total_size == 0


def test_other_bad_requests(stub: Stub) -> None:
    for call, request_, field in [
        (stub.GetJob, pb.GetJobRequest(name="nope"), "name"),
        (stub.ListJobs, pb.ListJobsRequest(page_size=-1), "page_size"),
        (stub.ListJobs, pb.ListJobsRequest(labels=["novalue"]), "labels[0]"),
        (stub.ListJobs, pb.ListJobsRequest(page_token="garbage"), "page_token"),
        (stub.GetTask, pb.GetTaskRequest(name="jobs/x"), "name"),
    ]:
        with pytest.raises(grpc.RpcError) as caught:
            call(request_, timeout=5)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, request_
        assert field in field_violations(caught.value)
    with pytest.raises(grpc.RpcError) as missing:
        stub.GetJob(pb.GetJobRequest(name="jobs/nope-12345678"), timeout=5)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def test_request_id_makes_create_idempotent(stub: Stub) -> None:
    request_ = inline(pipeline("idem", task_yaml("a", "true")), request_id="same-request")
    first = stub.CreateJob(request_, timeout=10).job
    second = stub.CreateJob(request_, timeout=10).job
    assert first.name == second.name and second.request_id == "same-request"
    assert stub.ListJobs(pb.ListJobsRequest(include_total_size=True), timeout=5).total_size == 1


def test_list_jobs_pages_newest_first_and_filters(stub: Stub) -> None:
    names = []
    for i in range(5):
        team = "red" if i % 2 else "blue"
        job = stub.CreateJob(inline(pipeline(f"p{i % 2}", task_yaml("a", "true")), labels={"team": team}), timeout=10)
        names.append(job.job.name)
    for name in names:
        wait_job(stub, name)
    seen, token = [], ""
    while True:
        page = stub.ListJobs(pb.ListJobsRequest(page_size=2, page_token=token), timeout=5)
        seen += [j.name for j in page.jobs]
        token = page.next_page_token
        if not token:
            break
    assert seen == list(reversed(names))
    red = stub.ListJobs(pb.ListJobsRequest(labels=["team=red"], include_total_size=True), timeout=5)
    assert [j.name for j in red.jobs] == [names[3], names[1]] and red.total_size == 2
    p0 = stub.ListJobs(pb.ListJobsRequest(pipeline="pipelines/p0"), timeout=5)
    assert [j.name for j in p0.jobs] == [names[4], names[2], names[0]]
    assert not stub.ListJobs(pb.ListJobsRequest(states=[pb.Job.STATE_RUNNING]), timeout=5).jobs
    assert len(stub.ListJobs(pb.ListJobsRequest(owner="users/me"), timeout=5).jobs) == 5
    assert not stub.ListJobs(pb.ListJobsRequest(owner="users/someone-else"), timeout=5).jobs
    with pytest.raises(grpc.RpcError) as caught:  # a token is bound to its filters
        stub.ListJobs(pb.ListJobsRequest(page_size=1, pipeline="p1",
                                         page_token=stub.ListJobs(pb.ListJobsRequest(page_size=1)).next_page_token))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_task_past_its_timeout_is_killed_with_its_children(stub: Stub, task_shared: Path) -> None:
    pid_file = task_shared / "child.pid"
    yml = pipeline("slow", task_yaml("sleepy", f"sleep 300 & echo $$! > {pid_file}; wait", "timeout: 1s"))
    job = wait_job(stub, stub.CreateJob(inline(yml), timeout=10).job.name)
    assert job.state == pb.Job.STATE_FAILED
    task = tasks_of(stub, job.name)["sleepy"]
    assert task.state == S.STATE_FAILED and task.reason == "DeadlineExceeded"
    child = int(pid_file.read_text())
    assert not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]


def test_retries_with_backoff_then_success(stub: Stub, task_shared: Path) -> None:
    counter = task_shared / "tries"
    command = f'echo x >> {counter}; test $$(wc -l < {counter}) -ge 3'
    yml = pipeline("flaky", task_yaml("flaky", command, "retries: {limit: 3, backoff: 0.2s}"))
    job = wait_job(stub, stub.CreateJob(inline(yml), timeout=10).job.name)
    assert job.state == pb.Job.STATE_SUCCEEDED
    task = tasks_of(stub, job.name)["flaky"]
    assert task.attempt == 3 and task.max_attempts == 4
    events = stub.ListJobEvents(pb.ListJobEventsRequest(parent=job.name)).events
    retries = [e for e in events if e.task_state == S.STATE_QUEUED and e.reason == "NonZeroExit"]
    assert [e.attempt for e in retries] == [1, 2] and "retrying in" in retries[0].message
    first_log = "".join(m.data for m in stub.StreamTaskLogs(pb.StreamTaskLogsRequest(name=task.name, attempt=1)))
    assert first_log == ""


def test_cancel_stops_running_tasks_and_retry_reruns_only_what_did_not_succeed(stub: Stub, task_shared: Path) -> None:
    marker = task_shared / "runs"
    yml = pipeline(
        "cancel",
        task_yaml("first", f"echo first >> {marker}"),
        task_yaml("wait", f"echo wait >> {marker}; sleep $$(cat {task_shared}/delay 2>/dev/null || echo 300)",
                  "depends: first"),
        task_yaml("after", f"echo after >> {marker}", "depends: wait"),
    )  # fmt: skip
    job = stub.CreateJob(inline(yml), timeout=10).job
    _wait_running(stub, f"{job.name}/tasks/wait")
    cancelled = stub.CancelJob(pb.CancelJobRequest(name=job.name, message="enough"), timeout=10).job
    assert cancelled.state == pb.Job.STATE_CANCELLED and cancelled.message == "enough"
    tasks = tasks_of(stub, job.name)
    assert tasks["wait"].state == S.STATE_CANCELLED and tasks["after"].state == S.STATE_CANCELLED
    again = stub.CancelJob(pb.CancelJobRequest(name=job.name), timeout=10).job  # a no-op once ended
    assert again.state == pb.Job.STATE_CANCELLED
    (task_shared / "delay").write_text("0")
    retried = stub.RetryJob(pb.RetryJobRequest(name=job.name), timeout=10).job
    assert retried.state == pb.Job.STATE_RUNNING
    assert wait_job(stub, job.name).state == pb.Job.STATE_SUCCEEDED
    assert marker.read_text().split() == ["first", "wait", "wait", "after"]
    with pytest.raises(grpc.RpcError) as caught:
        stub.RetryJob(pb.RetryJobRequest(name=job.name), timeout=10)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def _wait_running(stub: Stub, task: str) -> None:
    from scheduler_testkit import eventually

    eventually(lambda: stub.GetTask(pb.GetTaskRequest(name=task), timeout=5).task.state == S.STATE_RUNNING)


def test_delete_removes_rows_and_files(stub: Stub, state_dir: Path) -> None:
    job = stub.CreateJob(inline(pipeline("del", task_yaml("a", "sleep 300"))), timeout=10).job
    _wait_running(stub, f"{job.name}/tasks/a")
    with pytest.raises(grpc.RpcError) as caught:
        stub.DeleteJob(pb.DeleteJobRequest(name=job.name), timeout=10)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    stub.DeleteJob(pb.DeleteJobRequest(name=job.name, force=True), timeout=30)
    with pytest.raises(grpc.RpcError) as gone:
        stub.GetJob(pb.GetJobRequest(name=job.name), timeout=5)
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    job_id = job.name.removeprefix("jobs/")
    assert not list((state_dir / "runs").glob(f"**/{job_id}*"))


def test_logs_follow_live_and_resume_from_an_offset(stub: Stub, tmp_path: Path) -> None:
    go = tmp_path / "go"
    yml = pipeline("logs", task_yaml("talk", f"echo one; while [ ! -e {go} ]; do sleep 0.05; done; echo two; echo ünï"))
    job = stub.CreateJob(inline(yml), timeout=10).job
    name = f"{job.name}/tasks/talk"
    _wait_running(stub, name)
    stream = stub.StreamTaskLogs(pb.StreamTaskLogsRequest(name=name, follow=True), timeout=30)
    first = next(stream)
    assert first.data == "one\n" and first.offset == 0 and first.attempt == 1
    go.touch()
    rest = "".join(m.data for m in stream)  # ends when the task ended and everything was sent
    assert rest == "two\nünï\n"
    tail = list(stub.StreamTaskLogs(pb.StreamTaskLogsRequest(name=name, offset=4), timeout=10))
    assert "".join(m.data for m in tail) == "two\nünï\n" and tail[0].offset == 4
    last = list(stub.StreamTaskLogs(pb.StreamTaskLogsRequest(name=name, offset=-len("ünï\n".encode())), timeout=10))
    assert "".join(m.data for m in last) == "ünï\n"


def test_watch_resumes_from_a_cursor_without_gaps_or_duplicates(stub: Stub) -> None:
    yml = pipeline("resume", *(task_yaml(f"t{i}", "true", *([f"depends: t{i - 1}"] if i else [])) for i in range(4)))
    job = stub.CreateJob(inline(yml), timeout=10).job
    seen: list[int] = []
    for message in stub.WatchJob(pb.WatchJobRequest(name=job.name), timeout=30):
        seen.append(message.event.seq)
        if len(seen) == 3:
            break
    for message in stub.WatchJob(pb.WatchJobRequest(name=job.name, after_seq=seen[-1]), timeout=30):
        if message.HasField("event"):
            seen.append(message.event.seq)
    stored = [e.seq for e in stub.ListJobEvents(pb.ListJobEventsRequest(parent=job.name, page_size=1000)).events]
    assert seen == stored


def test_watch_jobs_sends_heartbeats_and_filters(stub: Stub) -> None:
    stream = stub.WatchJobs(pb.WatchJobsRequest(labels=["team=red"]), timeout=30)
    first = next(stream)
    assert first.HasField("heartbeat")
    stub.CreateJob(inline(pipeline("blue", task_yaml("a", "true")), labels={"team": "blue"}), timeout=10)
    red = stub.CreateJob(inline(pipeline("red", task_yaml("a", "true")), labels={"team": "red"}), timeout=10).job
    jobs = set()
    for message in stream:
        if message.HasField("event"):
            jobs.add(message.event.job)
            if message.event.job_state == pb.Job.STATE_SUCCEEDED:
                break
    assert jobs == {red.name}
    stream.cancel()
