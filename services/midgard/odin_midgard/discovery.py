"""Where the agents are: a static list, or the agent pods that a Kubernetes label selector finds."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Protocol


@dataclasses.dataclass(frozen=True, order=True)
class AgentTarget:
    """One agent to collect from; `node` is the node's name when known before the first answer."""

    address: str
    node: str = ""


class Discovery(Protocol):
    def discover(self) -> list[AgentTarget]:
        """The agents to collect from now (blocking: called from a worker thread)."""
        ...


class StaticDiscovery:
    """Agents given as `host:port` or `node=host:port` entries (configuration `agents`)."""

    def __init__(self, entries: Sequence[str]) -> None:
        self.targets = [parse_entry(entry) for entry in entries]

    def discover(self) -> list[AgentTarget]:
        return list(self.targets)


def parse_entry(entry: str) -> AgentTarget:
    """`host:port` or `node=host:port`; ValueError says what is wrong."""
    node, _, address = entry.strip().rpartition("=")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"agent {entry!r} is not host:port or node=host:port")
    return AgentTarget(address=address, node=node)


class KubernetesDiscovery:
    """The running agent pods matching `selector` in `namespace`, reached at `<pod IP>:<port>`."""

    def __init__(self, core_api: Any, namespace: str, selector: str, port: int) -> None:
        self._api = core_api
        self._namespace = namespace
        self._selector = selector
        self._port = port

    def discover(self) -> list[AgentTarget]:
        pods = self._api.list_namespaced_pod(self._namespace, label_selector=self._selector)
        return sorted(target for pod in pods.items if (target := self._target(pod)) is not None)

    def _target(self, pod: Any) -> AgentTarget | None:
        """A pod that is not running or has no IP yet is not an agent to call (yet)."""
        status = pod.status
        if status is None or status.phase != "Running" or not status.pod_ip:
            return None
        host = f"[{status.pod_ip}]" if ":" in status.pod_ip else status.pod_ip
        node = (pod.spec.node_name if pod.spec else None) or ""
        return AgentTarget(address=f"{host}:{self._port}", node=node)
