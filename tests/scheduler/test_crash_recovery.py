"""kill -9 the scheduler in the middle of a job: after a restart the job completes, every task ran
exactly once, and a watcher that reconnects with its cursor sees every event once and in order."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from scheduler_testkit import Stub, inline, pipeline, scheduler_env, task_yaml, tasks_of
from support.clients import channel
from support.ferretdb import new_mongo_database
from support.processes import ServiceProcess

from odin.scheduler.v1 import scheduler_pb2 as pb


class Watcher:
    """Follows WatchJob across scheduler restarts, reconnecting with the last seq it saw."""

    def __init__(self, job: str) -> None:
        self.job = job
        self.address = ""
        self.seqs: list[int] = []
        self.events: list[pb.JobEvent] = []
        self.done = threading.Event()
        self.moved = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def follow(self, address: str) -> None:
        self.address = address
        self.moved.set()
        if not self._thread.is_alive():
            self._thread.start()

    def _run(self) -> None:
        while not self.done.is_set():
            self.moved.clear()
            try:
                with channel(self.address) as ch:
                    after = self.seqs[-1] if self.seqs else 0
                    for message in Stub(ch).WatchJob(pb.WatchJobRequest(name=self.job, after_seq=after), timeout=60):
                        if message.HasField("event"):
                            self.seqs.append(message.event.seq)
                            self.events.append(message.event)
                    self.done.set()
            except grpc.RpcError:
                self.moved.wait(0.2)  # the scheduler is down: retry (at the new address once it moved)


@pytest.mark.parametrize("backend", ["sqlite", "mongodb"])
@pytest.mark.parametrize("restart_while_running", [True, False], ids=["adopt-live", "adopt-finished"])
def test_kill_9_mid_job_then_restart_completes_it_exactly_once(
    service_factory: Callable[..., ServiceProcess], state_dir: Path, task_shared: Path, restart_while_running: bool,
    backend: str, request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    ran = task_shared / "ran"
    long = 4 if restart_while_running else 1.5

    def step(name: str, seconds: float, *extra: str) -> str:
        return task_yaml(name, f"echo {name} >> {ran}; sleep {seconds}", *extra)

    yml = pipeline("crash", step("a", 0.1), step("long", long, "depends: a"), step("side", 0.1, "depends: a"),
                   step("c", 0.1, "depends: [long, side]"))  # fmt: skip
    env = scheduler_env(state_dir, **_store_env(backend, request))
    first = service_factory("scheduler", env)
    with channel(first.address) as ch:
        job = Stub(ch).CreateJob(inline(yml), timeout=10).job
    watcher = Watcher(job.name)
    watcher.follow(first.address)
    _until(lambda: any(e.task.endswith("/long") and e.task_state == pb.Task.STATE_RUNNING for e in watcher.events))
    time.sleep(0.3)
    first.kill()
    if not restart_while_running:
        _until(lambda: (ran.read_text().split().count("long") == 1) and _long_exited(state_dir, job.name), 10)
    second = service_factory("scheduler", env)
    watcher.follow(second.address)
    assert watcher.done.wait(60), "the job did not end after the restart"
    with channel(second.address) as ch:
        stub = Stub(ch)
        final = stub.GetJob(pb.GetJobRequest(name=job.name), timeout=5).job
        assert final.state == pb.Job.STATE_SUCCEEDED, final
        assert sorted(ran.read_text().split()) == ["a", "c", "long", "side"]
        assert {t.attempt for t in tasks_of(stub, job.name).values()} == {1}
        stored = [e.seq for e in stub.ListJobEvents(pb.ListJobEventsRequest(parent=job.name, page_size=1000)).events]
    assert watcher.seqs == stored
    assert watcher.events[-1].job_state == pb.Job.STATE_SUCCEEDED


def _store_env(backend: str, request: pytest.FixtureRequest) -> dict[str, str]:
    """SQLite (scheduler_env's default) or a fresh database on the session's FerretDB (the MongoDB store)."""
    if backend == "sqlite":
        return {}
    return {"store_url": new_mongo_database(request.getfixturevalue("ferretdb_server"))}


def _long_exited(state_dir: Path, job: str) -> bool:
    job_id = job.removeprefix("jobs/")
    return (state_dir / "runs-state" / "attempts" / job_id / "long" / "1" / "exitcode").exists()


def _until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
