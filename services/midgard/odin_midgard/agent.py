"""The agent's domain: one snapshot of this node (system facts, GPU driver, GPUs with their pods).

Sampling is blocking (psutil, NVML), so it runs in a worker thread; a background loop takes one
sample per `interval` and `GetNodeInfo` answers with the latest, so a burst of callers never
multiplies NVML traffic.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from odin.midgard.v1 import midgard_pb2
from odin.runtime import timestamps
from odin.runtime.lifecycle import sleep_or_stop
from odin_midgard.gpus import driver_info, read_gpus
from odin_midgard.nvml_backend import Nvml, close_nvml
from odin_midgard.pods import PodDirectory, attach_pods
from odin_midgard.system import cpu_model, read_system

log = logging.getLogger("odin.midgard.agent")


class Agent:
    """Takes snapshots of one node."""

    def __init__(self, node: str, nvml: Nvml, proc_path: Path, pods: PodDirectory | None = None) -> None:
        self.node_name = f"nodes/{node}"
        self._nvml = nvml
        self._proc_path = proc_path
        self.pods = pods
        self._cpu_model = cpu_model(proc_path)
        self.latest: midgard_pb2.Node | None = None
        self._lost: set[str] = set()

    def sample(self) -> midgard_pb2.Node:
        """A fresh snapshot (blocking: call from a worker thread)."""
        node = midgard_pb2.Node(name=self.node_name, collect_time=timestamps.now(), system=read_system(self._cpu_model))
        node.gpu_driver.CopyFrom(self._read_gpus(node))
        self.latest = node
        return node

    def _read_gpus(self, node: midgard_pb2.Node) -> midgard_pb2.GpuDriver:
        api = self._nvml.api
        if api is None:
            return midgard_pb2.GpuDriver(available=False, unavailable_reason=self._nvml.unavailable_reason)
        driver = driver_info(api)
        driver.simulated = self._nvml.simulated
        try:
            gpus = read_gpus(api, self.node_name)
        except api.NVMLError as exc:  # counting failed: the driver is in trouble, the node is not
            log.warning("cannot list GPUs", extra={"error": str(exc)})
            driver.available = False
            driver.unavailable_reason = f"NVML cannot list GPUs: {exc}"
            return driver
        attach_pods(gpus, self._proc_path, self.pods)
        node.gpus.extend(gpus)
        self._log_lost(gpus)
        return driver

    def _log_lost(self, gpus: list[midgard_pb2.Gpu]) -> None:
        """Logs a GPU falling off (or coming back) once, not on every sample."""
        lost = {gpu.name for gpu in gpus if gpu.state == midgard_pb2.Gpu.STATE_LOST}
        for name in sorted(lost - self._lost):
            log.warning("GPU is lost", extra={"gpu": name})
        for name in sorted(self._lost - lost):
            log.info("GPU answers again", extra={"gpu": name})
        self._lost = lost

    def close(self) -> None:
        close_nvml(self._nvml)

    async def run_sampler(self, interval: float, stopping: asyncio.Event) -> None:
        """Samples every `interval` seconds until `stopping` is set; a failed sample keeps the last one."""
        while not stopping.is_set():
            try:
                await asyncio.to_thread(self.sample)
            except Exception:  # a sampler that dies would freeze the node's view silently
                log.exception("sampling failed")
            await sleep_or_stop(stopping, interval)
