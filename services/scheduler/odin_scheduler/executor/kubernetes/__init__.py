"""The Kubernetes executor: tasks as Pods, Jobs and Kubeflow training jobs, followed through watches."""

from odin_scheduler.executor.kubernetes.config import CleanupPolicy, KubernetesConfig
from odin_scheduler.executor.kubernetes.executor import KubernetesExecutor

__all__ = ["CleanupPolicy", "KubernetesConfig", "KubernetesExecutor"]
