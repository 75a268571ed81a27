"""Start real Odin service processes on free loopback ports and stop them cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from odin.devsuite import _health, free_port
from support import auth

BIN = Path(sys.executable).parent


@dataclass
class ServiceProcess:
    """A running service: its address, process and log file."""

    name: str
    address: str
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def port(self) -> int:
        return int(self.address.rsplit(":", 1)[1])

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        """kill -9: the crash case."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def start_service(
    name: str,
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    *,
    port: int | None = None,
    timeout: float = 20.0,
    wait_healthy: bool = True,
) -> ServiceProcess:
    """Starts `odin-<name>` on a free port and waits until its health check is SERVING."""
    prefix = "ODIN_" + name.upper().replace("-", "_")
    port = port or free_port()
    full_env = {**os.environ, f"{prefix}_HOST": "127.0.0.1", f"{prefix}_PORT": str(port),
                **_default_auth(name, prefix, env or {}), **(env or {})}
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}-{port}.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen([str(BIN / f"odin-{name}")], env=full_env, stdout=log, stderr=log,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    service = ServiceProcess(name, f"127.0.0.1:{port}", proc, log_path, dict(env or {}))
    if wait_healthy:
        wait_serving(service, timeout)
    return service


def _default_auth(name: str, prefix: str, env: Mapping[str, str]) -> dict[str, str]:
    """Non-auth services verify with the test JWKS unless the test configures auth itself."""
    if name == "auth" or any(key.startswith(f"{prefix}_AUTH_") for key in env):
        return {}
    return auth.service_env(name)


def wait_serving(service: ServiceProcess, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while (status := _health(service.address, 0.5)) != "SERVING":
        if service.process.poll() is not None:
            raise RuntimeError(f"{service.name} exited with {service.process.returncode}:\n{service.log_text()}")
        if time.monotonic() > deadline:
            service.terminate()
            raise TimeoutError(f"{service.name} not SERVING after {timeout}s ({status}):\n{service.log_text()}")
        time.sleep(0.05)
