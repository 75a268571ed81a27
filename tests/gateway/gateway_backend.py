"""Stand-in upstreams for the gateway tests: one small gRPC server per suite service.

The gateway is the part under test, so its upstreams are predictable fakes: each answers with
`x-served-by: <its name>` (proving the routing), a few RPCs return known data, a stream sends
messages with pauses between them (proving incremental delivery), and everything else is
UNIMPLEMENTED as the real services' stubs are. The real services behind the gateway are
exercised in tests/clients.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from odin.auth.v1 import auth_pb2, auth_pb2_grpc
from odin.midgard.v1 import midgard_pb2_grpc
from odin.pipelines.v1 import pipelines_pb2_grpc
from odin.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc

ISSUER = "odin-test-issuer"
AUDIENCE = "odin-test"
STREAM_MESSAGES = 3
STREAM_PAUSE = 0.4
SLOW_CALL = 2.0


@dataclass
class SigningKey:
    """An Ed25519 signing key with its kid, as the auth service would publish it."""

    private: Ed25519PrivateKey
    kid: str

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate(), uuid.uuid4().hex[:12])

    def jwk(self) -> dict[str, str]:
        public = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(self.private.public_key()))
        return {**public, "kid": self.kid, "alg": "EdDSA", "use": "sig"}

    def jwks_file(self, path: Path) -> Path:
        path.write_text(json.dumps({"keys": [self.jwk()]}))
        return path

    def token(self, subject: str = "users/tester", *, lifetime: float = 300, **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": subject, "iat": now, "exp": now + int(lifetime), **claims}
        return jwt.encode(payload, self.private, algorithm="EdDSA", headers={"kid": self.kid})


def _served_by(context: grpc.ServicerContext, name: str) -> None:
    context.send_initial_metadata((("x-served-by", name),))


class FakeScheduler(scheduler_pb2_grpc.SchedulerServiceServicer):  # type: ignore[misc]
    def __init__(self, name: str) -> None:
        self.name = name

    def ListJobs(self, request: Any, context: grpc.ServicerContext) -> Any:
        _served_by(context, self.name)
        # Echo the caller's token subject and page size, so tests see what reached the service.
        auth = dict(context.invocation_metadata()).get("authorization", "")
        job = scheduler_pb2.Job(name="jobs/j1", message=f"page_size={request.page_size} auth={bool(auth)}")
        return scheduler_pb2.ListJobsResponse(jobs=[job], next_page_token="next")

    def GetJob(self, request: Any, context: grpc.ServicerContext) -> Any:
        _served_by(context, self.name)
        info = error_details_pb2.ErrorInfo(reason="JOB_NOT_FOUND", domain="odin.scheduler",
                                           metadata={"job": request.name})
        detail = any_pb2.Any()
        detail.Pack(info)
        status = status_pb2.Status(code=code_pb2.NOT_FOUND, message=f"{request.name} not found", details=[detail])
        context.abort_with_status(rpc_status.to_status(status))

    def CancelJob(self, request: Any, context: grpc.ServicerContext) -> Any:
        time.sleep(SLOW_CALL)  # longer than the short-timeout gateway's unary timeout
        return scheduler_pb2.CancelJobResponse()

    def WatchJob(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        _served_by(context, self.name)
        for seq in range(request.after_seq + 1, request.after_seq + 1 + STREAM_MESSAGES):
            yield scheduler_pb2.WatchJobResponse(heartbeat=scheduler_pb2.Heartbeat(latest_seq=seq))
            time.sleep(STREAM_PAUSE)

    def WatchJobs(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        # One message, then silence longer than the short-timeout gateway's stream idle timeout.
        yield scheduler_pb2.WatchJobsResponse(heartbeat=scheduler_pb2.Heartbeat(latest_seq=1))
        time.sleep(SLOW_CALL)
        yield scheduler_pb2.WatchJobsResponse(heartbeat=scheduler_pb2.Heartbeat(latest_seq=2))


class FakeAuth(auth_pb2_grpc.AuthServiceServicer):  # type: ignore[misc]
    def __init__(self, name: str, key: SigningKey) -> None:
        self.name, self.key = name, key

    def GetJwks(self, request: Any, context: grpc.ServicerContext) -> Any:
        _served_by(context, self.name)
        jwk = self.key.jwk()
        return auth_pb2.GetJwksResponse(keys=[auth_pb2.JsonWebKey(
            kty=jwk["kty"], crv=jwk["crv"], x=jwk["x"], kid=jwk["kid"], alg=jwk["alg"], use=jwk["use"])])

    def Login(self, request: Any, context: grpc.ServicerContext) -> Any:
        _served_by(context, self.name)
        if request.password != "secret":
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "wrong username or password")
        token = self.key.token(f"users/{request.username}")
        return auth_pb2.LoginResponse(tokens=auth_pb2.TokenPair(access_token=token))


@dataclass
class Backend:
    name: str
    server: grpc.Server
    address: str
    health: health.HealthServicer


def start_backend(name: str, key: SigningKey) -> Backend:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    scheduler_pb2_grpc.add_SchedulerServiceServicer_to_server(FakeScheduler(name), server)
    auth_pb2_grpc.add_AuthServiceServicer_to_server(FakeAuth(name, key), server)
    pipelines_pb2_grpc.add_PipelinesServiceServicer_to_server(pipelines_pb2_grpc.PipelinesServiceServicer(), server)
    midgard_pb2_grpc.add_MidgardServiceServicer_to_server(midgard_pb2_grpc.MidgardServiceServicer(), server)
    health_servicer = health.HealthServicer()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return Backend(name, server, f"127.0.0.1:{port}", health_servicer)
