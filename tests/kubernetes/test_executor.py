"""The Kubernetes executor against the real apiserver of the test cluster (kwok nodes)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from odin_scheduler.executor.base import PermanentError, TaskRun
from odin_scheduler.executor.kubernetes import CleanupPolicy, KubernetesConfig, KubernetesExecutor
from odin_scheduler.executor.kubernetes.names import LABEL_RUN
from odin_scheduler.executor.kubernetes.status import Phase
from support.kube import KubeCluster
from support.waiting import assert_eventually_async

from odin.pipeline_spec.model import TaskSpec

_ids = itertools.count()
Factory = Callable[..., KubernetesExecutor]


@pytest.fixture
async def executors(kube_cluster: KubeCluster) -> AsyncIterator[Factory]:
    """Executors acting as Odin's scheduler (least-privilege identity); all closed after the test."""
    made: list[KubernetesExecutor] = []

    def make(**settings: Any) -> KubernetesExecutor:
        config = KubernetesConfig(kubeconfig=str(kube_cluster.scheduler_kubeconfig), namespace=kube_cluster.namespace,
                                  **settings)
        executor = KubernetesExecutor(config, spec_of=lambda run: SPECS[run.task_id])
        made.append(executor)
        return executor

    yield make
    for executor in made:
        await executor.close()


SPECS: dict[str, TaskSpec] = {}


def task(tmp_path: Path, resource_type: str = "Pod", attempt: int = 1, **spec: Any) -> TaskRun:
    """A TaskRun whose spec the executors read from SPECS (as the engine will pass it)."""
    job_id = f"kx{next(_ids)}"
    name = str(spec.pop("name", "step"))
    task_id = f"{job_id}--{name}"
    SPECS[task_id] = TaskSpec(name=name, image="trainer:1", command=("python", "-c", "print(1)"),
                              resource_type=resource_type, **spec)
    return TaskRun(job_id=job_id, task=name, task_id=task_id, attempt=attempt, command=(), args=(), image="trainer:1",
                   resource_type=resource_type, cwd=tmp_path, attempt_dir=tmp_path / f"{task_id}-{attempt}")


def pods(cluster: KubeCluster, run_name: str) -> list[dict[str, Any]]:
    path = f"/api/v1/namespaces/{cluster.namespace}/pods?labelSelector={LABEL_RUN}%3D{run_name}"
    return list(cluster.request("GET", path)["items"])


async def test_pod_task_succeeds_and_its_logs_outlive_the_pod(kube_cluster: KubeCluster, executors: Factory,
                                                             tmp_path: Path) -> None:
    executor = executors()
    run = task(tmp_path, env={"KWOK_RUN_DURATION": "3s"})
    handle = await executor.start(run)
    assert executor.resource_id(handle) == f"pod/{handle['name']}"
    waiting = asyncio.ensure_future(executor.wait(run, handle))

    async def logs_while_running() -> bool:
        assert not waiting.done()
        return run.log_file.exists() and kube_cluster.pod_log_line in run.log_file.read_text()

    await assert_eventually_async(logs_while_running, 10, what="logs followed while the pod runs")
    outcome = await asyncio.wait_for(waiting, 30)
    assert outcome.succeeded and outcome.exit_code == 0
    assert kube_cluster.pod_log_line in run.log_file.read_text()
    # The pod stays until the engine has stored the outcome and releases the attempt (finding 8 of #16).
    assert len(pods(kube_cluster, handle["name"])) == 1
    await executor.release(run, handle, outcome)
    await assert_eventually_async(lambda: _async(not pods(kube_cluster, handle["name"])), 10,
                                  what="pod deleted after success (cleanup on_success)")


async def test_failure_keeps_the_pod_and_says_why(kube_cluster: KubeCluster, executors: Factory,
                                                 tmp_path: Path) -> None:
    executor = executors(cleanup=CleanupPolicy.DELETE_ON_SUCCESS)
    run = task(tmp_path, env={"KWOK_EXIT_CODE": "137", "KWOK_TERMINATED_REASON": "OOMKilled"})
    handle = await executor.start(run)
    outcome = await asyncio.wait_for(executor.wait(run, handle), 30)
    assert (outcome.succeeded, outcome.exit_code, outcome.reason) == (False, 137, "OOMKilled")
    assert outcome.retryable
    assert len(pods(kube_cluster, handle["name"])) == 1  # kept for inspection


