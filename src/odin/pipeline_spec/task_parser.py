"""Turn one raw task mapping into a TaskSpec, collecting every violation."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from . import task_fields as tf
from .errors import Collector
from .fields import did_you_mean, read_int, read_str, read_str_list, read_str_map
from .model import GPU_BY_DEFAULT_KINDS, KNOWN_TASK_KEYS, RESOURCE_TYPE_ALIASES, TASK_KEY_ALIASES, TaskSpec
from .variables import template_problems
from .volumes import parse_config_maps, parse_ephem_volumes, parse_mounts, parse_secrets

# Keys whose strings are ``${VAR}``-substituted, so unknown names are caught up front.
TEMPLATED_KEYS = ("command", "args", "env", "inputs", "outputs")


def parse_task(raw: Mapping[str, Any], path: str, out: Collector) -> TaskSpec | None:
    """Parse ``raw``; return None when it has errors (they are in ``out``)."""
    before = len(out.errors)
    _check_task_keys(raw, path, out)
    keys = _resolve_aliases(raw, path, out)

    def at(key: str) -> str:
        return f"{path}.{keys.get(key, key)}"

    def get(key: str) -> Any:
        return raw.get(keys.get(key, key))

    name = read_str(raw.get("name"), f"{path}.name", out, required=True)
    image = read_str(get("image"), at("image"), out, required=True)
    command = read_str_list(get("command"), at("command"), out)
    if get("command") is None:
        out.error(at("command"), "is required")
    elif get("command") == []:
        out.error(at("command"), "must not be empty")
    mounts = parse_mounts(get("mounts"), at("mounts"), out)
    ephem = parse_ephem_volumes(get("ephem_volumes"), at("ephem_volumes"), out)
    _check_mount_volumes(get("mounts"), at("mounts"), {v.name for v in ephem}, out)
    spec = TaskSpec(
        name=name or "",
        image=image or "",
        command=command,
        args=read_str_list(get("args"), at("args"), out),
        depends=parse_depends(get("depends"), at("depends"), out),
        mounts=mounts,
        secrets=parse_secrets(get("secrets"), at("secrets"), out),
        config_maps=parse_config_maps(get("config_maps"), at("config_maps"), out),
        ephem_volumes=ephem,
        num_gpus=_int_or(get("num_gpus"), at("num_gpus"), out, minimum=0, default=_default_gpus(get("resource_type"))),
        num_workers=_int_or(get("num_workers"), at("num_workers"), out, minimum=1, default=1),
        cpu=tf.parse_resources(get("cpu"), at("cpu"), out),
        memory=tf.parse_resources(get("memory"), at("memory"), out),
        security_context=tf.parse_security_context(get("security_context"), at("security_context"), out),
        pull_policy=tf.parse_pull_policy(get("pull_policy"), at("pull_policy"), out),
        node_selector=MappingProxyType(read_str_map(get("node_selector"), at("node_selector"), out)),
        resource_type=tf.parse_resource_type(get("resource_type"), at("resource_type"), out),
        inputs=read_str_list(get("inputs"), at("inputs"), out),
        outputs=tf.parse_outputs(get("outputs"), at("outputs"), out),
        env=tf.parse_env(get("env"), at("env"), out),
        retries=tf.parse_retries(get("retries"), at("retries"), out),
        timeout_seconds=tf.parse_duration_field(get("timeout"), at("timeout"), out),
        queue=tf.parse_object_name(get("queue"), at("queue"), out),
        runtime=tf.parse_object_name(get("runtime"), at("runtime"), out),
        object_patch=tf.parse_object_patch(get("object_patch"), at("object_patch"), out),
        raw=MappingProxyType(dict(raw)),
    )
    _check_templates(raw, keys, path, out)
    return spec if len(out.errors) == before else None


def _check_task_keys(raw: Mapping[str, Any], path: str, out: Collector) -> None:
    for key in raw:
        if not isinstance(key, str):
            out.error(f"{path}.{key}", "task keys must be strings")
        elif key not in KNOWN_TASK_KEYS:
            out.warn(f"{path}.{key}", f"unknown key ignored{did_you_mean(key, KNOWN_TASK_KEYS)}")


def _resolve_aliases(raw: Mapping[str, Any], path: str, out: Collector) -> dict[str, str]:
    """Map each canonical key to the spelling used in ``raw`` (``mount`` -> ``mounts``)."""
    keys: dict[str, str] = {}
    for alias, canonical in TASK_KEY_ALIASES.items():
        if alias in raw and canonical in raw:
            out.error(f"{path}.{alias}", f'both "{alias}" and "{canonical}" are given; use one')
        elif alias in raw:
            keys[canonical] = alias
    return keys


def parse_depends(value: object, path: str, out: Collector) -> tuple[str, ...]:
    """Explicit dependencies; a leading ``^`` is allowed and stripped."""
    names = read_str_list(value, path, out)
    return tuple(dict.fromkeys(name.removeprefix("^") for name in names))


def _default_gpus(resource_type: object) -> int:
    """One GPU per replica for the distributed training kinds, none otherwise."""
    kind = RESOURCE_TYPE_ALIASES.get(resource_type, "") if isinstance(resource_type, str) else ""
    return 1 if kind in GPU_BY_DEFAULT_KINDS else 0


def _int_or(value: object, path: str, out: Collector, *, minimum: int, default: int) -> int:
    result = read_int(value, path, out, minimum=minimum)
    return default if result is None else result


def _check_mount_volumes(value: object, path: str, ephem_names: set[str], out: Collector) -> None:
    """A mount without a claim needs an ephemeral volume of the same name."""
    items = value if isinstance(value, list) else [value]
    for index, item in enumerate(items):
        if not isinstance(item, Mapping) or item.get("claim") is not None:
            continue
        name = item.get("name")
        if isinstance(name, str) and name not in ephem_names:
            where = f"{path}[{index}]" if isinstance(value, list) else path
            out.error(f"{where}.claim", f'is required: no ephem_volume named "{name}"')


def _check_templates(raw: Mapping[str, Any], keys: Mapping[str, str], path: str, out: Collector) -> None:
    for key in TEMPLATED_KEYS:
        _check_strings(raw.get(key), f"{path}.{key}", out)
    mounts_key = keys.get("mounts", "mounts")
    mounts = raw.get(mounts_key)
    items = mounts if isinstance(mounts, list) else [mounts]
    for index, item in enumerate(items):
        if isinstance(item, Mapping):
            where = f"{path}.{mounts_key}[{index}]" if isinstance(mounts, list) else f"{path}.{mounts_key}"
            _check_strings(item.get("path"), f"{where}.path", out)


def _check_strings(value: object, path: str, out: Collector) -> None:
    if isinstance(value, str):
        for problem in template_problems(value):
            out.error(path, problem)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_strings(item, f"{path}[{index}]", out)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _check_strings(item, f"{path}.{key}", out)
