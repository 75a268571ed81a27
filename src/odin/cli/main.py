"""`odin`: the command line for the Odin suite.

Each command group lives in its own module with a `register(subparsers)` function that adds
its sub-commands; each sub-command sets `func(args) -> int` as its handler.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from collections.abc import Sequence

# Modules that contribute commands, in help order.
COMMAND_MODULES = (
    "odin.cli.dev",
    "odin.cli.jobs",
    "odin.cli.pipelines",
    "odin.cli.users",
    "odin.cli.projects",
    "odin.cli.audit",
    "odin.cli.nodes",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="odin", description="Run and watch machine-learning pipelines with Odin.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # `odin show JOB | head`: a closed pipe ends the command quietly, as for any Unix tool.
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
