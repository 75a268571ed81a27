"""The agent as a real process: node facts for real, GPUs through the simulation or not at all."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import grpc
import psutil
import pytest
from support.clients import channel
from support.processes import BIN, ServiceProcess

from odin.midgard.v1 import midgard_pb2 as pb
from odin.midgard.v1 import midgard_pb2_grpc

UID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
CID = "ab" * 32


def node_info(agent: ServiceProcess, token: object = None) -> pb.Node:
    kwargs = {} if token is None else {"token": token}
    stub = midgard_pb2_grpc.AgentServiceStub(channel(agent.address, **kwargs))
    return stub.GetNodeInfo(pb.GetNodeInfoRequest(), timeout=5).node


def test_without_nvml_zero_gpus_with_the_reason_and_real_node_facts(start_agent: Callable[..., ServiceProcess]) -> None:
    node = node_info(start_agent())
    assert node.name == f"nodes/{platform.node()}"
    assert not node.gpus
    assert node.gpu_driver.available is False and not node.gpu_driver.simulated
    assert "NVML" in node.gpu_driver.unavailable_reason
    system = node.system
    assert system.hostname == platform.node() and system.kernel == platform.release()
    assert system.cpu_count == os.cpu_count() and system.cpu_model
    assert 0 <= system.cpu_percent <= 100 and len(system.load_average) == 3
    assert system.memory_total_bytes == psutil.virtual_memory().total
    assert 0 < system.memory_available_bytes <= system.memory_total_bytes
    assert system.swap_total_bytes == psutil.swap_memory().total
    root = [d for d in system.disks if d.mount_point == "/"]
    assert root and 0 < root[0].used_bytes < root[0].total_bytes
    assert "lo" in {i.name for i in system.network_interfaces}
    assert abs(system.uptime.seconds - (psutil.time.time() - psutil.boot_time())) < 30
    assert node.collect_time.seconds > 0 and node.state == pb.Node.STATE_UNSPECIFIED


def test_simulated_gpus_with_processes_mapped_to_pods(start_agent: Callable[..., ServiceProcess],
                                                      tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    (proc / "4242").mkdir(parents=True)
    (proc / "4242" / "cgroup").write_text(f"0::/kubepods.slice/kubepods-pod{UID.replace('-', '_')}.slice/"
                                          f"cri-containerd-{CID}.scope\n")
    agent = start_agent("gpu-node", nvml="simulated", sim_gpus="3", sim_lost_index="1",
                        sim_processes="0:4242:1073741824,2:777", proc_path=str(proc))
    node = node_info(agent)
    assert node.name == "nodes/gpu-node"
    assert node.gpu_driver.available and node.gpu_driver.simulated and node.gpu_driver.cuda_version == "12.4"
    assert [g.state for g in node.gpus] == [pb.Gpu.STATE_OK, pb.Gpu.STATE_LOST, pb.Gpu.STATE_OK]
    assert [g.name for g in node.gpus] == [f"nodes/gpu-node/gpus/{i}" for i in range(3)]
    in_pod = node.gpus[0].processes[0]
    assert (in_pod.pid, in_pod.used_memory_bytes, in_pod.pod_uid, in_pod.container_id) == (4242, 1 << 30, UID, CID)
    assert node.gpus[2].processes[0].pod_uid == "" and "serial" in node.gpus[2].unsupported_fields
    assert "GPU is lost" in agent.log_text() and agent.log_text().count("GPU is lost") == 1


def test_the_agent_refuses_calls_without_a_token(start_agent: Callable[..., ServiceProcess]) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        node_info(start_agent(), token="")
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(("env", "message"), [
    ({"ODIN_MIDGARD_AGENT_NVML": "real"}, "NVML cannot be used"),
    ({"ODIN_MIDGARD_AGENT_NVML": "maybe"}, "must be one of auto, real, simulated"),
    ({"ODIN_MIDGARD_AGENT_NVML": "simulated", "ODIN_MIDGARD_AGENT_SIM_PROCESSES": "x"}, "gpu_index:pid"),
])
def test_bad_settings_stop_the_start_and_say_why(env: dict[str, str], message: str) -> None:
    full = {**os.environ, "ODIN_MIDGARD_AGENT_AUTH_DISABLED": "true", **env}
    done = subprocess.run([str(BIN / "odin-midgard-agent"), "--port", "0"], env=full, capture_output=True,
                          text=True, timeout=30, stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def test_gpu_check_script_is_importable() -> None:
    """The real-GPU check (run by hand on a GPU machine) at least parses here."""
    script = Path(__file__).with_name("gpu_real_check.py")
    compile(script.read_text(), str(script), "exec")
    assert sys.executable
