"""Fixtures for the engine tests: an engine over the `store` fixture (every backend)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from engine_testkit import Harness
from odin_scheduler.engine import Engine, EngineConfig
from odin_scheduler.executor.instant import InstantExecutor
from odin_scheduler.paths import Layout
from odin_scheduler.store import Store


@pytest.fixture
def engine_config() -> EngineConfig:
    return EngineConfig()


@pytest.fixture
async def harness(store: Store, tmp_path: Path, engine_config: EngineConfig) -> AsyncIterator[Harness]:
    executor = InstantExecutor()
    engine = Engine(store, executor, Layout(tmp_path / "runs"), engine_config)
    await engine.start()
    yield Harness(store, engine, executor)
    await engine.stop()


