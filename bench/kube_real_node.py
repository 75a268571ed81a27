"""Odin on a real node: CreateJob to the first container running, and the per-hop cost of a chain of containers.

Usage: python bench/kube_real_node.py [--rounds 5] [--chain 20]
Starts the test cluster with its real node (tests/support/kube.py + kube_node.py: containerd, runc and a kubelet in
the cluster's network namespace; images from tools/images/build.sh) and a real `odin-scheduler` with the Kubernetes
executor (bench/real_node_kit.py). Prints:
- CreateJob -> first container running: the RPC's start until the pod's container reports running or terminated
  (read from a pod watch), over `--rounds` one-task jobs;
- per hop of a `--chain`-task chain of `true` containers through Odin (CreateJob to the job's SUCCEEDED event);
- the same chain as bare pods created one after another straight through the API (no Odin): what the node itself
  costs per container; the difference is Odin's own per-hop overhead.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from real_node_kit import Obj, ObjectWatch, scheduler_on_real_node
from support.kube import KubeCluster
from support.scheduler import Stub, wait_job

from odin.scheduler.v1 import scheduler_pb2 as pb

IMAGE = "odin.local/python:3"


def started(pod: Obj) -> bool:
    states = [s.get("state", {}) for s in pod.get("status", {}).get("containerStatuses", [])]
    return any("running" in s or "terminated" in s for s in states)


def ended(pod: Obj) -> bool:
    return pod.get("status", {}).get("phase") in ("Succeeded", "Failed")


def one_task(name: str, command: list[str], depends: list[str] | None = None) -> dict[str, Any]:
    task: dict[str, Any] = {"name": name, "image": IMAGE, "pull_policy": "Never", "command": command}
    if depends:
        task["depends"] = depends
    return task


def create(stub: Stub, tasks: list[dict[str, Any]]) -> str:
    main_yml = json.dumps({"name": "bench", "tasks": tasks})
    return str(stub.CreateJob(pb.CreateJobRequest(inline=pb.InlinePipeline(main_yml=main_yml)), timeout=30).job.name)


def first_container(stub: Stub, pods: ObjectWatch, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        begun = time.monotonic()
        job = create(stub, [one_task("first", ["true"])])
        prefix = job.removeprefix("jobs/")[:20]
        times.append(pods.wait("started", lambda name, p=prefix: name.startswith(p)) - begun)
        wait_job(stub, job, timeout=120)
    return times


def odin_chain(stub: Stub, length: int) -> float:
    tasks = [one_task(f"t{i}", ["true"], [f"t{i - 1}"] if i else None) for i in range(length)]
    begun = time.monotonic()
    job = create(stub, tasks)
    done = wait_job(stub, job, timeout=600)
    assert done.state == pb.Job.STATE_SUCCEEDED, done
    return (time.monotonic() - begun) / length


def bare_chain(cluster: KubeCluster, pods: ObjectWatch, length: int) -> float:
    begun = time.monotonic()
    for i in range(length):
        name = f"bare-{int(begun)}-{i}"
        cluster.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": cluster.namespace},
                       "spec": {"restartPolicy": "Never", "containers": [
                           {"name": "main", "image": IMAGE, "imagePullPolicy": "Never", "command": ["true"]}]}})
        pods.wait("ended", lambda pod, n=name: pod == n)
        cluster.request("DELETE", f"/api/v1/namespaces/{cluster.namespace}/pods/{name}")
    return (time.monotonic() - begun) / length


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--chain", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, scheduler_on_real_node(Path(tmp)) as (cluster, stub):
        pods = ObjectWatch(cluster, f"/api/v1/namespaces/{cluster.namespace}/pods", started=started, ended=ended)
        firsts = first_container(stub, pods, args.rounds)
        print(f"CreateJob -> first container running: median {statistics.median(firsts):.2f} s, "
              f"min {min(firsts):.2f} s, max {max(firsts):.2f} s ({args.rounds} jobs)")
        odin = odin_chain(stub, args.chain)
        bare = bare_chain(cluster, pods, args.chain)
        print(f"{args.chain}-task chain of `true` containers through Odin: {odin:.2f} s per hop")
        print(f"the same as bare pods, one after another (the node's own cost): {bare:.2f} s per hop")
        print(f"Odin's own overhead per hop: {odin - bare:.2f} s")


if __name__ == "__main__":
    main()
