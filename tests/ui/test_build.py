"""The console's build inputs: generated client code current, strict TypeScript, and Envoy accepting the routes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from ui_harness import REPO, require_build

from odin.gateway import GatewaySettings, render
from odin.gateway.config import ui_files
from odin.gateway.process import validate

UI = REPO / "ui"


def _npm(*args: str) -> subprocess.CompletedProcess[str]:
    npm = shutil.which("npm")
    if not npm or not (UI / "node_modules").is_dir():
        pytest.fail("npm or ui/node_modules missing; scripts/setup runs `npm ci` in ui/", pytrace=False)
    return subprocess.run([npm, "run", "--silent", *args], cwd=UI, capture_output=True, text=True, timeout=300,
                          check=False)


def test_generated_client_code_is_current() -> None:
    result = _npm("generate:check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_typescript_is_strict_and_compiles() -> None:
    result = _npm("typecheck")
    assert result.returncode == 0, result.stdout + result.stderr


def test_envoy_accepts_the_console_routes(tmp_path: Path) -> None:
    dist = require_build()
    files = ui_files(dist)
    assert {"/", "/index.html"} <= {f.path for f in files}
    assert all(f.cache_control.endswith("immutable") for f in files if f.path.startswith("/assets/"))
    config = tmp_path / "envoy.yaml"
    config.write_text(render(GatewaySettings(
        listen="127.0.0.1:1", admin="127.0.0.1:2", access_log=tmp_path / "access.log", ui_dir=dist,
        upstreams={n: "127.0.0.1:3" for n in ("auth", "pipelines", "scheduler", "midgard")})))
    validate(config)


def test_a_missing_build_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no index\.html"):
        ui_files(tmp_path)
