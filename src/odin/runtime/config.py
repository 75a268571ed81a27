"""Typed, frozen service configuration read once from the environment and an optional YAML file.

Each service declares a frozen dataclass; `load_config` fills it from (lowest to highest
precedence) field defaults, a YAML file, and environment variables `<PREFIX>_<FIELD>`.
A missing required key fails at start-up and names the key.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

C = TypeVar("C")


class ConfigError(Exception):
    """Configuration that cannot be used; the message names the key."""


def load_config(
    cls: type[C],
    prefix: str,
    *,
    file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> C:
    """Builds `cls` from defaults, the YAML `file` and `<prefix>_<FIELD>` variables."""
    env = os.environ if environ is None else environ
    file = file or env.get(f"{prefix}_CONFIG") or None
    values: dict[str, Any] = _read_yaml(Path(file)) if file else {}
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        env_key = f"{prefix}_{field.name.upper()}"
        from_file = values.pop(field.name, dataclasses.MISSING)
        if env_key in env:
            kwargs[field.name] = _coerce(env[env_key], hints[field.name], env_key)
        elif from_file is not dataclasses.MISSING:
            kwargs[field.name] = _coerce(from_file, hints[field.name], field.name)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required configuration {env_key} (or `{field.name}` in the file)")
    if values:
        raise ConfigError(f"unknown configuration keys in {file}: {', '.join(sorted(values))}")
    return cls(**kwargs)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"configuration file {path} must hold a mapping")
    return dict(loaded)


def _coerce(raw: Any, hint: Any, key: str) -> Any:
    """Converts a YAML value or an environment string to the field's declared type."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if raw is None or raw == "":
            return None
        return _coerce(raw, args[0], key)
    try:
        if hint is bool:
            return _to_bool(raw)
        if hint in (int, float, str):
            return hint(raw)
        if hint is Path:
            return Path(str(raw)).expanduser()
        if origin is tuple:
            items = raw.split(",") if isinstance(raw, str) else list(raw)
            return tuple(str(i).strip() for i in items if str(i).strip())
    except (TypeError, ValueError):
        raise ConfigError(f"configuration {key}: cannot use {raw!r} as {getattr(hint, '__name__', hint)}") from None
    return raw


def _to_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(text)
