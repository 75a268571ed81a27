"""Names and labels of the objects Odin creates: deterministic, valid Kubernetes names, findable by label."""

from __future__ import annotations

import hashlib
import re

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "odin"
LABEL_JOB = "odin.job"
LABEL_TASK = "odin.task"
LABEL_OWNER = "odin.owner"
LABEL_ATTEMPT = "odin.attempt"
# Every pod of an attempt (the pod itself, a Job's pods, a training job's workers) carries the attempt's object name.
LABEL_RUN = "odin.run"
ANNOTATION_TASK_ID = "odin.task-id"
ANNOTATION_JOB_ID = "odin.job-id"

# Leaves room for suffixes controllers add to child pod names (`-worker-12`, Job's `-x7k2p`) within 63 characters.
MAX_NAME = 47
_INVALID = re.compile(r"[^a-z0-9-]+")
_INVALID_VALUE = re.compile(r"[^A-Za-z0-9_.-]+")


def object_name(job_id: str, task: str, attempt: int) -> str:
    """`<job>-<task>-<attempt>` as a DNS-1123 label; a long or altered name ends in a hash of the original,
    so two different tasks never share a name."""
    raw = f"{job_id}-{task}-{attempt}"
    clean = _INVALID.sub("-", raw.lower()).strip("-")
    clean = re.sub("-{2,}", "-", clean)
    if clean == raw and len(clean) <= MAX_NAME and clean[:1].isalpha():
        return clean
    digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
    head = clean[: MAX_NAME - len(digest) - 1].strip("-")
    if not head[:1].isalpha():
        head = ("t-" + head)[: MAX_NAME - len(digest) - 1].strip("-")
    return f"{head}-{digest}"


def label_value(value: str) -> str:
    """A valid label value (63 chars, alphanumeric ends); the full value is kept in an annotation where it matters."""
    clean = _INVALID_VALUE.sub("-", value)[:63]
    return clean.strip("-_.")


def labels_for(job_id: str, task: str, owner: str, attempt: int, run_name: str) -> dict[str, str]:
    return {
        MANAGED_BY: MANAGER,
        LABEL_JOB: label_value(job_id),
        LABEL_TASK: label_value(task),
        LABEL_OWNER: label_value(owner),
        LABEL_ATTEMPT: str(attempt),
        LABEL_RUN: run_name,
    }


def managed_selector() -> str:
    return f"{MANAGED_BY}={MANAGER}"
