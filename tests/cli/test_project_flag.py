"""`--project` on the jobs commands: sent with `run` and `jobs`, defaulting to $ODIN_PROJECT; a PROJECT column
appears once jobs outside the default project are listed."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from support.fake_scheduler import FakeScheduler, serve

from odin.scheduler.v1 import scheduler_pb2 as pb

ODIN = str(Path(sys.executable).parent / "odin")


async def odin(*args: str, **env: str) -> tuple[int, str, str]:
    environment = {k: v for k, v in os.environ.items() if k != "ODIN_PROJECT"} | env
    process = await asyncio.create_subprocess_exec(
        ODIN, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=environment)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def sent(fake: FakeScheduler, method: str) -> list[str]:
    return [request.project for name, request in fake.requests if name == method]


async def test_run_and_jobs_send_the_project(tmp_path: Path) -> None:
    (tmp_path / "main.yml").write_text("name: hello\ntasks: []\n")
    fake = FakeScheduler()
    fake.jobs["jobs/a-1"] = pb.Job(name="jobs/a-1", pipeline="a", project="projects/default")
    async with serve(fake) as address:
        flagged = await odin("run", str(tmp_path), "--address", address, "--project", "red")
        from_env = await odin("run", str(tmp_path), "--address", address, ODIN_PROJECT="blue",
                              XDG_CONFIG_HOME=str(tmp_path / "config"))
        listed = await odin("jobs", "--address", address, "--project", "projects/red")
        plain = await odin("jobs", "--address", address, XDG_CONFIG_HOME=str(tmp_path / "config"))
        fake.jobs["jobs/b-2"] = pb.Job(name="jobs/b-2", pipeline="b", project="projects/red")
        mixed = await odin("jobs", "--address", address, XDG_CONFIG_HOME=str(tmp_path / "config"))
    assert flagged[0] == 0 and from_env[0] == 0, flagged[2] + from_env[2]
    assert sent(fake, "CreateJob") == ["red", "blue"]
    assert listed[0] == 0 and plain[0] == 0
    assert sent(fake, "ListJobs")[:2] == ["red", ""]
    assert "PROJECT" not in plain[1]  # only default-project jobs: the table is as it always was
    header, *rows = mixed[1].splitlines()
    assert header.split()[:2] == ["JOB", "PROJECT"]
    assert sorted(row.split()[1] for row in rows) == ["default", "red"]
