"""A local suite (`odin dev up`, Envoy in front) for tests that go through the gateway, with the dev admin's token."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc

from odin.auth.v1 import auth_pb2, auth_pb2_grpc
from odin.devsuite import Suite


@dataclass
class LiveSuite:
    suite: Suite
    gateway: str
    admin_password: str
    admin_token: str


def running_suite(state_dir: Path, timeout: float = 90) -> Iterator[LiveSuite]:
    """Starts the suite in `state_dir`, logs its admin in, yields it, stops it (a fixture's body)."""
    suite = Suite(state_dir)
    services = suite.up(timeout=timeout)
    try:
        gateway = str(services["gateway"]["address"])
        password = (suite.state_dir / "admin-password").read_text().strip()
        with grpc.insecure_channel(gateway) as channel:
            reply = auth_pb2_grpc.AuthServiceStub(channel).Login(
                auth_pb2.LoginRequest(username="admin", password=password), timeout=30)
        yield LiveSuite(suite, gateway, password, reply.tokens.access_token)
    finally:
        suite.down()
