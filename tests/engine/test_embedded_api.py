"""The embedded API itself: what it accepts as a pipeline, how it ends a job it cannot finish, and the stores
and executors it runs on."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from pathlib import Path

import psycopg
import pytest
from odin_scheduler.executor.instant import InstantExecutor
from odin_scheduler.model import JobFilter
from odin_scheduler.store import open_store
from support.postgres import PostgresServer
from support.waiting import assert_eventually

import odin.engine

SAY = 'echo "{\\"said\\": \\"$$(cat ${WORK_PATH}/words.txt)\\"}" > $$ODIN_OUTPUTS'
MAIN_YML = f"name: say\ntasks:\n  - name: say\n    image: x\n    command: [sh, -c, '{SAY}']\n"


def sleeper(pid_file: Path) -> dict[str, object]:
    command = f"echo $$$$ > {pid_file}; exec sleep 30"
    return {"name": "sleeper", "tasks": [{"name": "sleep", "image": "x", "command": ["sh", "-c", command]}]}


def gone(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().split()[2] == "Z"


def written(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 0


async def stored_jobs(url: str) -> list[odin.engine.Job]:
    store = open_store(url)
    await store.open()
    try:
        return await store.list_jobs(JobFilter(), 10)
    finally:
        await store.close()


# -- pipelines ------------------------------------------------------------------------------------------


async def test_a_directory_brings_its_files_as_work_path(tmp_path: Path) -> None:
    (tmp_path / "main.yml").write_text(MAIN_YML)
    (tmp_path / "words.txt").write_text("hello")
    (tmp_path / ".secret").write_text("stays behind")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "x.pyc").write_text("stays behind")
    for source in (tmp_path, tmp_path / "main.yml"):  # the directory, or its main.yml
        async with odin.engine.start(source) as job:
            done = await job.wait()
            work = job._scheduler.layout.work_path(job.id)
            assert sorted(p.name for p in work.iterdir()) == ["main.yml", "words.txt"]
        assert done.outputs["say"] == {"said": "hello"}


async def test_yaml_text_and_a_mapping_are_pipelines_too() -> None:
    task = {"name": "t", "image": "x", "command": ["sh", "-c", "echo '{\"v\": 1}' > $$ODIN_OUTPUTS"]}
    as_text = "name: text\ntasks:\n  - {name: t, image: x, command: [sh, -c, 'echo {} > $$ODIN_OUTPUTS']}\n"
    assert (await odin.engine.run_async({"name": "mapping", "tasks": [task]})).outputs == {"t": {"v": 1}}
    done = await odin.engine.run_async(as_text)
    assert done.succeeded and done.job.pipeline == "text"


async def test_what_is_not_a_pipeline_is_refused_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"main\.yml: no such file"):
        await odin.engine.run_async(tmp_path)
    with pytest.raises(TypeError, match="not int"):
        await odin.engine.run_async(42)  # type: ignore[arg-type]
    with pytest.raises(odin.engine.InvalidArgument) as caught:
        await odin.engine.run_async(MAIN_YML, labels={"Bad Key": "v"})
    assert caught.value.violations == [("labels['Bad Key']", "is not a valid label key")]
    with pytest.raises(odin.engine.InvalidArgument) as caught:
        await odin.engine.run_async(MAIN_YML, options=odin.engine.Options(parallelism=-1, timeout_seconds=0))
    assert caught.value.violations == [("options.parallelism", "must not be negative"),
                                       ("options.timeout", "must be positive")]  # fmt: skip
    with pytest.raises(odin.engine.InvalidArgument, match=r"cannot render main\.yml") as caught:
        await odin.engine.run_async("name: x\ntasks: {{ missing }}\n", params={"other": 1})
    assert caught.value.violations[0][0] == "parameters"


# -- ending jobs ----------------------------------------------------------------------------------------


async def test_cancelling_the_awaiting_task_cancels_the_job_and_kills_its_tasks(tmp_path: Path) -> None:
    pid_file, url = tmp_path / "pid", f"sqlite:///{tmp_path / 'jobs.db'}"
    running = asyncio.create_task(odin.engine.run_async(sleeper(pid_file), store=url, run_path=tmp_path / "runs"))
    await asyncio.to_thread(assert_eventually, lambda: written(pid_file))
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert gone(int(pid_file.read_text()))  # stopped before run_async gave up, not eventually
    [job] = await stored_jobs(url)
    assert (job.state, job.message) == (
        odin.engine.JobState.CANCELLED,
        "the embedding program stopped waiting for the job",
    )


async def test_leaving_the_block_early_cancels_the_job(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    with pytest.raises(RuntimeError, match="changed my mind"):
        async with odin.engine.start(sleeper(pid_file)):
            await asyncio.to_thread(assert_eventually, lambda: written(pid_file))
            raise RuntimeError("changed my mind")
    assert gone(int(pid_file.read_text()))


async def test_cancel_returns_once_the_tasks_are_stopped(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    async with odin.engine.start(sleeper(pid_file)) as job:
        await asyncio.to_thread(assert_eventually, lambda: written(pid_file))
        cancelled = await job.cancel("enough")
        assert gone(int(pid_file.read_text()))
        assert (cancelled.state, cancelled.message) == (odin.engine.JobState.CANCELLED, "enough")
        done = await job.wait()
    assert done.tasks["sleep"].state is odin.engine.TaskState.CANCELLED
    assert done.events[-1].ends_job and done.events[-1].job_state is odin.engine.JobState.CANCELLED


# -- following a job ------------------------------------------------------------------------------------


async def test_watch_yields_the_events_watchjob_streams() -> None:
    chain = {"name": "chain", "tasks": [{"name": f"t{i}", "image": "x", "command": "true",
                                         **({"depends": f"t{i - 1}"} if i else {})} for i in range(3)]}  # fmt: skip
    async with contextlib.aclosing(odin.engine.watch(chain, executor=InstantExecutor())) as events:
        seen = [event async for event in events]
    assert [e.seq for e in seen] == list(range(1, len(seen) + 1))
    assert seen[-1].ends_job and seen[-1].job_state is odin.engine.JobState.SUCCEEDED
    assert [e.task for e in seen if e.task_state is odin.engine.TaskState.SUCCEEDED] == ["t0", "t1", "t2"]
    message = odin.engine.to_proto(seen[-1])
    assert (message.job, message.seq, message.reason) == (f"jobs/{seen[-1].job_id}", seen[-1].seq, "Succeeded")


async def test_events_replay_from_a_cursor_and_logs_are_kept() -> None:
    yml = "name: talk\ntasks:\n  - {name: a, image: x, command: [sh, -c, 'echo one; echo two >&2']}\n"
    async with odin.engine.start(yml) as job:
        done = await job.wait()
        later = [event async for event in job.events(after_seq=done.events[2].seq)]
    assert later == list(done.events[3:])
    assert done.logs == {"a": "one\ntwo\n"}


def test_run_works_where_an_event_loop_already_runs() -> None:
    async def notebook_cell() -> odin.engine.FinishedJob:
        return odin.engine.run(MAIN_YML.replace("$$(cat ${WORK_PATH}/words.txt)", "hi"))

    assert asyncio.run(notebook_cell()).outputs == {"say": {"said": "hi"}}


# -- stores and executors -------------------------------------------------------------------------------


async def test_a_store_url_keeps_the_jobs_and_an_open_store_stays_the_callers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    first = await odin.engine.run_async(MAIN_YML.replace("$$(cat ${WORK_PATH}/words.txt)", "1"), store=url)
    store = open_store(url)
    await store.open()
    try:
        second = await odin.engine.run_async(MAIN_YML.replace("$$(cat ${WORK_PATH}/words.txt)", "2"), store=store)
        assert await store.ping()  # still open: the caller closes it
    finally:
        await store.close()
    assert {j.id for j in await stored_jobs(url)} == {first.id, second.id}


async def test_the_instant_executor_records_tasks_as_processes() -> None:
    done = await odin.engine.run_async({"name": "quick", "tasks": [{"name": "a", "image": "x", "command": "true"}]},
                                       executor=InstantExecutor())  # fmt: skip
    assert done.succeeded and done.tasks["a"].resource_type == "Process" and done.logs == {"a": ""}


_databases = itertools.count()


@pytest.mark.postgres
async def test_a_postgresql_store_works_as_in_the_service(postgres_server: PostgresServer) -> None:
    name = f"engine_{next(_databases)}"
    with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    url = postgres_server.url(name)
    retried = {"name": "pg", "tasks": [{"name": "a", "image": "x", "command": ["fail-times", "1"],
                                        "retries": {"limit": 1, "backoff": "0s"}}]}  # fmt: skip
    done = await odin.engine.run_async(retried, store=url, executor=InstantExecutor())
    assert done.succeeded and done.tasks["a"].attempt == 2
    assert [j.id for j in await stored_jobs(url)] == [done.id]
