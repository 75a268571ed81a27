"""The scheduler service with `executor=kubernetes`, end to end: a real `odin-scheduler` process (as the cluster's
least-privilege `odin-scheduler` identity) driven through gRPC, running tasks on the kwok cluster."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import grpc
import pytest
from odin_scheduler.executor.kubernetes import names
from support.clients import channel
from support.kube import KubeCluster
from support.processes import ServiceProcess
from support.scheduler import Stub, tasks_of
from support.scheduler import scheduler_env as sqlite_scheduler_env
from support.scheduler import wait_job as wait_job_for
from support.waiting import assert_eventually

from odin.scheduler.v1 import scheduler_pb2 as pb


@pytest.fixture
def scheduler_env(kube_cluster: KubeCluster, tmp_path: Path) -> dict[str, str]:
    return sqlite_scheduler_env(
        tmp_path,
        heartbeat_seconds="0.5",
        executor="kubernetes",
        kubeconfig=str(kube_cluster.scheduler_kubeconfig),
        kube_namespace=kube_cluster.namespace,
        # Kept objects let the tests count pods per attempt; DeleteJob must still remove them all.
        kube_cleanup="keep",
    )


@pytest.fixture
def scheduler(service_factory: Callable[..., ServiceProcess], scheduler_env: dict[str, str]) -> Iterator[Stub]:
    service = service_factory("scheduler", scheduler_env)
    with channel(service.address) as ch:
        yield Stub(ch)


def task(name: str, resource_type: str = "Pod", depends: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": "trainer:1", "command": ["python", "step.py", "${TASK_ID}"],
            "resource_type": resource_type, **({"depends": depends} if depends else {}), **extra}


def create(stub: Stub, *tasks: dict[str, Any]) -> pb.Job:
    main_yml = json.dumps({"name": "kube-e2e", "tasks": list(tasks)})  # JSON is YAML
    return stub.CreateJob(pb.CreateJobRequest(inline=pb.InlinePipeline(main_yml=main_yml)), timeout=10).job


def wait_job(stub: Stub, name: str) -> pb.Job:
    return wait_job_for(stub, name, timeout=60)  # pods on the cluster take longer than local processes


def pods_of_job(cluster: KubeCluster, job: str) -> list[dict[str, Any]]:
    selector = quote(f"{names.LABEL_JOB}={names.label_value(job.removeprefix('jobs/'))}")
    return list(cluster.request("GET", f"/api/v1/namespaces/{cluster.namespace}/pods?labelSelector={selector}")
                ["items"])


def objects_of_job(cluster: KubeCluster, job: str) -> list[str]:
    """Every Pod and batch Job the job left in the cluster."""
    selector = quote(f"{names.LABEL_JOB}={names.label_value(job.removeprefix('jobs/'))}")
    found = []
    for path in (f"/api/v1/namespaces/{cluster.namespace}/pods", f"/apis/batch/v1/namespaces/{cluster.namespace}/jobs"):
        found += [o["metadata"]["name"] for o in cluster.request("GET", f"{path}?labelSelector={selector}")["items"]]
    return found


def describe(stub: Stub, job: str) -> dict[str, tuple[str, int, str, str]]:
    return {n: (pb.Task.State.Name(t.state), t.attempt, t.reason, t.message) for n, t in tasks_of(stub, job).items()}


def test_a_pipeline_of_pods_and_jobs_runs_through_the_service(scheduler: Stub, kube_cluster: KubeCluster) -> None:
    job = create(scheduler,
                 task("prep", env={"KWOK_RUN_DURATION": "200ms"}),
                 task("train", "Job", ["prep"], num_workers=2, cpu={"requests": "1", "limits": "2"}),
                 task("report", depends=["train"]))
    done = wait_job(scheduler, job.name)
    assert done.state == pb.Job.STATE_SUCCEEDED, describe(scheduler, job.name)
    tasks = tasks_of(scheduler, job.name)
    assert tasks["train"].resource_type == "Job" and tasks["train"].resource_id.startswith("job/")
    pods = pods_of_job(kube_cluster, job.name)
    by_task: dict[str, list[dict[str, Any]]] = {}
    for pod in pods:
        by_task.setdefault(pod["metadata"]["labels"][names.LABEL_TASK], []).append(pod)
    assert {t: len(p) for t, p in by_task.items()} == {"prep": 1, "train": 2, "report": 1}
    # The stored spec reached the cluster: resources, and the command as rendered at dispatch.
    container = by_task["train"][0]["spec"]["containers"][0]
    assert container["resources"] == {"requests": {"cpu": "1"}, "limits": {"cpu": "2"}}
    assert container["command"] == ["python", "step.py", tasks["train"].task_id]
    assert by_task["prep"][0]["metadata"]["labels"][names.LABEL_OWNER] != ""
    # The cluster's events of a task, through the API.
    events = scheduler.ListTaskClusterEvents(pb.ListTaskClusterEventsRequest(name=f"{job.name}/tasks/prep"),
                                             timeout=10)
    assert events.attempt == 1
    assert any(e.reason == "Scheduled" and e.source == "default-scheduler" and e.object.startswith("pod/")
               for e in events.events), events
    scheduler.DeleteJob(pb.DeleteJobRequest(name=job.name), timeout=30)
    assert objects_of_job(kube_cluster, job.name) == []  # kept objects go with the job


def test_a_gpu_task_that_cannot_fit_says_why_and_is_cancellable(scheduler: Stub, kube_cluster: KubeCluster) -> None:
    job = create(scheduler, task("huge", num_gpus=8))

    def waiting_for_gpus() -> pb.Task | None:
        huge = tasks_of(scheduler, job.name)["huge"]
        return huge if huge.state == pb.Task.STATE_RUNNING and huge.reason == "InsufficientGPU" else None

    huge = assert_eventually(waiting_for_gpus, 60, what="reason InsufficientGPU on the pending task")
    assert "nvidia.com/gpu" in huge.message
    events = scheduler.ListJobEvents(pb.ListJobEventsRequest(parent=job.name), timeout=5).events
    progress = [e for e in events if e.type == pb.JobEvent.TYPE_TASK_PROGRESS]
    assert [e.reason for e in progress] == ["InsufficientGPU"]  # once, though the scheduler retries the pod

    def failed_scheduling() -> bool:
        cluster_events = scheduler.ListTaskClusterEvents(
            pb.ListTaskClusterEventsRequest(name=f"{job.name}/tasks/huge"), timeout=10).events
        return any(e.type == "Warning" and e.reason == "FailedScheduling" and "nvidia.com/gpu" in e.message
                   for e in cluster_events)

    assert_eventually(failed_scheduling, 60, interval=0.3, what="FailedScheduling among the task's cluster events")
    assert len(pods_of_job(kube_cluster, job.name)) == 1
    scheduler.CancelJob(pb.CancelJobRequest(name=job.name), timeout=10)
    assert wait_job(scheduler, job.name).state == pb.Job.STATE_CANCELLED
    assert_eventually(lambda: not pods_of_job(kube_cluster, job.name), 10, what="the pod deleted by the cancel")
    with pytest.raises(grpc.RpcError) as missing:
        scheduler.ListTaskClusterEvents(pb.ListTaskClusterEventsRequest(name=f"{job.name}/tasks/nope"), timeout=5)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def test_kill_9_mid_job_then_restart_re_adopts_the_pods(service_factory: Callable[..., ServiceProcess],
                                                        scheduler_env: dict[str, str],
                                                        kube_cluster: KubeCluster) -> None:
    first = service_factory("scheduler", scheduler_env)
    with channel(first.address) as ch:
        job = create(Stub(ch),
                     task("a"),
                     task("long", depends=["a"], env={"KWOK_RUN_DURATION": "4s"}),
                     task("side", "Job", ["a"], env={"KWOK_RUN_DURATION": "4s"}),
                     task("c", depends=["long", "side"]))

        def both_running() -> bool:
            tasks = tasks_of(Stub(ch), job.name)
            return all(tasks[n].state == pb.Task.STATE_RUNNING and tasks[n].resource_id for n in ("long", "side"))

        assert_eventually(both_running, 60, what="long and side running with recorded handles")
    assert_eventually(lambda: {p["metadata"]["labels"][names.LABEL_TASK] for p in pods_of_job(kube_cluster, job.name)
                               if p["status"].get("phase") == "Running"} >= {"long", "side"}, 10)
    first.kill()
    orphan = plant_orphan(kube_cluster)  # e.g. an attempt started just before a crash, then superseded

    second = service_factory("scheduler", scheduler_env)
    with channel(second.address) as ch:
        stub = Stub(ch)
        done = wait_job(stub, job.name)
        assert done.state == pb.Job.STATE_SUCCEEDED, describe(stub, job.name)
        assert {n: t.attempt for n, t in tasks_of(stub, job.name).items()} == {"a": 1, "long": 1, "side": 1, "c": 1}
        ran = [e.task.rsplit("/", 1)[1] for e in stub.ListJobEvents(
            pb.ListJobEventsRequest(parent=job.name), timeout=5).events if e.task_state == pb.Task.STATE_RUNNING
            and e.type == pb.JobEvent.TYPE_TASK_STATE_CHANGED]
        assert sorted(ran) == ["a", "c", "long", "side"]  # each task dispatched once, before or after the crash
        pods = pods_of_job(kube_cluster, job.name)
        assert sorted(p["metadata"]["labels"][names.LABEL_TASK] for p in pods) == ["a", "c", "long", "side"]
        assert_eventually(lambda: not pods_named(kube_cluster, orphan), 10, what="the orphan swept after restart")
        stub.DeleteJob(pb.DeleteJobRequest(name=job.name), timeout=30)
    assert objects_of_job(kube_cluster, job.name) == []


def plant_orphan(cluster: KubeCluster) -> str:
    """A running pod with Odin's labels whose attempt no scheduler follows."""
    name = "gone-job-step-1"
    labels = names.labels_for("gone-job", "step", "users/nobody", 1, name)
    cluster.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": name, "labels": labels,
        "annotations": {names.ANNOTATION_JOB_ID: "gone-job", names.ANNOTATION_TASK_ID: "gone-job--step"}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "trainer:1",
                                                           "env": [{"name": "KWOK_RUN_DURATION", "value": "10m"}]}]}})
    assert_eventually(lambda: any(p["status"].get("phase") == "Running" for p in pods_named(cluster, name)), 10)
    return name


def pods_named(cluster: KubeCluster, name: str) -> list[dict[str, Any]]:
    path = f"/api/v1/namespaces/{cluster.namespace}/pods?fieldSelector=metadata.name%3D{name}"
    return list(cluster.request("GET", path)["items"])
