"""Resource handlers: how each `resource_type` becomes a Kubernetes object and how its state is read back.

A new kind of training job is one entry in HANDLERS (a TrainingJobHandler with its kind, plural, replica field
and roles); a kind that needs different mapping subclasses ResourceHandler.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from odin.pipeline_spec.model import TaskSpec
from odin_scheduler.executor.kubernetes.config import KubernetesConfig
from odin_scheduler.executor.kubernetes.podspec import PodContext, pod_template
from odin_scheduler.executor.kubernetes.status import (
    Obj,
    Status,
    job_status,
    jobset_status,
    pod_status,
    training_job_status,
)

QUEUE_LABEL = "kueue.x-k8s.io/queue-name"


@dataclass(frozen=True)
class BuildContext:
    """Everything a handler needs to build the object of one attempt."""

    name: str
    namespace: str
    spec: TaskSpec
    pod: PodContext
    config: KubernetesConfig

    def metadata(self) -> dict[str, Any]:
        labels = dict(self.pod.labels)
        if self.spec.queue:
            labels[QUEUE_LABEL] = self.spec.queue
        return {"name": self.name, "namespace": self.namespace, "labels": labels,
                "annotations": dict(self.pod.annotations)}

    @property
    def queued(self) -> bool:
        """Kueue admits it: created suspended, and only Kueue unsuspends it (Odin never does)."""
        return bool(self.spec.queue)


class ResourceHandler:
    kind = ""
    api_version = ""
    plural = ""

    def collection_path(self, namespace: str) -> str:
        prefix = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        return f"{prefix}/namespaces/{namespace}/{self.plural}"

    def object_path(self, namespace: str, name: str) -> str:
        return f"{self.collection_path(namespace)}/{name}"

    def build(self, ctx: BuildContext) -> dict[str, Any]:
        raise NotImplementedError

    def status(self, obj: Obj, pods: Sequence[Obj]) -> Status:
        raise NotImplementedError

    def replica_label(self, pod: Obj) -> str:
        """How a pod is named in a multi-pod attempt's log ("worker-1"); the pod name by default."""
        return str(pod["metadata"]["name"])

    def outputs_source(self, obj: Obj, pods: Sequence[Obj]) -> tuple[Obj | None, str]:
        """The pod and container whose termination message holds the attempt's outputs: the first replica."""
        ordered = sorted(pods, key=self.replica_label)
        return (ordered[0] if ordered else None), "main"


class PodHandler(ResourceHandler):
    kind, api_version, plural = "Pod", "v1", "pods"

    def build(self, ctx: BuildContext) -> dict[str, Any]:
        template = pod_template(ctx.spec, ctx.pod, ctx.config, container_name="main", gpus=ctx.spec.num_gpus)
        spec = template["spec"]
        if ctx.spec.timeout_seconds:
            spec["activeDeadlineSeconds"] = max(1, int(ctx.spec.timeout_seconds))
        return {"apiVersion": "v1", "kind": "Pod", "metadata": ctx.metadata(), "spec": spec}

    def status(self, obj: Obj, pods: Sequence[Obj]) -> Status:
        return pod_status(obj)

    def outputs_source(self, obj: Obj, pods: Sequence[Obj]) -> tuple[Obj | None, str]:
        return obj, "main"


class JobHandler(ResourceHandler):
    """batch/v1 Job. Odin retries attempts itself, so the Job never retries (backoffLimit 0); `num_workers` > 1
    makes an Indexed Job with that many pods running at once."""

    kind, api_version, plural = "Job", "batch/v1", "jobs"

    def build(self, ctx: BuildContext) -> dict[str, Any]:
        workers = max(1, ctx.spec.num_workers)
        template = pod_template(ctx.spec, ctx.pod, ctx.config, container_name="main", gpus=ctx.spec.num_gpus)
        spec: dict[str, Any] = {"backoffLimit": 0, "completions": workers, "parallelism": workers,
                                "template": template}
        if ctx.queued:
            spec["suspend"] = True
        if workers > 1:
            spec["completionMode"] = "Indexed"
        if ctx.spec.timeout_seconds:
            spec["activeDeadlineSeconds"] = max(1, int(ctx.spec.timeout_seconds))
        return {"apiVersion": "batch/v1", "kind": "Job", "metadata": ctx.metadata(), "spec": spec}

    def status(self, obj: Obj, pods: Sequence[Obj]) -> Status:
        return job_status(obj, pods)

    def replica_label(self, pod: Obj) -> str:
        index = pod["metadata"].get("labels", {}).get("batch.kubernetes.io/job-completion-index")
        return f"worker-{index}" if index is not None else str(pod["metadata"]["name"])


