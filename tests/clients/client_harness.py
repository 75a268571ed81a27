"""Helpers for the client tests: the live suite handle, tool checks, builds and the smoke programs' checks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from odin.devsuite import Suite

REPO = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT = 900  # a cold Maven or Go build on two shared cores
# A test that builds a client: the ini-wide 120 s would cut a cold build (~2 min for the Go client alone) short.
builds_a_client = pytest.mark.timeout(BUILD_TIMEOUT + 300)


@dataclass
class LiveSuite:
    suite: Suite
    gateway: str
    admin_password: str

    def smoke_env(self) -> dict[str, str]:
        return {**os.environ, "ODIN_GATEWAY": self.gateway, "ODIN_USERNAME": "admin",
                "ODIN_PASSWORD": self.admin_password}


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
    assert by_step["list_jobs"]["status"] == "OK", by_step["list_jobs"]
    assert by_step["create_job"]["status"] == "OK", by_step["create_job"]
    events = [s for s in steps if s["step"] == "event"]
    assert events and events[-1]["job_state"] == "STATE_SUCCEEDED", events
    assert by_step["watch_job"]["state"] == "STATE_SUCCEEDED", steps
    logs = [s for s in steps if s["step"] == "logs"]
    assert len(logs) == 1 and logs[0]["state"] == "STATE_SUCCEEDED" and greeting in logs[0]["text"], steps
