"""Frozen dataclasses describing a validated pipeline, plus the key vocabulary."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from odin.backoff import backoff_ceiling

from .errors import Violation
from .graph import dependents_of, topological_order

DEFAULT_PULL_POLICY = "IfNotPresent"
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
DEFAULT_RESOURCE_TYPE = "Pod"
# Distributed training kinds whose replicas get one GPU each when `num_gpus` is not given (as the original Odin
# assumed: "in multiworker mode, this is probably what we want"); `num_gpus: 0` turns it off.
GPU_BY_DEFAULT_KINDS: frozenset[str] = frozenset({"TFJob", "PyTorchJob", "ElasticJob"})

# Every spelling the original registry accepted for a submittable kind.
RESOURCE_TYPE_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "Pod": "Pod",
        "pod": "Pod",
        "Job": "Job",
        "job": "Job",
        "TFJob": "TFJob",
        "tfjob": "TFJob",
        "PyTorchJob": "PyTorchJob",
        "pytorchjob": "PyTorchJob",
        "pytjob": "PyTorchJob",
        "MPIJob": "MPIJob",
        "mpijob": "MPIJob",
        "ElasticJob": "ElasticJob",
        "elasticjob": "ElasticJob",
        "pytorchelastic": "ElasticJob",
        "TrainJob": "TrainJob",
        "trainjob": "TrainJob",
        "JobSet": "JobSet",
        "jobset": "JobSet",
    }
)
# Registered in the original for log reading only; they can never be submitted.
LOG_ONLY_RESOURCE_TYPES = frozenset({"Service", "svc", "DEPLOYMENT", "deploy"})

# Singular spellings the original accepted as aliases of the plural keys.
TASK_KEY_ALIASES: Mapping[str, str] = MappingProxyType(
    {"mount": "mounts", "secret": "secrets", "config_map": "config_maps", "ephem_volume": "ephem_volumes"}
)
TASK_KEYS: tuple[str, ...] = (
    "name",
    "image",
    "command",
    "args",
    "depends",
    "mounts",
    "secrets",
    "config_maps",
    "ephem_volumes",
    "num_gpus",
    "num_workers",
    "cpu",
    "memory",
    "security_context",
    "pull_policy",
    "node_selector",
    "resource_type",
    "inputs",
    "outputs",
    "env",
    "retries",
    "timeout",
    "queue",
    "runtime",
    "object_patch",
)
KNOWN_TASK_KEYS: frozenset[str] = frozenset(TASK_KEYS) | frozenset(TASK_KEY_ALIASES)
PIPELINE_KEYS: tuple[str, ...] = ("name", "tasks", "parallelism", "timeout", "queue")


def _empty_map() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True)
class Mount:
    name: str
    path: str
    claim: str | None = None


@dataclass(frozen=True)
class SecretMount:
    name: str
    path: str
    sub_path: str = ""
    mode: int = 0o644


@dataclass(frozen=True)
class ConfigMapMount:
    name: str
    path: str
    sub_path: str


@dataclass(frozen=True)
class EphemeralVolume:
    name: str
    medium: str
    size_limit: str | None = None
    type: str = "emptyDir"


@dataclass(frozen=True)
class Resources:
    """``limits``/``requests`` quantities; None means unset."""

    limits: str | None = None
    requests: str | None = None


@dataclass(frozen=True)
class SecurityContext:
    fs_group: int | None = None
    run_as_group: int | None = None
    run_as_user: int | None = None


@dataclass(frozen=True)
class RetryPolicy:
    """Retry ``limit`` times; delay before attempt n is ``backoff * factor**(n-1)``, capped."""

    limit: int = 0
    backoff_seconds: float = 10.0
    max_backoff_seconds: float = 300.0
    factor: float = 2.0

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        return backoff_ceiling(
            retry, initial=self.backoff_seconds, factor=self.factor, maximum=self.max_backoff_seconds
        )


@dataclass(frozen=True)
class TaskSpec:
    name: str
    image: str
    command: tuple[str, ...]
    args: tuple[str, ...] = ()
    depends: tuple[str, ...] = ()
    mounts: tuple[Mount, ...] = ()
    secrets: tuple[SecretMount, ...] = ()
    config_maps: tuple[ConfigMapMount, ...] = ()
    ephem_volumes: tuple[EphemeralVolume, ...] = ()
    num_gpus: int = 0
    num_workers: int = 1
    cpu: Resources = Resources()
    memory: Resources = Resources()
    security_context: SecurityContext | None = None
    pull_policy: str = DEFAULT_PULL_POLICY
    node_selector: Mapping[str, str] = field(default_factory=_empty_map)
    resource_type: str = DEFAULT_RESOURCE_TYPE
    inputs: tuple[str, ...] = ()
    # None means "not set". Stored as the original's key; the scheduler does not use it.
    outputs: tuple[str, ...] | Mapping[str, str] | None = None
    env: Mapping[str, str] = field(default_factory=_empty_map)
    retries: RetryPolicy = RetryPolicy()
    timeout_seconds: float | None = None
    # Kueue LocalQueue for the task's object (`kueue.x-k8s.io/queue-name`); the pipeline's `queue` when unset.
    queue: str | None = None
    # TrainJob: the ClusterTrainingRuntime to use; None: the executor's default.
    runtime: str | None = None
    # A JSON merge patch (RFC 7386) of the object's `spec` as Odin builds it: fields Odin does not map.
    object_patch: Mapping[str, Any] | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    tasks: tuple[TaskSpec, ...]
    parallelism: int | None = None
    timeout_seconds: float | None = None
    warnings: tuple[Violation, ...] = ()
    queue: str | None = None

    def task(self, name: str) -> TaskSpec:
        """The task called ``name``; KeyError when there is none."""
        for task in self.tasks:
            if task.name == name:
                return task
        raise KeyError(name)

    def task_names(self) -> list[str]:
        return [task.name for task in self.tasks]

    def _depends(self) -> dict[str, tuple[str, ...]]:
        return {task.name: task.depends for task in self.tasks}

    def topological_order(self) -> list[str]:
        """Task names so each follows its dependencies; ties keep pipeline order."""
        return topological_order(self.task_names(), self._depends())

    def dependents(self) -> dict[str, tuple[str, ...]]:
        """For each task, the tasks that depend on it directly (pipeline order)."""
        return dependents_of(self.task_names(), self._depends())
