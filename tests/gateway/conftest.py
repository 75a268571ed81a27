"""A real Envoy gateway in front of stand-in upstreams (see gateway_backend.py), shared per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gateway_backend import Backend, SigningKey, start_backend
from gateway_harness import RunningGateway, start_gateway


@pytest.fixture(scope="session")
def test_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="module")
def backends(test_key: SigningKey) -> Iterator[dict[str, Backend]]:
    started = {name: start_backend(name, test_key) for name in ("auth", "scheduler", "pipelines", "midgard")}
    yield started
    for backend in started.values():
        backend.server.stop(grace=None)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, test_key: SigningKey,
            backends: dict[str, Backend]) -> Iterator[RunningGateway]:
    running = start_gateway(tmp_path_factory.mktemp("gateway"), test_key, backends, max_request_bytes=64 * 1024)
    yield running
    running.process.terminate()
    running.process.wait(10)