async def test_a_repeated_start_adopts_instead_of_creating_twice(kube_cluster: KubeCluster, executors: Factory,
                                                                 tmp_path: Path) -> None:
    executor = executors()
    run = task(tmp_path, env={"KWOK_RUN_DURATION": "1s"})
    first = await executor.start(run)
    second = await executor.start(run)
    assert second["name"] == first["name"] and second["uid"] == first["uid"] and second.get("adopted")
    assert len(pods(kube_cluster, first["name"])) == 1
    assert (await asyncio.wait_for(executor.wait(run, second), 30)).succeeded


async def test_job_with_workers_labels_each_workers_log(kube_cluster: KubeCluster, executors: Factory,
                                                        tmp_path: Path) -> None:
    executor = executors(cleanup=CleanupPolicy.KEEP)
    run = task(tmp_path, "Job", num_workers=2, env={"KWOK_RUN_DURATION": "300ms"})
    handle = await executor.start(run)
    outcome = await asyncio.wait_for(executor.wait(run, handle), 40)
    assert outcome.succeeded, outcome
    log_text = run.log_file.read_text()
    assert f"[worker-0] {kube_cluster.pod_log_line}" in log_text
    assert f"[worker-1] {kube_cluster.pod_log_line}" in log_text
    assert len(pods(kube_cluster, handle["name"])) == 2


async def test_job_past_its_deadline_fails_with_deadline_exceeded(kube_cluster: KubeCluster, executors: Factory,
                                                                  tmp_path: Path) -> None:
    executor = executors()
    run = task(tmp_path, "Job", timeout_seconds=2, env={"KWOK_RUN_DURATION": "10m"})
    handle = await executor.start(run)
    outcome = await asyncio.wait_for(executor.wait(run, handle), 40)
    assert (outcome.succeeded, outcome.reason) == (False, "DeadlineExceeded")


