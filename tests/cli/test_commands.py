"""`odin` as a user runs it (a real process) against a scripted scheduler: output and exit codes."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from support.fake_scheduler import Cut, FakeScheduler, serve

from odin.scheduler.v1 import scheduler_pb2 as pb

ODIN = str(Path(sys.executable).parent / "odin")
RUN, OK, FAIL = pb.Task.STATE_RUNNING, pb.Task.STATE_SUCCEEDED, pb.Task.STATE_FAILED


async def odin(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        ODIN, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def _job(fake: FakeScheduler, final: int) -> str:
    task_end = OK if final == pb.Job.STATE_SUCCEEDED else FAIL
    running = pb.Job.STATE_RUNNING
    return fake.add_job("hello-abcd1234", ["prepare", "train"], [
        ("", 0, running), ("prepare", RUN, running), ("prepare", OK, running), ("train", RUN, running),
        ("train", task_end, running), ("", 0, final)], final_state=final)


async def test_watch_prints_lines_and_exits_0_when_the_job_succeeded() -> None:
    fake = FakeScheduler(watch_script=[Cut(3, "drop")])
    _job(fake, pb.Job.STATE_SUCCEEDED)
    fake.jobs["jobs/hello-abcd1234"].last_event_seq = 0  # watch from the start
    async with serve(fake) as address:
        code, out, err = await odin("watch", "hello-abcd1234", "--address", address)
    assert code == 0, err
    lines = out.splitlines()
    assert sum("task prepare RUNNING" in line for line in lines) == 1  # the reconnect repeated nothing
    assert any("task train SUCCEEDED" in line for line in lines)
    assert lines[-1] == "job hello-abcd1234 SUCCEEDED"


async def test_watch_exits_1_when_the_job_failed_and_json_lines_end_with_the_job() -> None:
    fake = FakeScheduler()
    _job(fake, pb.Job.STATE_FAILED)
    fake.jobs["jobs/hello-abcd1234"].last_event_seq = 0
    async with serve(fake) as address:
        code, out, _ = await odin("watch", "jobs/hello-abcd1234", "--address", address, "--json")
    assert code == 1
    documents = [json.loads(line) for line in out.splitlines()]
    assert [d["seq"] for d in documents[1:-1]] == [str(e.seq) for e in fake.events["jobs/hello-abcd1234"]]
    assert documents[-1]["state"] == "STATE_FAILED"


async def test_a_bad_pipeline_prints_each_violation_and_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "main.yml").write_text("bad: pipeline\n")
    async with serve(FakeScheduler()) as address:
        code, out, err = await odin("run", str(tmp_path), "--address", address)
        json_code, json_out, _ = await odin("run", str(tmp_path), "--address", address, "--json")
    assert code == 1 and out == ""
    assert err.splitlines() == [
        "odin: pipeline is invalid (2 problems)",
        '  tasks[0].depends: unknown task "trian"',
        "  tasks[1].name: must not be empty",
    ]
    assert json_code == 1
    error = json.loads(json_out)["error"]
    assert error["code"] == "INVALID_ARGUMENT"
    assert [v["field"] for v in error["violations"]] == ["tasks[0].depends", "tasks[1].name"]


async def test_not_found_and_unreachable_are_one_line_messages() -> None:
    async with serve(FakeScheduler()) as address:
        code, _, err = await odin("status", "nope-12345678", "--address", address)
    assert code == 1 and err.strip() == "odin: job jobs/nope-12345678 not found"
    code, _, err = await odin("jobs", "--address", address)  # the server is gone now
    assert code == 1 and "Traceback" not in err and err.startswith("odin: ")


async def test_status_jobs_events_and_logs() -> None:
    fake = FakeScheduler()
    _job(fake, pb.Job.STATE_SUCCEEDED)
    fake.logs["jobs/hello-abcd1234/tasks/train"] = b"epoch 1\nepoch 2\n"
    async with serve(fake) as address:
        status = await odin("status", "hello-abcd1234", "--address", address)
        listing = await odin("jobs", "--address", address, "--json")
        events = await odin("events", "hello-abcd1234", "--after-seq", "12", "--address", address)
        logs = await odin("logs", "hello-abcd1234/train", "--address", address)
        no_task = await odin("logs", "hello-abcd1234", "--address", address)
    assert status[0] == 0 and "Job:       hello-abcd1234" in status[1] and "train" in status[1]
    assert [j["name"] for j in json.loads(listing[1])["jobs"]] == ["jobs/hello-abcd1234"]
    assert [line.split()[0] for line in events[1].splitlines()] == ["13", "16", "19", "22", "25"]
    assert logs == (0, "epoch 1\nepoch 2\n", "")
    assert no_task[0] == 1 and "hello-abcd1234/prepare, hello-abcd1234/train" in no_task[2]


async def test_status_and_show_name_each_tasks_kueue_queue_and_admission_state() -> None:
    fake = FakeScheduler()
    _job(fake, pb.Job.STATE_RUNNING)
    job = fake.jobs["jobs/hello-abcd1234"]
    job.spec.update({"tasks": [{"name": "prepare"}, {"name": "train", "queue": "team-a"}]})
    train = next(t for t in fake.tasks["jobs/hello-abcd1234"] if t.name.endswith("/train"))
    train.reason, train.message = "WaitingForQuota", "waiting for quota in LocalQueue team-a: insufficient cpu"
    async with serve(fake) as address:
        status = await odin("status", "hello-abcd1234", "--address", address)
        show = await odin("show", "hello-abcd1234", "--address", address)
    header, *rows = [line for line in status[1].splitlines() if line.startswith(("TASK", "prepare", "train"))]
    assert header.split()[6:] == ["QUEUE", "REASON"]
    assert rows[1].split()[-2:] == ["team-a", "WaitingForQuota"] and rows[0].split()[-1] == "-"
    assert "  queue:    team-a (Kueue)  WaitingForQuota" in show[1]


async def test_status_has_no_queue_column_without_queues() -> None:
    fake = FakeScheduler()
    _job(fake, pb.Job.STATE_SUCCEEDED)
    async with serve(fake) as address:
        status = await odin("status", "hello-abcd1234", "--address", address)
    assert "QUEUE" not in status[1]
