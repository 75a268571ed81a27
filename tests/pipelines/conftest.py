"""Fixtures for the pipelines service: real repositories in temp dirs and a real service process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pygit2
import pytest
from odin_pipelines.config import Limits
from odin_pipelines.repository import PipelineRepository
from pipeline_samples import SAMPLES
from support.processes import ServiceProcess, start_service


@pytest.fixture
def limits() -> Limits:
    return Limits()


@pytest.fixture
def repo(tmp_path: Path, limits: Limits) -> PipelineRepository:
    created, _ = PipelineRepository.open_or_create(tmp_path / "pipelines.git", "main", limits)
    return created


@pytest.fixture
def upstream_path(tmp_path: Path) -> Path:
    """A second bare repository standing in for the upstream remote."""
    path = tmp_path / "upstream.git"
    pygit2.init_repository(str(path), bare=True, initial_head="main")
    return path


@pytest.fixture(scope="module")
def pipelines_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """One odin-pipelines process per test module, seeded with the sample pipelines."""
    state = tmp_path_factory.mktemp("pipelines-service")
    service = start_service("pipelines", state / "logs", {
        "ODIN_PIPELINES_REPO_PATH": str(state / "repo"),
        "ODIN_PIPELINES_SEED_PATH": str(SAMPLES),
    })
    yield service
    service.terminate()
