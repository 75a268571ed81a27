"""TrainJob (Kubeflow Trainer v2), JobSet and Kueue, driven by their real controllers on the real test node, through a
real `odin-scheduler` running as its least-privilege identity."""

from __future__ import annotations

import json
import re
import time
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
from support.rpc_errors import rpc_failure
from support.scheduler import Stub, tasks_of
from support.scheduler import scheduler_env as sqlite_scheduler_env
from support.scheduler import wait_job as wait_job_for
from support.waiting import assert_eventually

from odin.scheduler.v1 import scheduler_pb2 as pb

REPO = Path(__file__).resolve().parents[2]
IMAGE = "odin.local/python:3"
KUEUE = "/apis/kueue.x-k8s.io/v1beta2"


@pytest.fixture
def scheduler(real_cluster: KubeCluster, runs_dir: Path, tmp_path: Path,
              service_factory: Callable[..., ServiceProcess]) -> Iterator[Stub]:
    env = sqlite_scheduler_env(
        tmp_path, heartbeat_seconds="0.5", executor="kubernetes", kubeconfig=str(real_cluster.scheduler_kubeconfig),
        kube_namespace=real_cluster.namespace, kube_runs_claim="odin-runs", run_path=str(runs_dir),
        kube_cleanup="keep")
    with channel(service_factory("scheduler", env).address) as ch:
        yield Stub(ch)


def queue_objects(cluster: KubeCluster, name: str, cpu: str, preemption: bool = False) -> None:
    """A ClusterQueue `name` with `cpu` of quota in flavor `default`, and the LocalQueue `name` pointing at it."""
    cluster.apply({"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor", "metadata": {"name": "default"}})
    spec: dict[str, Any] = {"namespaceSelector": {}, "resourceGroups": [quota(cpu)]}
    if preemption:
        spec["preemption"] = {"withinClusterQueue": "LowerPriority"}
    cluster.apply({"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ClusterQueue", "metadata": {"name": name},
                   "spec": spec})
    cluster.apply({"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "LocalQueue",
                   "metadata": {"name": name, "namespace": cluster.namespace}, "spec": {"clusterQueue": name}})


def quota(cpu: str) -> dict[str, Any]:
    return {"coveredResources": ["cpu", "memory"],
            "flavors": [{"name": "default", "resources": [{"name": "cpu", "nominalQuota": cpu},
                                                          {"name": "memory", "nominalQuota": "8Gi"}]}]}


def create(stub: Stub, *tasks: dict[str, Any], **pipeline: Any) -> pb.Job:
    main_yml = json.dumps({"name": "training", **pipeline, "tasks": list(tasks)})
    return stub.CreateJob(pb.CreateJobRequest(inline=pb.InlinePipeline(main_yml=main_yml)), timeout=10).job


def python_task(name: str, script: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": IMAGE, "pull_policy": "Never", "command": ["python3", "-c", script],
            "cpu": {"requests": "100m"}, **extra}


def wait_job(stub: Stub, job: str, timeout: float = 180) -> pb.Job:
    return wait_job_for(stub, job, timeout=timeout)


def logs(stub: Stub, task: str) -> str:
    return "".join(p.data for p in stub.StreamTaskLogs(pb.StreamTaskLogsRequest(name=task), timeout=20))


def describe(stub: Stub, job: str) -> dict[str, tuple[str, str, str]]:
    return {n: (pb.Task.State.Name(t.state), t.reason, t.message) for n, t in tasks_of(stub, job).items()}


def listed(cluster: KubeCluster, path: str, selector: str) -> list[str]:
    items = cluster.request("GET", f"{path}?labelSelector={quote(selector)}")["items"]
    return [item["metadata"]["name"] for item in items]


# -- Trainer v2 and JobSet ---------------------------------------------------------------------------------------

