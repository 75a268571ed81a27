"""Small typed readers that record a violation instead of raising."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import Collector

_SCALAR = (str, int, float)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean "x"?)`` when a choice is close, else empty."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.75)
    return f' (did you mean "{close[0]}"?)' if close else ""


def scalar_text(value: object) -> str | None:
    """Strings as-is, numbers as text, YAML booleans as ``true``/``false``; None otherwise."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, _SCALAR):
        return str(value)
    return None


def read_str(value: object, path: str, out: Collector, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            out.error(path, "is required")
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        out.error(path, "must be a non-empty string" if required else "must be a string")
        return None
    return value


def read_int(value: object, path: str, out: Collector, *, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "non-negative" if minimum == 0 else "positive" if minimum == 1 else f">= {minimum}"
        out.error(path, f"must be a {kind} integer")
        return None
    return value


def read_str_list(value: object, path: str, out: Collector) -> tuple[str, ...]:
    """A string or a list of strings (numbers become text, as YAML users expect)."""
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    result: list[str] = []
    for index, item in enumerate(items):
        if isinstance(item, bool) or not isinstance(item, _SCALAR):
            where = f"{path}[{index}]" if isinstance(value, list) else path
            out.error(where, "must be a string")
            continue
        result.append(str(item))
    return tuple(result)


def read_str_map(value: object, path: str, out: Collector) -> dict[str, str]:
    """A mapping of string keys to scalar values, values converted to text."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        out.error(path, "must be a mapping of strings")
        return {}
    result: dict[str, str] = {}
    for key, item in value.items():
        text = scalar_text(item)
        if not isinstance(key, str) or text is None:
            out.error(f"{path}.{key}", "must be a string key with a string or number value")
            continue
        result[key] = text
    return result


def read_mapping(value: object, path: str, out: Collector) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        out.error(path, "must be a mapping")
        return None
    return value


def check_keys(value: Mapping[str, Any], allowed: Iterable[str], path: str, out: Collector) -> None:
    """Unknown nested keys are warnings: they are ignored, but likely typos."""
    allowed = list(allowed)
    for key in value:
        if key not in allowed:
            out.warn(f"{path}.{key}", f"unknown key ignored{did_you_mean(str(key), allowed)}")
