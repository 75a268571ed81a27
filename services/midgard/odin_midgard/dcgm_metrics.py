"""The agent's GPU readings as Prometheus metrics in NVIDIA dcgm-exporter's names and labels.

So the Grafana dashboards and alerts people already have for dcgm-exporter work unchanged on
Odin's agent. Each scrape reads the agent's latest snapshot (no NVML call per scrape). A field
NVML could not give on a device is absent, never 0; a lost GPU has no samples. A GPU used by
processes of several pods (time-slicing) gets one series per pod, like dcgm-exporter's
pod mapping; a GPU no pod uses has empty `pod`, `namespace` and `container` labels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from odin.midgard.v1 import midgard_pb2

MIB = 1024 * 1024
LABELS = ("gpu", "UUID", "pci_bus_id", "device", "modelName", "Hostname", "DCGM_FI_DRIVER_VERSION",
          "container", "namespace", "pod")

# (metric, kind, help, proto field, conversion), as dcgm-exporter's default counters name them.
FIELDS: tuple[tuple[str, str, str, str, Callable[[Any], float]], ...] = (
    ("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz).", "sm_clock_mhz", float),
    ("DCGM_FI_DEV_MEM_CLOCK", "gauge", "Memory clock frequency (in MHz).", "memory_clock_mhz", float),
    ("DCGM_FI_DEV_MAX_SM_CLOCK", "gauge", "Maximum SM clock frequency (in MHz).", "sm_clock_max_mhz", float),
    ("DCGM_FI_DEV_MAX_MEM_CLOCK", "gauge", "Maximum memory clock frequency (in MHz).", "memory_clock_max_mhz",
     float),
    ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C).", "temperature_celsius", float),
    ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).", "power_draw_watts", float),
    ("DCGM_FI_DEV_POWER_MGMT_LIMIT", "gauge", "Enforced power limit (in W).", "power_limit_watts", float),
    ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).", "utilization_gpu_percent", float),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %).", "utilization_memory_percent", float),
    ("DCGM_FI_DEV_FB_FREE", "gauge", "Frame buffer memory free (in MiB).", "memory_free_bytes",
     lambda v: v / MIB),
    ("DCGM_FI_DEV_FB_USED", "gauge", "Frame buffer memory used (in MiB).", "memory_used_bytes",
     lambda v: v / MIB),
    ("DCGM_FI_DEV_FB_TOTAL", "gauge", "Frame buffer memory total (in MiB).", "memory_total_bytes",
     lambda v: v / MIB),
    ("DCGM_FI_DEV_FAN_SPEED", "gauge", "Fan speed (in %).", "fan_percent", float),
    ("DCGM_FI_DEV_PSTATE", "gauge", "Performance state (0 fastest).", "performance_state", float),
    ("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "counter", "Single-bit volatile ECC errors.", "ecc_errors_corrected",
     float),
    ("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "counter", "Double-bit volatile ECC errors.", "ecc_errors_uncorrected",
     float),
)

# (pod uid, container id) → container name; empty when unknown.
ContainerNames = Callable[[str, str], str]


class DcgmCollector(Collector):
    """Collects the latest snapshot that `latest()` returns (None before the first sample)."""

    def __init__(self, latest: Callable[[], midgard_pb2.Node | None], hostname: str,
                 container_name: ContainerNames | None = None) -> None:
        self._latest = latest
        self._hostname = hostname
        self._container_name = container_name or (lambda _pod, _container: "")

    def describe(self) -> list[Metric]:
        return []  # the metrics depend on the hardware; registering must not take a sample

    def collect(self) -> Iterator[Metric]:
        node = self._latest()
        simulated = GaugeMetricFamily("odin_midgard_gpu_simulated",
                                      "1 when the agent's GPUs are simulated (no NVIDIA driver on this node).")
        if node is None:
            return
        simulated.add_metric([], 1.0 if node.gpu_driver.simulated else 0.0)
        yield simulated
        # Plain `Metric`s: prometheus_client's CounterMetricFamily would append `_total` to dcgm's names.
        families = {name: Metric(name, text, kind) for name, kind, text, _, _ in FIELDS}
        for gpu in node.gpus:
            if gpu.state == midgard_pb2.Gpu.STATE_LOST:
                continue
            for labels in self._series(node, gpu):
                for name, _, _, field, convert in FIELDS:
                    if gpu.HasField(field) and field not in gpu.unsupported_fields:  # type: ignore[arg-type]
                        families[name].add_sample(name, dict(zip(LABELS, labels, strict=True)),
                                                  convert(getattr(gpu, field)))
        for family in families.values():
            if family.samples:
                yield family

    def _series(self, node: midgard_pb2.Node, gpu: midgard_pb2.Gpu) -> list[list[str]]:
        base = [str(gpu.index), gpu.uuid, gpu.pci_bus_id, f"nvidia{gpu.index}", gpu.product_name, self._hostname,
                node.gpu_driver.driver_version]
        pods: dict[tuple[str, str, str], None] = {}
        for process in gpu.processes:
            if process.pod_name:
                container = self._container_name(process.pod_uid, process.container_id)
                pods[(container, process.pod_namespace, process.pod_name)] = None
        if not pods:
            return [[*base, "", "", ""]]
        return [[*base, *pod] for pod in pods]
