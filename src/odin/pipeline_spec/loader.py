"""``load_pipeline``: accept YAML text, bytes, a mapping, a main.yml path or a job directory."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import PipelineInvalid, Violation
from .model import PipelineSpec
from .validate import DEFAULT_PIPELINE_NAME, build_pipeline
from .yaml_limits import MAX_TEXT_BYTES, load_yaml

MAIN_FILE = "main.yml"


def load_pipeline(
    source: str | bytes | Mapping[str, Any] | os.PathLike[str], *, default_name: str = DEFAULT_PIPELINE_NAME
) -> PipelineSpec:
    """Load and fully validate a pipeline.

    A ``str`` is always YAML text; pass a ``pathlib.Path`` for a file or job directory.
    Raises PipelineInvalid with every violation found.
    """
    if isinstance(source, Mapping):
        document: Any = source
    elif isinstance(source, os.PathLike):
        document = load_yaml(_decode(_read_file(Path(source))))
    elif isinstance(source, bytes):
        document = load_yaml(_decode(source))
    else:
        document = load_yaml(source)
    return build_pipeline(document, default_name=default_name)


def _read_file(path: Path) -> bytes:
    if path.is_dir():
        path = path / MAIN_FILE
    try:
        with path.open("rb") as handle:
            # Read one byte past the cap so oversized files are detected without reading them whole.
            data = handle.read(MAX_TEXT_BYTES + 1)
    except OSError as exc:
        raise PipelineInvalid([Violation("", f"cannot read {path}: {exc.strerror or exc}")]) from None
    if len(data) > MAX_TEXT_BYTES:
        raise PipelineInvalid([Violation("yaml", f"pipeline text is larger than {MAX_TEXT_BYTES} bytes")])
    return data


def _decode(data: bytes) -> str:
    if len(data) > MAX_TEXT_BYTES:
        raise PipelineInvalid([Violation("yaml", f"pipeline text is larger than {MAX_TEXT_BYTES} bytes")])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PipelineInvalid([Violation("yaml", f"pipeline text is not UTF-8: {exc.reason}")]) from None
