"""Parsers for the scalar and small-mapping task keys (resources, retries, env, ...)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from .durations import parse_duration
from .errors import Collector
from .fields import check_keys, did_you_mean, read_int, read_mapping, read_str, read_str_list, read_str_map
from .model import (
    DEFAULT_PULL_POLICY,
    DEFAULT_RESOURCE_TYPE,
    LOG_ONLY_RESOURCE_TYPES,
    PULL_POLICIES,
    RESOURCE_TYPE_ALIASES,
    Resources,
    RetryPolicy,
    SecurityContext,
)
from .quantities import parse_quantity

# Kubernetes accepts any C-identifier-like env name (plus '.' and '-').
ENV_NAME_PATTERN = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"


def parse_resources(value: object, path: str, out: Collector) -> Resources:
    mapping = read_mapping(value, path, out)
    if mapping is None:
        return Resources()
    check_keys(mapping, ("limits", "requests"), path, out)
    limits = _quantity(mapping.get("limits"), f"{path}.limits", out)
    requests = _quantity(mapping.get("requests"), f"{path}.requests", out)
    return Resources(limits, requests)


def _quantity(value: object, path: str, out: Collector) -> str | None:
    if value is None:
        return None
    try:
        return parse_quantity(value)
    except ValueError as exc:
        out.error(path, str(exc))
        return None


def parse_security_context(value: object, path: str, out: Collector) -> SecurityContext | None:
    mapping = read_mapping(value, path, out)
    if mapping is None:
        return None
    keys = ("fs_group", "run_as_group", "run_as_user")
    check_keys(mapping, keys, path, out)
    fs_group, group, user = (read_int(mapping.get(k), f"{path}.{k}", out, minimum=0) for k in keys)
    return SecurityContext(fs_group, group, user)


def parse_duration_field(value: object, path: str, out: Collector, *, positive: bool = True) -> float | None:
    if value is None:
        return None
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        out.error(path, str(exc))
        return None
    if positive and seconds <= 0:
        out.error(path, "must be greater than zero")
        return None
    return seconds


def parse_retries(value: object, path: str, out: Collector) -> RetryPolicy:
    """``retries: 3`` or ``retries: {limit, backoff, max_backoff, factor}``."""
    if value is None or isinstance(value, int):
        limit = read_int(value, path, out, minimum=0)
        return RetryPolicy(limit=limit or 0)
    if not isinstance(value, Mapping):
        out.error(path, "must be a non-negative integer or a mapping {limit, backoff, max_backoff, factor}")
        return RetryPolicy()
    mapping = value
    check_keys(mapping, ("limit", "backoff", "max_backoff", "factor"), path, out)
    default = RetryPolicy()
    limit = read_int(mapping.get("limit"), f"{path}.limit", out, minimum=0)
    backoff = parse_duration_field(mapping.get("backoff"), f"{path}.backoff", out, positive=False)
    cap = parse_duration_field(mapping.get("max_backoff"), f"{path}.max_backoff", out, positive=False)
    factor = _read_factor(mapping.get("factor"), f"{path}.factor", out)
    return RetryPolicy(
        limit=limit or 0,
        backoff_seconds=default.backoff_seconds if backoff is None else backoff,
        max_backoff_seconds=default.max_backoff_seconds if cap is None else cap,
        factor=default.factor if factor is None else factor,
    )


def _read_factor(value: object, path: str, out: Collector) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 1:
        out.error(path, "must be a number >= 1")
        return None
    return float(value)


def parse_env(value: object, path: str, out: Collector) -> Mapping[str, str]:
    env = read_str_map(value, path, out)
    for name in env:
        if not re.fullmatch(ENV_NAME_PATTERN, name):
            out.error(f"{path}.{name}", "is not a valid environment variable name")
    return MappingProxyType(env)


def parse_resource_type(value: object, path: str, out: Collector) -> str:
    if value is None:
        return DEFAULT_RESOURCE_TYPE
    if isinstance(value, str) and value in RESOURCE_TYPE_ALIASES:
        return RESOURCE_TYPE_ALIASES[value]
    if isinstance(value, str) and value in LOG_ONLY_RESOURCE_TYPES:
        out.error(path, f'"{value}" can only be read for logs, not submitted as a task')
    else:
        accepted = sorted(set(RESOURCE_TYPE_ALIASES.values()))
        hint = did_you_mean(str(value), RESOURCE_TYPE_ALIASES)
        out.error(path, f'unknown resource type "{value}"{hint}; accepted: {", ".join(accepted)}')
    return DEFAULT_RESOURCE_TYPE


def parse_pull_policy(value: object, path: str, out: Collector) -> str:
    text = read_str(value, path, out)
    if text is None:
        return DEFAULT_PULL_POLICY
    if text not in PULL_POLICIES:
        out.error(path, f"must be one of {', '.join(PULL_POLICIES)}{did_you_mean(text, PULL_POLICIES)}")
        return DEFAULT_PULL_POLICY
    return text


def parse_outputs(value: object, path: str, out: Collector) -> tuple[str, ...] | Mapping[str, str] | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return MappingProxyType(read_str_map(value, path, out))
    return read_str_list(value, path, out)


# A Kubernetes object name (DNS-1123 subdomain): Kueue LocalQueues and training runtimes are named so.
_OBJECT_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")


def parse_object_name(value: object, path: str, out: Collector) -> str | None:
    """A queue or runtime name; None when unset."""
    text = read_str(value, path, out)
    if text is None:
        return None
    if len(text) > 63 or not _OBJECT_NAME.fullmatch(text):
        out.error(path, "must be a Kubernetes object name (lowercase letters, digits, '-' and '.', at most 63)")
        return None
    return text


def parse_object_patch(value: object, path: str, out: Collector) -> Mapping[str, Any] | None:
    """`object_patch`: a mapping whose only key is `spec` (metadata stays Odin's: names and labels find attempts)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        out.error(path, "must be a mapping with a `spec` key (a JSON merge patch of the object)")
        return None
    for key in value:
        if key != "spec":
            out.error(f"{path}.{key}", "only `spec` may be patched (metadata and kind stay as Odin builds them)")
    spec = value.get("spec")
    if "spec" in value and not isinstance(spec, Mapping):
        out.error(f"{path}.spec", "must be a mapping")
        return None
    return MappingProxyType(dict(value))
