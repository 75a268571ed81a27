"""Reads every GPU through an NVML (pynvml or the simulation) into `Gpu` messages.

A reading the GPU does not support is left absent and its proto field names go into
`unsupported_fields`; a GPU that reports GPU_IS_LOST becomes `STATE_LOST` with whatever was
read before; other NVML errors leave the field absent. Nothing here raises for one bad GPU.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from odin.midgard.v1 import midgard_pb2

log = logging.getLogger("odin.midgard.agent")

Reader = Callable[[Any, Any], Sequence[Any]]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _memory(api: Any, h: Any) -> tuple[int, int, int]:
    info = api.nvmlDeviceGetMemoryInfo(h)
    return int(info.total), int(info.used), int(info.free)


def _utilization(api: Any, h: Any) -> tuple[int, int]:
    rates = api.nvmlDeviceGetUtilizationRates(h)
    return int(rates.gpu), int(rates.memory)


def _ecc_errors(api: Any, h: Any) -> tuple[int, int]:
    count = api.nvmlDeviceGetTotalEccErrors
    return (
        int(count(h, api.NVML_MEMORY_ERROR_TYPE_CORRECTED, api.NVML_VOLATILE_ECC)),
        int(count(h, api.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, api.NVML_VOLATILE_ECC)),
    )


# (proto fields, reader returning one value per field), in proto order.
READINGS: tuple[tuple[tuple[str, ...], Reader], ...] = (
    (("uuid",), lambda api, h: (_text(api.nvmlDeviceGetUUID(h)),)),
    (("product_name",), lambda api, h: (_text(api.nvmlDeviceGetName(h)),)),
    (("serial",), lambda api, h: (_text(api.nvmlDeviceGetSerial(h)),)),
    (("pci_bus_id",), lambda api, h: (_text(api.nvmlDeviceGetPciInfo(h).busId),)),
    (("memory_total_bytes", "memory_used_bytes", "memory_free_bytes"), _memory),
    (("utilization_gpu_percent", "utilization_memory_percent"), _utilization),
    (("temperature_celsius",), lambda api, h: (int(api.nvmlDeviceGetTemperature(h, api.NVML_TEMPERATURE_GPU)),)),
    (("power_draw_watts",), lambda api, h: (api.nvmlDeviceGetPowerUsage(h) / 1000.0,)),
    (("power_limit_watts",), lambda api, h: (api.nvmlDeviceGetEnforcedPowerLimit(h) / 1000.0,)),
    (("sm_clock_mhz",), lambda api, h: (int(api.nvmlDeviceGetClockInfo(h, api.NVML_CLOCK_SM)),)),
    (("sm_clock_max_mhz",), lambda api, h: (int(api.nvmlDeviceGetMaxClockInfo(h, api.NVML_CLOCK_SM)),)),
    (("memory_clock_mhz",), lambda api, h: (int(api.nvmlDeviceGetClockInfo(h, api.NVML_CLOCK_MEM)),)),
    (("memory_clock_max_mhz",), lambda api, h: (int(api.nvmlDeviceGetMaxClockInfo(h, api.NVML_CLOCK_MEM)),)),
    (("fan_percent",), lambda api, h: (int(api.nvmlDeviceGetFanSpeed(h)),)),
    (("performance_state",), lambda api, h: (int(api.nvmlDeviceGetPerformanceState(h)),)),
    (("ecc_enabled",), lambda api, h: (bool(api.nvmlDeviceGetEccMode(h)[0]),)),
    (("ecc_errors_corrected", "ecc_errors_uncorrected"), _ecc_errors),
    (("mig_enabled",), lambda api, h: (bool(api.nvmlDeviceGetMigMode(h)[0]),)),
)


class GpuLost(Exception):
    """NVML said GPU_IS_LOST: the GPU fell off the bus."""


def read_gpus(api: Any, node: str) -> list[midgard_pb2.Gpu]:
    """Every GPU NVML counts, in index order, named `nodes/{node}/gpus/{index}`."""
    return [read_gpu(api, node, index) for index in range(api.nvmlDeviceGetCount())]


def read_gpu(api: Any, node: str, index: int) -> midgard_pb2.Gpu:
    gpu = midgard_pb2.Gpu(name=f"{node}/gpus/{index}", index=index, state=midgard_pb2.Gpu.STATE_OK)
    try:
        handle = _call(api, lambda: api.nvmlDeviceGetHandleByIndex(index))
        for fields, reader in READINGS:
            _fill(api, gpu, fields, lambda r=reader: r(api, handle))  # type: ignore[misc]
        gpu.processes.extend(_processes(api, handle))
    except GpuLost:
        gpu.state = midgard_pb2.Gpu.STATE_LOST
    return gpu


def _fill(api: Any, gpu: midgard_pb2.Gpu, fields: tuple[str, ...], read: Callable[[], Sequence[Any]]) -> None:
    try:
        values = _call(api, read)
    except _Unsupported:
        gpu.unsupported_fields.extend(fields)
        return
    except _Failed:
        return
    for field, value in zip(fields, values, strict=True):
        setattr(gpu, field, value)


def _processes(api: Any, handle: Any) -> list[midgard_pb2.GpuProcess]:
    try:
        found = _call(api, lambda: api.nvmlDeviceGetComputeRunningProcesses(handle))
    except (_Unsupported, _Failed):
        return []
    processes = []
    for proc in found:
        process = midgard_pb2.GpuProcess(pid=int(proc.pid), process_name=_process_name(api, int(proc.pid)))
        if proc.usedGpuMemory is not None:
            process.used_memory_bytes = int(proc.usedGpuMemory)
        processes.append(process)
    return processes


def _process_name(api: Any, pid: int) -> str:
    try:
        return _text(_call(api, lambda: api.nvmlSystemGetProcessName(pid)))
    except (_Unsupported, _Failed):
        return ""


class _Unsupported(Exception):
    pass


class _Failed(Exception):
    pass


def _call(api: Any, fn: Callable[[], Any]) -> Any:
    """Runs one NVML call, sorting its error into unsupported, lost or failed."""
    try:
        return fn()
    except api.NVMLError as exc:
        if exc.value == api.NVML_ERROR_NOT_SUPPORTED:
            raise _Unsupported from None
        if exc.value == api.NVML_ERROR_GPU_IS_LOST:
            raise GpuLost from None
        log.debug("NVML call failed", extra={"error": str(exc)})
        raise _Failed from None


def driver_info(api: Any) -> midgard_pb2.GpuDriver:
    """The driver and CUDA versions, each left empty when NVML cannot tell."""
    driver = midgard_pb2.GpuDriver(available=True)
    with contextlib.suppress(_Unsupported, _Failed):
        driver.driver_version = _text(_call(api, api.nvmlSystemGetDriverVersion))
    try:
        cuda = int(_call(api, api.nvmlSystemGetCudaDriverVersion))
        driver.cuda_version = f"{cuda // 1000}.{cuda % 1000 // 10}"
    except (_Unsupported, _Failed):
        pass
    return driver
