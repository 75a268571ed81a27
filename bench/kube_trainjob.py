"""A 4-node TrainJob through Odin and Kueue on the real test node: CreateJob to Workload admitted, and to all pods
Running.

Usage: python bench/kube_trainjob.py [--rounds 3] [--nodes 4]
Starts the test cluster with its real node and the real Trainer v2, JobSet and Kueue controllers
(tests/support/kube.py), a ClusterQueue with room for every node and a real `odin-scheduler`
(bench/real_node_kit.py); then, per round, one job whose TrainJob task waits in that queue. Times are read from
watches on Kueue's Workloads and on pods.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from real_node_kit import Obj, ObjectWatch, scheduler_on_real_node
from support.kube import KubeCluster
from support.scheduler import Stub, wait_job

from odin.scheduler.v1 import scheduler_pb2 as pb

IMAGE = "odin.local/python:3"


def admitted(workload: Obj) -> bool:
    return any(c.get("type") == "Admitted" and c.get("status") == "True"
               for c in workload.get("status", {}).get("conditions", []))


def running(pod: Obj) -> bool:
    return pod.get("status", {}).get("phase") == "Running"


def queue(cluster: KubeCluster) -> None:
    """ClusterQueue and LocalQueue `bench` with 2 CPUs of quota in flavor `default`."""
    cluster.apply({"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor", "metadata": {"name": "default"}})
    cluster.apply({"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ClusterQueue", "metadata": {"name": "bench"},
                   "spec": {"namespaceSelector": {}, "resourceGroups": [{
                       "coveredResources": ["cpu"],
                       "flavors": [{"name": "default", "resources": [{"name": "cpu", "nominalQuota": "2"}]}]}]}})
    cluster.apply({"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "LocalQueue",
                   "metadata": {"name": "bench", "namespace": cluster.namespace}, "spec": {"clusterQueue": "bench"}})


def one_round(stub: Stub, workloads: ObjectWatch, pods: ObjectWatch, nodes: int) -> tuple[float, float]:
    task = {"name": "train", "resource_type": "TrainJob", "image": IMAGE, "pull_policy": "Never",
            "command": ["python3", "-c", "import time; time.sleep(15)"], "num_workers": nodes,
            "cpu": {"requests": "100m"}}
    main_yml = json.dumps({"name": "bench-trainjob", "queue": "bench", "tasks": [task]})
    begun = time.monotonic()
    job = stub.CreateJob(pb.CreateJobRequest(inline=pb.InlinePipeline(main_yml=main_yml)), timeout=30).job
    prefix = job.name.removeprefix("jobs/")[:30]

    def owned(workload: str) -> bool:
        refs = workloads.objects.get(workload, {}).get("metadata", {}).get("ownerReferences", [])
        return any(ref.get("name", "").startswith(prefix) for ref in refs)

    admission = workloads.wait("admitted", owned) - begun
    all_running = pods.wait("running", lambda name: name.startswith(prefix), count=nodes) - begun
    wait_job(stub, job.name, timeout=180)
    return admission, all_running


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, scheduler_on_real_node(Path(tmp)) as (cluster, stub):
        queue(cluster)
        ns = cluster.namespace
        workloads = ObjectWatch(cluster, f"/apis/kueue.x-k8s.io/v1beta2/namespaces/{ns}/workloads", admitted=admitted)
        pods = ObjectWatch(cluster, f"/api/v1/namespaces/{ns}/pods", running=running)
        results = [one_round(stub, workloads, pods, args.nodes) for _ in range(args.rounds)]
    admissions, runnings = zip(*results, strict=True)
    print(f"{args.nodes}-node TrainJob, CreateJob -> Workload admitted: "
          f"median {statistics.median(admissions):.2f} s ({', '.join(f'{a:.2f}' for a in admissions)})")
    print(f"{args.nodes}-node TrainJob, CreateJob -> all pods Running: "
          f"median {statistics.median(runnings):.2f} s ({', '.join(f'{r:.2f}' for r in runnings)})")


if __name__ == "__main__":
    main()
