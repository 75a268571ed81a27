"""The Kubernetes test cluster: one per test session, started on first use (see tests/support/kube.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.kube import KubeCluster, cluster_fixture, hostpath_claim


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    """A running control plane with kwok nodes; a missing binary or a failed start FAILS the tests (never skips)."""
    yield from cluster_fixture(tmp_path_factory.mktemp("k8s"))


@pytest.fixture(scope="module")
def real_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    """A control plane with one real node (containerd + runc + kubelet) and the training controllers, no kwok: pods
    run real containers. One per test module (~20 s to start), so that its kubelet, containerd and controllers do not
    keep loading the machine while the rest of the suite runs."""
    yield from cluster_fixture(tmp_path_factory.mktemp("k8s-real"), node_kind="real")


@pytest.fixture(scope="module")
def runs_dir(real_cluster: KubeCluster) -> Path:
    """The runs volume: claim `odin-runs` in the task namespace, a hostPath volume on the node's disk, which the
    schedulers of these tests use as their run_path (the scheduler and the node share one machine)."""
    assert real_cluster.real_node is not None
    path = real_cluster.real_node.hostpath_root / "runs"
    path.mkdir(parents=True, exist_ok=True)
    hostpath_claim(real_cluster, "odin-runs", path)
    # What the original Odin's samples mount: a shared data claim.
    hostpath_claim(real_cluster, "data-rw-many", real_cluster.real_node.hostpath_root / "data")
    return path
