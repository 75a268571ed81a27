"""Task -> Kubernetes object mapping and object -> task status mapping, without a cluster."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from odin_scheduler.executor.base import SharedPaths, TaskRun
from odin_scheduler.executor.kubernetes import names
from odin_scheduler.executor.kubernetes.config import KubernetesConfig
from odin_scheduler.executor.kubernetes.executor import KubernetesExecutor, merge_patch, termination_message
from odin_scheduler.executor.kubernetes.handlers import HANDLERS
from odin_scheduler.executor.kubernetes.status import (
    Phase,
    job_status,
    jobset_status,
    pod_status,
    queue_status,
    training_job_status,
)

from odin.pipeline_spec.model import (
    ConfigMapMount,
    EphemeralVolume,
    Mount,
    Resources,
    SecretMount,
    SecurityContext,
    TaskSpec,
)

DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def run_of(resource_type: str = "Pod", task: str = "train") -> TaskRun:
    return TaskRun(job_id="j-1a2b", task=task, task_id=f"j-1a2b--{task}", attempt=2, command=("python",),
                   args=("train.py",), image="trainer:1", resource_type=resource_type, cwd=Path("/tmp"),
                   attempt_dir=Path("/tmp/a"), env={"FROM_RUN": "1"})


FULL_SPEC = TaskSpec(
    name="train", image="trainer:1", command=("python",), args=("train.py",), num_gpus=2, num_workers=3,
    cpu=Resources(limits="4", requests="2"), memory=Resources(limits="8Gi", requests="4Gi"),
    mounts=(Mount("data", "/data", "datasets"), Mount("scratch", "/scratch")),
    secrets=(SecretMount("odin-cred", "/etc/odind/odin-cred.yml", "odin-cred.yml", 0o644),),
    config_maps=(ConfigMapMount("settings", "/etc/settings.yml", "settings.yml"),),
    ephem_volumes=(EphemeralVolume("scratch", "Memory", "1Gi"),),
    security_context=SecurityContext(fs_group=100, run_as_user=1000), pull_policy="Always",
    node_selector={"odin.test/pool": "gpu"}, env={"EPOCHS": "3"}, timeout_seconds=600)


def build(resource_type: str, spec: TaskSpec = FULL_SPEC, **config: Any) -> dict[str, Any]:
    executor = KubernetesExecutor(KubernetesConfig(namespace="tasks", **config), api=object(),  # type: ignore[arg-type]
                                  spec_of=lambda run: spec)
    run = run_of(resource_type)
    _, handler = executor._handler(resource_type)
    name = names.object_name(run.job_id, run.task, run.attempt)
    return handler.build(executor._context(run, spec, name))


@pytest.mark.parametrize("raw", ["j-1a2b", "Job_With.Odd Chars", "x" * 80, "9starts-with-digit", "a--b--"])
def test_object_names_are_dns_labels_and_distinct(raw: str) -> None:
    name = names.object_name(raw, "Task_1", 1)
    assert DNS_LABEL.match(name) and len(name) <= names.MAX_NAME
    assert name != names.object_name(raw, "task-1", 1) or raw.lower() == raw
    assert names.object_name(raw, "Task_1", 1) == name  # deterministic: a repeated create finds the same object


def test_pod_carries_every_task_field() -> None:
    pod = build("Pod")
    assert pod["metadata"]["name"] == "j-1a2b-train-2" and pod["metadata"]["namespace"] == "tasks"
    labels = pod["metadata"]["labels"]
    assert labels[names.LABEL_JOB] == "j-1a2b" and labels[names.LABEL_TASK] == "train"
    assert labels[names.LABEL_RUN] == "j-1a2b-train-2" and labels[names.MANAGED_BY] == "odin"
    spec = pod["spec"]
    (container,) = spec["containers"]
    assert container["image"] == "trainer:1" and container["imagePullPolicy"] == "Always"
    assert container["command"] == ["python"] and container["args"] == ["train.py"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["EPOCHS"] == "3" and env["FROM_RUN"] == "1" and env["ODIN_TASK_ID"] == "j-1a2b--train"
    assert container["resources"] == {"requests": {"cpu": "2", "memory": "4Gi"},
                                      "limits": {"cpu": "4", "memory": "8Gi", "nvidia.com/gpu": "2"}}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["pvc-data"]["persistentVolumeClaim"] == {"claimName": "datasets"}
    assert volumes["eph-scratch"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "1Gi"}
    assert volumes["secret-odin-cred"]["secret"] == {"secretName": "odin-cred", "defaultMode": 0o644}
    assert volumes["cm-settings"]["configMap"] == {"name": "settings"}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["eph-scratch"]["mountPath"] == "/scratch"
    assert mounts["cm-settings"]["subPath"] == "settings.yml"
    assert spec["nodeSelector"] == {"odin.test/pool": "gpu"}
    assert spec["securityContext"] == {"fsGroup": 100, "runAsUser": 1000}
    assert spec["restartPolicy"] == "Never" and spec["activeDeadlineSeconds"] == 600


def test_config_adds_service_account_pull_secrets_and_tolerations() -> None:
    toleration = {"key": "dedicated", "operator": "Equal", "value": "odin", "effect": "NoSchedule"}
    pod = build("Pod", service_account="trainer", image_pull_secrets=("registry",), tolerations=(toleration,))
    assert pod["spec"]["serviceAccountName"] == "trainer"
    assert pod["spec"]["imagePullSecrets"] == [{"name": "registry"}]
    assert pod["spec"]["tolerations"] == [toleration]


def test_job_runs_num_workers_indexed_pods_and_never_retries_itself() -> None:
    job = build("Job")
    assert job["apiVersion"] == "batch/v1" and job["spec"]["backoffLimit"] == 0
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 3
    assert job["spec"]["completionMode"] == "Indexed" and job["spec"]["activeDeadlineSeconds"] == 600
    assert job["spec"]["template"]["metadata"]["labels"][names.LABEL_RUN] == job["metadata"]["name"]


def replicas(obj: dict[str, Any], field: str) -> dict[str, tuple[int, str | None]]:
    return {role: (spec["replicas"], spec["template"]["spec"]["containers"][0].get("resources", {})
                   .get("limits", {}).get("nvidia.com/gpu")) for role, spec in obj["spec"][field].items()}


def test_training_jobs_get_replica_specs_with_gpus_per_worker() -> None:
    assert replicas(build("TFJob"), "tfReplicaSpecs") == {"Worker": (3, "2")}
    assert replicas(build("PyTorchJob"), "pytorchReplicaSpecs") == {"Master": (1, "2"), "Worker": (3, "2")}
    mpi = build("MPIJob")
    assert replicas(mpi, "mpiReplicaSpecs") == {"Launcher": (1, None), "Worker": (3, "2")}
    assert mpi["spec"]["slotsPerWorker"] == 2
    elastic = build("ElasticJob")
    assert elastic["kind"] == "PyTorchJob" and replicas(elastic, "pytorchReplicaSpecs") == {"Worker": (3, "2")}
    assert elastic["spec"]["elasticPolicy"]["minReplicas"] == elastic["spec"]["elasticPolicy"]["maxReplicas"] == 3
    assert build("pytjob")["kind"] == "PyTorchJob"  # the original's aliases still work


def test_a_new_training_kind_is_one_entry() -> None:
    from odin_scheduler.executor.kubernetes.handlers import Role, TrainingJobHandler

    HANDLERS["XGBoostJob"] = TrainingJobHandler(kind="XGBoostJob", plural="xgboostjobs",
                                                replica_field="xgbReplicaSpecs", container_name="xgboost",
                                                roles=(Role("Master", 1), Role("Worker")))
    try:
        obj = build("XGBoostJob")
        assert obj["kind"] == "XGBoostJob" and set(obj["spec"]["xgbReplicaSpecs"]) == {"Master", "Worker"}
    finally:
        del HANDLERS["XGBoostJob"]


def pod(phase: str, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "status": {"phase": phase, **status}}


def terminated(code: int, reason: str) -> dict[str, Any]:
    return {"containerStatuses": [{"name": "main", "state": {"terminated": {"exitCode": code, "reason": reason}}}]}


def waiting(reason: str) -> dict[str, Any]:
    return {"containerStatuses": [{"name": "main", "state": {"waiting": {"reason": reason}}}]}


def test_pod_phases_map_to_states_with_actionable_reasons() -> None:
    assert pod_status(pod("Succeeded")).phase == Phase.SUCCEEDED
    oom = pod_status(pod("Failed", **terminated(137, "OOMKilled")))
    assert (oom.phase, oom.reason, oom.exit_code) == (Phase.FAILED, "OOMKilled", 137)
    assert pod_status(pod("Failed", **terminated(3, "Error"))).reason == "NonZeroExit"
    deadline = pod_status(pod("Failed", reason="DeadlineExceeded", message="Pod was active too long"))
    assert deadline.reason == "DeadlineExceeded"
    pull = pod_status(pod("Pending", **waiting("ImagePullBackOff")))
    assert (pull.phase, pull.reason, pull.stuck) == (Phase.PENDING, "ImagePullBackOff", True)
    crash = pod_status(pod("Running", **waiting("CrashLoopBackOff")))
    assert (crash.phase, crash.reason, crash.stuck) == (Phase.RUNNING, "CrashLoopBackOff", False)
    unschedulable = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                     "message": "0/4 nodes are available: 4 Insufficient nvidia.com/gpu."}
    gpu = pod_status(pod("Pending", conditions=[unschedulable]))
    assert (gpu.reason, gpu.stuck) == ("InsufficientGPU", False) and "Insufficient nvidia.com/gpu" in gpu.message
    assert pod_status(pod("Pending", **waiting("ContainerCreating"))).reason == ""


def test_job_and_training_job_conditions() -> None:
    complete = {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    assert job_status(complete, []).phase == Phase.SUCCEEDED
    failed = {"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded",
                                         "message": "Job was active longer than specified deadline"}]}}
    assert job_status(failed, []).reason == "DeadlineExceeded"
    backoff = {"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}}
    detail = job_status(backoff, [pod("Failed", **terminated(2, "Error"))])
    assert (detail.reason, detail.exit_code) == ("NonZeroExit", 2)
    running = {"status": {"conditions": [{"type": "Created", "status": "True"}, {"type": "Running", "status": "True"}]}}
    assert training_job_status(running, []).phase == Phase.RUNNING
    done = {"status": {"conditions": [{"type": "Running", "status": "False"}, {"type": "Succeeded", "status": "True"}]}}
    assert training_job_status(done, []).phase == Phase.SUCCEEDED


def test_the_spec_is_read_back_from_the_stored_job_spec() -> None:
    from odin_scheduler.executor.kubernetes.executor import default_spec

    from odin.pipeline_spec.model import PipelineSpec
    from odin.pipeline_spec.render import render_spec_dict

    stored = render_spec_dict(PipelineSpec(name="p", tasks=(FULL_SPEC,)))["tasks"][0]
    run = replace(run_of(), spec=stored, env=dict(FULL_SPEC.env))  # what the engine passes along
    assert default_spec(run) == FULL_SPEC
    # The engine's rendering (variables and references resolved at dispatch) wins over the stored text.
    rendered = replace(run, command=("python3",), args=("train.py", "--epochs", "3"), env={"EPOCHS": "4"})
    spec = default_spec(rendered)
    assert (spec.command, spec.args, spec.env) == (("python3",), ("train.py", "--epochs", "3"), {"EPOCHS": "4"})
    assert (spec.num_gpus, spec.mounts) == (FULL_SPEC.num_gpus, FULL_SPEC.mounts)


# -- the data plane: shared paths and outputs ---------------------------------------------------------------------

def build_with_shared(resource_type: str = "Pod", **config: Any) -> dict[str, Any]:
    shared = SharedPaths(Path("/srv/runs"), Path("/srv/runs/j-1a2b"), Path("/srv/runs/.pipelines/j-1a2b"))
    executor = KubernetesExecutor(KubernetesConfig(namespace="tasks", **config), api=object(),  # type: ignore[arg-type]
                                  spec_of=lambda run: FULL_SPEC)
    run = replace(run_of(resource_type), shared=shared)
    _, handler = executor._handler(resource_type)
    return handler.build(executor._context(run, FULL_SPEC, names.object_name(run.job_id, run.task, run.attempt)))


def test_each_pod_mounts_only_its_jobs_run_path_rw_and_work_path_ro_from_the_runs_claim() -> None:
    pod = build_with_shared(runs_claim="odin-data")["spec"]
    for name in ("odin-runs", "odin-work"):  # one claim, two volumes: TrainJob overrides key mounts by volume
        assert {"name": name, "persistentVolumeClaim": {"claimName": "odin-data"}} in pod["volumes"]
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"] if m["name"].startswith("odin-")}
    assert mounts == {
        "/srv/runs/j-1a2b": {"name": "odin-runs", "mountPath": "/srv/runs/j-1a2b", "subPath": "j-1a2b"},
        "/srv/runs/.pipelines/j-1a2b": {"name": "odin-work", "mountPath": "/srv/runs/.pipelines/j-1a2b",
                                        "subPath": ".pipelines/j-1a2b", "readOnly": True}}


def test_without_a_runs_claim_pods_get_no_shared_paths() -> None:
    pod = build_with_shared()["spec"]
    assert all(v["name"] not in ("odin-runs", "odin-work") for v in pod["volumes"])
    assert all(m["name"] not in ("odin-runs", "odin-work") for m in pod["containers"][0]["volumeMounts"])


@pytest.mark.parametrize("resource_type", ["Pod", "Job", "PyTorchJob", "TFJob", "ElasticJob"])
def test_outputs_travel_as_the_termination_message_never_the_logs_tail(resource_type: str) -> None:
    for container in containers(build_with_shared(resource_type, runs_claim="odin-data")):
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["ODIN_OUTPUTS"] == container["terminationMessagePath"] == "/dev/termination-log"
        assert container["terminationMessagePolicy"] == "File"


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    if obj["kind"] == "Pod":
        return list(obj["spec"]["containers"])
    if obj["kind"] == "Job":
        return list(obj["spec"]["template"]["spec"]["containers"])
    replicas = next(v for k, v in obj["spec"].items() if k.endswith("ReplicaSpecs"))
    return [c for r in replicas.values() for c in r["template"]["spec"]["containers"]]


def finished_pod(name: str, container: str, message: str | None,
                 labels: dict[str, str] | None = None) -> dict[str, Any]:
    terminated: dict[str, Any] = {"exitCode": 0, "reason": "Completed"}
    if message is not None:
        terminated["message"] = message
    return {"metadata": {"name": name, "labels": labels or {}},
            "status": {"phase": "Succeeded",
                       "containerStatuses": [{"name": container, "state": {"terminated": terminated}}]}}


def test_outputs_come_from_the_first_replica_of_the_first_role() -> None:
    handler = HANDLERS["PyTorchJob"]
    role = "training.kubeflow.org/replica-type"
    index = "training.kubeflow.org/replica-index"
    pods = [finished_pod("w1", "pytorch", '{"who": "worker-1"}', {role: "worker", index: "1"}),
            finished_pod("m0", "pytorch", '{"who": "master-0"}', {role: "master", index: "0"}),
            finished_pod("w0", "pytorch", '{"who": "worker-0"}', {role: "worker", index: "0"})]
    assert termination_message(*handler.outputs_source({}, pods)) == '{"who": "master-0"}'
    elastic = HANDLERS["ElasticJob"]
    assert termination_message(*elastic.outputs_source({}, [pods[0], pods[2]])) == '{"who": "worker-0"}'
    job = HANDLERS["Job"]
    indexed = [finished_pod(f"p{i}", "main", f'{{"i": {i}}}', {"batch.kubernetes.io/job-completion-index": str(i)})
               for i in (2, 0, 1)]
    assert termination_message(*job.outputs_source({}, indexed)) == '{"i": 0}'
    pod = finished_pod("p", "main", None)
    assert termination_message(*HANDLERS["Pod"].outputs_source(pod, [pod])) is None


# -- Trainer v2, JobSet, Kueue -------------------------------------------------------------------------------------

def test_a_trainjob_maps_the_task_onto_the_runtimes_node_job() -> None:
    spec = replace(FULL_SPEC, num_workers=4, num_gpus=1, runtime=None, queue=None)
    obj = build("TrainJob", spec, trainjob_runtime="torch-distributed")
    assert obj["apiVersion"] == "trainer.kubeflow.org/v1alpha1" and "suspend" not in obj["spec"]
    assert obj["spec"]["runtimeRef"] == {"name": "torch-distributed", "apiGroup": "trainer.kubeflow.org",
                                         "kind": "ClusterTrainingRuntime"}
    trainer = obj["spec"]["trainer"]
    assert (trainer["image"], trainer["command"], trainer["args"], trainer["numNodes"]) == (
        "trainer:1", ["python"], ["train.py"], 4)
    assert trainer["resourcesPerNode"]["limits"] == {"cpu": "4", "memory": "8Gi", "nvidia.com/gpu": "1"}
    patch = obj["spec"]["runtimePatches"][0]
    assert patch["manager"] == "odin.dev/scheduler"
    node = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0]
    assert node["name"] == "node"
    pod = node["template"]["spec"]["template"]
    assert pod["metadata"]["labels"][names.LABEL_RUN] == obj["metadata"]["name"]  # pods are found by Odin's labels
    assert pod["spec"]["nodeSelector"] == {"odin.test/pool": "gpu"}
    assert {m["mountPath"] for m in pod["spec"]["containers"][0]["volumeMounts"]} >= {"/data", "/scratch"}
    assert obj["spec"]["activeDeadlineSeconds"] == 600
    named = build("TrainJob", replace(spec, runtime="deepspeed-distributed"))
    assert named["spec"]["runtimeRef"]["name"] == "deepspeed-distributed"


@pytest.mark.parametrize("resource_type", ["Job", "JobSet", "TrainJob", "PyTorchJob", "TFJob"])
def test_a_queued_task_is_labelled_and_created_suspended(resource_type: str) -> None:
    obj = build(resource_type, replace(FULL_SPEC, queue="team-a"))
    assert obj["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    suspended = obj["spec"].get("suspend") or obj["spec"].get("runPolicy", {}).get("suspend")
    assert suspended is True
    plain = build(resource_type, replace(FULL_SPEC, queue=None))
    assert "kueue.x-k8s.io/queue-name" not in plain["metadata"]["labels"]


def test_a_pod_with_a_queue_is_only_labelled() -> None:
    pod = build("Pod", replace(FULL_SPEC, queue="team-a"))
    assert pod["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a" and "suspend" not in pod["spec"]


def test_object_patch_is_a_json_merge_patch_of_the_spec() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": "x"}
    assert merge_patch(base, {"a": {"b": None, "c": [3]}, "e": {"f": 1}}) == {"a": {"c": [3]}, "d": "x",
                                                                              "e": {"f": 1}}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": "x"}  # the original is untouched


def test_jobset_and_trainjob_status() -> None:
    def obj(kind: str, *conditions: tuple[str, str], **status: Any) -> dict[str, Any]:
        return {"kind": kind, "status": {"conditions": [{"type": t, "status": "True", "reason": r, "message": r}
                                                        for t, r in conditions], **status}}

    assert jobset_status(obj("JobSet", ("Completed", "AllJobsCompleted")), []).phase == Phase.SUCCEEDED
    assert jobset_status(obj("TrainJob", ("Complete", "Done")), [], complete="Complete").phase == Phase.SUCCEEDED
    failed = jobset_status(obj("JobSet", ("Failed", "FailedJobs")), [])
    assert (failed.phase, failed.reason) == (Phase.FAILED, "FailedJobs")
    assert jobset_status(obj("JobSet", ("Suspended", "JobSetSuspended")), []).reason == "Suspended"
    running = jobset_status(obj("JobSet", replicatedJobsStatus=[{"name": "node", "active": 2}]), [])
    assert running.phase == Phase.RUNNING


def test_kueue_workload_states_become_task_reasons() -> None:
    def workload(*conditions: tuple[str, str, str]) -> dict[str, Any]:
        return {"status": {"conditions": [{"type": t, "status": s, "reason": r, "message": f"{r} message"}
                                          for t, s, r in conditions]}}

    assert queue_status(None, "q").reason == "Queued"
    assert queue_status(workload(), "q").reason == "Queued"
    pending = queue_status(workload(("QuotaReserved", "False", "Pending")), "team-a")
    assert (pending.phase, pending.reason) == (Phase.PENDING, "WaitingForQuota")
    assert pending.message == "waiting for quota in LocalQueue team-a: Pending message"
    assert queue_status(workload(("QuotaReserved", "True", "QuotaReserved")), "q").reason == "QuotaReserved"
    assert queue_status(workload(("Admitted", "True", "Admitted")), "q").reason == "Admitted"
    preempted = queue_status(workload(("Evicted", "True", "Preempted"), ("Admitted", "True", "Admitted")), "q")
    assert (preempted.phase, preempted.reason, preempted.discard) == (Phase.FAILED, "Preempted", True)
    assert not preempted.stuck  # retryable under the task's policy
