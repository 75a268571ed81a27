"""The Kubernetes test cluster: one per test session, started on first use (see tests/support/kube.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.kube import ClusterError, KubeCluster
from support.kube import kube_cluster as start_kube_cluster


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    """A running control plane with kwok nodes; a missing binary or a failed start FAILS the tests (never skips)."""
    workdir: Path = tmp_path_factory.mktemp("k8s")
    context = start_kube_cluster(workdir)
    try:
        cluster = context.__enter__()
    except ClusterError as err:
        pytest.fail(f"Kubernetes test cluster: {err}", pytrace=False)
    try:
        yield cluster
    finally:
        context.__exit__(None, None, None)
