"""Fixtures for Midgard tests: real agent and aggregator processes on loopback."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from support.processes import ServiceProcess

SIM = {"ODIN_MIDGARD_AGENT_NVML": "simulated"}


@pytest.fixture
def start_agent(service_factory: Callable[..., ServiceProcess]) -> Callable[..., ServiceProcess]:
    """Starts an agent; `node` names it (several agents share this machine's hostname)."""

    def start(node: str = "", **env: str) -> ServiceProcess:
        values = {f"ODIN_MIDGARD_AGENT_{key.upper()}": value for key, value in env.items()}
        if node:
            values["ODIN_MIDGARD_AGENT_NODE_NAME"] = node
        return service_factory("midgard-agent", values)

    return start


@pytest.fixture
def start_midgard(service_factory: Callable[..., ServiceProcess]) -> Callable[..., ServiceProcess]:
    """Starts the aggregator over `agents` with a fast refresh."""

    def start(agents: list[str], **env: str) -> ServiceProcess:
        values = {
            "ODIN_MIDGARD_AGENTS": ",".join(agents),
            "ODIN_MIDGARD_REFRESH_INTERVAL_SECONDS": "0.5",
            "ODIN_MIDGARD_AGENT_TIMEOUT_SECONDS": "1",
            "ODIN_MIDGARD_HEARTBEAT_INTERVAL_SECONDS": "1",
        }
        values.update({f"ODIN_MIDGARD_{key.upper()}": value for key, value in env.items()})
        return service_factory("midgard", values)

    return start
