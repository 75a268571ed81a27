"""The Kubernetes test cluster: one per test session, started on first use (see tests/support/kube.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.kube import KubeCluster, cluster_fixture


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    """A running control plane with kwok nodes; a missing binary or a failed start FAILS the tests (never skips)."""
    yield from cluster_fixture(tmp_path_factory.mktemp("k8s"))
