"""What authentication costs: token verification per call, the interceptor's throughput cost, login latency.

Usage: python bench/auth_verify.py [--calls 3000] [--logins 20]
Targets (issue 4): verification <= 50 us per call; <= 10 % fewer trivial unary calls per second with
the interceptor enforcing than with it disabled. Login latency is reported with the default argon2 settings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from grpc import aio

from odin.runtime.auth import AuthInterceptor
from odin.runtime.server import ServerConfig, ServiceRuntime
from odin.runtime.tokens import (
    Identity,
    KeyCache,
    Role,
    TokenSettings,
    TokenVerifier,
    jwks_document,
    key_id,
    sign_access_token,
)
from odin.scheduler.v1 import scheduler_pb2 as pb
from odin.scheduler.v1 import scheduler_pb2_grpc as pb_grpc

KEY = Ed25519PrivateKey.generate()
KID = key_id(KEY.public_key())
SETTINGS = TokenSettings()


async def _jwks() -> dict[str, Any]:
    return jwks_document([(KID, KEY.public_key())])


def _token(username: str = "bench") -> str:
    return sign_access_token(KEY, KID, Identity(username, Role.ADMIN), SETTINGS)[0]


class _Context:
    def __init__(self, token: str) -> None:
        self.metadata = (("authorization", f"Bearer {token}"),)

    def invocation_metadata(self) -> Any:
        return self.metadata


async def verify_cost(calls: int) -> dict[str, float]:
    """Microseconds per verification: a token seen for the first time, and the same token again."""
    verifier = TokenVerifier(KeyCache(_jwks), SETTINGS)
    await verifier.verify(_token())  # warm the key cache
    fresh = [_token(f"u{i}") for i in range(calls)]
    started = time.perf_counter()
    for token in fresh:
        await verifier.verify(token)
    first = (time.perf_counter() - started) / calls * 1e6
    interceptor = AuthInterceptor(verifier=verifier)
    interceptor.register("odin.scheduler.v1.SchedulerService", {"GetJob": Role.VIEWER})
    context = _Context(fresh[0])
    started = time.perf_counter()
    for _ in range(calls):
        await interceptor.authorize("/odin.scheduler.v1.SchedulerService/GetJob", context)
    repeat = (time.perf_counter() - started) / calls * 1e6
    message, signature = b"x" * 200, KEY.sign(b"x" * 200)
    started = time.perf_counter()
    for _ in range(calls):
        KEY.public_key().verify(signature, message)
    raw = (time.perf_counter() - started) / calls * 1e6
    return {"first_use_us": first, "per_call_us": repeat, "raw_ed25519_us": raw}


class _Trivial(pb_grpc.SchedulerServiceServicer):
    async def GetJob(self, request: pb.GetJobRequest, context: Any) -> pb.GetJobResponse:
        return pb.GetJobResponse(job=pb.Job(name=request.name))


async def calls_per_second(config: ServerConfig, token: str, calls: int) -> float:
    runtime = ServiceRuntime("bench", config)
    runtime.add_service("odin.scheduler.v1.SchedulerService", pb_grpc.add_SchedulerServiceServicer_to_server,
                        _Trivial(), roles={"GetJob": Role.VIEWER})  # type: ignore[abstract]
    port = await runtime.start()
    metadata = (("authorization", f"Bearer {token}"),)
    async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.SchedulerServiceStub(channel)
        for _ in range(200):
            await stub.GetJob(pb.GetJobRequest(name="jobs/x"), metadata=metadata)
        started = time.perf_counter()
        for _ in range(calls):
            await stub.GetJob(pb.GetJobRequest(name="jobs/x"), metadata=metadata)
        rate = calls / (time.perf_counter() - started)
    await runtime.server.stop(None)
    return rate


async def throughput(calls: int, tmp: Path) -> dict[str, float]:
    jwks = tmp / "jwks.json"
    jwks.write_text(json.dumps(await _jwks()))
    token = _token()
    rounds: dict[str, list[float]] = {"disabled": [], "enforced": []}
    for _ in range(3):  # interleaved rounds, so machine noise hits both alike
        rounds["disabled"].append(await calls_per_second(ServerConfig(auth_disabled=True), token, calls))
        rounds["enforced"].append(await calls_per_second(ServerConfig(auth_jwks_file=jwks), token, calls))
    return {name: statistics.median(values) for name, values in rounds.items()}


async def login_latency(logins: int, tmp: Path) -> dict[str, float]:
    from odin_auth.main import AuthConfig, build_core

    core = build_core(AuthConfig(store_url=f"sqlite:///{tmp / 'auth.db'}", keys_path=tmp / "keys",
                                 login_free_failures_per_client=10**6))
    await core.create_user("bench", "", "", Role.USER, "bench-password-123")
    times = []
    for _ in range(logins):
        started = time.perf_counter()
        await core.login("bench", "bench-password-123", "bench")
        times.append((time.perf_counter() - started) * 1000)
    started = time.perf_counter()
    for _ in range(logins):
        core.passwords.check(None, "no-such-user-password")
    unknown = (time.perf_counter() - started) / logins * 1000
    return {"login_ms_median": statistics.median(times), "login_ms_max": max(times), "unknown_user_ms": unknown}


async def run(calls: int, logins: int) -> None:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        cost = await verify_cost(calls)
        print(f"token verification, first use of a token: {cost['first_use_us']:.1f} us "
              f"(of which a bare Ed25519 signature check on this machine: {cost['raw_ed25519_us']:.1f} us)")
        print(f"interceptor per call (token seen before):  {cost['per_call_us']:.1f} us")
        rates = await throughput(calls, tmp)
        loss = (1 - rates["enforced"] / rates["disabled"]) * 100
        print(f"trivial unary RPC: {rates['disabled']:.0f}/s auth disabled, {rates['enforced']:.0f}/s enforced "
              f"({loss:+.1f} % cost)")
        login = await login_latency(logins, tmp)
        print(f"login (argon2id 19 MiB, t=2, p=1 + SQLite + signing): median {login['login_ms_median']:.1f} ms, "
              f"max {login['login_ms_max']:.1f} ms; unknown user {login['unknown_user_ms']:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--logins", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(run(args.calls, args.logins))


if __name__ == "__main__":
    main()
