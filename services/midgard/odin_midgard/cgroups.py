"""Finds the Kubernetes pod and container of a process from its `/proc/<pid>/cgroup`.

The kubelet places every container under a `kubepods` cgroup whose path names the pod UID and
the container id. Both cgroup drivers and both cgroup versions are understood:

    cgroupfs, v1:  11:memory:/kubepods/burstable/pod<uid>/<container-id>
    systemd,  v2:  0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_with_underscores>.slice/
                   cri-containerd-<container-id>.scope
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

_POD_UID = re.compile(r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})(?:\.slice)?$")
_CONTAINER_ID = re.compile(r"^(?:[a-z-]+-)?([0-9a-f]{64})(?:\.scope)?$")


@dataclasses.dataclass(frozen=True)
class PodRef:
    """A pod by UID, and the container inside it (empty when the path does not name one)."""

    pod_uid: str
    container_id: str


def parse_cgroup(text: str) -> PodRef | None:
    """The pod of the first kubepods path in a `/proc/<pid>/cgroup` file, or None outside Kubernetes."""
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        if "kubepods" in path and (ref := _parse_path(path)):
            return ref
    return None


def _parse_path(path: str) -> PodRef | None:
    uid = ""
    container = ""
    for part in path.strip("/").split("/"):
        if match := _POD_UID.search(part):
            uid = match.group(1).replace("_", "-")
        elif uid and (found := _CONTAINER_ID.match(part)):
            container = found.group(1)
    return PodRef(uid, container) if uid else None


def pod_of_process(pid: int, proc_path: Path) -> PodRef | None:
    """The pod of process `pid`, or None when it is not in a pod or has exited."""
    try:
        return parse_cgroup((proc_path / str(pid) / "cgroup").read_text())
    except OSError:
        return None
