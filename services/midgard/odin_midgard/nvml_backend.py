"""Chooses the NVML the agent reads GPUs through: the real library, the simulation, or none."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import pynvml

from odin_midgard.nvml_sim import SimOptions, SimulatedNvml

log = logging.getLogger("odin.midgard.agent")

MODES = ("auto", "real", "simulated")


class NvmlStartError(Exception):
    """`nvml=real` was asked for but NVML cannot be used; the agent must not start."""


@dataclasses.dataclass(frozen=True)
class Nvml:
    """An initialised NVML (`api` has pynvml's functions) or the reason there is none."""

    api: Any | None
    simulated: bool = False
    unavailable_reason: str = ""


def open_nvml(mode: str, sim: SimOptions) -> Nvml:
    """`auto`: the real NVML when it loads, else none with the reason; `real`: the real one or
    NvmlStartError; `simulated`: invented GPUs (never chosen by `auto`)."""
    if mode not in MODES:
        raise ValueError(f"nvml must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "simulated":
        api = SimulatedNvml(sim)
        api.nvmlInit()
        log.warning("using SIMULATED NVML: the GPUs this agent reports are invented", extra={"gpus": sim.gpus})
        return Nvml(api, simulated=True)
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        reason = f"NVML cannot be used: {exc}"
        if mode == "real":
            raise NvmlStartError(reason) from None
        log.info("no NVML; reporting zero GPUs", extra={"reason": reason})
        return Nvml(None, unavailable_reason=reason)
    return Nvml(pynvml)


def close_nvml(nvml: Nvml) -> None:
    if nvml.api is None:
        return
    try:
        nvml.api.nvmlShutdown()
    except pynvml.NVMLError as exc:
        log.warning("NVML shutdown failed", extra={"error": str(exc)})
