"""Settings of the Kubernetes executor (one frozen object, built once by the scheduler's setup)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class CleanupPolicy(StrEnum):
    """What happens to an attempt's objects once it ended (its logs are already copied to the log store)."""

    KEEP = "keep"
    DELETE_ON_SUCCESS = "on_success"
    ALWAYS = "always"


@dataclass(frozen=True)
class KubernetesConfig:
    # Empty: in-cluster service-account credentials; otherwise the kubeconfig file to use.
    kubeconfig: str = ""
    context: str = ""
    namespace: str = "default"
    cleanup: CleanupPolicy = CleanupPolicy.DELETE_ON_SUCCESS
    service_account: str = ""
    # The claim holding the scheduler's run_path: each pod mounts its job's RUN_PATH and WORK_PATH from it by subPath
    # at the same absolute paths the engine computed. Empty: pods get no shared paths.
    runs_claim: str = ""
    # TrainJob: the ClusterTrainingRuntime a task uses when it names none (Kubeflow Trainer's PyTorch runtime).
    trainjob_runtime: str = "torch-distributed"
    image_pull_secrets: tuple[str, ...] = ()
    # Added to every pod (e.g. to reach nodes dedicated to Odin); a task may add its own.
    tolerations: tuple[Mapping[str, str], ...] = ()
    # How long an attempt may sit on a problem it cannot get out of alone (ImagePullBackOff, a missing secret)
    # before it fails; Unschedulable keeps waiting, since capacity may come (an autoscaler, a finished task).
    stuck_timeout_seconds: float = 300.0
    # Grace period given to the containers of a cancelled attempt.
    delete_grace_seconds: int = 5
    watch_timeout_seconds: int = 300
    # Threads (and pooled connections) for API calls and log streams' hand-offs.
    api_threads: int = 64
    reconnect_max_seconds: float = 30.0
