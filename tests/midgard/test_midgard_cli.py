"""`odin nodes` and `odin gpus` against a real aggregator and agents."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Iterator

import pytest
from support import auth
from support.clients import channel
from support.processes import BIN, start_service
from support.waiting import assert_eventually

from odin.cli.nodes import gpus_table
from odin.midgard.v1 import midgard_pb2 as pb
from odin.midgard.v1 import midgard_pb2_grpc


def odin(*args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ODIN_TOKEN": auth.default_token() if token is None else token, "NO_COLOR": "1"}
    return subprocess.run([str(BIN / "odin"), *args], env=env, capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL, check=False)


@pytest.fixture(scope="module")
def midgard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One aggregator over a simulated-GPU agent and a plain agent for this machine, shared by the module."""
    logs = tmp_path_factory.mktemp("logs")
    started = [
        start_service("midgard-agent", logs, {"ODIN_MIDGARD_AGENT_NODE_NAME": "sim-node",
                                              "ODIN_MIDGARD_AGENT_NVML": "simulated",
                                              "ODIN_MIDGARD_AGENT_SIM_GPUS": "3",
                                              "ODIN_MIDGARD_AGENT_SIM_LOST_INDEX": "1",
                                              "ODIN_MIDGARD_AGENT_SIM_PROCESSES": "0:4242:2147483648"}),
        start_service("midgard-agent", logs),
    ]
    try:
        started.append(start_service("midgard", logs, {
            "ODIN_MIDGARD_AGENTS": ",".join(a.address for a in started),
            "ODIN_MIDGARD_REFRESH_INTERVAL_SECONDS": "0.5"}))
        stub = midgard_pb2_grpc.MidgardServiceStub(channel(started[-1].address))
        assert_eventually(lambda: all(n.state == pb.Node.STATE_READY
                                      for n in stub.ListNodes(pb.ListNodesRequest(), timeout=5).nodes))
        yield started[-1].address
    finally:
        for service in reversed(started):
            service.terminate()


def test_gpus_table_like_odin_gpus(midgard: str) -> None:
    done = odin("gpus", "--address", midgard)
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    assert header.split() == ["HOST", "GPU", "TYPE", "FREE", "POWER", "UTIL", "MEMORY", "PROCESSES", "JOB"]
    assert [r.split()[:4] for r in rows] == [
        ["sim-node", "0", "H100", "80GB"], ["sim-node", "1", "-", "LOST"], ["sim-node", "2", "GeForce", "RTX"]]
    assert "sim-process-4242(4242) 2.0G" in rows[0] and "612/700W" in rows[0] and "87%" in rows[0]
    assert "2.5GiB/80.0GiB" in rows[0] and " no " in rows[0] and " yes " in rows[2]


def test_gpus_filters_and_json(midgard: str) -> None:
    free = odin("gpus", "--address", midgard, "--free", "--json")
    assert [g["index"] for g in json.loads(free.stdout)["gpus"]] == [2]
    assert odin("gpus", "--address", midgard, "--model", "a100").stdout.strip() == "no GPUs"
    by_node = odin("gpus", "--address", midgard, "--node", "sim-node", "--json")
    assert len(json.loads(by_node.stdout)["gpus"]) == 3


def test_nodes_shows_this_machine_with_zero_gpus_and_the_reason(midgard: str) -> None:
    done = odin("nodes", "--address", midgard)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:3] == ["NODE", "STATE", "CPUS"]
    mine = next(line for line in lines if line.startswith(platform.node() + " "))
    assert f" READY  {os.cpu_count()} " in mine and "NVML cannot be used" in mine and " none " in mine
    sim = next(line for line in lines if line.startswith("sim-node "))
    assert "3 (1 free)" in sim and "(simulated)" in sim
    document = json.loads(odin("nodes", "--address", midgard, "--json").stdout)
    assert {n["name"] for n in document["nodes"]} == {"nodes/sim-node", f"nodes/{platform.node()}"}


def test_errors_are_printed_not_raised(midgard: str) -> None:
    refused = odin("gpus", "--address", midgard, token="not-a-token")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr and refused.stderr.startswith("odin: ")
    bad = odin("gpus", "--address", midgard, "--node", "a/b", "--json")
    assert bad.returncode == 1 and json.loads(bad.stdout)["error"]["violations"][0]["field"] == "node"


def test_gpus_watch_prints_a_fresh_table_per_change(midgard: str) -> None:
    env = {**os.environ, "ODIN_TOKEN": auth.default_token()}
    proc = subprocess.Popen([str(BIN / "odin"), "gpus", "--address", midgard, "--watch", "--json"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        first, second = json.loads(proc.stdout.readline()), json.loads(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait()
    assert len(first["gpus"]) == len(second["gpus"]) == 3


def test_table_of_a_stale_node_says_so() -> None:
    gpu = pb.Gpu(name="nodes/n1/gpus/0", index=0, product_name="NVIDIA A100", state=pb.Gpu.STATE_OK)
    lines = gpus_table([gpu], {"nodes/n1": pb.Node.STATE_STALE})
    assert lines[1].startswith("n1 (stale)  0    A100  yes   -      -     -       -          -")
