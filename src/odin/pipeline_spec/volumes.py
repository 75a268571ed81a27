"""Parsers for mounts, secrets, config maps and ephemeral volumes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import Collector
from .fields import check_keys, read_int, read_str
from .model import ConfigMapMount, EphemeralVolume, Mount, SecretMount
from .quantities import parse_quantity

# Well-known secrets get these defaults (original k8s.py::populate_secret).
SECRET_DEFAULTS: Mapping[str, tuple[str, str, int]] = {
    "odin-cred": ("/etc/odind/odin-cred.yml", "odin-cred.yml", 0o644),
    "ssh-key": ("/etc/odind/identity", "identity", 0o400),
}
DEFAULT_SECRET_MODE = 0o644


def entries(value: object, path: str, out: Collector) -> list[tuple[str, Mapping[str, Any]]]:
    """A single mapping or a list of mappings, each with its field path."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [(path, value)]
    if not isinstance(value, list):
        out.error(path, "must be a mapping or a list of mappings")
        return []
    result: list[tuple[str, Mapping[str, Any]]] = []
    for index, item in enumerate(value):
        if isinstance(item, Mapping):
            result.append((f"{path}[{index}]", item))
        else:
            out.error(f"{path}[{index}]", "must be a mapping")
    return result


def parse_mounts(value: object, path: str, out: Collector) -> tuple[Mount, ...]:
    result: list[Mount] = []
    for where, item in entries(value, path, out):
        check_keys(item, ("name", "path", "claim"), where, out)
        name = read_str(item.get("name"), f"{where}.name", out, required=True)
        mount_path = read_str(item.get("path"), f"{where}.path", out, required=True)
        claim = read_str(item.get("claim"), f"{where}.claim", out)
        if name is not None and mount_path is not None:
            result.append(Mount(name, mount_path, claim))
    return tuple(result)


def parse_secrets(value: object, path: str, out: Collector) -> tuple[SecretMount, ...]:
    result: list[SecretMount] = []
    for where, item in entries(value, path, out):
        check_keys(item, ("name", "path", "sub_path", "mode"), where, out)
        name = read_str(item.get("name"), f"{where}.name", out, required=True)
        default_path, default_sub, default_mode = SECRET_DEFAULTS.get(name or "", (None, "", DEFAULT_SECRET_MODE))
        secret_path = read_str(_or(item.get("path"), default_path), f"{where}.path", out, required=True)
        sub_path = read_str(_or(item.get("sub_path"), default_sub), f"{where}.sub_path", out)
        mode = _read_mode(_or(item.get("mode"), default_mode), f"{where}.mode", out)
        if name is not None and secret_path is not None and mode is not None:
            result.append(SecretMount(name, secret_path, sub_path or "", mode))
    return tuple(result)


def _or(value: object, default: object) -> object:
    """YAML ``null`` means "use the default", like an absent key."""
    return default if value is None else value


def _read_mode(value: object, path: str, out: Collector) -> int | None:
    mode = read_int(value, path, out, minimum=0)
    if mode is not None and mode > 0o777:
        out.error(path, "must be a file mode between 0 and 0o777 (511)")
        return None
    return mode


def parse_config_maps(value: object, path: str, out: Collector) -> tuple[ConfigMapMount, ...]:
    result: list[ConfigMapMount] = []
    for where, item in entries(value, path, out):
        check_keys(item, ("name", "path", "sub_path"), where, out)
        fields = [read_str(item.get(k), f"{where}.{k}", out, required=True) for k in ("name", "path", "sub_path")]
        name, cm_path, sub_path = fields
        if name is not None and cm_path is not None and sub_path is not None:
            result.append(ConfigMapMount(name, cm_path, sub_path))
    return tuple(result)


def parse_ephem_volumes(value: object, path: str, out: Collector) -> tuple[EphemeralVolume, ...]:
    result: list[EphemeralVolume] = []
    for where, item in entries(value, path, out):
        check_keys(item, ("name", "type", "medium", "size_limit"), where, out)
        name = read_str(item.get("name"), f"{where}.name", out, required=True)
        if item.get("type") != "emptyDir":
            out.error(f"{where}.type", "only emptyDir ephemeral volumes are supported")
        if "medium" not in item:
            out.error(f"{where}.medium", 'is required ("" for node disk, "Memory" for tmpfs)')
        medium = read_str(item.get("medium", ""), f"{where}.medium", out)
        size_limit = _read_size(item.get("size_limit"), f"{where}.size_limit", out)
        if name is not None and medium is not None:
            result.append(EphemeralVolume(name, medium, size_limit))
    return tuple(result)


def _read_size(value: object, path: str, out: Collector) -> str | None:
    if value is None:
        return None
    try:
        return parse_quantity(value)
    except ValueError as exc:
        out.error(path, str(exc))
        return None
