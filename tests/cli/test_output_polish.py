"""CLI output details a new user trips over: repeated violations, broken pipes."""

from __future__ import annotations

import json
import subprocess
import sys

from google.protobuf import struct_pb2

from odin.cli.output import message_dict, summary_line
from odin.client.errors import FieldViolation, InvalidArgument


def test_the_summary_line_does_not_repeat_the_violations() -> None:
    error = InvalidArgument(
        'the pipeline is invalid: tasks[0].depends: unknown task "trian"; tasks[1].name: must not be empty',
        code="INVALID_ARGUMENT",
        violations=[FieldViolation("tasks[0].depends", 'unknown task "trian"'),
                    FieldViolation("tasks[1].name", "must not be empty")],
    )
    assert summary_line(error) == "the pipeline is invalid (2 problems):"


def test_a_message_without_the_violations_is_kept() -> None:
    error = InvalidArgument("invalid job options", code="INVALID_ARGUMENT",
                            violations=[FieldViolation("options.parallelism", "must not be negative")])
    assert summary_line(error) == "invalid job options"
    single = InvalidArgument("name: required", code="INVALID_ARGUMENT", violations=[FieldViolation("name", "required")])
    assert summary_line(single) == "name: required"


LOUD_COMMAND = """
import argparse, sys
import odin.cli.main as cli

def loud(args):
    for _ in range(200_000):
        print("x" * 100)
    return 0

def parser():
    built = argparse.ArgumentParser(prog="odin")
    built.set_defaults(func=loud)
    return built

cli.build_parser = parser
sys.exit(cli.main([]))
"""


def test_a_closed_pipe_ends_the_output_quietly() -> None:
    # `odin show JOB | head`: the rest of the output hits a closed pipe.
    reader = subprocess.Popen([sys.executable, "-c", LOUD_COMMAND], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert reader.stdout is not None
    reader.stdout.read(10)
    reader.stdout.close()
    _, err = reader.communicate(timeout=60)
    assert b"Traceback" not in err and b"BrokenPipeError" not in err


def test_integers_stay_integers_in_a_shown_spec() -> None:
    spec = struct_pb2.Struct()
    spec.update({"tasks": [{"retries": {"limit": 2}, "num_gpus": 0, "fraction": 0.5}]})
    shown = message_dict(spec)
    assert shown == {"tasks": [{"retries": {"limit": 2}, "num_gpus": 0, "fraction": 0.5}]}
    assert isinstance(shown["tasks"][0]["num_gpus"], int)
    assert "2.0" not in json.dumps(shown)
