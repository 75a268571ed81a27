"""A real odin-auth process per store backend (SQLite, PostgreSQL), with a bootstrapped admin."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from auth_helpers import AuthService, start_auth, store_url


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def auth_service(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthService]:
    """One odin-auth per backend for a test module; tests make their own users."""
    state = tmp_path_factory.mktemp(f"auth-{request.param}")
    postgres = request.getfixturevalue("postgres_server") if request.param == "postgres" else None
    service = start_auth(state, store_url(request.param, state, postgres))
    yield service
    service.process.terminate()
