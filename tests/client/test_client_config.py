"""Names, addresses and the token: what the user types or has on disk becomes what is sent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from odin.client import ConfigurationError, InvalidName, ServiceAddresses, job_name, load_token, task_name


@pytest.mark.parametrize(("text", "name"), [
    ("hello-ab12cd34", "jobs/hello-ab12cd34"), ("jobs/hello-ab12cd34", "jobs/hello-ab12cd34"),
    (" jobs/hello-ab12cd34/ ", "jobs/hello-ab12cd34"),
])
def test_job_names(text: str, name: str) -> None:
    assert job_name(text) == name


@pytest.mark.parametrize("text", ["", "jobs/", "a/b", "jobs/a/tasks/b"])
def test_bad_job_names(text: str) -> None:
    with pytest.raises(InvalidName):
        job_name(text)


@pytest.mark.parametrize(("text", "name"), [
    ("hello-ab12cd34/train", "jobs/hello-ab12cd34/tasks/train"),
    ("jobs/hello-ab12cd34/tasks/train", "jobs/hello-ab12cd34/tasks/train"),
    ("jobs/hello-ab12cd34/train", "jobs/hello-ab12cd34/tasks/train"),
    ("hello-ab12cd34--train-a", "jobs/hello-ab12cd34/tasks/train-a"),
    ("my-pipe-ab12cd34--x--y", "jobs/my-pipe-ab12cd34/tasks/x--y"),
])
def test_task_names(text: str, name: str) -> None:
    assert task_name(text) == name


@pytest.mark.parametrize("text", ["hello-ab12cd34", "a/b/c/d", "jobs//tasks/x"])
def test_bad_task_names(text: str) -> None:
    with pytest.raises(InvalidName):
        task_name(text)


def _suite(state: Path, services: dict[str, str]) -> None:
    state.mkdir(parents=True, exist_ok=True)
    entries = {name: {"address": addr, "pid": 1} for name, addr in services.items()}
    (state / "suite.json").write_text(json.dumps({"services": entries}))


def test_addresses_prefer_explicit_then_env_then_gateway_then_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ODIN_ADDRESS", raising=False)
    _suite(tmp_path, {"scheduler": "127.0.0.1:1001", "auth": "127.0.0.1:1002"})
    local = ServiceAddresses.from_environment(state_dir=tmp_path)
    assert (local.address("scheduler"), local.address("auth")) == ("127.0.0.1:1001", "127.0.0.1:1002")
    _suite(tmp_path, {"scheduler": "127.0.0.1:1001", "gateway": "127.0.0.1:1000"})
    assert local.address("scheduler") == "127.0.0.1:1000"
    monkeypatch.setenv("ODIN_ADDRESS", "127.0.0.1:2000")
    assert ServiceAddresses.from_environment(state_dir=tmp_path).address("pipelines") == "127.0.0.1:2000"
    assert ServiceAddresses.from_environment("127.0.0.1:3000", tmp_path).address("scheduler") == "127.0.0.1:3000"


def test_no_address_says_how_to_get_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ODIN_ADDRESS", raising=False)
    with pytest.raises(ConfigurationError, match="odin dev up"):
        ServiceAddresses.from_environment(state_dir=tmp_path).address("scheduler")


def test_token_from_env_then_suite_then_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("ODIN_TOKEN", raising=False)
    monkeypatch.delenv("ODIN_TOKEN_FILE", raising=False)
    suite = tmp_path / "suite"
    suite.mkdir()
    assert load_token(suite) is None
    (tmp_path / "config" / "odin").mkdir(parents=True)
    (tmp_path / "config" / "odin" / "token").write_text(json.dumps({"access_token": "from-config"}))
    assert load_token(suite) == "from-config"
    (suite / "token").write_text("from-suite\n")
    assert load_token(suite) == "from-suite"
    monkeypatch.setenv("ODIN_TOKEN", "from-env")
    assert load_token(suite) == "from-env"