RANKED = ("import json, os\nrank = os.environ.get('JOB_COMPLETION_INDEX') or os.environ.get('PET_NODE_RANK')\n"
          "print('node', rank, 'of', os.environ.get('PET_NNODES'), flush=True)\n"
          "json.dump({'rank': rank}, open(os.environ['ODIN_OUTPUTS'], 'w'))")


def test_a_two_node_trainjob_becomes_a_jobset_runs_and_succeeds(scheduler: Stub, real_cluster: KubeCluster) -> None:
    job = create(scheduler, python_task("train", RANKED, resource_type="TrainJob", num_workers=2))
    done = wait_job(scheduler, job.name)
    assert done.state == pb.Job.STATE_SUCCEEDED, describe(scheduler, job.name)
    task = tasks_of(scheduler, job.name)["train"]
    name = task.resource_id.removeprefix("trainjob/")
    jobset = real_cluster.request("GET", f"/apis/jobset.x-k8s.io/v1alpha2/namespaces/{real_cluster.namespace}"
                                         f"/jobsets/{name}")
    assert jobset["metadata"]["ownerReferences"][0]["kind"] == "TrainJob"  # made by the Trainer controller
    text = logs(scheduler, task.name)
    assert "node 0 of 2" in text and "node 1 of 2" in text, text  # both nodes' pods ran and were logged
    assert dict(task.outputs) == {"rank": "0"}  # outputs come from the first node


def test_a_jobset_task_runs_its_workers(scheduler: Stub) -> None:
    job = create(scheduler, python_task("sweep", RANKED, resource_type="JobSet", num_workers=2))
    assert wait_job(scheduler, job.name).state == pb.Job.STATE_SUCCEEDED, describe(scheduler, job.name)
    text = logs(scheduler, f"{job.name}/tasks/sweep")
    assert "[node-0]" in text and "[node-1]" in text, text


def test_an_unknown_runtime_fails_the_task_naming_it(scheduler: Stub) -> None:
    job = create(scheduler, python_task("train", "pass", resource_type="TrainJob", runtime="no-such-runtime"))
    assert wait_job(scheduler, job.name).state == pb.Job.STATE_FAILED
    task = tasks_of(scheduler, job.name)["train"]
    assert "no-such-runtime" in task.message, (task.reason, task.message)


def test_num_workers_over_the_runtimes_limit_fails_the_task_naming_the_field(scheduler: Stub,
                                                                            real_cluster: KubeCluster) -> None:
    # An MPI runtime that runs its launcher as a node but has no launcher job takes one node only (Trainer's rule).
    real_cluster.apply({
        "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "ClusterTrainingRuntime",
        "metadata": {"name": "single-node-mpi"},
        "spec": {"mlPolicy": {"numNodes": 1, "mpi": {"runLauncherAsNode": True}}, "template": {"spec": {
            "replicatedJobs": [{"name": "node", "template": {"spec": {"template": {"spec": {
                "containers": [{"name": "node", "image": IMAGE}]}}}}}]}}}})
    job = create(scheduler, python_task("train", "pass", resource_type="TrainJob", runtime="single-node-mpi",
                                        num_workers=2))
    assert wait_job(scheduler, job.name, timeout=60).state == pb.Job.STATE_FAILED
    task = tasks_of(scheduler, job.name)["train"]
    assert task.reason == "InvalidObject" and "numNodes" in task.message, (task.reason, task.message)


def test_deleting_the_job_removes_the_trainjob_its_jobset_and_pods(scheduler: Stub, real_cluster: KubeCluster) -> None:
    job = create(scheduler, python_task("train", RANKED, resource_type="TrainJob", num_workers=2))
    assert wait_job(scheduler, job.name).state == pb.Job.STATE_SUCCEEDED
    name = tasks_of(scheduler, job.name)["train"].resource_id.removeprefix("trainjob/")
    ns = real_cluster.namespace
    jobset_pods = f"jobset.sigs.k8s.io/jobset-name={name}"
    assert listed(real_cluster, f"/api/v1/namespaces/{ns}/pods", jobset_pods)  # kept (cleanup: keep)
    scheduler.DeleteJob(pb.DeleteJobRequest(name=job.name), timeout=30)

    def gone() -> bool:
        left = listed(real_cluster, f"/api/v1/namespaces/{ns}/pods", jobset_pods)
        left += listed(real_cluster, f"/apis/jobset.x-k8s.io/v1alpha2/namespaces/{ns}/jobsets",
                       f"jobset.sigs.k8s.io/jobset-name={name}")
        left += [n for n in listed(real_cluster, f"/apis/trainer.kubeflow.org/v1alpha1/namespaces/{ns}/trainjobs",
                                   names.managed_selector()) if n == name]
        return not left

    assert_eventually(gone, timeout=60, interval=0.5, what="TrainJob, JobSet and pods deleted")


