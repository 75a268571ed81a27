"""`odin-scheduler`: runs the scheduler service."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from pathlib import Path

from odin.pipeline_spec.render_pool import RenderLimits, RenderPool
from odin.runtime.auth import ProjectRole, Rule, authenticated_channel
from odin.runtime.config import ConfigError
from odin.runtime.server import ServerConfig, ServiceRuntime, serve_main
from odin.runtime.tokens import Role
from odin.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc
from odin_scheduler.engine import Engine, EngineConfig
from odin_scheduler.executor.base import Executor
from odin_scheduler.paths import Layout
from odin_scheduler.service import Scheduler
from odin_scheduler.store import Store, open_store
from odin_scheduler.watch import EventHub

# The least role each RPC needs in the job's project (service.py checks it once it knows the project; a
# non-member gets JOB_NOT_FOUND). Users change only their own jobs; project admins any.
ROLES: dict[str, Rule] = {
    "GetJob": ProjectRole(Role.VIEWER),
    "ListJobs": ProjectRole(Role.VIEWER),
    "GetTask": ProjectRole(Role.VIEWER),
    "ListTasks": ProjectRole(Role.VIEWER),
    "ListJobEvents": ProjectRole(Role.VIEWER),
    "WatchJob": ProjectRole(Role.VIEWER),
    "WatchJobs": ProjectRole(Role.VIEWER),
    "StreamTaskLogs": ProjectRole(Role.VIEWER),
    "ListTaskClusterEvents": ProjectRole(Role.VIEWER),
    "CreateJob": ProjectRole(Role.USER),
    "CancelJob": ProjectRole(Role.USER),
    "RetryJob": ProjectRole(Role.USER),
    "DeleteJob": ProjectRole(Role.USER),
}


@dataclasses.dataclass(frozen=True)
class SchedulerConfig(ServerConfig):
    """Scheduler settings (environment: ODIN_SCHEDULER_<KEY>)."""

    # `sqlite:///relative.db`, `sqlite:////absolute.db` or `postgresql://user@host:port/db`.
    store_url: str = ""
    # Root of the files tasks see: every job's workspace (${RUN_PATH}) and pipeline files (${WORK_PATH}).
    run_path: Path = Path()
    # The scheduler's own files (attempt logs, exit codes); never mounted into a task. Empty: `<run_path>-state`.
    state_path: str = ""
    # The pipelines service (host:port) that resolves PipelineRef sources; empty: inline pipelines only.
    pipelines_address: str = ""
    # `local` (host processes), `kubernetes` (Pods, Jobs, training jobs) or `instant` (no processes; benchmarks).
    executor: str = "local"
    # kubernetes: the kubeconfig file to use; empty: the pod's in-cluster service account.
    kubeconfig: str = ""
    # kubernetes: the namespace every task's objects are created in.
    kube_namespace: str = "default"
    # kubernetes: what happens to an attempt's objects once it ended: keep, on_success (delete) or always (delete).
    kube_cleanup: str = "on_success"
    # kubernetes: the service account task pods run as; empty: the namespace's default.
    kube_service_account: str = ""
    # kubernetes: the PersistentVolumeClaim (in kube_namespace) holding run_path's files; each task pod mounts its
    # job's ${RUN_PATH} (read-write) and ${WORK_PATH} (read-only) from it. Empty: no shared paths in pods.
    kube_runs_claim: str = ""
    # kubernetes: the ClusterTrainingRuntime a TrainJob task uses when it names none.
    kube_trainjob_runtime: str = "torch-distributed"
    # The most task attempts running at once across all jobs.
    max_parallel_tasks: int = 64
    # Seconds between SIGTERM and SIGKILL when a task's process group is stopped.
    kill_grace_seconds: float = 5.0
    # local: the user tasks run as when the scheduler runs as root (never root; empty: root, with a warning).
    local_task_user: str = "nobody"
    # Seconds of quiet after which watch streams send a heartbeat.
    heartbeat_seconds: float = 10.0
    # StreamTaskLogs serves at most the last this many bytes of an attempt's log.
    max_log_bytes: int = 1 << 30
    # Inline templates (main.yml with parameters) render in worker processes killed past these limits.
    max_render_seconds: float = 5.0
    max_render_memory_bytes: int = 512 * 1024 * 1024
    # The most a rendered main.yml may hold.
    max_rendered_bytes: int = 1024 * 1024
    # Worker processes rendering templates at once.
    render_workers: int = 2


def make_executor(config: SchedulerConfig) -> tuple[Executor, str | None]:
    """The executor and the resource type its tasks are recorded with (None: the spec's)."""
    if config.executor == "local":
        from odin_scheduler.executor.local import LocalExecutor

        return LocalExecutor(config.kill_grace_seconds, config.local_task_user), "Process"
    if config.executor == "instant":
        from odin_scheduler.executor.instant import InstantExecutor

        return InstantExecutor(), "Process"
    if config.executor == "kubernetes":
        return _kubernetes_executor(config), None  # each task's own resource_type (Pod, Job, PyTorchJob, ...)
    raise ConfigError(f"ODIN_SCHEDULER_EXECUTOR: unknown executor {config.executor!r} (use local, kubernetes "
                      "or instant)")


def _kubernetes_executor(config: SchedulerConfig) -> Executor:
    from odin_scheduler.executor.kubernetes import CleanupPolicy, KubernetesConfig, KubernetesExecutor

    try:
        cleanup = CleanupPolicy(config.kube_cleanup)
    except ValueError:
        choices = ", ".join(p.value for p in CleanupPolicy)
        raise ConfigError(f"ODIN_SCHEDULER_KUBE_CLEANUP: {config.kube_cleanup!r} is not one of {choices}") from None
    if config.kubeconfig and not Path(config.kubeconfig).is_file():
        raise ConfigError(f"ODIN_SCHEDULER_KUBECONFIG: no such file {config.kubeconfig}")
    settings = KubernetesConfig(kubeconfig=config.kubeconfig, namespace=config.kube_namespace, cleanup=cleanup,
                                service_account=config.kube_service_account, runs_claim=config.kube_runs_claim,
                                trainjob_runtime=config.kube_trainjob_runtime)
    try:
        return KubernetesExecutor(settings)
    except Exception as exc:  # a kubeconfig the client cannot use, no in-cluster credentials
        raise ConfigError(f"the Kubernetes executor cannot load its credentials: {exc}") from None


def check(config: SchedulerConfig) -> None:
    if not config.store_url:
        raise ConfigError("missing required configuration ODIN_SCHEDULER_STORE_URL (or `store_url` in the file)")
    if config.run_path == Path():
        raise ConfigError("missing required configuration ODIN_SCHEDULER_RUN_PATH (or `run_path` in the file)")


def layout_of(config: SchedulerConfig) -> Layout:
    """Where task data (run_path) and the scheduler's bookkeeping (state_path) live, as absolute paths."""
    return Layout(config.run_path.resolve(), Path(config.state_path).resolve() if config.state_path else None)


async def setup(config: SchedulerConfig, runtime: ServiceRuntime) -> None:
    from odin_scheduler.servicer import SchedulerServicer
    from odin_scheduler.sources import PipelineSources

    check(config)
    executor, resource_type = make_executor(config)
    try:
        store: Store = open_store(config.store_url)
    except ValueError as exc:
        raise ConfigError(f"ODIN_SCHEDULER_STORE_URL: {exc}") from None
    await store.open()
    layout = layout_of(config)
    engine = Engine(store, executor, layout, EngineConfig(max_parallel_tasks=config.max_parallel_tasks))
    hub = EventHub(store)
    await hub.start()
    await engine.start()
    protected = frozenset({config.kube_runs_claim} - {""}) if config.executor == "kubernetes" else frozenset()
    scheduler = Scheduler(store, engine, hub, layout, resource_type=resource_type,
                          heartbeat_seconds=config.heartbeat_seconds, stopping=runtime.stopping,
                          max_log_bytes=config.max_log_bytes, protected_claims=protected)  # fmt: skip
    renderer = RenderPool(RenderLimits(config.max_rendered_bytes, config.max_render_seconds,
                                       config.max_render_memory_bytes), workers=config.render_workers)  # fmt: skip
    await asyncio.to_thread(renderer.warm_up)  # the first job with parameters does not wait for the workers
    sources = PipelineSources(config.pipelines_address, lambda address: authenticated_channel(address, config),
                              renderer.render)  # fmt: skip
    close_hub_on_stop = asyncio.create_task(_close_when(runtime.stopping, hub))

    async def cleanup() -> None:
        close_hub_on_stop.cancel()
        await hub.close()
        await engine.stop()
        await executor.close()
        await sources.close()
        await store.close()
        renderer.close()

    runtime.on_stop(cleanup)
    runtime.add_dependency_check("store", store.ping)
    name = scheduler_pb2.DESCRIPTOR.services_by_name["SchedulerService"].full_name
    runtime.add_service(name, scheduler_pb2_grpc.add_SchedulerServiceServicer_to_server,
                        SchedulerServicer(scheduler, sources), roles=ROLES)  # fmt: skip


async def _close_when(stopping: asyncio.Event, hub: EventHub) -> None:
    """Streams end cleanly on shutdown: closing the hub wakes every watcher."""
    await stopping.wait()
    await hub.close()


def main(argv: Sequence[str] | None = None) -> int:
    return serve_main("scheduler", SchedulerConfig, setup, argv)
