"""The agent's NVML code path against the simulated NVML: every field, unsupported fields, lost GPUs."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pynvml
import pytest
from odin_midgard.gpus import READINGS, driver_info, read_gpus
from odin_midgard.nvml_sim import CONSUMER_MODEL, DATACENTER_MODEL, GIB, SimOptions, SimProcess, SimulatedNvml

from odin.midgard.v1 import midgard_pb2 as pb

NODE = "nodes/sim"
ALL_READINGS = [field for fields, _ in READINGS for field in fields]
OPTIONAL = [f.name for f in pb.Gpu.DESCRIPTOR.fields if f.has_presence and f.message_type is None]


def nvml(**options: Any) -> SimulatedNvml:
    api = SimulatedNvml(SimOptions(**options))
    api.nvmlInit()
    return api


def test_readings_cover_every_optional_gpu_field() -> None:
    assert set(OPTIONAL) <= set(ALL_READINGS)


def test_a_datacenter_gpu_reports_every_field_but_the_fan() -> None:
    gpu = read_gpus(nvml(gpus=1, consumer_gpus=0), NODE)[0]
    assert gpu.name == "nodes/sim/gpus/0" and gpu.index == 0 and gpu.state == pb.Gpu.STATE_OK
    assert gpu.uuid.startswith("GPU-") and gpu.serial and gpu.pci_bus_id == "00000000:18:00.0"
    assert gpu.product_name == DATACENTER_MODEL
    assert gpu.memory_total_bytes == 80 * GIB
    assert gpu.memory_used_bytes + gpu.memory_free_bytes == gpu.memory_total_bytes
    assert (gpu.power_draw_watts, gpu.power_limit_watts) == (71.25, 700.0)
    assert gpu.ecc_enabled is True and gpu.ecc_errors_corrected == 3 and gpu.ecc_errors_uncorrected == 0
    assert gpu.mig_enabled is False and gpu.performance_state == 8
    assert list(gpu.unsupported_fields) == ["fan_percent"]
    for field in OPTIONAL:
        assert gpu.HasField(field) == (field != "fan_percent"), field


def test_unsupported_readings_are_absent_and_named() -> None:
    gpu = read_gpus(nvml(gpus=2, consumer_gpus=1), NODE)[1]
    assert gpu.product_name == CONSUMER_MODEL and gpu.state == pb.Gpu.STATE_OK
    assert set(gpu.unsupported_fields) == {"serial", "power_limit_watts", "memory_clock_max_mhz", "ecc_enabled",
                                           "ecc_errors_corrected", "ecc_errors_uncorrected", "mig_enabled"}
    assert gpu.serial == "" and not gpu.HasField("ecc_enabled") and not gpu.HasField("power_limit_watts")
    assert gpu.fan_percent == 30 and gpu.HasField("memory_total_bytes")


def test_a_lost_gpu_is_reported_and_the_others_still_read() -> None:
    gpus = read_gpus(nvml(gpus=3, lost_index=1), NODE)
    assert [g.state for g in gpus] == [pb.Gpu.STATE_OK, pb.Gpu.STATE_LOST, pb.Gpu.STATE_OK]
    assert gpus[1].name == "nodes/sim/gpus/1" and gpus[1].index == 1 and not gpus[1].HasField("memory_total_bytes")
    assert gpus[2].HasField("memory_total_bytes")


def test_a_gpu_lost_after_its_handle_keeps_what_was_read() -> None:
    api = nvml(gpus=1, consumer_gpus=0)
    real_memory = api.nvmlDeviceGetMemoryInfo

    def memory_then_lost(board: Any) -> Any:
        info = real_memory(board)
        api.lose(0)
        return info

    api.nvmlDeviceGetMemoryInfo = memory_then_lost  # type: ignore[method-assign]
    gpu = read_gpus(api, NODE)[0]
    assert gpu.state == pb.Gpu.STATE_LOST
    assert gpu.uuid and gpu.memory_total_bytes == 80 * GIB
    assert not gpu.HasField("utilization_gpu_percent")


def test_processes_with_and_without_memory() -> None:
    procs = (SimProcess(0, 4242, 2 * GIB), SimProcess(0, 4343, None))
    gpus = read_gpus(nvml(gpus=2, processes=procs), NODE)
    assert [(p.pid, p.process_name, p.HasField("used_memory_bytes")) for p in gpus[0].processes] == [
        (4242, "sim-process-4242", True), (4343, "sim-process-4343", False)]
    assert gpus[0].processes[0].used_memory_bytes == 2 * GIB
    assert gpus[0].utilization_gpu_percent == 87 and not gpus[1].processes


def test_driver_and_cuda_versions() -> None:
    driver = driver_info(nvml())
    assert (driver.available, driver.driver_version, driver.cuda_version) == (True, "550.54.15", "12.4")


def test_other_nvml_errors_leave_the_field_absent_without_failing() -> None:
    api = nvml(gpus=1)

    def broken(board: Any, sensor: int) -> int:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_UNKNOWN)

    api.nvmlDeviceGetTemperature = broken  # type: ignore[method-assign]
    gpu = read_gpus(api, NODE)[0]
    assert gpu.state == pb.Gpu.STATE_OK and not gpu.HasField("temperature_celsius")
    assert "temperature_celsius" not in gpu.unsupported_fields


def test_byte_strings_from_older_pynvml_are_decoded() -> None:
    api = nvml(gpus=1)
    api.nvmlDeviceGetName = lambda board: b"NVIDIA A100-SXM4-40GB"  # type: ignore[method-assign]
    api.nvmlDeviceGetPciInfo = lambda board: SimpleNamespace(busId=b"00000000:07:00.0")  # type: ignore[method-assign]
    gpu = read_gpus(api, NODE)[0]
    assert (gpu.product_name, gpu.pci_bus_id) == ("NVIDIA A100-SXM4-40GB", "00000000:07:00.0")


def test_the_simulation_needs_init_like_nvml() -> None:
    api = SimulatedNvml(SimOptions())
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        api.nvmlDeviceGetCount()