class JobSetHandler(ResourceHandler):
    """`jobset.x-k8s.io/v1alpha2 JobSet`: one replicated Job `node` with `num_workers` replicas of one pod each
    (`replica_label` `node-<index>`). Odin retries attempts itself, so the JobSet never restarts (maxRestarts 0)."""

    kind, api_version, plural = "JobSet", "jobset.x-k8s.io/v1alpha2", "jobsets"
    complete_condition = "Completed"

    def build(self, ctx: BuildContext) -> dict[str, Any]:
        template = pod_template(ctx.spec, ctx.pod, ctx.config, container_name="main", gpus=ctx.spec.num_gpus)
        job: dict[str, Any] = {"parallelism": 1, "completions": 1, "backoffLimit": 0, "template": template}
        if ctx.spec.timeout_seconds:
            job["activeDeadlineSeconds"] = max(1, int(ctx.spec.timeout_seconds))
        spec: dict[str, Any] = {
            "failurePolicy": {"maxRestarts": 0},
            "replicatedJobs": [{"name": "node", "replicas": max(1, ctx.spec.num_workers),
                                "template": {"metadata": {"labels": dict(ctx.pod.labels)}, "spec": job}}],
        }
        if ctx.queued:
            spec["suspend"] = True
        return {"apiVersion": self.api_version, "kind": self.kind, "metadata": ctx.metadata(), "spec": spec}

    def status(self, obj: Obj, pods: Sequence[Obj]) -> Status:
        return jobset_status(obj, pods, complete=self.complete_condition)

    def replica_label(self, pod: Obj) -> str:
        labels = pod["metadata"].get("labels", {})
        index = labels.get("jobset.sigs.k8s.io/job-index")
        return f"node-{index}" if index is not None else str(pod["metadata"]["name"])


class TrainJobHandler(JobSetHandler):
    """Kubeflow Trainer v2 `trainer.kubeflow.org/v1alpha1 TrainJob` on a ClusterTrainingRuntime (the task's
    `runtime`, else the executor's default): image, command, args and env become `spec.trainer`, `num_workers`
    `numNodes`, GPUs/cpu/memory `resourcesPerNode`, `timeout` `activeDeadlineSeconds`. Odin's labels, the volumes and
    mounts, node selector, tolerations, security context and service account reach the runtime's `node` job (and its
    JobSet and pods) through one `runtimePatches` entry owned by manager `odin`."""

    kind, api_version, plural = "TrainJob", "trainer.kubeflow.org/v1alpha1", "trainjobs"
    complete_condition = "Complete"
    container = "node"
    manager = "odin.dev/scheduler"

    def build(self, ctx: BuildContext) -> dict[str, Any]:
        spec_, config = ctx.spec, ctx.config
        template = pod_template(spec_, ctx.pod, config, container_name=self.container, gpus=spec_.num_gpus)
        pod, main = template["spec"], template["spec"]["containers"][0]
        trainer: dict[str, Any] = {"image": spec_.image, "env": main["env"], "numNodes": max(1, spec_.num_workers)}
        for key in ("command", "args"):
            if key in main:
                trainer[key] = main[key]
        if "resources" in main:
            trainer["resourcesPerNode"] = main["resources"]
        pod_patch: dict[str, Any] = {key: pod[key] for key in (
            "volumes", "nodeSelector", "tolerations", "serviceAccountName", "securityContext", "imagePullSecrets")
            if key in pod}
        if "volumeMounts" in main:
            pod_patch["containers"] = [{"name": self.container, "volumeMounts": main["volumeMounts"]}]
        meta = {"labels": dict(ctx.pod.labels), "annotations": dict(ctx.pod.annotations)}
        job_patch = {"name": self.container, "template": {"metadata": meta, "spec": {
            "template": {"metadata": meta, "spec": pod_patch}}}}
        runtime = spec_.runtime or config.trainjob_runtime
        spec: dict[str, Any] = {
            "runtimeRef": {"name": runtime, "apiGroup": "trainer.kubeflow.org", "kind": "ClusterTrainingRuntime"},
            "trainer": trainer,
            "runtimePatches": [{"manager": self.manager, "trainingRuntimeSpec": {"template": {
                "metadata": meta, "spec": {"replicatedJobs": [job_patch]}}}}],
        }
        if spec_.timeout_seconds:
            spec["activeDeadlineSeconds"] = max(1, int(spec_.timeout_seconds))
        if ctx.queued:
            spec["suspend"] = True
        return {"apiVersion": self.api_version, "kind": self.kind, "metadata": ctx.metadata(), "spec": spec}

    def outputs_source(self, obj: Obj, pods: Sequence[Obj]) -> tuple[Obj | None, str]:
        ordered = sorted(pods, key=self.replica_label)
        return (ordered[0] if ordered else None), self.container


WORKERS = -1  # a role's replica count: the task's num_workers


@dataclass(frozen=True)
class Role:
    name: str
    replicas: int = WORKERS
    gpus: bool = True  # whether the role's pods get the task's num_gpus (an MPI launcher does not)


