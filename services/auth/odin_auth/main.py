"""`odin-auth`: runs the auth service."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from odin.auth.v1 import auth_pb2, auth_pb2_grpc
from odin.runtime.server import ServerConfig, ServiceRuntime, serve_main


@dataclasses.dataclass(frozen=True)
class AuthConfig(ServerConfig):
    """Auth settings (environment: ODIN_AUTH_<KEY>)."""


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    """Every RPC answers UNIMPLEMENTED until the service lands."""


async def setup(config: AuthConfig, runtime: ServiceRuntime) -> None:
    name = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name
    runtime.add_service(name, auth_pb2_grpc.add_AuthServiceServicer_to_server, AuthServicer())  # type: ignore[abstract]


def main(argv: Sequence[str] | None = None) -> int:
    return serve_main("auth", AuthConfig, setup, argv)
