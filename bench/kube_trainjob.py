"""A 4-node TrainJob through Odin and Kueue on the real test node: CreateJob to Workload admitted, and to all pods
Running.

Usage: python bench/kube_trainjob.py [--rounds 3] [--nodes 4]
Starts the test cluster with its real node and the real Trainer v2, JobSet and Kueue controllers
(tests/support/kube.py), a ClusterQueue with room for every node and a real `odin-scheduler`; then, per round, one
job whose TrainJob task waits in that queue. Times are read from watches on Kueue's Workloads and on pods.
"""

from __future__ import annotations

import argparse
import json
import ssl
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.clients import channel
from support.kube import KubeCluster, hostpath_claim, kube_cluster
from support.processes import start_service
from support.scheduler import Stub, scheduler_env, wait_job

from odin.scheduler.v1 import scheduler_pb2 as pb

IMAGE = "odin.local/python:3"


class Watch:
    """When each object of a collection first satisfied a predicate (a background watch)."""

    def __init__(self, cluster: KubeCluster, path: str, predicate: Any) -> None:
        self.seen: dict[str, float] = {}
        self.objects: dict[str, dict[str, Any]] = {}
        self._cluster, self._path, self._predicate = cluster, path, predicate
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        cluster = self._cluster
        context = ssl.create_default_context(cafile=str(cluster.ca_path))
        request = urllib.request.Request(f"{cluster.server}{self._path}?watch=1&timeoutSeconds=3600",
                                         headers={"Authorization": f"Bearer {cluster.admin_token}"})
        with urllib.request.urlopen(request, context=context, timeout=3600) as stream:
            for line in stream:
                obj = json.loads(line)["object"]
                name = obj["metadata"]["name"]
                self.objects[name] = obj
                if self._predicate(obj):
                    self.seen.setdefault(name, time.monotonic())


def admitted(workload: dict[str, Any]) -> bool:
    return any(c.get("type") == "Admitted" and c.get("status") == "True"
               for c in workload.get("status", {}).get("conditions", []))


def running(pod: dict[str, Any]) -> bool:
    return pod.get("status", {}).get("phase") == "Running"


def until(check: Any, timeout: float = 180) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise TimeoutError("the TrainJob did not get there in time")
        time.sleep(0.01)
    return result


def one_round(stub: Stub, cluster: KubeCluster, workloads: Watch, pods: Watch, nodes: int) -> tuple[float, float]:
    task = {"name": "train", "resource_type": "TrainJob", "image": IMAGE, "pull_policy": "Never",
            "command": ["python3", "-c", "import time; time.sleep(15)"], "num_workers": nodes,
            "cpu": {"requests": "100m"}}
    main_yml = json.dumps({"name": "bench-trainjob", "queue": "bench", "tasks": [task]})
    begun = time.monotonic()
    job = stub.CreateJob(pb.CreateJobRequest(inline=pb.InlinePipeline(main_yml=main_yml)), timeout=30).job
    prefix = job.name.removeprefix("jobs/")[:30]

    def admitted_at() -> float | None:
        owned = [w for w, obj in workloads.objects.items()
                 if any(o.get("name", "").startswith(prefix) for o in obj["metadata"].get("ownerReferences", []))]
        return next((workloads.seen[w] for w in owned if w in workloads.seen), None)

    admission = until(admitted_at) - begun
    all_running = until(lambda: (lambda ts: max(ts) if len(ts) == nodes else None)(
        [t for name, t in pods.seen.items() if name.startswith(prefix)])) - begun
    wait_job(stub, job.name, timeout=180)
    return admission, all_running


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, kube_cluster(Path(tmp) / "cluster", "real") as cluster:
        assert cluster.real_node is not None
        print(f"cluster with the node and the training stack ready in {cluster.timings['ready_s']:.1f} s")
        runs = cluster.real_node.hostpath_root / "runs"
        hostpath_claim(cluster, "odin-runs", runs)
        cluster.apply({"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor",
                       "metadata": {"name": "default"}})
        cluster.apply({"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ClusterQueue", "metadata": {"name": "bench"},
                       "spec": {"namespaceSelector": {}, "resourceGroups": [{
                           "coveredResources": ["cpu"],
                           "flavors": [{"name": "default", "resources": [{"name": "cpu", "nominalQuota": "2"}]}]}]}})
        cluster.apply({"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "LocalQueue",
                       "metadata": {"name": "bench", "namespace": cluster.namespace},
                       "spec": {"clusterQueue": "bench"}})
        env = scheduler_env(Path(tmp), executor="kubernetes", kubeconfig=str(cluster.scheduler_kubeconfig),
                            kube_namespace=cluster.namespace, kube_runs_claim="odin-runs", run_path=str(runs),
                            kube_cleanup="always", heartbeat_seconds="0.5")
        scheduler = start_service("scheduler", Path(tmp) / "logs", env)
        workloads = Watch(cluster, f"/apis/kueue.x-k8s.io/v1beta2/namespaces/{cluster.namespace}/workloads",
                          admitted)
        pods = Watch(cluster, f"/api/v1/namespaces/{cluster.namespace}/pods", running)
        try:
            with channel(scheduler.address) as ch:
                results = [one_round(Stub(ch), cluster, workloads, pods, args.nodes) for _ in range(args.rounds)]
        finally:
            scheduler.terminate()
        admissions, runnings = zip(*results, strict=True)
        print(f"{args.nodes}-node TrainJob, CreateJob -> Workload admitted: "
              f"median {statistics.median(admissions):.2f} s ({', '.join(f'{a:.2f}' for a in admissions)})")
        print(f"{args.nodes}-node TrainJob, CreateJob -> all pods Running: median {statistics.median(runnings):.2f} s"
              f" ({', '.join(f'{r:.2f}' for r in runnings)})")


if __name__ == "__main__":
    main()