@dataclass(frozen=True)
class TrainingJobHandler(ResourceHandler):
    """A Kubeflow-style training job: one pod template per role under `<replica_field>`; status conditions
    Created/Running/Succeeded/Failed. One instance per kind; see HANDLERS."""

    kind: str = ""
    plural: str = ""
    replica_field: str = ""
    container_name: str = ""
    roles: tuple[Role, ...] = ()
    api_version: str = "kubeflow.org/v1"
    restart_policy: str = "Never"
    extra_spec: Mapping[str, Any] = field(default_factory=dict)

    def build(self, ctx: BuildContext) -> dict[str, Any]:
        replicas = {}
        for role in self.roles:
            count = max(1, ctx.spec.num_workers) if role.replicas == WORKERS else role.replicas
            template = pod_template(ctx.spec, ctx.pod, ctx.config, container_name=self.container_name,
                                    gpus=ctx.spec.num_gpus if role.gpus else 0, restart_policy=self.restart_policy)
            replicas[role.name] = {"replicas": count, "restartPolicy": self.restart_policy, "template": template}
        run_policy: dict[str, Any] = {"cleanPodPolicy": "None", "backoffLimit": 0}
        if ctx.queued:
            run_policy["suspend"] = True
        if ctx.spec.timeout_seconds:
            run_policy["activeDeadlineSeconds"] = max(1, int(ctx.spec.timeout_seconds))
        spec = {"runPolicy": run_policy, self.replica_field: replicas, **self.job_spec(ctx)}
        return {"apiVersion": self.api_version, "kind": self.kind, "metadata": ctx.metadata(), "spec": spec}

    def job_spec(self, ctx: BuildContext) -> dict[str, Any]:
        """Kind-specific top-level spec fields."""
        return dict(self.extra_spec)

    def status(self, obj: Obj, pods: Sequence[Obj]) -> Status:
        return training_job_status(obj, pods)

    def outputs_source(self, obj: Obj, pods: Sequence[Obj]) -> tuple[Obj | None, str]:
        """The first role's first replica (Master, the first Worker, ...) as the roles are declared."""
        order = {role.name.lower(): i for i, role in enumerate(self.roles)}
        ordered = sorted(pods, key=lambda pod: (order.get(self.replica_label(pod).rsplit("-", 1)[0], 99),
                                                self.replica_label(pod)))
        return (ordered[0] if ordered else None), self.container_name

    def replica_label(self, pod: Obj) -> str:
        labels = pod["metadata"].get("labels", {})
        role = labels.get("training.kubeflow.org/replica-type")
        index = labels.get("training.kubeflow.org/replica-index")
        return f"{role.lower()}-{index}" if role and index is not None else str(pod["metadata"]["name"])


@dataclass(frozen=True)
class MPIJobHandler(TrainingJobHandler):
    def job_spec(self, ctx: BuildContext) -> dict[str, Any]:
        return {"slotsPerWorker": max(1, ctx.spec.num_gpus), **self.extra_spec}


@dataclass(frozen=True)
class ElasticJobHandler(TrainingJobHandler):
    """Elastic PyTorch: a PyTorchJob whose workers rendezvous among themselves (c10d), no master."""

    def job_spec(self, ctx: BuildContext) -> dict[str, Any]:
        workers = max(1, ctx.spec.num_workers)
        return {"elasticPolicy": {"minReplicas": workers, "maxReplicas": workers, "rdzvBackend": "c10d",
                                  "maxRestarts": 0}, **self.extra_spec}


HANDLERS: dict[str, ResourceHandler] = {
    "Pod": PodHandler(),
    "Job": JobHandler(),
    "TFJob": TrainingJobHandler(kind="TFJob", plural="tfjobs", replica_field="tfReplicaSpecs",
                                container_name="tensorflow", roles=(Role("Worker"),)),
    "PyTorchJob": TrainingJobHandler(kind="PyTorchJob", plural="pytorchjobs", replica_field="pytorchReplicaSpecs",
                                     container_name="pytorch", roles=(Role("Master", 1), Role("Worker"))),
    "MPIJob": MPIJobHandler(kind="MPIJob", plural="mpijobs", replica_field="mpiReplicaSpecs", container_name="mpi",
                            roles=(Role("Launcher", 1, gpus=False), Role("Worker"))),
    "ElasticJob": ElasticJobHandler(kind="PyTorchJob", plural="pytorchjobs", replica_field="pytorchReplicaSpecs",
                                    container_name="pytorch", roles=(Role("Worker"),)),
    "JobSet": JobSetHandler(),
    "TrainJob": TrainJobHandler(),
}


def handler_for(resource_type: str) -> ResourceHandler | None:
    return HANDLERS.get(resource_type) or HANDLERS.get(
        {name.lower(): name for name in HANDLERS}.get(resource_type.lower(), ""))
