"""Kubernetes objects -> where a task stands, with a reason a user can act on.

Pure functions over the cached objects (dicts), so every mapping is testable without a cluster.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from odin_scheduler.executor.kubernetes.podspec import GPU_RESOURCE

Obj = Mapping[str, Any]

# Waiting reasons a pod does not get out of by itself: after a while the attempt fails rather than hang.
STUCK_REASONS = frozenset({"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull",
                           "CreateContainerConfigError", "CreateContainerError"})
_NORMAL_WAITING = frozenset({"ContainerCreating", "PodInitializing"})


class Phase(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class Status:
    phase: Phase
    reason: str = ""
    message: str = ""
    exit_code: int | None = None
    stuck: bool = False
    # Delete the object whatever the cleanup policy (a preempted job must not be re-admitted behind Odin's retry).
    discard: bool = False

    @property
    def done(self) -> bool:
        return self.phase in (Phase.SUCCEEDED, Phase.FAILED)


PENDING = Status(Phase.PENDING)


def pod_status(pod: Obj) -> Status:
    status = pod.get("status") or {}
    phase = status.get("phase", "Pending")
    if phase == "Succeeded":
        return Status(Phase.SUCCEEDED, exit_code=0)
    if phase == "Failed":
        return pod_failure(pod)
    waiting = _waiting(status)
    if waiting is not None:
        reason, message = waiting
        running = phase == "Running"  # CrashLoopBackOff: it started, and keeps dying
        return Status(Phase.RUNNING if running else Phase.PENDING, reason, message, stuck=reason in STUCK_REASONS)
    if phase == "Running":
        return Status(Phase.RUNNING)
    return _unscheduled(status) or PENDING


def pod_failure(pod: Obj) -> Status:
    """Why a Failed pod failed: the pod's own reason (DeadlineExceeded, Evicted) or its first failed container's."""
    status = pod.get("status") or {}
    for state in _container_states(status):
        terminated = state.get("terminated") or {}
        code = terminated.get("exitCode")
        if code not in (None, 0):
            container_reason = terminated.get("reason") or "Error"
            reason = "OOMKilled" if container_reason == "OOMKilled" else "NonZeroExit"
            # terminated.message is the outputs file ($ODIN_OUTPUTS), not an error text: it is not repeated here.
            message = f"container {state.get('name')} exited with status {code} ({container_reason})"
            return Status(Phase.FAILED, reason, message, exit_code=int(code))
    reason = status.get("reason") or "PodFailed"
    return Status(Phase.FAILED, reason, status.get("message") or f"the pod failed ({reason})")


def job_status(job: Obj, pods: Sequence[Obj]) -> Status:
    """batch/v1 Job: its conditions decide; its pods explain."""
    conditions = _true_conditions(job)
    if "Complete" in conditions:
        return Status(Phase.SUCCEEDED, exit_code=0)
    if "Failed" in conditions:
        return _failed_with_pods(conditions["Failed"], pods, default_reason="JobFailed")
    return pods_progress(pods)


def training_job_status(job: Obj, pods: Sequence[Obj]) -> Status:
    """Kubeflow training jobs (TFJob, PyTorchJob, MPIJob): conditions Created/Running/Succeeded/Failed."""
    conditions = _true_conditions(job)
    if "Succeeded" in conditions:
        return Status(Phase.SUCCEEDED, exit_code=0)
    if "Failed" in conditions:
        return _failed_with_pods(conditions["Failed"], pods, default_reason="TrainingJobFailed")
    progress = pods_progress(pods)
    if "Running" in conditions and progress.phase == Phase.PENDING and not progress.reason:
        return Status(Phase.RUNNING)
    return progress


def jobset_status(obj: Obj, pods: Sequence[Obj], *, complete: str = "Completed") -> Status:
    """JobSet (`Completed`) and TrainJob (`Complete`): conditions decide; a suspended one waits (for Kueue)."""
    conditions = _true_conditions(obj)
    if complete in conditions:
        return Status(Phase.SUCCEEDED, exit_code=0)
    if "Failed" in conditions:
        return _failed_with_pods(conditions["Failed"], pods, default_reason=f"{obj.get('kind', 'JobSet')}Failed")
    if "Suspended" in conditions:
        message = conditions["Suspended"].get("message") or "suspended"
        return Status(Phase.PENDING, "Suspended", message)
    progress = pods_progress(pods)
    jobs = (obj.get("status") or {}).get("replicatedJobsStatus") or (obj.get("status") or {}).get("jobsStatus") or []
    if progress.phase == Phase.PENDING and not progress.reason and any(j.get("active") for j in jobs):
        return Status(Phase.RUNNING)
    return progress


def pods_progress(pods: Sequence[Obj]) -> Status:
    """Where a group of pods stands while their owner has not ended: the most telling problem first."""
    statuses = [pod_status(pod) for pod in pods]
    problems = [s for s in statuses if s.reason and not s.done]
    problems.sort(key=lambda s: not s.stuck)  # stuck first: it will not fix itself
    if problems:
        return problems[0]
    if any(s.phase == Phase.RUNNING for s in statuses):
        return Status(Phase.RUNNING)
    return PENDING


def _failed_with_pods(condition: Obj, pods: Sequence[Obj], default_reason: str) -> Status:
    reason = condition.get("reason") or default_reason
    message = condition.get("message") or reason
    for pod in pods:
        if (pod.get("status") or {}).get("phase") == "Failed":
            detail = pod_failure(pod)
            if reason in ("BackoffLimitExceeded", "PodFailurePolicy", default_reason) or reason.endswith("Failed"):
                reason = detail.reason
            return Status(Phase.FAILED, reason, f"{message}; {detail.message}", detail.exit_code)
    return Status(Phase.FAILED, reason, message)


def _true_conditions(obj: Obj) -> dict[str, Obj]:
    conditions: Iterable[Obj] = (obj.get("status") or {}).get("conditions") or []
    return {c["type"]: c for c in conditions if c.get("status") == "True"}


def _container_states(status: Obj) -> list[dict[str, Any]]:
    found = []
    for key in ("initContainerStatuses", "containerStatuses"):
        for container in status.get(key) or []:
            found.append({"name": container.get("name"), **(container.get("state") or {})})
    return found


def _waiting(status: Obj) -> tuple[str, str] | None:
    for state in _container_states(status):
        waiting = state.get("waiting") or {}
        reason = waiting.get("reason")
        if reason and reason not in _NORMAL_WAITING:
            return reason, waiting.get("message") or f"container {state.get('name')} is waiting: {reason}"
    return None


def _unscheduled(status: Obj) -> Status | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            if condition.get("reason") == "SchedulingGated":  # e.g. Kueue's gate until the pod is admitted
                return Status(Phase.PENDING, "SchedulingGated", condition.get("message") or "scheduling gated")
            message = condition.get("message") or "no node can run the pod"
            reason = "InsufficientGPU" if f"Insufficient {GPU_RESOURCE}" in message else "Unschedulable"
            return Status(Phase.PENDING, reason, message)
    return None


def queue_status(workload: Obj | None, queue: str) -> Status:
    """Where a Kueue Workload stands, for an attempt whose object is suspended (or not yet running)."""
    if workload is None:
        return Status(Phase.PENDING, "Queued", f"waiting for Kueue to take the job into LocalQueue {queue}")
    conditions = {c.get("type"): c for c in (workload.get("status") or {}).get("conditions") or []}
    evicted = conditions.get("Evicted") or {}
    if evicted.get("status") == "True":
        reason = evicted.get("reason") or "Evicted"
        message = evicted.get("message") or "the workload was evicted"
        return Status(Phase.FAILED, "Preempted" if reason == "Preempted" else f"Evicted{reason}",
                      f"Kueue evicted the job ({reason}): {message}", discard=True)
    admitted, reserved = conditions.get("Admitted") or {}, conditions.get("QuotaReserved") or {}
    if admitted.get("status") == "True":
        return Status(Phase.PENDING, "Admitted", "admitted by Kueue; starting")
    if reserved.get("status") == "True":
        return Status(Phase.PENDING, "QuotaReserved", "quota reserved; waiting for admission checks")
    if not reserved:  # Kueue has not looked at it yet
        return Status(Phase.PENDING, "Queued", f"in LocalQueue {queue}, not yet considered by Kueue")
    detail = reserved.get("message") or reserved.get("reason") or "no quota reserved yet"
    return Status(Phase.PENDING, "WaitingForQuota", f"waiting for quota in LocalQueue {queue}: {detail}")
