"""deploy/'s manifests on a test cluster of their own (tests/support/kube.py): they create namespaces and RBAC
that would clash with the executor tests' cluster, so they never share it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from deploy_helpers import Kubectl, kubectl_path, objects
from support.kube import KubeCluster, cluster_fixture


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {name: objects(name) for name in ("dev", "prod")}


@pytest.fixture(scope="session")
def deploy_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    """A fresh test cluster (control plane + kwok nodes); a missing binary or failed start FAILS the tests."""
    yield from cluster_fixture(tmp_path_factory.mktemp("k8s-deploy"))


@pytest.fixture(scope="session")
def kubectl(deploy_cluster: KubeCluster) -> Kubectl:
    return Kubectl(kubectl_path(), deploy_cluster.kubeconfig)
