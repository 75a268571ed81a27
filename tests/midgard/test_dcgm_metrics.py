"""The agent's /metrics in dcgm-exporter's names, from a real agent process with simulated GPUs."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from pathlib import Path

from odin_midgard.dcgm_metrics import DcgmCollector
from prometheus_client.parser import text_string_to_metric_families
from support.processes import ServiceProcess
from test_agent import CID, UID, node_info

from odin.devsuite import free_port
from odin.midgard.v1 import midgard_pb2 as pb

MIB = 1024 * 1024


def scrape(address: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return found


def test_simulated_gpus_are_served_in_dcgm_exporter_names(start_agent: Callable[..., ServiceProcess],
                                                          tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    (proc / "4242").mkdir(parents=True)
    (proc / "4242" / "cgroup").write_text(f"0::/kubepods.slice/kubepods-pod{UID.replace('-', '_')}.slice/"
                                          f"cri-containerd-{CID}.scope\n")
    address = f"127.0.0.1:{free_port()}"
    agent = start_agent("gpu-node", nvml="simulated", sim_gpus="3", sim_lost_index="1",
                        sim_processes="0:4242:1073741824", proc_path=str(proc), metrics_address=address)
    node = node_info(agent)
    metrics = scrape(address)

    assert metrics["odin_midgard_gpu_simulated"] == [({}, 1.0)]
    assert "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL" in metrics  # counters keep dcgm's names (no `_total` added)
    used = {labels["gpu"]: (labels, value) for labels, value in metrics["DCGM_FI_DEV_FB_USED"]}
    assert "1" not in used  # the lost GPU has no samples at all
    labels, value = used["0"]
    gpu0 = node.gpus[0]
    assert labels["UUID"] == gpu0.uuid and labels["modelName"] == gpu0.product_name
    assert labels["Hostname"] == "gpu-node" and labels["device"] == "nvidia0"
    assert labels["pci_bus_id"] == gpu0.pci_bus_id
    assert labels["DCGM_FI_DRIVER_VERSION"] == node.gpu_driver.driver_version
    # Values are the snapshot's, converted to dcgm-exporter's units (MiB, W, %).
    assert abs(value - gpu0.memory_used_bytes / MIB) < 64  # the agent samples every second
    assert {lab["gpu"] for lab, _ in metrics["DCGM_FI_DEV_GPU_UTIL"]} == {"0", "2"}
    # A field NVML cannot give on a device is absent, not zero (the simulated consumer GPU has no fan reading
    # and no ECC, say): exactly the fields the snapshot lists as unsupported are missing for GPU 2.
    consumer = node.gpus[2]
    for name, field in (("DCGM_FI_DEV_FAN_SPEED", "fan_percent"), ("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
                                                                    "ecc_errors_corrected")):
        served = {lab["gpu"] for lab, _ in metrics.get(name, [])}
        assert ("2" in served) == (field not in consumer.unsupported_fields and consumer.HasField(field))
    assert consumer.unsupported_fields, "the simulation's consumer GPU should lack some readings"


def test_pods_using_a_gpu_label_its_series() -> None:
    node = pb.Node(name="nodes/n1")
    node.gpu_driver.driver_version = "550.54"
    gpu = node.gpus.add(index=0, uuid="GPU-1", product_name="H100", pci_bus_id="00:01.0", state=pb.Gpu.STATE_OK,
                        utilization_gpu_percent=87, memory_used_bytes=3 * MIB)
    gpu.processes.add(pid=1, pod_namespace="team-a", pod_name="train-0", pod_uid="u1", container_id="c1")
    gpu.processes.add(pid=2, pod_namespace="team-a", pod_name="train-0", pod_uid="u1", container_id="c1")
    gpu.processes.add(pid=3, pod_namespace="team-b", pod_name="eval-0", pod_uid="u2", container_id="c2")
    names = {("u1", "c1"): "pytorch", ("u2", "c2"): "eval"}
    collector = DcgmCollector(lambda: node, "n1", lambda pod, container: names.get((pod, container), ""))
    families = {f.name: f for f in collector.collect()}
    series = [(s.labels["namespace"], s.labels["pod"], s.labels["container"], s.value)
              for s in families["DCGM_FI_DEV_GPU_UTIL"].samples]
    assert sorted(series) == [("team-a", "train-0", "pytorch", 87.0), ("team-b", "eval-0", "eval", 87.0)]
    assert [s.value for s in families["DCGM_FI_DEV_FB_USED"].samples] == [3.0, 3.0]
    assert "DCGM_FI_DEV_GPU_TEMP" not in families  # never read: absent, not 0


def test_before_the_first_sample_nothing_is_served() -> None:
    assert list(DcgmCollector(lambda: None, "n1").collect()) == []
