"""`odin` commands for users (filled in by the issue that builds the service)."""

from __future__ import annotations

import argparse
from typing import Any


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Adds this module's commands to `odin`."""
