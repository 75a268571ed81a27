"""kubectl and the rendered overlays for tests/deploy (a module of its own name: `conftest` is ambiguous)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.kube import BUILD_COMMAND, tools_dir

REPO = Path(__file__).resolve().parents[2]
OVERLAYS = {"dev": REPO / "deploy" / "overlays" / "dev", "prod": REPO / "deploy" / "overlays" / "prod",
            "kwok": REPO / "tests" / "deploy" / "kwok"}


def kubectl_path() -> Path:
    """tools/kube/kubectl.sh's binary; missing, the tests FAIL with the command that builds it."""
    path = tools_dir() / "kubectl"
    if not os.access(path, os.X_OK):
        pytest.fail(f"kubectl is missing at {path}: run tools/kube/kubectl.sh (after {BUILD_COMMAND})", pytrace=False)
    return path


@dataclass
class Kubectl:
    """kubectl against one kubeconfig (none: commands that need no cluster, like `kustomize`)."""

    binary: Path
    kubeconfig: Path | None = None

    def run(self, *args: str, stdin: str | None = None, check: bool = True,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        argv = [str(self.binary), *([f"--kubeconfig={self.kubeconfig}"] if self.kubeconfig else []), *args]
        result = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-4000:]}")
        return result

    def json(self, *args: str) -> Any:
        return yaml.safe_load(self.run(*args, "-o", "json").stdout)


def render(overlay: str) -> str:
    return Kubectl(kubectl_path()).run("kustomize", str(OVERLAYS[overlay])).stdout


def objects(overlay: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(render(overlay)) if doc]
