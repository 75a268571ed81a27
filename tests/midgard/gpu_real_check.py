"""The agent against REAL NVML, checked field by field against `nvidia-smi`. Needs an NVIDIA GPU.

Not part of the normal run (the file name is not test_*.py). On a GPU machine:

    .venv/bin/pytest -m gpu tests/midgard/gpu_real_check.py      # as a test
    .venv/bin/python tests/midgard/gpu_real_check.py              # as a script: prints GetNodeInfo JSON

It starts `odin-midgard-agent` with nvml=real (which refuses to start without NVML), reads
GetNodeInfo and compares the fields nvidia-smi also reports; readings that move by the second
(temperature, power draw, utilisation) are checked for presence and range only.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format

from odin.devsuite import _health, free_port
from odin.midgard.v1 import midgard_pb2 as pb
from odin.midgard.v1 import midgard_pb2_grpc

QUERY = ["index", "uuid", "name", "serial", "pci.bus_id", "memory.total", "power.limit", "clocks.max.sm",
         "clocks.max.memory", "ecc.mode.current", "mig.mode.current", "driver_version", "pstate"]
MIB = 1024**2


def nvidia_smi() -> list[dict[str, str]]:
    """One dict per GPU from `nvidia-smi --query-gpu` (the values of `nvidia-smi -q`, as CSV)."""
    binary = shutil.which("nvidia-smi")
    assert binary, "nvidia-smi is not installed: this check needs a machine with an NVIDIA GPU"
    out = subprocess.run([binary, f"--query-gpu={','.join(QUERY)}", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    return [dict(zip(QUERY, (v.strip() for v in row), strict=True)) for row in csv.reader(io.StringIO(out)) if row]


def agent_node() -> pb.Node:
    """Starts an agent with nvml=real and auth disabled, returns its GetNodeInfo node."""
    port = free_port()
    env = {**os.environ, "ODIN_MIDGARD_AGENT_NVML": "real", "ODIN_MIDGARD_AGENT_AUTH_DISABLED": "true",
           "ODIN_MIDGARD_AGENT_PORT": str(port)}
    binary = Path(sys.executable).parent / "odin-midgard-agent"
    proc = subprocess.Popen([str(binary)], env=env, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while _health(f"127.0.0.1:{port}", 0.5) != "SERVING":
            assert proc.poll() is None, f"the agent exited with {proc.returncode} (is NVML usable?)"
            assert time.monotonic() < deadline, "the agent did not become healthy in 30s"
            time.sleep(0.1)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = midgard_pb2_grpc.AgentServiceStub(channel)
            node: pb.Node = stub.GetNodeInfo(pb.GetNodeInfoRequest(), timeout=10).node
            return node
    finally:
        proc.terminate()
        proc.wait(15)


def _present(value: str) -> bool:
    return value not in ("[N/A]", "[Not Supported]", "N/A", "")


def check(node: pb.Node, smi: list[dict[str, str]]) -> None:
    assert node.gpu_driver.available and not node.gpu_driver.simulated
    assert len(node.gpus) == len(smi) >= 1
    assert node.gpu_driver.driver_version == smi[0]["driver_version"]
    assert node.gpu_driver.cuda_version
    for gpu, row in zip(node.gpus, smi, strict=True):
        where = f"GPU {gpu.index}"
        assert gpu.state == pb.Gpu.STATE_OK, where
        assert gpu.index == int(row["index"]) and gpu.uuid == row["uuid"] and gpu.product_name == row["name"], where
        assert gpu.pci_bus_id.lower().endswith(row["pci.bus_id"].lower()[-12:]), where
        if _present(row["serial"]):
            assert gpu.serial == row["serial"], where
        assert gpu.HasField("memory_total_bytes"), where
        assert abs(gpu.memory_total_bytes / MIB - float(row["memory.total"])) <= 1, where
        assert gpu.memory_used_bytes + gpu.memory_free_bytes <= gpu.memory_total_bytes, where
        if _present(row["power.limit"]):
            assert abs(gpu.power_limit_watts - float(row["power.limit"])) < 1, where
        if _present(row["clocks.max.sm"]):
            assert gpu.sm_clock_max_mhz == int(row["clocks.max.sm"]), where
        if _present(row["clocks.max.memory"]):
            assert gpu.memory_clock_max_mhz == int(row["clocks.max.memory"]), where
        if _present(row["ecc.mode.current"]):
            assert gpu.ecc_enabled == (row["ecc.mode.current"] == "Enabled"), where
        if _present(row["mig.mode.current"]):
            assert gpu.mig_enabled == (row["mig.mode.current"] == "Enabled"), where
        assert 0 <= gpu.utilization_gpu_percent <= 100 and 0 < gpu.temperature_celsius < 120, where
        assert gpu.power_draw_watts > 0 and 0 <= gpu.performance_state <= 15, where


@pytest.mark.gpu
def test_the_agent_reads_real_gpus_as_nvidia_smi_does() -> None:
    check(agent_node(), nvidia_smi())


if __name__ == "__main__":
    found = agent_node()
    print(json_format.MessageToJson(found))
    check(found, nvidia_smi())
    print(f"OK: {len(found.gpus)} GPU(s) match nvidia-smi", file=sys.stderr)
