"""Task spec -> pod template: the one place that knows how a task's fields become Kubernetes fields."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from odin.pipeline_spec.model import Resources, TaskSpec
from odin_scheduler.executor.base import SharedPaths
from odin_scheduler.executor.kubernetes.config import KubernetesConfig

GPU_RESOURCE = "nvidia.com/gpu"
# Where a container writes its outputs ($ODIN_OUTPUTS): the kubelet hands the file back as the container's
# termination message when it ends (see executor/outputs.py for the size limit).
OUTPUTS_PATH = "/dev/termination-log"
RUNS_VOLUME = "odin-runs"
# The same claim again for WORK_PATH: a TrainJob's container overrides key volume mounts by volume name.
WORK_VOLUME = "odin-work"


@dataclass(frozen=True)
class PodContext:
    """What the pod template needs besides the task spec."""

    run_name: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    env: Mapping[str, str]  # Odin's variables (ODIN_TASK_ID, ...) on top of the task's env
    # The job's RUN_PATH and WORK_PATH, mounted from the runs claim (when the executor has one).
    shared: SharedPaths | None = None


def pod_template(spec: TaskSpec, ctx: PodContext, config: KubernetesConfig, *, container_name: str,
                 gpus: int, restart_policy: str = "Never") -> dict[str, Any]:
    """A PodTemplateSpec (metadata + spec) for one replica of the task."""
    pod_spec: dict[str, Any] = {
        "restartPolicy": restart_policy,
        "containers": [container(spec, ctx, container_name, gpus, runs=_runs_mounts(ctx, config))],
        "enableServiceLinks": False,
    }
    volumes = _volumes(spec)
    if config.runs_claim and ctx.shared is not None:
        volumes += [{"name": name, "persistentVolumeClaim": {"claimName": config.runs_claim}}
                    for name in (RUNS_VOLUME, WORK_VOLUME)]
    if volumes:
        pod_spec["volumes"] = volumes
    if spec.node_selector:
        pod_spec["nodeSelector"] = dict(spec.node_selector)
    tolerations = _tolerations(spec, config)
    if tolerations:
        pod_spec["tolerations"] = tolerations
    if spec.security_context is not None:
        pod_spec["securityContext"] = _security_context(spec)
    if config.service_account:
        pod_spec["serviceAccountName"] = config.service_account
    if config.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": name} for name in config.image_pull_secrets]
    return {"metadata": {"labels": dict(ctx.labels), "annotations": dict(ctx.annotations)}, "spec": pod_spec}


def container(spec: TaskSpec, ctx: PodContext, name: str, gpus: int,
              runs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "name": name,
        "image": spec.image,
        "imagePullPolicy": spec.pull_policy,
        "env": [{"name": k, "value": v} for k, v in {**spec.env, **ctx.env, "ODIN_OUTPUTS": OUTPUTS_PATH}.items()],
        "terminationMessagePath": OUTPUTS_PATH,
        # Never the log's tail instead: outputs come from the file or not at all.
        "terminationMessagePolicy": "File",
    }
    if spec.command:
        result["command"] = list(spec.command)
    if spec.args:
        result["args"] = list(spec.args)
    resources = _resources(spec.cpu, spec.memory, gpus)
    if resources:
        result["resources"] = resources
    mounts = [*(runs or []), *_volume_mounts(spec)]
    if mounts:
        result["volumeMounts"] = mounts
    return result


def _runs_mounts(ctx: PodContext, config: KubernetesConfig) -> list[dict[str, Any]]:
    """The job's RUN_PATH (read-write) and WORK_PATH (read-only) at the paths the engine computed, each by subPath
    of the runs claim: a pod sees its own job's files and nothing else of the volume."""
    shared = ctx.shared
    if not config.runs_claim or shared is None:
        return []
    return [
        {"name": RUNS_VOLUME, "mountPath": str(shared.run), "subPath": str(shared.run.relative_to(shared.root))},
        {"name": WORK_VOLUME, "mountPath": str(shared.work), "subPath": str(shared.work.relative_to(shared.root)),
         "readOnly": True},
    ]


def _resources(cpu: Resources, memory: Resources, gpus: int) -> dict[str, dict[str, str]]:
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    for key, res in (("cpu", cpu), ("memory", memory)):
        if res.requests:
            requests[key] = res.requests
        if res.limits:
            limits[key] = res.limits
    if gpus > 0:
        # Extended resources must have requests == limits; setting the limit is enough.
        limits[GPU_RESOURCE] = str(gpus)
    out: dict[str, dict[str, str]] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def _tolerations(spec: TaskSpec, config: KubernetesConfig) -> list[dict[str, str]]:
    tolerations = [dict(t) for t in config.tolerations]
    tolerations += [dict(t) for t in getattr(spec, "tolerations", ())]
    return tolerations


def _security_context(spec: TaskSpec) -> dict[str, int]:
    sc = spec.security_context
    assert sc is not None
    fields = {"fsGroup": sc.fs_group, "runAsGroup": sc.run_as_group, "runAsUser": sc.run_as_user}
    return {k: v for k, v in fields.items() if v is not None}


def _volume_name(kind: str, name: str) -> str:
    return f"{kind}-{name}"[:63].rstrip("-")


def _volumes(spec: TaskSpec) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = []
    ephemeral = {v.name for v in spec.ephem_volumes}
    for mount in spec.mounts:
        if mount.name in ephemeral:
            continue  # the mount of an ephemeral volume; the volume itself is declared below
        claim = mount.claim or mount.name
        volumes.append({"name": _volume_name("pvc", mount.name), "persistentVolumeClaim": {"claimName": claim}})
    for secret in spec.secrets:
        volumes.append({"name": _volume_name("secret", secret.name),
                        "secret": {"secretName": secret.name, "defaultMode": secret.mode}})
    for config_map in spec.config_maps:
        volumes.append({"name": _volume_name("cm", config_map.name), "configMap": {"name": config_map.name}})
    for volume in spec.ephem_volumes:
        empty_dir: dict[str, str] = {}
        if volume.medium and volume.medium.lower() == "memory":
            empty_dir["medium"] = "Memory"
        if volume.size_limit:
            empty_dir["sizeLimit"] = volume.size_limit
        volumes.append({"name": _volume_name("eph", volume.name), "emptyDir": empty_dir})
    return volumes


def _volume_mounts(spec: TaskSpec) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = []
    ephemeral = {v.name for v in spec.ephem_volumes}
    for mount in spec.mounts:
        kind = "eph" if mount.name in ephemeral else "pvc"
        mounts.append({"name": _volume_name(kind, mount.name), "mountPath": mount.path})
    for kind, sources in (("secret", spec.secrets), ("cm", spec.config_maps)):
        for source in sources:
            entry: dict[str, Any] = {"name": _volume_name(kind, source.name), "mountPath": source.path,
                                     "readOnly": True}
            if source.sub_path:
                entry["subPath"] = source.sub_path
            mounts.append(entry)
    return mounts
