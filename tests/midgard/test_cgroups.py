"""Process → pod/container from /proc/<pid>/cgroup, and pod UIDs → names and Odin jobs."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from odin_midgard.cgroups import PodRef, parse_cgroup, pod_of_process
from odin_midgard.pods import PodDirectory, attach_pods

from odin.midgard.v1 import midgard_pb2 as pb

UID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
CID = "3c9a" * 16


@pytest.mark.parametrize("text", [
    # cgroup v1, cgroupfs driver (docker / containerd)
    f"12:memory:/kubepods/burstable/pod{UID}/{CID}\n11:cpu,cpuacct:/kubepods/burstable/pod{UID}/{CID}\n",
    f"5:devices:/kubepods/pod{UID}/{CID}\n",
    # cgroup v1, systemd driver
    f"4:pids:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID.replace('-', '_')}.slice/"
    f"docker-{CID}.scope\n",
    # cgroup v2, systemd driver, containerd and cri-o
    f"0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID.replace('-', '_')}.slice/"
    f"cri-containerd-{CID}.scope\n",
    f"0::/kubepods.slice/kubepods-pod{UID.replace('-', '_')}.slice/crio-{CID}.scope\n",
    # cgroup v2, cgroupfs driver; nested under kind's node container
    f"0::/kubelet.slice/kubelet-kubepods.slice/kubepods/besteffort/pod{UID}/{CID}\n",
])
def test_pod_and_container_from_every_layout(text: str) -> None:
    assert parse_cgroup(text) == PodRef(UID, CID)


def test_a_pod_path_without_a_container_still_names_the_pod() -> None:
    assert parse_cgroup(f"0::/kubepods/besteffort/pod{UID}\n") == PodRef(UID, "")


@pytest.mark.parametrize("text", [
    "0::/user.slice/user-1000.slice/session-2.scope\n",
    "0::/\n",
    f"0::/system.slice/docker-{CID}.scope\n",
    "",
])
def test_processes_outside_kubernetes_have_no_pod(text: str) -> None:
    assert parse_cgroup(text) is None


def test_a_process_that_is_gone_has_no_pod() -> None:
    assert pod_of_process(1 << 30, Path("/proc")) is None


class FakeCoreApi:
    """Answers list_pod_for_all_namespaces like the kubernetes client, and counts calls."""

    def __init__(self, pods: list[tuple[str, str, str, dict[str, str]]]) -> None:
        self.pods = pods
        self.calls: list[str] = []

    def list_pod_for_all_namespaces(self, field_selector: str) -> Any:
        self.calls.append(field_selector)
        return SimpleNamespace(items=[
            SimpleNamespace(metadata=SimpleNamespace(uid=u, namespace=ns, name=n, labels=labels))
            for u, ns, n, labels in self.pods
        ])


def gpu_with(*pids: int) -> pb.Gpu:
    return pb.Gpu(name="nodes/n1/gpus/0", processes=[pb.GpuProcess(pid=p) for p in pids])


def fake_proc(tmp_path: Path, cgroups: dict[int, str]) -> Path:
    for pid, text in cgroups.items():
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cgroup").write_text(text)
    return tmp_path


def test_processes_get_pod_names_and_odin_jobs_from_labels(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, {10: f"0::/kubepods/pod{UID}/{CID}\n", 11: "0::/user.slice\n"})
    api = FakeCoreApi([(UID, "odin", "hello-ab12cd34--train", {"odin.job": "hello-ab12cd34", "odin.task": "train"})])
    gpus = [gpu_with(10, 11, 12)]
    attach_pods(gpus, proc, PodDirectory(api, "n1"))
    in_pod, outside, gone = gpus[0].processes
    assert (in_pod.pod_uid, in_pod.container_id, in_pod.pod_namespace, in_pod.pod_name) == (
        UID, CID, "odin", "hello-ab12cd34--train")
    assert (in_pod.job, in_pod.task) == ("jobs/hello-ab12cd34", "jobs/hello-ab12cd34/tasks/train")
    assert outside.pod_uid == "" and gone.pod_uid == ""
    assert api.calls == ["spec.nodeName=n1"]


def test_without_the_kubernetes_api_the_uid_is_kept(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, {10: f"0::/kubepods/pod{UID}/{CID}\n"})
    gpus = [gpu_with(10)]
    attach_pods(gpus, proc, None)
    assert (gpus[0].processes[0].pod_uid, gpus[0].processes[0].pod_name) == (UID, "")


def test_unknown_uids_relist_at_most_once_per_interval() -> None:
    now = [0.0]
    api = FakeCoreApi([])
    directory = PodDirectory(api, "n1", min_relist_seconds=5, clock=lambda: now[0])
    assert directory.lookup(UID) is None and directory.lookup(UID) is None
    assert len(api.calls) == 1
    api.pods = [(UID, "ns", "late-pod", {})]
    now[0] = 6.0
    assert directory.lookup(UID) is not None and directory.lookup(UID).name == "late-pod"  # type: ignore[union-attr]
    assert len(api.calls) == 2


def test_a_failing_kubernetes_api_leaves_the_uid() -> None:
    class Down:
        def list_pod_for_all_namespaces(self, field_selector: str) -> Any:
            raise ConnectionError("apiserver down")

    assert PodDirectory(Down(), "n1").lookup(UID) is None
