"""Fixtures for the pipelines service: real repositories in temp dirs and a real service process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pygit2
import pytest
from odin_pipelines.config import Limits
from odin_pipelines.identity import Author
from odin_pipelines.repository import PipelineRepository
from support.processes import ServiceProcess, start_service

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "odin-samples"
ALICE = Author("alice", "alice@odin")
BOB = Author("bob", "bob@odin")


def main_yml(task: str = "train", image: str = "busybox", name: str | None = None) -> str:
    header = f"name: {name}\n" if name else ""
    return f"{header}tasks:\n- name: {task}\n  image: {image}\n  command: [echo, hello]\n"


def files(**extra: str) -> dict[str, bytes]:
    """A valid pipeline as the repository takes it: {path: bytes}."""
    out = {"main.yml": main_yml().encode()}
    out.update({path.replace("__", "/"): text.encode() for path, text in extra.items()})
    return out


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
