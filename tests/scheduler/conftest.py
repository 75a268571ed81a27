"""Fixtures for the scheduler tests: a real `odin-scheduler` process, and one store fixture over
every backend (SQLite, a real PostgreSQL, FerretDB) shared by the store and engine suites."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from odin_scheduler.store import Store, open_store
from scheduler_testkit import Stub, scheduler_env
from support.clients import channel
from support.ferretdb import ferretdb_server, new_mongo_database  # noqa: F401 (a fixture)
from support.postgres import PostgresServer
from support.processes import ServiceProcess


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def scheduler(service_factory: Callable[..., ServiceProcess], state_dir: Path) -> ServiceProcess:
    return service_factory("scheduler", scheduler_env(state_dir))


@pytest.fixture
def stub(scheduler: ServiceProcess) -> Iterator[Stub]:
    with channel(scheduler.address) as ch:
        yield Stub(ch)


_databases = itertools.count()


def new_database(server: PostgresServer) -> str:
    name = f"scheduler_{next(_databases)}"
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")  # type: ignore[arg-type]
        conn.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]
    return server.url(name)


@pytest.fixture(params=["sqlite", "postgresql", "mongodb"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'scheduler.db'}"
    if request.param == "mongodb":
        return new_mongo_database(request.getfixturevalue("ferretdb_server"))
    return new_database(request.getfixturevalue("postgres_server"))


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = open_store(store_url)
    await opened.open()
    yield opened
    await opened.close()
