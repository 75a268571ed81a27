"""A real Envoy gateway in front of stand-in upstreams (see gateway_backend.py), shared per module."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from gateway_backend import AUDIENCE, ISSUER, Backend, SigningKey, start_backend

from odin.devsuite import free_port
from odin.gateway import GatewaySettings, JwtSettings, render
from odin.gateway.process import launch


@dataclass
class RunningGateway:
    listen: str
    admin: str
    key: SigningKey
    backends: dict[str, Backend]
    process: subprocess.Popen[bytes]
    access_log: Path

    @property
    def url(self) -> str:
        return f"http://{self.listen}"


@pytest.fixture(scope="session")
def test_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="module")
def backends(test_key: SigningKey) -> Iterator[dict[str, Backend]]:
    started = {name: start_backend(name, test_key) for name in ("auth", "scheduler", "pipelines", "midgard")}
    yield started
    for backend in started.values():
        backend.server.stop(grace=None)


def start_gateway(tmp: Path, key: SigningKey, backends: dict[str, Backend], *, jwks_file: bool = True,
                  **overrides: object) -> RunningGateway:
    listen, admin = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    jwt = JwtSettings(issuer=ISSUER, audiences=(AUDIENCE,),
                      jwks_file=key.jwks_file(tmp / "jwks.json") if jwks_file else None)
    settings = GatewaySettings(listen=listen, admin=admin, access_log=tmp / "access.log", jwt=jwt,
                               upstreams={name: b.address for name, b in backends.items()},
                               **overrides)  # type: ignore[arg-type]
    process = launch(render(settings), tmp, admin)
    return RunningGateway(listen, admin, key, backends, process, tmp / "access.log")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, test_key: SigningKey,
            backends: dict[str, Backend]) -> Iterator[RunningGateway]:
    running = start_gateway(tmp_path_factory.mktemp("gateway"), test_key, backends, max_request_bytes=64 * 1024)
    yield running
    running.process.terminate()
    running.process.wait(10)
