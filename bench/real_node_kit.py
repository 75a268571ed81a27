"""What the real-node benchmarks share: the test cluster with its real node and a real `odin-scheduler` on it, and a
watch that records when objects first reached a state."""

from __future__ import annotations

import json
import ssl
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.clients import channel
from support.kube import KubeCluster, hostpath_claim, kube_cluster
from support.processes import start_service
from support.scheduler import Stub, scheduler_env

Obj = dict[str, Any]


@contextmanager
def scheduler_on_real_node(tmp: Path) -> Iterator[tuple[KubeCluster, Stub]]:
    """The cluster with its real node and training stack, and a scheduler (Kubernetes executor, runs claim mounted
    into every pod, cleanup `always`) reached through a stub."""
    with kube_cluster(tmp / "cluster", "real") as cluster:
        assert cluster.real_node is not None
        print(f"cluster with the real node and its controllers ready in {cluster.timings['ready_s']:.1f} s")
        runs = cluster.real_node.hostpath_root / "runs"
        hostpath_claim(cluster, "odin-runs", runs)
        env = scheduler_env(tmp, executor="kubernetes", kubeconfig=str(cluster.scheduler_kubeconfig),
                            kube_namespace=cluster.namespace, kube_runs_claim="odin-runs", run_path=str(runs),
                            kube_cleanup="always", heartbeat_seconds="0.5")
        scheduler = start_service("scheduler", tmp / "logs", env)
        try:
            with channel(scheduler.address) as ch:
                yield cluster, Stub(ch)
        finally:
            scheduler.terminate()


class ObjectWatch:
    """A background watch of one collection: the latest of each object, and when each first met each named state."""

    def __init__(self, cluster: KubeCluster, path: str, **states: Callable[[Obj], bool]) -> None:
        self.objects: dict[str, Obj] = {}
        self.first: dict[str, dict[str, float]] = {state: {} for state in states}
        self._states = states
        self._changed = threading.Condition()
        threading.Thread(target=self._run, args=(cluster, path), daemon=True).start()

    def _run(self, cluster: KubeCluster, path: str) -> None:
        context = ssl.create_default_context(cafile=str(cluster.ca_path))
        request = urllib.request.Request(f"{cluster.server}{path}?watch=1&timeoutSeconds=3600",
                                         headers={"Authorization": f"Bearer {cluster.admin_token}"})
        with urllib.request.urlopen(request, context=context, timeout=3600) as stream:
            for line in stream:
                obj, now = json.loads(line)["object"], time.monotonic()
                name = obj["metadata"]["name"]
                with self._changed:
                    self.objects[name] = obj
                    for state, reached in self._states.items():
                        if reached(obj):
                            self.first[state].setdefault(name, now)
                    self._changed.notify_all()

    def wait(self, state: str, which: Callable[[str], bool], count: int = 1, timeout: float = 180) -> float:
        """When the `count`-th object `which` accepts reached `state` (monotonic seconds)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                times = sorted(t for name, t in self.first[state].items() if which(name))
                if len(times) >= count:
                    return times[count - 1]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{count} object(s) did not reach {state} in time")
                self._changed.wait(remaining)
