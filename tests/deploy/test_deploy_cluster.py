"""deploy/ against a real API server (tests/support/kube.py): every object accepted by server-side dry-run, the dev
overlay's pods Running on kwok nodes, and RBAC that grants exactly what the services use."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import yaml
from deploy_helpers import REPO, Kubectl, objects, render
from support.waiting import assert_eventually

DEPLOYMENTS = ("odin-auth", "odin-pipelines", "odin-scheduler", "odin-midgard", "odin-gateway")
TASKS = "odin-tasks"
SCHEDULER = "system:serviceaccount:odin:odin-scheduler"
MIDGARD = "system:serviceaccount:odin:odin-midgard"
AGENT = "system:serviceaccount:odin-agents:odin-midgard-agent"
GATEWAY = "system:serviceaccount:odin:odin-gateway"


def _create_namespaces(kubectl: Kubectl, docs: list[dict[str, Any]]) -> None:
    """A dry run creates nothing, so the namespaces the other objects go into must exist first."""
    namespaces = [doc for doc in docs if doc["kind"] == "Namespace"]
    kubectl.run("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=yaml.safe_dump_all(namespaces))


@pytest.mark.parametrize("overlay", ["prod", "dev"])
def test_server_side_dry_run_accepts_every_object(kubectl: Kubectl, overlay: str) -> None:
    docs = objects(overlay)
    _create_namespaces(kubectl, docs)
    result = kubectl.run("apply", "--server-side", "--force-conflicts", "--dry-run=server", "-f", "-",
                         stdin=render(overlay))
    accepted = [line for line in result.stdout.splitlines() if line.endswith("(server dry run)")]
    assert len(accepted) == len(docs), result.stdout + result.stderr
    assert not result.stderr.strip(), f"warnings from the API server (Pod Security, deprecations):\n{result.stderr}"


def _secrets() -> str:
    made = subprocess.run([sys.executable, str(REPO / "deploy" / "make_secrets.py"), "--dev"],
                          capture_output=True, text=True, check=True, timeout=60).stdout
    token = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "odin-service-token", "namespace": "odin"},
             "stringData": {"token": "odin_test_not_a_real_token"}}
    return made + "---\n" + yaml.safe_dump(token)


@pytest.fixture(scope="module")
def dev_applied(kubectl: Kubectl) -> Kubectl:
    """The dev overlay (as tests/deploy/kwok adapts it) applied for real, with the Secrets make_secrets.py makes."""
    docs = objects("kwok")
    _create_namespaces(kubectl, docs)
    kubectl.run("apply", "-f", "-", stdin=_secrets())
    kubectl.run("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=render("kwok"))
    return kubectl


def _running_pods(kubectl: Kubectl, namespace: str, name: str) -> list[dict[str, Any]]:
    pods = kubectl.json("get", "pods", "-n", namespace, "-l", f"app.kubernetes.io/name={name}")["items"]
    return [p for p in pods if p["status"].get("phase") == "Running"
            and all(c.get("ready") for c in p["status"].get("containerStatuses", [{}]))
            and p["spec"].get("nodeName", "").startswith("kwok-")]


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_dev_deployments_run_on_kwok_nodes(dev_applied: Kubectl, name: str) -> None:
    def ready() -> bool:
        deployment = dev_applied.json("get", "deployment", name, "-n", "odin")
        wanted = deployment["spec"]["replicas"]
        return deployment["status"].get("readyReplicas") == wanted and len(_running_pods(
            dev_applied, "odin", name)) == wanted

    assert_eventually(ready, timeout=60, interval=0.5, what=f"deployment {name} ready with Running pods")


def test_dev_postgres_and_agents_run(dev_applied: Kubectl) -> None:
    assert_eventually(lambda: len(_running_pods(dev_applied, "odin", "odin-postgres")) == 1, timeout=60,
                      interval=0.5, what="the dev PostgreSQL pod Running")
    nodes = dev_applied.json("get", "nodes")["items"]
    # Every node but the one with a taint the agent does not tolerate (odin.test/dedicated).
    expected = {n["metadata"]["name"] for n in nodes
                if not any(t["key"] == "odin.test/dedicated" for t in n["spec"].get("taints", []))}

    def agents_on_every_node() -> bool:
        pods = _running_pods(dev_applied, "odin-agents", "odin-midgard-agent")
        return {p["spec"]["nodeName"] for p in pods} == expected

    assert_eventually(agents_on_every_node, timeout=60, interval=0.5, what="an agent Running on every node")


def test_dev_claims_are_bound(dev_applied: Kubectl) -> None:
    def bound() -> bool:
        # odin: pipelines repo, postgres data, scheduler runs and state; odin-tasks: the tasks' runs claim.
        claims = [*dev_applied.json("get", "pvc", "-n", "odin")["items"],
                  *dev_applied.json("get", "pvc", "-n", TASKS)["items"]]
        return len(claims) == 5 and all(c["status"].get("phase") == "Bound" for c in claims)

    assert_eventually(bound, timeout=30, interval=0.5, what="every claim Bound")
    runs = dev_applied.json("get", "pv", "odin-dev-runs")
    data = dev_applied.json("get", "pv", "odin-dev-data")
    assert runs["spec"]["hostPath"]["path"] == data["spec"]["hostPath"]["path"], "scheduler and tasks share RUN_PATH"


# -- RBAC ---------------------------------------------------------------------------------------------------------

ALLOWED = [
    # The scheduler's executor, in the tasks' namespace.
    *[(SCHEDULER, verb, "pods", TASKS) for verb in ("create", "get", "list", "watch", "delete")],
    (SCHEDULER, "get", "pods/log", TASKS),
    *[(SCHEDULER, verb, "events", TASKS) for verb in ("get", "list", "watch")],
    *[(SCHEDULER, verb, "jobs.batch", TASKS) for verb in ("create", "get", "list", "watch", "delete")],
    *[(SCHEDULER, verb, f"{kind}.kubeflow.org", TASKS) for kind in ("tfjobs", "pytorchjobs", "mpijobs")
      for verb in ("create", "get", "list", "watch", "delete")],
    *[(SCHEDULER, verb, kind, TASKS) for kind in ("jobsets.jobset.x-k8s.io", "trainjobs.trainer.kubeflow.org")
      for verb in ("create", "get", "list", "watch", "delete")],
    *[(SCHEDULER, verb, f"{kind}.kueue.x-k8s.io", TASKS) for kind in ("workloads", "localqueues")
      for verb in ("get", "list", "watch")],
    # midgard finds its agents; an agent names the pods of its node's GPU processes.
    (MIDGARD, "list", "pods", "odin-agents"),
    (AGENT, "list", "pods", ""),
]

DENIED = [
    (SCHEDULER, "get", "secrets", TASKS),
    (SCHEDULER, "list", "secrets", "odin"),
    (SCHEDULER, "create", "pods", "odin"),
    (SCHEDULER, "create", "pods", "default"),
    (SCHEDULER, "list", "pods", "kube-system"),
    (SCHEDULER, "update", "pods", TASKS),
    (SCHEDULER, "patch", "jobs.batch", TASKS),
    # Kueue alone admits and resumes: the scheduler never unsuspends or edits a workload.
    (SCHEDULER, "patch", "jobsets.jobset.x-k8s.io", TASKS),
    (SCHEDULER, "update", "workloads.kueue.x-k8s.io", TASKS),
    (SCHEDULER, "create", "localqueues.kueue.x-k8s.io", TASKS),
    (SCHEDULER, "deletecollection", "pods", TASKS),
    (SCHEDULER, "create", "pods/exec", TASKS),
    (SCHEDULER, "create", "pods/eviction", TASKS),
    (SCHEDULER, "create", "rolebindings.rbac.authorization.k8s.io", TASKS),
    (SCHEDULER, "create", "serviceaccounts/token", TASKS),
    (SCHEDULER, "create", "configmaps", TASKS),
    (SCHEDULER, "delete", "nodes", ""),
    (SCHEDULER, "patch", "nodes", ""),
    (SCHEDULER, "list", "pods", ""),
    (MIDGARD, "get", "pods", "odin-agents"),
    (MIDGARD, "list", "pods", "odin"),
    (MIDGARD, "list", "pods", ""),
    (MIDGARD, "get", "secrets", "odin-agents"),
    (AGENT, "get", "pods", "odin"),
    (AGENT, "watch", "pods", ""),
    (AGENT, "get", "secrets", ""),
    (AGENT, "list", "nodes", ""),
    (GATEWAY, "list", "pods", "odin"),
    ("system:serviceaccount:odin-tasks:odin-task", "list", "pods", TASKS),
]


def _can_i(kubectl: Kubectl, user: str, verb: str, resource: str, namespace: str) -> bool:
    scope = ["-n", namespace] if namespace else ["--all-namespaces"]
    # `can-i VERB pods/log` would ask about the pod named "log": subresources go in their own flag.
    resource, _, subresource = resource.partition("/")
    extra = [f"--subresource={subresource}"] if subresource else []
    result = kubectl.run("auth", "can-i", verb, resource, *extra, *scope, f"--as={user}", check=False)
    if result.returncode not in (0, 1):
        raise AssertionError(f"kubectl auth can-i failed: {result.stderr}")
    return result.returncode == 0


def test_rbac_allows_what_the_services_use(dev_applied: Kubectl) -> None:
    refused = [case for case in ALLOWED if not _can_i(dev_applied, *case)]
    assert not refused, f"denied but needed: {refused}"


def test_rbac_denies_everything_else(dev_applied: Kubectl) -> None:
    granted = [case for case in DENIED if _can_i(dev_applied, *case)]
    assert not granted, f"allowed but never needed: {granted}"


AUTH = "system:serviceaccount:odin:odin-auth"


def test_auth_may_read_and_patch_the_service_token_secret_only(dev_applied: Kubectl) -> None:
    def can(verb: str, target: str) -> bool:
        result = dev_applied.run("auth", "can-i", verb, target, "-n", "odin", f"--as={AUTH}", check=False)
        if result.returncode not in (0, 1):
            raise AssertionError(f"kubectl auth can-i failed: {result.stderr}")
        return result.returncode == 0

    assert can("get", "secrets/odin-service-token") and can("patch", "secrets/odin-service-token")
    granted = [(verb, target) for verb, target in (
        ("list", "secrets"), ("create", "secrets"), ("get", "secrets/odin-auth-keys"), ("get", "secrets/odin-admin"),
        ("patch", "secrets/odin-database"), ("delete", "secrets/odin-service-token"), ("list", "pods"),
    ) if can(verb, target)]
    assert not granted, f"allowed but never needed: {granted}"
