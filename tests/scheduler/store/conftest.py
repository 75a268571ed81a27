"""One store fixture, two backends: every store test runs against SQLite and a real PostgreSQL."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest
from support.postgres import PostgresServer

from odin_scheduler.store import Store, open_store

_databases = itertools.count()


def new_database(server: PostgresServer) -> str:
    name = f"scheduler_{next(_databases)}"
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")  # type: ignore[arg-type]
        conn.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]
    return server.url(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'scheduler.db'}"
    return new_database(request.getfixturevalue("postgres_server"))


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = open_store(store_url)
    await opened.open()
    yield opened
    await opened.close()
