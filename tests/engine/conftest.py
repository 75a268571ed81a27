"""The `runner` fixture: every test that takes it runs twice, embedded and against a real service."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from engine_runners import KILL_GRACE_SECONDS, EmbeddedRunner, Runner, ServiceRunner
from support.processes import ServiceProcess
from support.scheduler import scheduler_env


@pytest.fixture(params=["embedded", "service"])
def runner(request: pytest.FixtureRequest, tmp_path: Path) -> Runner:
    if request.param == "embedded":
        return EmbeddedRunner(tmp_path / "runs")
    start: Callable[..., ServiceProcess] = request.getfixturevalue("service_factory")
    return ServiceRunner(start("scheduler", scheduler_env(tmp_path, kill_grace_seconds=str(KILL_GRACE_SECONDS))))
