"""Odin on a real node: CreateJob to the first container running, and the per-hop cost of a chain of containers.

Usage: python bench/kube_real_node.py [--rounds 5] [--chain 20]
Starts the test cluster with its real node (tests/support/kube.py + kube_node.py: containerd, runc and a kubelet in
the cluster's network namespace; images from tools/images/build.sh) and a real `odin-scheduler` with the Kubernetes
executor. Prints:
- CreateJob -> first container running: the RPC's start until the pod's container reports running or terminated
  (read from a pod watch), over `--rounds` one-task jobs;
- per hop of a `--chain`-task chain of `true` containers through Odin (CreateJob to the job's SUCCEEDED event);
- the same chain as bare pods created one after another straight through the API (no Odin): what the node itself
  costs per container; the difference is Odin's own per-hop overhead.
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


class PodWatch:
    """Records when each pod was first seen with a started (running or terminated) container, and when it ended."""

    def __init__(self, cluster: KubeCluster) -> None:
        self.started: dict[str, float] = {}
        self.ended: dict[str, float] = {}
        self._cluster = cluster
        self._changed = threading.Condition()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        cluster = self._cluster
        context = ssl.create_default_context(cafile=str(cluster.ca_path))
        url = f"{cluster.server}/api/v1/namespaces/{cluster.namespace}/pods?watch=1&timeoutSeconds=3600"
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {cluster.admin_token}"})
        with urllib.request.urlopen(request, context=context, timeout=3600) as stream:
            for line in stream:
                pod = json.loads(line)["object"]
                name, now = pod["metadata"]["name"], time.monotonic()
                states = [s.get("state", {}) for s in pod.get("status", {}).get("containerStatuses", [])]
                with self._changed:
                    if any("running" in s or "terminated" in s for s in states):
                        self.started.setdefault(name, now)
                    if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                        self.ended.setdefault(name, now)
                    self._changed.notify_all()

    def wait(self, table: dict[str, float], predicate: Any, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [name for name in table if predicate(name)]
                if found:
                    return found[0]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("no pod reached the state in time")
                self._changed.wait(remaining)


def one_task(name: str, command: list[str], depends: list[str] | None = None) -> dict[str, Any]:
    task: dict[str, Any] = {"name": name, "image": IMAGE, "pull_policy": "Never", "command": command}
    if depends:
        task["depends"] = depends
    return task


def create(stub: Stub, tasks: list[dict[str, Any]]) -> str:
    main_yml = json.dumps({"name": "bench", "tasks": tasks})
    return str(stub.CreateJob(pb.CreateJobRequest(inline=pb.InlinePipeline(main_yml=main_yml)), timeout=30).job.name)


def first_container(stub: Stub, watch: PodWatch, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        begun = time.monotonic()
        job = create(stub, [one_task("first", ["true"])])
        prefix = job.removeprefix("jobs/")
        started = watch.wait(watch.started, lambda name, p=prefix: name.startswith(p[:20]))
        times.append(watch.started[started] - begun)
        wait_job(stub, job, timeout=120)
    return times


def odin_chain(stub: Stub, length: int) -> float:
    tasks = [one_task(f"t{i}", ["true"], [f"t{i - 1}"] if i else None) for i in range(length)]
    begun = time.monotonic()
    job = create(stub, tasks)
    done = wait_job(stub, job, timeout=600)
    assert done.state == pb.Job.STATE_SUCCEEDED, done
    return (time.monotonic() - begun) / length


def bare_chain(cluster: KubeCluster, watch: PodWatch, length: int) -> float:
    begun = time.monotonic()
    for i in range(length):
        name = f"bare-{int(begun)}-{i}"
        cluster.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": cluster.namespace},
                       "spec": {"restartPolicy": "Never", "containers": [
                           {"name": "main", "image": IMAGE, "imagePullPolicy": "Never", "command": ["true"]}]}})
        watch.wait(watch.ended, lambda pod, n=name: pod == n)
        cluster.request("DELETE", f"/api/v1/namespaces/{cluster.namespace}/pods/{name}")
    return (time.monotonic() - begun) / length


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--chain", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, kube_cluster(Path(tmp) / "cluster", "real") as cluster:
        assert cluster.real_node is not None
        print(f"cluster with a real node ready in {cluster.timings['ready_s']:.1f} s")
        runs = cluster.real_node.hostpath_root / "runs"
        hostpath_claim(cluster, "odin-runs", runs)
        env = scheduler_env(Path(tmp), executor="kubernetes", kubeconfig=str(cluster.scheduler_kubeconfig),
                            kube_namespace=cluster.namespace, kube_runs_claim="odin-runs", run_path=str(runs),
                            kube_cleanup="always", heartbeat_seconds="0.5")
        scheduler = start_service("scheduler", Path(tmp) / "logs", env)
        watch = PodWatch(cluster)
        try:
            with channel(scheduler.address) as ch:
                stub = Stub(ch)
                firsts = first_container(stub, watch, args.rounds)
                print(f"CreateJob -> first container running: median {statistics.median(firsts):.2f} s, "
                      f"min {min(firsts):.2f} s, max {max(firsts):.2f} s ({args.rounds} jobs)")
                odin = odin_chain(stub, args.chain)
                bare = bare_chain(cluster, watch, args.chain)
                print(f"{args.chain}-task chain of `true` containers through Odin: {odin:.2f} s per hop")
                print(f"the same as bare pods, one after another (the node's own cost): {bare:.2f} s per hop")
                print(f"Odin's own overhead per hop: {odin - bare:.2f} s")
        finally:
            scheduler.terminate()


if __name__ == "__main__":
    main()
