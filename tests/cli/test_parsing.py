"""How `odin` reads its arguments: `--x:` parameters, options, names."""

from __future__ import annotations

import pytest

from odin.cli.main import build_parser
from odin.cli.overrides import OverrideError, split_overrides


def test_run_collects_nested_overrides_anywhere() -> None:
    args = build_parser().parse_args([
        "run", "--x:backend", "tf", "examples/hello", "--watch", "--x:train.epochs", "3",
        "--x:train.lr=0.1", "--label", "team=nlp", "--timeout", "1h30m", "--on-failure", "cancel"])
    assert args.source == "examples/hello" and args.watch
    assert args.parameters == {"backend": "tf", "train": {"epochs": "3", "lr": "0.1"}}
    assert args.label == ["team=nlp"] and args.timeout == 5400.0 and args.on_failure == "cancel"


def test_a_later_override_wins() -> None:
    assert split_overrides(["--x:a", "1", "--x:a", "2"])[0] == {"a": "2"}


@pytest.mark.parametrize("argv", [["--x:a"], ["--x:", "1"], ["--x:a..b", "1"], ["--x:a", "1", "--x:a.b", "2"],
                                  ["--x:a.b", "1", "--x:a", "2"]])
def test_malformed_overrides_are_refused(argv: list[str]) -> None:
    with pytest.raises(OverrideError):
        split_overrides(argv)


def test_malformed_override_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["run", "p", "--x:a.b"])
    assert exited.value.code == 2
    assert "--x:a.b needs a value" in capsys.readouterr().err


def test_bad_duration_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "p", "--timeout", "soon"])
    assert "invalid duration" in capsys.readouterr().err


def test_every_job_command_takes_address_and_json() -> None:
    parser = build_parser()
    for command in ("watch", "status", "show", "cancel", "retry", "delete", "events"):
        args = parser.parse_args([command, "hello-ab12cd34", "--address", "127.0.0.1:1", "--json"])
        assert (args.job, args.address, args.json) == ("hello-ab12cd34", "127.0.0.1:1", True)
    args = parser.parse_args(["jobs", "--state", "running,failed", "--state", "pending", "--owner", "me", "--all"])
    assert args.state == ["running,failed", "pending"] and args.owner == "me" and args.all
    args = parser.parse_args(["logs", "j-ab12cd34/train", "-f", "--offset", "-100"])
    assert args.follow and args.offset == -100
