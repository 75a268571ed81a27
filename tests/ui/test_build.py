"""The console's build inputs: generated client code current, strict TypeScript, Envoy accepting the routes, and
the Kubernetes gateway config (deploy/) serving the same build."""

from __future__ import annotations

import shutil
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest
import yaml
from ui_harness import REPO, require_build

from odin.gateway import GatewaySettings, render
from odin.gateway.config import ui_files
from odin.gateway.process import launch, validate

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_kubernetes_gateway_serves_the_console(tmp_path: Path) -> None:
    """deploy/'s generated gateway config (what the ConfigMap ships) answers the built console byte for byte."""
    dist = require_build()
    shipped = REPO / "deploy" / "base" / "suite" / "gateway"
    (tmp_path / "odin.protoset").write_bytes((shipped / "odin.protoset").read_bytes())
    config = yaml.safe_load((shipped / "envoy.yaml").read_text().replace("/etc/odin-gateway/", f"{tmp_path}/"))
    port, admin = _free_port(), _free_port()
    config["admin"]["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": admin}
    for listener in config["static_resources"]["listeners"]:
        listener["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": port}
    process = launch(yaml.safe_dump(config, sort_keys=False), tmp_path, f"127.0.0.1:{admin}")
    try:
        for f in ui_files(dist):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{f.path}", timeout=10) as reply:
                assert reply.read() == f.file.read_bytes(), f"{f.path} differs: python deploy/render_gateway.py"
                assert reply.headers["content-type"] == f.content_type
    finally:
        process.terminate()
        process.wait(timeout=30)
