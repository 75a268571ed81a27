"""The pipelines service's settings (environment: ODIN_PIPELINES_<KEY>)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from odin.runtime.server import ServerConfig


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one pipeline may hold; checked on every write and every render."""

    max_file_bytes: int = 1024 * 1024
    max_files: int = 100
    # Below the default 8 MiB gRPC message limit, so a GetPipeline answer always fits.
    max_total_bytes: int = 6 * 1024 * 1024
    max_render_seconds: float = 5.0
    max_render_memory_bytes: int = 512 * 1024 * 1024


@dataclasses.dataclass(frozen=True, kw_only=True)
class PipelinesConfig(ServerConfig):
    """Pipelines settings (environment: ODIN_PIPELINES_<KEY>)."""

    # The bare git repository; created (with `branch`) on first start.
    repo_path: Path
    branch: str = "main"
    # Upstream remote: a path or URL (credentials in it are never logged or returned). Empty: none.
    remote: str = ""
    # Pull from the remote this often; 0 turns periodic pulls off (pushes still follow each commit).
    sync_interval_seconds: float = 0.0
    # Fetch and fast-forward before each write, so edits start from the newest upstream commit.
    pull_before_write: bool = True
    # A directory whose sub-directories are imported as pipelines when the repository is created.
    seed_path: str = ""
    # Reject writes whose main.yml fails validation (templates are checked for syntax only).
    validate_on_write: bool = True
    max_file_bytes: int = Limits.max_file_bytes
    max_files: int = Limits.max_files
    max_total_bytes: int = Limits.max_total_bytes
    max_render_seconds: float = Limits.max_render_seconds
    max_render_memory_bytes: int = Limits.max_render_memory_bytes

    def limits(self) -> Limits:
        return Limits(
            max_file_bytes=self.max_file_bytes,
            max_files=self.max_files,
            max_total_bytes=self.max_total_bytes,
            max_render_seconds=self.max_render_seconds,
            max_render_memory_bytes=self.max_render_memory_bytes,
        )
