"""deploy/'s manifests as rendered by `kubectl kustomize` (no cluster): the generated gateway configuration is
current and valid for Envoy, every workload is hardened, no Secret is committed, and the NetworkPolicies allow
exactly the architecture's traffic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_helpers import REPO

from odin.gateway.process import validate

Objects = list[dict[str, Any]]
SERVICES = {"odin-auth", "odin-pipelines", "odin-scheduler", "odin-midgard"}
WORKLOADS = {"Deployment", "DaemonSet", "StatefulSet"}


def test_gateway_config_is_current() -> None:
    result = subprocess.run([sys.executable, str(REPO / "deploy" / "render_gateway.py"), "--check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_envoy_accepts_the_gateway_config(tmp_path: Path, rendered: dict[str, Objects]) -> None:
    config_map = next(o for o in rendered["prod"] if o["kind"] == "ConfigMap"
                      and o["metadata"]["name"].startswith("odin-gateway-"))
    assert "odin.protoset" in config_map["binaryData"], "the descriptor set travels in the ConfigMap"
    (tmp_path / "odin.protoset").write_bytes(__import__("base64").b64decode(config_map["binaryData"]["odin.protoset"]))
    text = config_map["data"]["envoy.yaml"].replace("/etc/odin-gateway/", f"{tmp_path}/")
    (tmp_path / "envoy.yaml").write_text(text)
    validate(tmp_path / "envoy.yaml")  # the real Envoy binary, --mode validate


def _by_kind(objs: Objects, kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_overlay_has_the_whole_suite(rendered: dict[str, Objects], overlay: str) -> None:
    objs = rendered[overlay]
    assert set(_by_kind(objs, "Deployment")) == SERVICES | {"odin-gateway"}
    assert set(_by_kind(objs, "DaemonSet")) == {"odin-midgard-agent"}
    assert set(_by_kind(objs, "PersistentVolumeClaim")) == {"odin-pipelines-repo", "odin-runs", "odin-data",
                                                                 "odin-scheduler-state"}
    assert set(_by_kind(objs, "PodDisruptionBudget")) == SERVICES | {"odin-gateway"}
    postgres = _by_kind(objs, "StatefulSet")
    assert set(postgres) == ({"odin-postgres"} if overlay == "dev" else set()), "PostgreSQL in-cluster only for dev"


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_no_secret_is_committed(rendered: dict[str, Objects], overlay: str) -> None:
    assert not _by_kind(rendered[overlay], "Secret")
    referenced = {ref for o in rendered[overlay] if o["kind"] in WORKLOADS for ref in _secret_refs(o)}
    made = subprocess.run([sys.executable, str(REPO / "deploy" / "make_secrets.py"), "--dev"], capture_output=True,
                          text=True, check=True, timeout=60).stdout
    made_names = {doc["metadata"]["name"] for doc in yaml.safe_load_all(made)} | {"odin-service-token"}
    assert referenced <= made_names, f"referenced but never made by deploy/make_secrets.py: {referenced - made_names}"


def _secret_refs(workload: dict[str, Any]) -> set[str]:
    spec = workload["spec"]["template"]["spec"]
    names = {v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}
    for container in spec["containers"]:
        names |= {e["valueFrom"]["secretKeyRef"]["name"] for e in container.get("env", [])
                  if "secretKeyRef" in e.get("valueFrom", {})}
    return names


def _pod_specs(objs: Objects) -> list[tuple[str, dict[str, Any]]]:
    return [(o["metadata"]["name"], o["spec"]["template"]["spec"]) for o in objs if o["kind"] in WORKLOADS]


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_every_container_is_hardened(rendered: dict[str, Objects], overlay: str) -> None:
    for name, spec in _pod_specs(rendered[overlay]):
        pod_security = spec["securityContext"]
        assert pod_security["runAsNonRoot"] and pod_security["seccompProfile"]["type"] == "RuntimeDefault", name
        assert not spec.get("hostNetwork") and not spec.get("hostIPC"), name
        assert not any("hostPath" in v for v in spec.get("volumes", [])), name
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"], name
            assert security["capabilities"] == {"drop": ["ALL"]}, name
            assert not security.get("privileged"), name
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), f"{name}: {bound}"
            assert "readinessProbe" in container and "livenessProbe" in container, name
            if name in SERVICES or name == "odin-midgard-agent":
                assert "grpc" in container["readinessProbe"] and "grpc" in container["startupProbe"], name
        # Only what calls the Kubernetes API: the scheduler (tasks), midgard (agents, pods), auth (the robot's
        # token Secret).
        assert spec.get("automountServiceAccountToken") == (name in {"odin-scheduler", "odin-midgard",
                                                                     "odin-midgard-agent", "odin-auth"}), name


def test_agent_gets_host_pids_and_nothing_more(rendered: dict[str, Objects]) -> None:
    spec = _by_kind(rendered["prod"], "DaemonSet")["odin-midgard-agent"]["spec"]["template"]["spec"]
    assert spec["hostPID"] is True
    assert {t["key"] for t in spec["tolerations"]} >= {"nvidia.com/gpu"}
    container = spec["containers"][0]
    assert "nvidia.com/gpu" not in container["resources"]["limits"], "the agent must not take GPUs from tasks"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["NVIDIA_DRIVER_CAPABILITIES"] == "utility"


# -- NetworkPolicy semantics, evaluated on the rendered objects --------------------------------------------------

Pod = tuple[str, str]  # (namespace, app.kubernetes.io/name)


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        present = labels.get(expr["key"])
        if expr["operator"] == "In" and present not in expr["values"]:
            return False
        if expr["operator"] == "NotIn" and present in expr["values"]:
            return False
    return True


def _peer_matches(peer: dict[str, Any], policy_ns: str, pod: Pod) -> bool:
    namespace, name = pod
    if "ipBlock" in peer:
        return False  # no pod is addressed by IP block here
    ns_ok = (_selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": namespace})
             if "namespaceSelector" in peer else namespace == policy_ns)
    return ns_ok and _selects(peer.get("podSelector", {}), {"app.kubernetes.io/name": name})


def _allowed(policies: Objects, direction: str, subject: Pod, peer: Pod, port: int) -> bool:
    """Kubernetes semantics: isolated for a direction once any policy selects the pod for it; then allowed if any
    rule of those policies matches the peer and port."""
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    selecting = [p for p in policies if p["metadata"]["namespace"] == subject[0]
                 and direction in p["spec"]["policyTypes"]
                 and _selects(p["spec"]["podSelector"], {"app.kubernetes.io/name": subject[1]})]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get(key, []):
            ports = rule.get("ports")
            port_ok = ports is None or any(p.get("port") == port for p in ports)
            peers = rule.get(peers_key)
            peer_ok = peers is None or any(_peer_matches(x, policy["metadata"]["namespace"], peer) for x in peers)
            if port_ok and peer_ok:
                return True
    return False


def test_network_policies_allow_only_the_architecture(rendered: dict[str, Objects]) -> None:
    objs = rendered["dev"]
    policies = [o for o in objs if o["kind"] == "NetworkPolicy"]
    pods: dict[Pod, int] = {}
    for o in objs:
        if o["kind"] in WORKLOADS:
            container = o["spec"]["template"]["spec"]["containers"][0]
            pods[(o["metadata"]["namespace"], o["metadata"]["name"])] = container["ports"][0]["containerPort"]
    odin = {name: ("odin", name) for name in ("odin-gateway", "odin-auth", "odin-pipelines", "odin-scheduler",
                                               "odin-midgard", "odin-postgres")}
    agent = ("odin-agents", "odin-midgard-agent")
    expected = {
        (odin["odin-gateway"], odin[s]) for s in ("odin-auth", "odin-pipelines", "odin-scheduler", "odin-midgard")
    } | {
        (odin["odin-pipelines"], odin["odin-auth"]),
        (odin["odin-scheduler"], odin["odin-auth"]), (odin["odin-scheduler"], odin["odin-pipelines"]),
        (odin["odin-midgard"], odin["odin-auth"]), (odin["odin-midgard"], odin["odin-scheduler"]),
        (odin["odin-midgard"], agent), (agent, odin["odin-auth"]),
        (odin["odin-auth"], odin["odin-postgres"]), (odin["odin-scheduler"], odin["odin-postgres"]),
    }
    actual = {(src, dst) for src in pods for dst, port in pods.items() if src != dst
              and _allowed(policies, "Egress", src, dst, port) and _allowed(policies, "Ingress", dst, src, port)}
    assert actual == expected, f"extra: {actual - expected}; missing: {expected - actual}"
    task = (("odin-tasks", "some-task"), 8080)
    assert not any(_allowed(policies, "Ingress", task[0], src, task[1]) for src in pods), "nothing calls tasks"


CONFIGS = {  # workload -> (its env prefix, the service's config class as "module:Class")
    "odin-auth": ("ODIN_AUTH_", "odin_auth.main:AuthConfig"),
    "odin-pipelines": ("ODIN_PIPELINES_", "odin_pipelines.config:PipelinesConfig"),
    "odin-scheduler": ("ODIN_SCHEDULER_", "odin_scheduler.main:SchedulerConfig"),
    "odin-midgard": ("ODIN_MIDGARD_", "odin_midgard.main:MidgardConfig"),
    "odin-midgard-agent": ("ODIN_MIDGARD_AGENT_", "odin_midgard.agent_main:AgentConfig"),
}


def test_every_setting_is_one_the_service_reads(rendered: dict[str, Objects]) -> None:
    """The config loader ignores unknown variables, so a misspelt one would be silently dropped."""
    import dataclasses
    import importlib

    unknown = []
    for name, spec in _pod_specs(rendered["prod"]):
        if name not in CONFIGS:
            continue
        prefix, target = CONFIGS[name]
        module, cls = target.split(":")
        fields = {f.name for f in dataclasses.fields(getattr(importlib.import_module(module), cls))}
        for env in spec["containers"][0].get("env", []):
            if env["name"].startswith("ODIN_") and env["name"].removeprefix(prefix).lower() not in fields:
                unknown.append(f"{name}: {env['name']}")
    assert not unknown, unknown
