"""Midgard numbers: GetNode/ListNodes latency over 50 agents (one slow, one dead) and the agent's CPU cost.

Usage: python bench/midgard_bench.py [--seconds 30] [--calls 1000]

Starts 48 simulated agents in one helper process (tests/midgard/many_agents.py), one real agent
that is SIGSTOPped (slow: accepts connections, never answers), one address nobody listens on
(dead), and the aggregator over all 50 (auth off: this measures Midgard, not token checks).
Then samples two standalone agents' CPU use at the default 1 Hz sampling with nobody calling.
Targets (issue 8): GetNode p99 <= 10 ms; ListNodes over 50 agents, one dead, within 200 ms;
an agent sampling at 1 Hz uses <= 1 % of a core.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import psutil

from odin.devsuite import _health, free_port
from odin.midgard.v1 import midgard_pb2 as pb
from odin.midgard.v1 import midgard_pb2_grpc

BIN = Path(sys.executable).parent
MANY_AGENTS = Path(__file__).resolve().parent.parent / "tests" / "midgard" / "many_agents.py"


@contextmanager
def process(args: list[str], env: dict[str, str] | None = None, address: str = "") -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(args, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE if not address else subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 30
        while address and _health(address, 0.5) != "SERVING":
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{args[0]} did not start")
            time.sleep(0.05)
        yield proc
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
        proc.wait()


def service(name: str, port: int, **env: str) -> dict[str, str]:
    prefix = "ODIN_" + name.upper().replace("-", "_")
    values = {f"{prefix}_PORT": str(port), f"{prefix}_AUTH_DISABLED": "true", f"{prefix}_LOG_LEVEL": "warning"}
    return values | {f"{prefix}_{k.upper()}": v for k, v in env.items()}


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (f"p50 {statistics.median(ordered) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms, "
            f"max {ordered[-1] * 1000:.2f} ms over {len(ordered)} calls")


def timed(call: Callable[[], object], count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def aggregator_numbers(calls: int) -> None:
    ports = [free_port() for _ in range(48)]
    slow_port, dead_port, midgard_port = free_port(), free_port(), free_port()
    with process([sys.executable, str(MANY_AGENTS), *map(str, ports)]) as many, \
            process([str(BIN / "odin-midgard-agent")], service("midgard-agent", slow_port, node_name="slow"),
                    f"127.0.0.1:{slow_port}") as slow:
        assert many.stdout is not None and many.stdout.readline().strip() == "ready"
        os.kill(slow.pid, signal.SIGSTOP)
        agents = [f"127.0.0.1:{p}" for p in ports] + [f"slow=127.0.0.1:{slow_port}", f"dead=127.0.0.1:{dead_port}"]
        env = service("midgard", midgard_port, agents=",".join(agents), refresh_interval_seconds="2",
                      agent_timeout_seconds="2")
        started = time.monotonic()
        with process([str(BIN / "odin-midgard")], env, f"127.0.0.1:{midgard_port}") as midgard, \
                grpc.insecure_channel(f"127.0.0.1:{midgard_port}") as channel:
            stub = midgard_pb2_grpc.MidgardServiceStub(channel)
            while sum(n.state == pb.Node.STATE_READY for n in stub.ListNodes(pb.ListNodesRequest()).nodes) < 48:
                time.sleep(0.01)
            print(f"aggregator start -> 48 of 50 nodes READY: {time.monotonic() - started:.2f} s")
            listed = timed(lambda: stub.ListNodes(pb.ListNodesRequest(), timeout=5), calls // 5)
            print(f"ListNodes (50 nodes, 8 GPUs each, one slow, one dead): {percentiles(listed)}")
            got = timed(lambda: stub.GetNode(pb.GetNodeRequest(name=f"nodes/agent-{ports[7]}"), timeout=5), calls)
            print(f"GetNode from cache: {percentiles(got)}")
            gpus = timed(lambda: stub.ListGpus(pb.ListGpusRequest(free_only=True, model="h100"), timeout=5),
                         calls // 5)
            print(f"ListGpus free_only+model (400 GPUs): {percentiles(gpus)}")
            cpu = psutil.Process(midgard.pid)
            before, t0 = cpu.cpu_times(), time.monotonic()
            time.sleep(10)
            after = cpu.cpu_times()
            used = (after.user + after.system - before.user - before.system) / (time.monotonic() - t0)
            print(f"aggregator CPU while refreshing 50 agents every 2 s, idle clients: {used * 100:.2f} % of a core")


def agent_cpu(seconds: float) -> None:
    for label, env in [("no NVML", {}), ("simulated NVML, 4 GPUs", {"nvml": "simulated"})]:
        port = free_port()
        with process([str(BIN / "odin-midgard-agent")], service("midgard-agent", port, **env),
                     f"127.0.0.1:{port}") as agent:
            cpu = psutil.Process(agent.pid)
            time.sleep(3)  # past start-up
            before, t0 = cpu.cpu_times(), time.monotonic()
            time.sleep(seconds)
            after = cpu.cpu_times()
            used = (after.user + after.system - before.user - before.system) / (time.monotonic() - t0)
            print(f"agent sampling at 1 Hz ({label}), no callers: {used * 100:.2f} % of a core over {seconds:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0, help="CPU sampling window per agent")
    parser.add_argument("--calls", type=int, default=1000, help="GetNode calls (ListNodes/ListGpus: a fifth)")
    args = parser.parse_args()
    aggregator_numbers(args.calls)
    agent_cpu(args.seconds)


if __name__ == "__main__":
    main()
