"""A SIMULATION of NVML for machines without an NVIDIA GPU (tests, laptops, the local suite).

`SimulatedNvml` has the same functions, arguments, results and exceptions as the part of
nvidia-ml-py (`pynvml`) the agent uses, so the agent runs its one NVML code path against
either. Nothing here touches hardware: the GPUs, their readings and processes are invented.
Errors are pynvml's own exception classes, so `NotSupported` and `GPU_IS_LOST` look exactly
as they do on a real driver.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any, TypeVar

import pynvml

DATACENTER_MODEL = "NVIDIA H100 80GB HBM3"
# A consumer board: no serial, ECC, MIG or power-limit readings, as on real GeForce cards.
CONSUMER_MODEL = "NVIDIA GeForce RTX 4090"
CONSUMER_UNSUPPORTED = frozenset(
    {"serial", "ecc_mode", "ecc_errors", "mig_mode", "enforced_power_limit", "max_clock_mem"}
)
GIB = 1024**3
T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class SimProcess:
    """A compute process the simulation places on a GPU."""

    gpu_index: int
    pid: int
    used_memory_bytes: int | None


@dataclasses.dataclass(frozen=True)
class SimOptions:
    """What to simulate: `gpus` boards of `model`, the last `consumer_gpus` of them a consumer
    model with unsupported readings, optionally one lost GPU, and some processes."""

    gpus: int = 4
    model: str = DATACENTER_MODEL
    consumer_gpus: int = 1
    lost_index: int = -1
    processes: tuple[SimProcess, ...] = ()


def parse_processes(entries: tuple[str, ...]) -> tuple[SimProcess, ...]:
    """Parses `gpu_index:pid[:used_bytes]` entries (configuration `sim_processes`)."""
    parsed = []
    for entry in entries:
        parts = entry.split(":")
        if len(parts) not in (2, 3):
            raise ValueError(f"sim process {entry!r} is not gpu_index:pid[:used_bytes]")
        used = int(parts[2]) if len(parts) == 3 else None
        parsed.append(SimProcess(int(parts[0]), int(parts[1]), used))
    return tuple(parsed)


@dataclasses.dataclass
class _Board:
    index: int
    model: str
    unsupported: frozenset[str]
    lost: bool
    processes: list[SimProcess]


class SimulatedNvml:
    """The subset of pynvml the agent calls, answering for invented GPUs."""

    NVML_TEMPERATURE_GPU = pynvml.NVML_TEMPERATURE_GPU
    NVML_CLOCK_SM = pynvml.NVML_CLOCK_SM
    NVML_CLOCK_MEM = pynvml.NVML_CLOCK_MEM
    NVML_MEMORY_ERROR_TYPE_CORRECTED = pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED
    NVML_MEMORY_ERROR_TYPE_UNCORRECTED = pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED
    NVML_VOLATILE_ECC = pynvml.NVML_VOLATILE_ECC
    NVML_ERROR_NOT_SUPPORTED = pynvml.NVML_ERROR_NOT_SUPPORTED
    NVML_ERROR_GPU_IS_LOST = pynvml.NVML_ERROR_GPU_IS_LOST
    NVMLError = pynvml.NVMLError

    def __init__(self, options: SimOptions) -> None:
        self.options = options
        self._initialised = False
        first_consumer = options.gpus - options.consumer_gpus
        self._boards = [
            _Board(
                index=i,
                model=CONSUMER_MODEL if i >= first_consumer else options.model,
                unsupported=CONSUMER_UNSUPPORTED if i >= first_consumer else frozenset(),
                lost=i == options.lost_index,
                processes=[p for p in options.processes if p.gpu_index == i],
            )
            for i in range(options.gpus)
        ]

    # -- library and system ---------------------------------------------------------------
    def nvmlInit(self) -> None:
        self._initialised = True

    def nvmlShutdown(self) -> None:
        self._initialised = False

    def nvmlSystemGetDriverVersion(self) -> str:
        self._check_init()
        return "550.54.15"

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        self._check_init()
        return 12040

    def nvmlSystemGetProcessName(self, pid: int) -> str:
        self._check_init()
        return f"sim-process-{pid}"

    def nvmlDeviceGetCount(self) -> int:
        self._check_init()
        return len(self._boards)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _Board:
        self._check_init()
        if not 0 <= index < len(self._boards):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        board = self._boards[index]
        if board.lost:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
        return board

    # -- identity ----------------------------------------------------------------------------
    def nvmlDeviceGetUUID(self, board: _Board) -> str:
        return self._read(board, "uuid", f"GPU-5173d0a1-0000-4000-8000-{board.index:012d}")

    def nvmlDeviceGetName(self, board: _Board) -> str:
        return self._read(board, "name", board.model)

    def nvmlDeviceGetSerial(self, board: _Board) -> str:
        return self._read(board, "serial", f"SIM{1650000000 + board.index}")

    def nvmlDeviceGetPciInfo(self, board: _Board) -> Any:
        return self._read(board, "pci", SimpleNamespace(busId=f"00000000:{0x18 + board.index:02X}:00.0"))

    # -- readings ----------------------------------------------------------------------------
    def nvmlDeviceGetMemoryInfo(self, board: _Board) -> Any:
        total = 80 * GIB if board.model == self.options.model else 24 * GIB
        used = 512 * 1024**2 + sum(p.used_memory_bytes or 0 for p in board.processes)
        return self._read(board, "memory", SimpleNamespace(total=total, used=used, free=total - used))

    def nvmlDeviceGetUtilizationRates(self, board: _Board) -> Any:
        busy = 87 if board.processes else 0
        return self._read(board, "utilization", SimpleNamespace(gpu=busy, memory=busy // 2))

    def nvmlDeviceGetTemperature(self, board: _Board, sensor: int) -> int:
        return self._read(board, "temperature", 64 if board.processes else 34)

    def nvmlDeviceGetPowerUsage(self, board: _Board) -> int:
        return self._read(board, "power_usage", 612_500 if board.processes else 71_250)

    def nvmlDeviceGetEnforcedPowerLimit(self, board: _Board) -> int:
        return self._read(board, "enforced_power_limit", 700_000)

    def nvmlDeviceGetClockInfo(self, board: _Board, clock: int) -> int:
        return self._read(board, "clock", 1980 if clock == pynvml.NVML_CLOCK_SM else 2619)

    def nvmlDeviceGetMaxClockInfo(self, board: _Board, clock: int) -> int:
        key = "max_clock_sm" if clock == pynvml.NVML_CLOCK_SM else "max_clock_mem"
        return self._read(board, key, 1980 if clock == pynvml.NVML_CLOCK_SM else 2619)

    def nvmlDeviceGetFanSpeed(self, board: _Board) -> int:
        # Datacenter boards are passively cooled: no fan reading, as on real H100s.
        if board.model == self.options.model:
            return self._read(board, "fan", 0, unsupported=True)
        return self._read(board, "fan", 30)

    def nvmlDeviceGetPerformanceState(self, board: _Board) -> int:
        return self._read(board, "pstate", 0 if board.processes else 8)

    def nvmlDeviceGetEccMode(self, board: _Board) -> list[int]:
        return self._read(board, "ecc_mode", [1, 1])

    def nvmlDeviceGetTotalEccErrors(self, board: _Board, error_type: int, counter_type: int) -> int:
        return self._read(board, "ecc_errors", 0 if error_type == pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED else 3)

    def nvmlDeviceGetMigMode(self, board: _Board) -> list[int]:
        return self._read(board, "mig_mode", [0, 0])

    def nvmlDeviceGetComputeRunningProcesses(self, board: _Board) -> list[Any]:
        found = [SimpleNamespace(pid=p.pid, usedGpuMemory=p.used_memory_bytes) for p in board.processes]
        return self._read(board, "processes", found)

    # -- helpers -----------------------------------------------------------------------------
    def _check_init(self) -> None:
        if not self._initialised:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)

    def _read(self, board: _Board, key: str, value: T, *, unsupported: bool = False) -> T:
        self._check_init()
        if board.lost:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
        if unsupported or key in board.unsupported:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return value

    def lose(self, index: int) -> None:
        """Makes GPU `index` fall off the bus from now on (tests)."""
        self._boards[index].lost = True
