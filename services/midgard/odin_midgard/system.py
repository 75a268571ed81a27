"""Node facts from psutil and /proc: hostname, kernel, CPU, load, memory, swap, disks, network, uptime."""

from __future__ import annotations

import logging
import os
import platform
import time
from pathlib import Path

import psutil
from google.protobuf import duration_pb2

from odin.midgard.v1 import midgard_pb2

log = logging.getLogger("odin.midgard.agent")

# Pseudo and container-image file systems say nothing about a node's storage.
_SKIPPED_FS = frozenset({"squashfs", "overlay", "tmpfs", "devtmpfs", "nsfs", "tracefs", "autofs"})


def cpu_model(proc_path: Path = Path("/proc")) -> str:
    """The `model name` of /proc/cpuinfo (x86), else what `platform` knows."""
    try:
        for line in (proc_path / "cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "cpu model"):
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def read_system(model: str) -> midgard_pb2.NodeSystem:
    """One snapshot; `cpu_percent` covers the time since the previous snapshot."""
    memory = psutil.virtual_memory()
    swap = psutil.swap_memory()
    return midgard_pb2.NodeSystem(
        hostname=platform.node(),
        kernel=platform.release(),
        cpu_model=model,
        cpu_count=psutil.cpu_count(logical=True) or 0,
        cpu_percent=psutil.cpu_percent(interval=None),
        load_average=list(os.getloadavg()),
        memory_total_bytes=memory.total,
        memory_available_bytes=memory.available,
        swap_total_bytes=swap.total,
        swap_used_bytes=swap.used,
        disks=_disks(),
        network_interfaces=_interfaces(),
        uptime=duration_pb2.Duration(seconds=max(0, int(time.time() - psutil.boot_time()))),
    )


def _disks() -> list[midgard_pb2.Disk]:
    disks = []
    seen: set[str] = set()
    for part in psutil.disk_partitions(all=False):
        if part.fstype in _SKIPPED_FS or part.mountpoint in seen:
            continue
        seen.add(part.mountpoint)
        try:
            usage = psutil.disk_usage(part.mountpoint)
        except OSError:  # unmounted meanwhile, or no permission
            continue
        disks.append(midgard_pb2.Disk(mount_point=part.mountpoint, device=part.device, fs_type=part.fstype,
                                      total_bytes=usage.total, used_bytes=usage.used))
    return disks


def _interfaces() -> list[midgard_pb2.NetworkInterface]:
    counters = psutil.net_io_counters(pernic=True)
    return [
        midgard_pb2.NetworkInterface(name=name, bytes_received=c.bytes_recv, bytes_sent=c.bytes_sent)
        for name, c in sorted(counters.items())
    ]
