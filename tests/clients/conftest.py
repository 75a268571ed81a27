"""One local suite (`odin dev up`, Envoy in front) for every client test, and the clients built once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from odin.devsuite import Suite

REPO = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT = 900  # a cold Maven or Go build on two shared cores


@dataclass
class LiveSuite:
    suite: Suite
    gateway: str
    admin_password: str

    def smoke_env(self) -> dict[str, str]:
        return {**os.environ, "ODIN_GATEWAY": self.gateway, "ODIN_USERNAME": "admin",
                "ODIN_PASSWORD": self.admin_password}


@pytest.fixture(scope="session")
def live_suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSuite]:
    suite = Suite(tmp_path_factory.mktemp("suite"))
    services = suite.up(timeout=60)
    try:
        yield LiveSuite(suite, str(services["gateway"]["address"]),
                        (suite.state_dir / "admin-password").read_text().strip())
    finally:
        suite.down()


def require_tool(name: str) -> str:
    """The tool's path; a missing tool fails the test (CI must have it: scripts/setup installs it)."""
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed; scripts/setup installs it", pytrace=False)
    return found


def run_build(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT,
                            check=False)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed in {cwd}:\n{(result.stdout + result.stderr)[-6000:]}",
                    pytrace=False)


def generate(target: str) -> None:
    run_build([sys.executable, str(REPO / "tools" / "generate_clients.py"), target], REPO)


def run_smoke(command: list[str], env: dict[str, str], cwd: Path) -> list[dict[str, Any]]:
    """Runs a client program; its stdout is one JSON object per step."""
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, f"{command[0]} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def check_smoke_steps(steps: list[dict[str, Any]], greeting: str) -> None:
    """What every client must have done through the gateway."""
    health = {s["service"]: s["serving"] for s in steps if s["step"] == "health"}
    assert health == dict.fromkeys(("auth", "pipelines", "scheduler", "midgard"), "SERVING"), steps
    by_step = {s["step"]: s for s in steps}
    assert by_step["login"] == {"step": "login", "status": "OK", "user": "users/admin"}
    assert by_step["jwks"]["status"] == "OK" and by_step["jwks"]["keys"] >= 1
    # The scheduler's RPCs arrive as real answers, or as UNIMPLEMENTED while it is a stub.
    assert by_step["list_jobs"]["status"] in ("OK", "UNIMPLEMENTED"), by_step["list_jobs"]
    assert by_step["create_job"]["status"] in ("OK", "UNIMPLEMENTED"), by_step["create_job"]
    if by_step["create_job"]["status"] == "OK":
        assert by_step["watch_job"]["state"] == "STATE_SUCCEEDED", steps
        logs = [s for s in steps if s["step"] == "logs"]
        assert logs and greeting in logs[0]["text"], steps
