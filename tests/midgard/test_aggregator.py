"""The aggregator with real agent processes on loopback: reads, filters, slow and dead agents, WatchNodes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from support.clients import channel
from support.processes import ServiceProcess
from support.rpc_errors import rpc_failure
from support.waiting import assert_eventually

from odin.devsuite import free_port
from odin.midgard.v1 import midgard_pb2 as pb
from odin.midgard.v1 import midgard_pb2_grpc

READY, STALE, UNREACHABLE = pb.Node.STATE_READY, pb.Node.STATE_STALE, pb.Node.STATE_UNREACHABLE
REFRESH = 0.5


def stub(service: ServiceProcess) -> midgard_pb2_grpc.MidgardServiceStub:
    return midgard_pb2_grpc.MidgardServiceStub(channel(service.address))


def nodes(midgard: midgard_pb2_grpc.MidgardServiceStub) -> dict[str, pb.Node]:
    return {n.name: n for n in midgard.ListNodes(pb.ListNodesRequest(), timeout=5).nodes}


def all_ready(midgard: midgard_pb2_grpc.MidgardServiceStub, count: int) -> dict[str, pb.Node] | None:
    found = nodes(midgard)
    return found if len(found) == count and all(n.state == READY for n in found.values()) else None


def error_details(exc: grpc.RpcError) -> tuple[str, list[str]]:
    decoded = rpc_failure(exc)
    return decoded.reason, [f for f, _ in decoded.violations]


def test_nodes_and_gpus_from_real_agents(start_agent: Callable[..., ServiceProcess],
                                         start_midgard: Callable[..., ServiceProcess]) -> None:
    sim = start_agent("gpu-node", nvml="simulated", sim_gpus="3", sim_processes="0:4242:1024")
    plain = start_agent("cpu-node")
    # The scheduler is not running: attribution must degrade, not break collection.
    midgard = stub(start_midgard([sim.address, plain.address], scheduler_address=f"127.0.0.1:{free_port()}"))
    found = assert_eventually(lambda: all_ready(midgard, 2), what="both nodes READY")
    assert found["nodes/cpu-node"].system.cpu_count == os.cpu_count() and not found["nodes/cpu-node"].gpus
    assert "NVML" in found["nodes/cpu-node"].gpu_driver.unavailable_reason
    assert found["nodes/gpu-node"].agent_address == sim.address and len(found["nodes/gpu-node"].gpus) == 3

    node = midgard.GetNode(pb.GetNodeRequest(name="nodes/gpu-node"), timeout=5).node
    assert node.gpu_driver.simulated and node.gpus[0].processes[0].pid == 4242

    def gpu_names(**filters: object) -> list[str]:
        return [g.name for g in midgard.ListGpus(pb.ListGpusRequest(**filters), timeout=5).gpus]  # type: ignore[arg-type]

    assert gpu_names() == [f"nodes/gpu-node/gpus/{i}" for i in range(3)]
    assert gpu_names(free_only=True) == ["nodes/gpu-node/gpus/1", "nodes/gpu-node/gpus/2"]
    assert gpu_names(model="geforce") == ["nodes/gpu-node/gpus/2"]
    assert gpu_names(node="nodes/cpu-node") == []
    page = midgard.ListGpus(pb.ListGpusRequest(page_size=2), timeout=5)
    rest = midgard.ListGpus(pb.ListGpusRequest(page_size=2, page_token=page.next_page_token), timeout=5)
    assert [g.index for g in page.gpus] == [0, 1] and [g.index for g in rest.gpus] == [2]

    with pytest.raises(grpc.RpcError) as missing:
        midgard.GetNode(pb.GetNodeRequest(name="nodes/nope"), timeout=5)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND and error_details(missing.value)[0] == "NODE_NOT_FOUND"
    for bad, field in [(pb.ListGpusRequest(page_size=-1), "page_size"), (pb.ListGpusRequest(node="gpu-node"), "node")]:
        with pytest.raises(grpc.RpcError) as invalid:
            midgard.ListGpus(bad, timeout=5)
        assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_details(invalid.value) == ("INVALID_ARGUMENT", [field])


@pytest.fixture
def resume_stopped() -> Iterator[list[ServiceProcess]]:
    """Agents a test SIGSTOPs get SIGCONT at the end, so they can be stopped cleanly."""
    stopped: list[ServiceProcess] = []
    yield stopped
    for agent in stopped:
        if agent.process.poll() is None:
            os.kill(agent.process.pid, signal.SIGCONT)


def test_slow_and_dead_agents_never_block_the_healthy_one(
        start_agent: Callable[..., ServiceProcess], start_midgard: Callable[..., ServiceProcess],
        resume_stopped: list[ServiceProcess]) -> None:
    healthy, slow, dead = (start_agent(name) for name in ("healthy", "slow", "dead"))
    never = f"ghost=127.0.0.1:{free_port()}"
    midgard = stub(start_midgard([healthy.address, slow.address, dead.address, never], max_concurrency="2"))
    assert_eventually(lambda: {n: s.state for n, s in nodes(midgard).items()} == {
        "nodes/healthy": READY, "nodes/slow": READY, "nodes/dead": READY, "nodes/ghost": UNREACHABLE})

    os.kill(slow.process.pid, signal.SIGSTOP)
    resume_stopped.append(slow)
    dead.kill()
    found = assert_eventually(lambda: (f := nodes(midgard))["nodes/slow"].state == STALE
                              and f["nodes/dead"].state == STALE and f, what="slow and dead turn STALE")
    assert "did not answer within 1s" in found["nodes/slow"].state_message
    assert "cannot be reached" in found["nodes/dead"].state_message
    assert found["nodes/slow"].system.hostname, "a STALE node keeps its last good snapshot"
    assert found["nodes/ghost"].state == UNREACHABLE and found["nodes/ghost"].agent_address.startswith("127.0.0.1:")

    # While the slow agent holds a call open the healthy node keeps being refreshed every interval.
    seen = [nodes(midgard)["nodes/healthy"].collect_time.ToNanoseconds()]
    for _ in range(3):
        started = time.monotonic()
        assert_eventually(lambda: nodes(midgard)["nodes/healthy"].collect_time.ToNanoseconds() > seen[-1],
                          timeout=REFRESH * 3, interval=0.02, what="healthy node refreshed")
        seen.append(nodes(midgard)["nodes/healthy"].collect_time.ToNanoseconds())
        assert time.monotonic() - started < REFRESH * 3
        assert nodes(midgard)["nodes/healthy"].state == READY

    started = time.monotonic()
    midgard.ListNodes(pb.ListNodesRequest(), timeout=5)
    assert time.monotonic() - started < 0.2

    os.kill(slow.process.pid, signal.SIGCONT)
    assert_eventually(lambda: nodes(midgard)["nodes/slow"].state == READY, what="the resumed agent is READY again")


def test_watch_nodes_sends_added_deltas_heartbeats_and_ends_on_shutdown(
        start_agent: Callable[..., ServiceProcess], start_midgard: Callable[..., ServiceProcess]) -> None:
    agent = start_agent("watched")
    ghost = f"ghost=127.0.0.1:{free_port()}"
    aggregator = start_midgard([agent.address, ghost])
    midgard = stub(aggregator)
    assert_eventually(lambda: nodes(midgard)["nodes/watched"].state == READY)
    received: list[pb.WatchNodesResponse] = []
    stream = midgard.WatchNodes(pb.WatchNodesRequest(), timeout=60)
    reader = threading.Thread(target=lambda: received.extend(stream), daemon=True)
    reader.start()

    def changes(kind: int) -> list[pb.NodeChange]:
        return [m.change for m in list(received) if m.HasField("change") and m.change.type == kind]

    assert_eventually(lambda: len(changes(pb.NodeChange.TYPE_ADDED)) == 2)
    assert {c.node.name for c in changes(pb.NodeChange.TYPE_ADDED)} == {"nodes/watched", "nodes/ghost"}
    assert_eventually(lambda: changes(pb.NodeChange.TYPE_MODIFIED), what="refreshes arrive as MODIFIED")
    agent.kill()
    assert_eventually(lambda: any(c.node.name == "nodes/watched" and c.node.state == STALE
                                  for c in changes(pb.NodeChange.TYPE_MODIFIED)), what="STALE delta")
    # Nothing changes any more: heartbeats keep the stream alive.
    assert_eventually(lambda: sum(m.HasField("heartbeat") for m in list(received)) >= 2, timeout=5)
    assert all(c.node.name != "nodes/ghost" for c in changes(pb.NodeChange.TYPE_MODIFIED))

    assert aggregator.terminate() == 0
    reader.join(10)
    assert not reader.is_alive()
    assert stream.code() == grpc.StatusCode.OK


@pytest.fixture
def many_agents(tmp_path: object) -> Iterator[list[str]]:
    """48 agents served by one helper process (see many_agents.py)."""
    ports = [free_port() for _ in range(48)]
    script = Path(__file__).with_name("many_agents.py")
    proc = subprocess.Popen([sys.executable, str(script), *map(str, ports)], stdout=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield [f"127.0.0.1:{p}" for p in ports]
    finally:
        proc.kill()
        proc.wait()


def test_fifty_agents_with_one_slow_and_one_dead(
        many_agents: list[str], start_agent: Callable[..., ServiceProcess],
        start_midgard: Callable[..., ServiceProcess], resume_stopped: list[ServiceProcess]) -> None:
    slow = start_agent("slow")
    dead = f"dead=127.0.0.1:{free_port()}"
    os.kill(slow.process.pid, signal.SIGSTOP)
    resume_stopped.append(slow)
    midgard = stub(start_midgard([*many_agents, f"slow={slow.address}", dead], max_concurrency="8"))

    def settled() -> dict[str, pb.Node] | None:
        found = nodes(midgard)
        ready = [n for n in found.values() if n.state == READY]
        slow_seen = "did not answer" in found["nodes/slow"].state_message
        return found if len(ready) == 48 and slow_seen else None

    found = assert_eventually(settled, timeout=60, what="48 READY, the slow one timed out")
    assert len(found) == 50 and found["nodes/dead"].state == found["nodes/slow"].state == UNREACHABLE
    timings = []
    for _ in range(20):
        started = time.monotonic()
        assert len(midgard.ListNodes(pb.ListNodesRequest(), timeout=5).nodes) == 50
        timings.append(time.monotonic() - started)
    assert max(timings) < 0.2, timings
    free = midgard.ListGpus(pb.ListGpusRequest(free_only=True, model="h100", page_size=1000), timeout=5).gpus
    assert len(free) == 48 * 6  # 8 simulated GPUs each: one busy, one consumer model
