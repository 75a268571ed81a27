"""One local suite (`odin dev up`, Envoy in front) shared by every client test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from client_harness import LiveSuite

from odin.devsuite import Suite


@pytest.fixture(scope="session")
def live_suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSuite]:
    suite = Suite(tmp_path_factory.mktemp("suite"))
    services = suite.up(timeout=60)
    try:
        yield LiveSuite(suite, str(services["gateway"]["address"]),
                        (suite.state_dir / "admin-password").read_text().strip())
    finally:
        suite.down()
