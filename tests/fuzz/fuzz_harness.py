"""The live suite handle the fuzz tests share (a module of its own: conftest modules are not importable)."""

from __future__ import annotations

from dataclasses import dataclass

from odin.devsuite import Suite


@dataclass
class LiveSuite:
    suite: Suite
    gateway: str
    admin_password: str
    admin_token: str
