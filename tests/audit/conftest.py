"""The local suite (`odin dev up`, Envoy in front), one per module, with the dev admin's token."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.live_suite import LiveSuite, running_suite


@pytest.fixture(scope="module")
def live_suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSuite]:
    yield from running_suite(tmp_path_factory.mktemp("suite"))
