"""The proto contract: lint-clean, and the breaking check really refuses an incompatible change."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUF = str(Path(sys.executable).parent / "buf")


def buf(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BUF, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_lint_passes() -> None:
    result = buf("lint", cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_breaking_change_is_refused(tmp_path: Path) -> None:
    for item in ("buf.yaml", "protos", "third_party"):
        src = REPO / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / item)
    assert buf("breaking", "protos", "--against", "protos/released/odin.binpb", cwd=tmp_path).returncode == 0
    proto = tmp_path / "protos/odin/scheduler/v1/scheduler.proto"
    text = proto.read_text()
    assert "  int64 seq = 1;" in text
    proto.write_text(text.replace("  int64 seq = 1;", "  int64 seq = 99;"))
    result = buf("breaking", "protos", "--against", "protos/released/odin.binpb", cwd=tmp_path)
    assert result.returncode != 0
    assert "seq" in result.stdout + result.stderr
