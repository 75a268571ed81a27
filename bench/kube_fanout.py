"""Fan-out of single-pod tasks through the Kubernetes executor on the kwok test cluster.

Usage: python bench/kube_fanout.py [--tasks 1000] [--concurrency 64]
Starts the test cluster (tests/support/kube.py; binaries from tools/kube/build.sh), then starts N Pod tasks and
waits for all of them, as the scheduler would. Prints: time until all Succeeded, tasks per minute, apiserver
requests per task (the executor's calls, watches included) and the executor's CPU time.
Anchor (issue 7): Argo Workflows, 270 workflows/min on a 50-node EKS cluster; goal >= 1,000 tasks/min here.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from odin_scheduler.executor.base import TaskRun
from odin_scheduler.executor.kubernetes import CleanupPolicy, KubernetesConfig, KubernetesExecutor
from support.kube import kube_cluster

from odin.pipeline_spec.model import TaskSpec


async def fan_out(kubeconfig: Path, namespace: str, tasks: int, concurrency: int, work: Path) -> None:
    spec = TaskSpec(name="fan", image="busybox", command=("true",), env={"KWOK_RUN_DURATION": "100ms"})
    config = KubernetesConfig(kubeconfig=str(kubeconfig), namespace=namespace, cleanup=CleanupPolicy.ALWAYS)
    executor = KubernetesExecutor(config, spec_of=lambda run: spec)
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> bool:
        run = TaskRun(job_id="bench", task=f"t{i}", task_id=f"bench--t{i}", attempt=1, command=(), args=(),
                      image="busybox", resource_type="Pod", cwd=work, attempt_dir=work / f"t{i}")
        async with gate:
            handle = await executor.start(run)
        return (await executor.wait(run, handle)).succeeded

    cpu0, wall0 = time.process_time(), time.monotonic()
    results = await asyncio.gather(*(one(i) for i in range(tasks)))
    wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
    requests = executor.api.requests
    await executor.close()
    print(f"tasks: {tasks}, succeeded: {sum(results)}")
    print(f"time until all succeeded: {wall:.1f} s  ({tasks / wall * 60:.0f} tasks/min)")
    print(f"apiserver requests per task: {requests / tasks:.2f}  (total {requests})")
    print(f"executor CPU: {cpu:.1f} s  ({cpu / tasks * 1000:.1f} ms per task)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, kube_cluster(Path(tmp) / "cluster") as cluster:
        print(f"cluster ready in {cluster.timings['ready_s']:.1f} s")
        asyncio.run(fan_out(cluster.kubeconfig, cluster.namespace, args.tasks, args.concurrency, Path(tmp) / "runs"))


if __name__ == "__main__":
    main()
