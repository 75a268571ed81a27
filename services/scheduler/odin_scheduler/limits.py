"""Size limits on what a CreateJob stores, so no job can make listing or watching fail for everyone.

A page of jobs must stay under the gRPC message cap (8 MiB); the parameters travel in every FULL read and in
the stored spec, so they are kept small and shallow. Each limit is INVALID_ARGUMENT naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from odin.runtime.errors import InvalidArgument

MAX_PARAMETERS_BYTES = 64 * 1024  # as compact JSON
MAX_PARAMETERS_DEPTH = 8  # nested objects and lists below the top level
MAX_SPEC_BYTES = 1024 * 1024  # the stored (rendered) spec, as compact JSON


def check_parameters(parameters: Mapping[str, Any], field: str = "parameters") -> None:
    size = len(json.dumps(parameters, separators=(",", ":")).encode())
    if size > MAX_PARAMETERS_BYTES:
        raise InvalidArgument.field(field, f"{size} bytes as JSON; at most {MAX_PARAMETERS_BYTES}")
    deep = _too_deep(parameters, field, 0)
    if deep:
        raise InvalidArgument.field(deep, f"nested more than {MAX_PARAMETERS_DEPTH} levels deep")


def check_spec(spec: Mapping[str, Any], field: str) -> None:
    size = len(json.dumps(spec, separators=(",", ":")).encode())
    if size > MAX_SPEC_BYTES:
        raise InvalidArgument.field(field, f"the rendered pipeline holds {size} bytes as JSON; at most "
                                           f"{MAX_SPEC_BYTES}")


def _too_deep(value: Any, path: str, depth: int) -> str:
    """The path of the first value nested deeper than allowed; empty when none is."""
    if isinstance(value, Mapping):
        children: list[tuple[str, Any]] = [(f"{path}.{k}", v) for k, v in value.items()]
    elif isinstance(value, list | tuple):
        children = [(f"{path}[{i}]", v) for i, v in enumerate(value)]
    else:
        return ""
    if depth > MAX_PARAMETERS_DEPTH:
        return path
    for child_path, child in children:
        found = _too_deep(child, child_path, depth + 1)
        if found:
            return found
    return ""
