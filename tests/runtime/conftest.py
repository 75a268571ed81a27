"""The runtime's test server (slow_server.py) as a real process, one per test."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import auth
from support.processes import ServiceProcess, wait_serving

from odin.devsuite import free_port

SCRIPT = Path(__file__).with_name("slow_server.py")


@pytest.fixture
def slow_server(tmp_path: Path) -> Iterator[ServiceProcess]:
    port = free_port()
    log = tmp_path / "slow.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, str(SCRIPT), str(port)], stdout=out, stderr=out,
                                start_new_session=True, env={**os.environ, **auth.service_env("slow-test")})
    service = ServiceProcess("slow-test", f"127.0.0.1:{port}", proc, log)
    wait_serving(service)
    yield service
    service.terminate()