# -- Kueue ---------------------------------------------------------------------------------------------------------

@pytest.mark.timeout(240)
def test_a_queue_without_quota_keeps_the_task_pending_with_kueues_reason_until_quota_comes(
        scheduler: Stub, real_cluster: KubeCluster) -> None:
    queue_objects(real_cluster, "starved", cpu="0")
    job = create(scheduler, python_task("train", RANKED, resource_type="JobSet"), queue="starved")
    task_name = f"{job.name}/tasks/train"

    def waiting() -> pb.Task | None:
        task = scheduler.GetTask(pb.GetTaskRequest(name=task_name), timeout=5).task
        return task if task.reason == "WaitingForQuota" else None

    task = assert_eventually(waiting, timeout=60, interval=0.2, what="pending on Kueue quota")
    # Kueue's own words: the flavor, the pod set and what is missing.
    assert task.message.startswith("waiting for quota in LocalQueue starved: ") and "quota" in task.message
    obj = real_cluster.request("GET", f"/apis/jobset.x-k8s.io/v1alpha2/namespaces/{real_cluster.namespace}"
                                      f"/jobsets/{task.resource_id.removeprefix('jobset/')}")
    assert obj["spec"]["suspend"] is True and obj["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "starved"
    real_cluster.request_patch(f"{KUEUE}/clusterqueues/starved", {"spec": {"resourceGroups": [quota("2")]}})
    assert wait_job(scheduler, job.name).state == pb.Job.STATE_SUCCEEDED, describe(scheduler, job.name)
    events = scheduler.ListJobEvents(pb.ListJobEventsRequest(parent=job.name), timeout=5).events
    assert any(e.reason == "WaitingForQuota" for e in events), [e.reason for e in events]


@pytest.mark.timeout(360)
def test_a_preempted_task_is_retried_under_its_retry_policy(scheduler: Stub, real_cluster: KubeCluster) -> None:
    queue_objects(real_cluster, "small", cpu="1", preemption=True)
    real_cluster.apply({"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "WorkloadPriorityClass",
                        "metadata": {"name": "urgent"}, "value": 1000})
    # Attempt 1 runs until preempted; attempt 2 ends at once.
    script = "import os, time\nif os.environ['ODIN_ATTEMPT'] == '1':\n    time.sleep(600)"
    job = create(scheduler, python_task("long", script, resource_type="JobSet", cpu={"requests": "1"},
                                        retries={"limit": 1, "backoff": "1s"}), queue="small")
    ns = real_cluster.namespace
    job_pods = f"{names.LABEL_JOB}={names.label_value(job.name.removeprefix('jobs/'))}"

    def attempt_1_running() -> bool:  # admitted by Kueue and its pod started: only then is there something to preempt
        pods = real_cluster.request("GET", f"/api/v1/namespaces/{ns}/pods?labelSelector={quote(job_pods)}")["items"]
        return any(p.get("status", {}).get("phase") == "Running" for p in pods)

    assert_eventually(attempt_1_running, timeout=90, interval=0.2, what="attempt 1 admitted and its pod running")
    real_cluster.apply({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "urgent", "namespace": ns, "labels": {"kueue.x-k8s.io/queue-name": "small",
                                                                   "kueue.x-k8s.io/priority-class": "urgent"}},
        "spec": {"suspend": True, "backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [
            {"name": "c", "image": IMAGE, "imagePullPolicy": "Never", "command": ["python3", "-c", "pass"],
             "resources": {"requests": {"cpu": "1"}}}]}}}})
    done = wait_job(scheduler, job.name, timeout=240)
    assert done.state == pb.Job.STATE_SUCCEEDED, describe(scheduler, job.name)
    assert tasks_of(scheduler, job.name)["long"].attempt == 2
    events = scheduler.ListJobEvents(pb.ListJobEventsRequest(parent=job.name), timeout=5).events
    assert any(e.attempt == 1 and e.reason == "Preempted" for e in events), [(e.attempt, e.reason) for e in events]


