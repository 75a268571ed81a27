"""Resolves pod UIDs (from cgroups) to pod names through the Kubernetes API, and fills GPU processes.

The agent lists the pods of its own node once and again only when it meets a UID it does not
know, at most once per `min_relist_seconds`. Pods that Odin starts carry the labels `odin.job`
and `odin.task`, which name the job and task directly.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from odin.midgard.v1 import midgard_pb2
from odin_midgard.cgroups import pod_of_process

log = logging.getLogger("odin.midgard.agent")

JOB_LABEL = "odin.job"
TASK_LABEL = "odin.task"


@dataclasses.dataclass(frozen=True)
class PodInfo:
    namespace: str
    name: str
    labels: dict[str, str]
    # Container id (without the `containerd://` scheme) → container name, from the pod's status.
    containers: dict[str, str] = dataclasses.field(default_factory=dict)


class PodDirectory:
    """Pod UID → PodInfo for one node, read with the kubernetes client's `list_pod_for_all_namespaces`."""

    def __init__(self, core_api: Any, node_name: str, min_relist_seconds: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._api = core_api
        self._node = node_name
        self._min_relist = min_relist_seconds
        self._clock = clock
        self._pods: dict[str, PodInfo] = {}
        self._listed_at: float | None = None

    def lookup(self, uid: str) -> PodInfo | None:
        if uid not in self._pods and self._may_relist():
            self._relist()
        return self._pods.get(uid)

    def _may_relist(self) -> bool:
        return self._listed_at is None or self._clock() - self._listed_at >= self._min_relist

    def _relist(self) -> None:
        self._listed_at = self._clock()
        try:
            listed = self._api.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={self._node}")
        except Exception as exc:  # the API being down must never stop GPU reporting
            log.warning("cannot list pods", extra={"error": str(exc)})
            return
        self._pods = {
            pod.metadata.uid: PodInfo(pod.metadata.namespace, pod.metadata.name, dict(pod.metadata.labels or {}),
                                      _container_names(pod))
            for pod in listed.items
        }

    def container_name(self, pod_uid: str, container_id: str) -> str:
        """The name of a pod's container by id; empty when unknown (no relist: called per scrape)."""
        info = self._pods.get(pod_uid)
        return info.containers.get(container_id, "") if info else ""


def _container_names(pod: Any) -> dict[str, str]:
    status = getattr(pod, "status", None)
    statuses = [*(getattr(status, "container_statuses", None) or []),
                *(getattr(status, "init_container_statuses", None) or [])]
    return {str(s.container_id).partition("://")[2]: str(s.name) for s in statuses if s.container_id}


def kubernetes_core_api() -> Any:
    """A CoreV1Api from the in-cluster service account, else the local kubeconfig."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    return client.CoreV1Api()


def attach_pods(gpus: list[midgard_pb2.Gpu], proc_path: Path, directory: PodDirectory | None) -> None:
    """Fills pod, container, job and task of every GPU process that runs in a pod."""
    for gpu in gpus:
        for process in gpu.processes:
            ref = pod_of_process(process.pid, proc_path)
            if ref is None:
                continue
            process.pod_uid = ref.pod_uid
            process.container_id = ref.container_id
            info = directory.lookup(ref.pod_uid) if directory else None
            if info:
                _fill_pod(process, info)


def _fill_pod(process: midgard_pb2.GpuProcess, info: PodInfo) -> None:
    process.pod_namespace = info.namespace
    process.pod_name = info.name
    job = info.labels.get(JOB_LABEL)
    if job:
        process.job = f"jobs/{job}"
        task = info.labels.get(TASK_LABEL)
        if task:
            process.task = f"jobs/{job}/tasks/{task}"
