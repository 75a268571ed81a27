"""Starts a real Envoy gateway in front of stand-in upstreams (see gateway_backend.py)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from gateway_backend import AUDIENCE, ISSUER, Backend, SigningKey

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
