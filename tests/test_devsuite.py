"""`odin dev up|status|down` starts the whole suite as separate processes and stops it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def odin(*args: str, state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "odin"), "dev", "--state-dir", str(state), *args],
                          capture_output=True, text=True, timeout=120)


def test_dev_up_status_down(tmp_path: Path) -> None:
    state = tmp_path / "suite"
    up = odin("up", "--json", state=state)
    assert up.returncode == 0, up.stdout + up.stderr
    services = json.loads(up.stdout)["services"]
    assert {"auth", "pipelines", "scheduler", "midgard", "midgard-agent"} <= set(services)
    try:
        assert len({entry["pid"] for entry in services.values()}) == len(services)  # separate processes
        assert all(entry["address"].startswith("127.0.0.1:") for entry in services.values())
        status = odin("status", "--json", state=state)
        assert status.returncode == 0, status.stdout
        assert set(json.loads(status.stdout)["health"].values()) == {"SERVING"}
        again = odin("up", state=state)
        assert again.returncode == 1 and "already up" in again.stdout
        assert (state / "admin-password").stat().st_mode & 0o077 == 0
    finally:
        down = odin("down", state=state)
    assert down.returncode == 0
    for entry in services.values():
        assert not _running(int(entry["pid"])), f"pid {entry['pid']} survived odin dev down"
    assert odin("status", state=state).returncode == 1


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"
