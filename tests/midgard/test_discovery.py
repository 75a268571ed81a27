"""Agent discovery: the static list and Kubernetes pods by label selector (with a fake API object)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from odin_midgard.discovery import AgentTarget, KubernetesDiscovery, StaticDiscovery, parse_entry
from odin_midgard.main import MidgardConfig, build_discovery, check_config

from odin.runtime.config import ConfigError


def test_static_entries_with_and_without_node_names() -> None:
    found = StaticDiscovery(["127.0.0.1:5001", " gpu-1=10.0.0.7:29999"]).discover()
    assert found == [AgentTarget("127.0.0.1:5001"), AgentTarget("10.0.0.7:29999", node="gpu-1")]


@pytest.mark.parametrize("entry", ["localhost", "host:", ":80", "host:port", "host:70000", "a=b"])
def test_bad_static_entries_are_refused(entry: str) -> None:
    with pytest.raises(ValueError, match="host:port"):
        parse_entry(entry)


def pod(name: str, phase: str, ip: str | None, node: str | None) -> Any:
    return SimpleNamespace(metadata=SimpleNamespace(name=name), status=SimpleNamespace(phase=phase, pod_ip=ip),
                           spec=SimpleNamespace(node_name=node))


class FakeCoreApi:
    def __init__(self, pods: list[Any]) -> None:
        self.pods = pods
        self.calls: list[tuple[str, str]] = []

    def list_namespaced_pod(self, namespace: str, label_selector: str) -> Any:
        self.calls.append((namespace, label_selector))
        return SimpleNamespace(items=self.pods)


def test_running_agent_pods_become_targets_on_their_nodes() -> None:
    api = FakeCoreApi([
        pod("agent-b", "Running", "10.1.0.9", "node-b"),
        pod("agent-a", "Running", "10.1.0.5", "node-a"),
        pod("agent-new", "Pending", None, "node-c"),
        pod("agent-noip", "Running", None, "node-d"),
        pod("agent-done", "Succeeded", "10.1.0.7", "node-e"),
        pod("agent-v6", "Running", "fd00::12", "node-f"),
    ])
    found = KubernetesDiscovery(api, "odin", "app.kubernetes.io/name=midgard-agent", 29999).discover()
    assert found == [
        AgentTarget("10.1.0.5:29999", "node-a"),
        AgentTarget("10.1.0.9:29999", "node-b"),
        AgentTarget("[fd00::12]:29999", "node-f"),
    ]
    assert api.calls == [("odin", "app.kubernetes.io/name=midgard-agent")]


def test_aggregator_settings_are_checked_at_start() -> None:
    assert build_discovery(MidgardConfig()).discover() == []  # starts, serving zero nodes
    with pytest.raises(ConfigError, match="ODIN_MIDGARD_AGENTS"):
        build_discovery(MidgardConfig(agents=("nohost",)))
    with pytest.raises(ConfigError, match="ODIN_MIDGARD_MAX_CONCURRENCY"):
        check_config(MidgardConfig(max_concurrency=0))
    with pytest.raises(ConfigError, match="ODIN_MIDGARD_AGENT_TIMEOUT_SECONDS"):
        check_config(MidgardConfig(agent_timeout_seconds=-1))
