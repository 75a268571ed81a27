"""Unary read latency and throughput, direct to the auth service vs through the Envoy gateway.

Starts a local suite (`odin dev up` in a temporary state directory), then calls AuthService.GetJwks
(a cheap open read) over gRPC: first one call at a time for latency (p50/p99), then N concurrent
callers for throughput. Prints one line per target; stops the suite at the end.

Usage: python bench/gateway_unary.py [--calls 2000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from grpc import aio

from odin.auth.v1 import auth_pb2, auth_pb2_grpc
from odin.devsuite import Suite


async def latencies(address: str, calls: int) -> list[float]:
    async with aio.insecure_channel(address) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        for _ in range(50):  # warm-up: connections, caches
            await stub.GetJwks(auth_pb2.GetJwksRequest(), timeout=5)
        samples = []
        for _ in range(calls):
            started = time.perf_counter()
            await stub.GetJwks(auth_pb2.GetJwksRequest(), timeout=5)
            samples.append((time.perf_counter() - started) * 1000)
        return samples


async def throughput(address: str, calls: int, concurrency: int) -> float:
    async with aio.insecure_channel(address) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        remaining = calls

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await stub.GetJwks(auth_pb2.GetJwksRequest(), timeout=10)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return calls / (time.perf_counter() - started)


def percentile(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100)[int(q) - 1]


async def run(calls: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        suite = Suite(Path(tmp))
        services = suite.up(timeout=60)
        try:
            targets = {"direct": str(services["auth"]["address"]), "gateway": str(services["gateway"]["address"])}
            for name, address in targets.items():
                samples = await latencies(address, calls)
                rate = await throughput(address, calls, concurrency)
                print(f"{name:8s} GetJwks p50 {percentile(samples, 50):.2f} ms  p99 {percentile(samples, 99):.2f} ms"
                      f"  throughput {rate:,.0f} req/s ({concurrency} concurrent, {calls} calls)")
        finally:
            suite.down()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    asyncio.run(run(args.calls, args.concurrency))


if __name__ == "__main__":
    main()
