"""The test cluster itself: sealed in its namespace, nodes with GPUs, kwok moving pods and training jobs."""

from __future__ import annotations

import subprocess
import urllib.error
from typing import Any

import pytest
from support.kube import KubeCluster
from support.waiting import assert_eventually


def pod_body(name: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    container = {"name": "main", "image": "busybox", "env": [{"name": k, "value": v} for k, v in (env or {}).items()]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": "Never", "containers": [container]}}


def phase(cluster: KubeCluster, name: str) -> dict[str, Any]:
    return cluster.request("GET", f"/api/v1/namespaces/{cluster.namespace}/pods/{name}").get("status", {})


def test_the_cluster_lives_in_a_namespace_with_loopback_only(kube_cluster: KubeCluster) -> None:
    links = subprocess.run(["ip", "-n", kube_cluster.netns, "-o", "link"], check=True, capture_output=True,
                           text=True).stdout.splitlines()
    assert [line.split(":")[1].strip() for line in links] == ["lo"]
    routes = subprocess.run(["ip", "-n", kube_cluster.netns, "route"], check=True, capture_output=True,
                            text=True).stdout
    assert routes.strip() == ""  # no default route: nothing inside can reach another address
    assert kube_cluster.timings["ready_s"] < 120


def test_nodes_are_ready_and_one_has_gpus(kube_cluster: KubeCluster) -> None:
    nodes = {n["metadata"]["name"]: n for n in kube_cluster.request("GET", "/api/v1/nodes")["items"]}
    assert set(nodes) == {"kwok-cpu-0", "kwok-cpu-1", "kwok-gpu-0", "kwok-special-0"}
    assert nodes["kwok-gpu-0"]["status"]["allocatable"]["nvidia.com/gpu"] == "2"


def test_kwok_runs_pods_to_success_or_failure_and_serves_logs(kube_cluster: KubeCluster) -> None:
    pods = f"/api/v1/namespaces/{kube_cluster.namespace}/pods"
    kube_cluster.request("POST", pods, pod_body("harness-ok"))
    kube_cluster.request("POST", pods, pod_body("harness-oom", {"KWOK_EXIT_CODE": "137",
                                                               "KWOK_TERMINATED_REASON": "OOMKilled"}))
    kube_cluster.request("POST", pods, pod_body("harness-pull", {"KWOK_WAITING_REASON": "ImagePullBackOff"}))
    assert_eventually(lambda: phase(kube_cluster, "harness-ok").get("phase") == "Succeeded", 20)
    failed = assert_eventually(lambda: (s := phase(kube_cluster, "harness-oom")).get("phase") == "Failed" and s, 20)
    terminated = failed["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (137, "OOMKilled")
    waiting = assert_eventually(lambda: phase(kube_cluster, "harness-pull")["containerStatuses"][0]["state"]
                                .get("waiting", {}).get("reason") == "ImagePullBackOff", 20)
    assert waiting
    logs = kube_cluster.request("GET", f"{pods}/harness-ok/log")
    assert kube_cluster.pod_log_line in logs


def test_kwok_moves_training_jobs(kube_cluster: KubeCluster) -> None:
    path = f"/apis/kubeflow.org/v1/namespaces/{kube_cluster.namespace}/pytorchjobs"
    template = {"spec": {"containers": [{"name": "pytorch", "image": "trainer"}]}}
    kube_cluster.request("POST", path, {
        "apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": "harness-ptj"},
        "spec": {"pytorchReplicaSpecs": {"Master": {"replicas": 1, "template": template},
                                         "Worker": {"replicas": 2, "template": template}}}})

    def succeeded() -> bool:
        status = kube_cluster.request("GET", f"{path}/harness-ptj").get("status", {})
        return any(c["type"] == "Succeeded" and c["status"] == "True" for c in status.get("conditions", []))

    assert_eventually(succeeded, 60)
    with pytest.raises(urllib.error.HTTPError) as invalid:  # the CRD's schema is enforced by the apiserver
        kube_cluster.request("POST", path, {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
                                            "metadata": {"name": "harness-bad"}, "spec": {}})
    assert invalid.value.code == 422


def test_the_scheduler_identity_is_confined_to_its_namespace(kube_cluster: KubeCluster) -> None:
    token = kube_cluster.scheduler_token
    ns = kube_cluster.namespace
    kube_cluster.request("POST", f"/api/v1/namespaces/{ns}/pods", pod_body("harness-rbac"), token=token)
    with pytest.raises(urllib.error.HTTPError) as forbidden:
        kube_cluster.request("POST", "/api/v1/namespaces/default/pods", pod_body("harness-rbac"), token=token)
    assert forbidden.value.code == 403
