"""The `name` key of a stored main.yml, read once per blob (blobs never change)."""

from __future__ import annotations

import threading

import pygit2

from odin.pipeline_spec import PipelineInvalid
from odin.pipeline_spec.yaml_limits import load_yaml
from odin_pipelines.trees import blob_data


class DisplayNames:
    """Cache of blob id -> the pipeline's `name`, bounded so a huge repository cannot grow it forever."""

    def __init__(self, capacity: int = 20_000) -> None:
        self._names: dict[str, str] = {}
        self._capacity = capacity
        self._lock = threading.Lock()

    def of(self, repo: pygit2.Repository, blob_id: pygit2.Oid) -> str:
        key = str(blob_id)
        with self._lock:
            if key in self._names:
                return self._names[key]
        name = _read_name(blob_data(repo, blob_id))
        with self._lock:
            if len(self._names) >= self._capacity:
                self._names.clear()
            self._names[key] = name
        return name


def _read_name(data: bytes) -> str:
    """Best effort: an unreadable main.yml simply has no display name (ValidatePipeline explains why)."""
    try:
        document = load_yaml(data.decode("utf-8"))
    except (UnicodeDecodeError, PipelineInvalid):
        return ""
    name = document.get("name") if isinstance(document, dict) else None
    return name if isinstance(name, str) else ""
