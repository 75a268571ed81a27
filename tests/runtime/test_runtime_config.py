"""Typed configuration from environment and YAML."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from odin.runtime.config import ConfigError, load_config


@dataclasses.dataclass(frozen=True)
class Sample:
    store_url: str
    port: int = 0
    verbose: bool = False
    agents: tuple[str, ...] = ()
    timeout: float | None = None
    root: Path = Path("/tmp")


def test_environment_wins_over_file(tmp_path: Path) -> None:
    file = tmp_path / "c.yml"
    file.write_text("store_url: sqlite:///a\nport: 5\nagents: [x, y]\n")
    config = load_config(Sample, "T", file=file, environ={"T_PORT": "7", "T_VERBOSE": "yes"})
    assert config == Sample(store_url="sqlite:///a", port=7, verbose=True, agents=("x", "y"))


def test_missing_key_is_named() -> None:
    with pytest.raises(ConfigError, match="T_STORE_URL"):
        load_config(Sample, "T", environ={})


def test_bad_values_and_unknown_keys_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="T_PORT"):
        load_config(Sample, "T", environ={"T_STORE_URL": "x", "T_PORT": "eighty"})
    file = tmp_path / "c.yml"
    file.write_text("store_url: x\nstore_ulr: y\n")
    with pytest.raises(ConfigError, match="store_ulr"):
        load_config(Sample, "T", file=file, environ={})


def test_lists_paths_and_optionals_from_environment() -> None:
    config = load_config(Sample, "T", environ={"T_STORE_URL": "x", "T_AGENTS": "a:1, b:2", "T_TIMEOUT": "2.5",
                                                "T_ROOT": "/srv/odin"})
    assert config.agents == ("a:1", "b:2")
    assert config.timeout == 2.5
    assert config.root == Path("/srv/odin")


def test_service_help_lists_every_setting() -> None:
    from odin.runtime.server import settings_help

    text = settings_help(Sample, "ODIN_X")
    assert "ODIN_X_STORE_URL" in text and "required" in text.split("ODIN_X_STORE_URL")[1].splitlines()[0]
    assert "ODIN_X_ROOT" in text and "default '/tmp'" in text
