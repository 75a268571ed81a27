"""Whole pipelines through the scheduler's engine with the Kubernetes executor, on the kwok cluster."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from odin_scheduler.engine import Engine, EngineConfig
from odin_scheduler.executor.base import TaskRun
from odin_scheduler.executor.kubernetes import CleanupPolicy, KubernetesConfig, KubernetesExecutor
from odin_scheduler.jobs import NewJob, RequestedOptions, build_job, new_job_id
from odin_scheduler.model import Job, JobState, Task, TaskState
from odin_scheduler.paths import Layout
from odin_scheduler.store import Store, open_store
from support.kube import KubeCluster

from odin.pipeline_spec import PipelineSpec, load_pipeline

SPECS: dict[str, PipelineSpec] = {}


def spec_of(run: TaskRun) -> Any:
    return SPECS[run.job_id].task(run.task)


@pytest.fixture
async def engine(kube_cluster: KubeCluster, tmp_path: Path) -> AsyncIterator[tuple[Store, Engine]]:
    store = open_store(f"sqlite:///{tmp_path / 'scheduler.db'}")
    await store.open()
    config = KubernetesConfig(kubeconfig=str(kube_cluster.scheduler_kubeconfig), namespace=kube_cluster.namespace,
                              cleanup=CleanupPolicy.KEEP)
    executor = KubernetesExecutor(config, spec_of=spec_of)
    engine = Engine(store, executor, Layout(tmp_path / "runs"), EngineConfig())
    await engine.start()
    yield store, engine
    await engine.stop()
    await executor.close()
    await store.close()


async def run_pipeline(store: Store, engine: Engine, tasks: list[dict[str, Any]], timeout: float = 60) -> Job:
    spec = load_pipeline({"name": "k8s", "tasks": tasks})
    job, rows, events = build_job(NewJob(spec, "k8s", "", "users/ada", RequestedOptions(0, None, None)),
                                  new_job_id("k8s"), time.time_ns() // 1000, None)
    SPECS[job.id] = spec
    await engine.create_job(job, rows, events)
    deadline = time.monotonic() + timeout
    while True:
        stored = await store.get_job(job.id)
        assert stored is not None
        if stored.state.terminal and not engine.running_attempts:
            return stored
        assert time.monotonic() < deadline, f"job still {stored.state.name}"
        await store.wait_for_events(stored.last_event_seq, 0.2)


def step(name: str, resource_type: str = "Pod", depends: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": "trainer:1", "command": ["python", "step.py"], "resource_type": resource_type,
            "depends": depends, **extra}


async def tasks_of(store: Store, job_id: str) -> dict[str, Task]:
    return {t.name: t for t in await store.list_tasks(job_id)}


async def test_a_pipeline_of_pods_jobs_and_a_pytorchjob_runs_to_completion(
        engine: tuple[Store, Engine], kube_cluster: KubeCluster) -> None:
    store, eng = engine
    job = await run_pipeline(store, eng, [
        step("prep", env={"KWOK_RUN_DURATION": "200ms"}),
        step("train", "PyTorchJob", ["prep"], num_workers=2, num_gpus=1),
        step("evaluate", "Job", ["prep"], num_workers=2),
        step("report", "Pod", ["train", "evaluate"]),
    ])
    tasks = await tasks_of(store, job.id)
    assert job.state == JobState.SUCCEEDED, {n: (t.state.name, t.reason, t.message) for n, t in tasks.items()}
    assert all(t.state == TaskState.SUCCEEDED for t in tasks.values())
    pods = kube_cluster.request("GET", f"/api/v1/namespaces/{kube_cluster.namespace}/pods?labelSelector=odin.job%3D"
                                f"{job.id.replace('/', '-')}")["items"]
    assert {p["metadata"]["labels"]["odin.task"] for p in pods} >= {"prep", "report", "evaluate"}


async def test_a_failing_task_is_retried_then_fails_the_job(engine: tuple[Store, Engine]) -> None:
    store, eng = engine
    job = await run_pipeline(store, eng, [
        step("flaky", env={"KWOK_EXIT_CODE": "3"}, retries={"limit": 1, "backoff": "0.1s"}),
    ])
    flaky = (await tasks_of(store, job.id))["flaky"]
    assert job.state == JobState.FAILED
    assert (flaky.state, flaky.attempt, flaky.exit_code, flaky.reason) == (TaskState.FAILED, 2, 3, "NonZeroExit")
