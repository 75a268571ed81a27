"""The local suite (`odin dev up`, Envoy in front), one per module, with the dev admin's token."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from audit_harness import LiveSuite

from odin.auth.v1 import auth_pb2, auth_pb2_grpc
from odin.devsuite import Suite


@pytest.fixture(scope="module")
def live_suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSuite]:
    suite = Suite(tmp_path_factory.mktemp("suite"))
    services = suite.up(timeout=90)
    try:
        gateway = str(services["gateway"]["address"])
        password = (suite.state_dir / "admin-password").read_text().strip()
        with grpc.insecure_channel(gateway) as channel:
            reply = auth_pb2_grpc.AuthServiceStub(channel).Login(
                auth_pb2.LoginRequest(username="admin", password=password), timeout=30)
        yield LiveSuite(suite, gateway, password, reply.tokens.access_token)
    finally:
        suite.down()