def test_a_queued_plain_pod_waits_at_kueues_gate_and_runs_once_admitted(scheduler: Stub,
                                                                       real_cluster: KubeCluster) -> None:
    queue_objects(real_cluster, "pods", cpu="1")
    job = create(scheduler, python_task("single", RANKED), queue="pods")  # resource_type Pod (the default)
    assert wait_job(scheduler, job.name).state == pb.Job.STATE_SUCCEEDED, describe(scheduler, job.name)
    pod = tasks_of(scheduler, job.name)["single"].resource_id.removeprefix("pod/")
    workloads = real_cluster.request("GET", f"{KUEUE}/namespaces/{real_cluster.namespace}/workloads")["items"]
    admitted = [w for w in workloads if any(o["name"] == pod for o in w["metadata"].get("ownerReferences", []))
                and any(c["type"] == "Admitted" for c in w.get("status", {}).get("conditions", []))]
    assert admitted, "Kueue admitted a Workload for the task's pod"  # its pod integration gated and released it


def test_a_queue_that_does_not_exist_fails_the_task_at_once(scheduler: Stub) -> None:
    started = time.monotonic()
    job = create(scheduler, python_task("t", "pass", resource_type="Job", queue="no-such-queue"))
    assert wait_job(scheduler, job.name, timeout=60).state == pb.Job.STATE_FAILED
    task = tasks_of(scheduler, job.name)["t"]
    assert task.reason == "QueueNotFound" and "no-such-queue" in task.message
    assert time.monotonic() - started < 30


@pytest.mark.parametrize(("extra", "field"), [
    ({"queue": "Bad_Queue"}, "inline.main_yml.tasks[0].queue"),
    ({"runtime": "x" * 80}, "inline.main_yml.tasks[0].runtime"),
    ({"object_patch": {"metadata": {"name": "other"}}}, "inline.main_yml.tasks[0].object_patch.metadata"),
    ({"object_patch": {"spec": "replace everything"}}, "inline.main_yml.tasks[0].object_patch.spec"),
])
def test_malformed_training_fields_are_invalid_argument_with_field_paths(scheduler: Stub, extra: dict[str, Any],
                                                                         field: str) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        create(scheduler, python_task("t", "pass", resource_type="TrainJob", **extra))
    failure = rpc_failure(caught.value)
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT and field in dict(failure.violations), failure


# -- the documented example ----------------------------------------------------------------------------------------

@pytest.mark.timeout(240)
def test_the_kueue_and_trainer_example_in_the_docs_runs(scheduler: Stub, real_cluster: KubeCluster) -> None:
    docs = (REPO / "docs" / "kubernetes.md").read_text()
    section = docs[docs.index("## Kueue and Trainer v2"):]
    example = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert example, "the section has a YAML example"
    queue_objects(real_cluster, "team-a", cpu="4")
    main_yml = example.group(1).replace("pytorch/pytorch:2.7.1-cuda12.8-cudnn9-runtime", IMAGE)
    job = scheduler.CreateJob(pb.CreateJobRequest(inline=pb.InlinePipeline(main_yml=main_yml)), timeout=10).job
    assert wait_job(scheduler, job.name).state == pb.Job.STATE_SUCCEEDED, describe(scheduler, job.name)