@pytest.mark.parametrize("resource_type", ["PyTorchJob", "TFJob", "MPIJob", "ElasticJob"])
async def test_training_jobs_are_created_with_replica_specs_and_finish(
        kube_cluster: KubeCluster, executors: Factory, tmp_path: Path, resource_type: str) -> None:
    executor = executors(cleanup=CleanupPolicy.KEEP)
    run = task(tmp_path, resource_type, num_workers=2, num_gpus=1)
    handle = await executor.start(run)
    plural = {"ElasticJob": "pytorchjobs"}.get(resource_type, resource_type.lower() + "s")
    obj = kube_cluster.request("GET", f"/apis/kubeflow.org/v1/namespaces/{kube_cluster.namespace}/{plural}/"
                               f"{handle['name']}")
    replica_field = next(k for k in obj["spec"] if k.endswith("ReplicaSpecs"))
    workers = obj["spec"][replica_field]["Worker"]
    assert workers["replicas"] == 2
    assert workers["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    outcome = await asyncio.wait_for(executor.wait(run, handle), 30)
    assert outcome.succeeded, outcome


async def test_a_failing_training_job_fails_the_task(kube_cluster: KubeCluster, executors: Factory,
                                                    tmp_path: Path) -> None:
    executor = executors()
    run = task(tmp_path, "PyTorchJob", num_workers=1, env={"KWOK_EXIT_CODE": "1"})
    handle = await executor.start(run)
    outcome = await asyncio.wait_for(executor.wait(run, handle), 30)
    assert (outcome.succeeded, outcome.reason) == (False, "PyTorchJobFailed")


async def test_a_gpu_task_that_cannot_fit_says_so_and_cancel_deletes_it(kube_cluster: KubeCluster,
                                                                       executors: Factory, tmp_path: Path) -> None:
    executor = executors()
    run = task(tmp_path, num_gpus=8)
    handle = await executor.start(run)
    waiting = asyncio.ensure_future(executor.wait(run, handle))

    async def insufficient_gpu() -> bool:
        progress = executor.progress(handle)
        return progress is not None and progress.reason == "InsufficientGPU"

    await assert_eventually_async(insufficient_gpu, 60, what="InsufficientGPU while pending")
    progress = executor.progress(handle)
    assert progress is not None and progress.phase == Phase.PENDING
    assert "nvidia.com/gpu" in progress.message
    await asyncio.wait_for(executor.cancel(run, handle), 30)
    assert not pods(kube_cluster, handle["name"])
    outcome = await asyncio.wait_for(waiting, 10)
    assert (outcome.succeeded, outcome.reason) == (False, "Cancelled")


async def test_an_image_that_cannot_be_pulled_fails_for_good(kube_cluster: KubeCluster, executors: Factory,
                                                            tmp_path: Path) -> None:
    executor = executors(stuck_timeout_seconds=1.0)
    run = task(tmp_path, env={"KWOK_WAITING_REASON": "ImagePullBackOff"})
    handle = await executor.start(run)
    outcome = await asyncio.wait_for(executor.wait(run, handle), 30)
    assert (outcome.succeeded, outcome.reason, outcome.retryable) == (False, "ImagePullBackOff", False)
    await executor.release(run, handle, outcome)  # a stuck pod would retry forever: deleted once the outcome is stored
    await assert_eventually_async(lambda: _async(not pods(kube_cluster, handle["name"])), 10)


async def test_a_restarted_scheduler_adopts_the_running_pod(kube_cluster: KubeCluster, executors: Factory,
                                                            tmp_path: Path) -> None:
    before = executors()
    run = task(tmp_path, env={"KWOK_RUN_DURATION": "2s"})
    handle = await before.start(run)
    await before.close()  # the scheduler dies; the pod keeps running
    after = executors()
    adopted = await after.adopt(run, dict(handle))
    assert adopted["uid"] == handle["uid"]
    assert (await asyncio.wait_for(after.wait(run, adopted), 30)).succeeded
    gone = replace(run, attempt=run.attempt + 5)
    with pytest.raises(PermanentError) as lost:
        await after.adopt(gone, {"kind": "Pod", "name": "kx-never-created-1"})
    assert lost.value.reason == "SchedulerRestarted"


async def test_watches_recover_from_an_apiserver_restart_and_compaction(kube_cluster: KubeCluster,
                                                                         executors: Factory, tmp_path: Path) -> None:
    executor = executors(reconnect_max_seconds=1.0)
    run = task(tmp_path, env={"KWOK_RUN_DURATION": "4s"})
    handle = await executor.start(run)
    waiting = asyncio.ensure_future(executor.wait(run, handle))
    await assert_eventually_async(lambda: _async(executor.progress(handle) is not None), 10)
    relists_before = sum(s["relists"] for s in executor.watch_stats().values())
    await asyncio.to_thread(kube_cluster.compact_etcd)
    await asyncio.to_thread(kube_cluster.restart_apiserver)
    outcome = await asyncio.wait_for(waiting, 60)
    assert outcome.succeeded
    stats = executor.watch_stats()
    assert sum(s["reconnects"] for s in stats.values()) >= 1  # resumed after the dropped connection
    assert sum(s["expired"] for s in stats.values()) >= 1  # the old resourceVersion was compacted: 410 Gone
    assert sum(s["relists"] for s in stats.values()) > relists_before  # ... and so re-listed


async def test_events_are_listed_and_the_sweeper_removes_orphans(kube_cluster: KubeCluster, executors: Factory,
                                                                tmp_path: Path) -> None:
    executor = executors()
    run = task(tmp_path, num_gpus=8)  # stays pending: an orphan once the scheduler forgets it
    handle = await executor.start(run)

    async def scheduling_failed() -> bool:
        return any(e.reason == "FailedScheduling" for e in await executor.events(handle))

    await assert_eventually_async(scheduling_failed, 60, what="a FailedScheduling event")
    assert handle["name"] not in await executor.sweep(live=lambda job, name, attempt: name == run.task)
    deleted = await executor.sweep(live=lambda job, name, attempt: False)
    assert handle["name"] in deleted
    await assert_eventually_async(lambda: _async(not pods(kube_cluster, handle["name"])), 10)


async def _async(value: bool) -> bool:
    return value
