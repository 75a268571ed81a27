"""The Kubernetes executor: one attempt = one object (Pod, Job, training job), followed through watches.

start() creates the object under a deterministic name (`<job>-<task>-<attempt>`), so a repeated start finds it
(AlreadyExists = adopt). wait() never polls: watches keep a cache of Odin's objects and pods, and each event
wakes the waiter of that attempt, which re-reads the cache and decides (level-triggered).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

import urllib3

from odin.pipeline_spec.errors import Collector
from odin.pipeline_spec.model import RESOURCE_TYPE_ALIASES, TaskSpec
from odin.pipeline_spec.task_parser import parse_task
from odin_scheduler.executor import outputs
from odin_scheduler.executor.base import (
    ClusterEvent,
    Handle,
    LivePredicate,
    Outcome,
    PermanentError,
    Progress,
    ProgressListener,
    TaskRun,
    TemporaryError,
)
from odin_scheduler.executor.kubernetes import names
from odin_scheduler.executor.kubernetes.api import KubeApi, KubeApiError
from odin_scheduler.executor.kubernetes.config import CleanupPolicy, KubernetesConfig
from odin_scheduler.executor.kubernetes.handlers import HANDLERS, BuildContext, ResourceHandler, handler_for
from odin_scheduler.executor.kubernetes.logs import AttemptLogs
from odin_scheduler.executor.kubernetes.podspec import PodContext
from odin_scheduler.executor.kubernetes.status import Obj, Phase, Status, queue_status
from odin_scheduler.executor.kubernetes.watch import ResourceWatch

log = logging.getLogger("odin.scheduler.kubernetes")

SpecOf = Callable[[TaskRun], TaskSpec]
T = TypeVar("T")
_UNREACHABLE = (urllib3.exceptions.HTTPError, OSError)
RECHECK_SECONDS = 30.0  # a waiter re-reads its attempt at least this often, whatever the watches say
KUEUE_API = "kueue.x-k8s.io/v1beta2"
_WORKLOADS = "kueue workloads"  # a watch key that is not a collection path


def default_spec(run: TaskRun) -> TaskSpec:
    """The task's stored spec (`run.spec`) with the values the engine rendered at dispatch (command, args and env
    with variables and `^` references resolved); without a stored spec, what TaskRun itself carries."""
    if not run.spec:
        return TaskSpec(name=run.task, image=run.image, command=run.command, args=run.args, env=dict(run.env),
                        resource_type=run.resource_type or "Pod")
    spec = spec_from_mapping(run.spec)
    return dataclasses.replace(spec, image=run.image or spec.image, command=run.command, args=run.args,
                               env=dict(run.env))


def spec_from_mapping(task: Mapping[str, Any]) -> TaskSpec:
    """A TaskSpec from a task as `render_spec_dict` stores it."""
    raw = {k: v for k, v in task.items() if k not in ("timeout_seconds", "retries")}
    out = Collector()
    spec = parse_task(raw, "task", out)
    if spec is None or out.errors:
        problems = "; ".join(f"{v.field}: {v.description}" for v in out.errors)
        raise PermanentError(f"the task's spec is invalid: {problems}", reason="InvalidSpec")
    timeout = task.get("timeout_seconds")
    return dataclasses.replace(spec, timeout_seconds=float(timeout) if timeout else None)


class KubernetesExecutor:
    name = "kubernetes"

    def __init__(self, config: KubernetesConfig, api: KubeApi | None = None, spec_of: SpecOf = default_spec) -> None:
        self.config = config
        self.api = api or KubeApi.from_config(config)
        self._spec_of = spec_of
        self._watches: dict[str, ResourceWatch] = {}
        self._pods_by_run: dict[str, set[str]] = {}
        self._index_lock = threading.Lock()
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._progress: dict[str, Status] = {}
        self._listener: ProgressListener | None = None
        self._cancelled: set[str] = set()
        self._workload_by_run: dict[str, str] = {}
        # How each waited-on attempt ended, until `release` applies the cleanup policy to it.
        self._ended: dict[str, Status] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        # API calls and log hand-offs block a thread each; a pool of our own keeps them from queueing behind the
        # event loop's small default pool (and behind each other) when many attempts end at once.
        self._pool = ThreadPoolExecutor(max_workers=config.api_threads, thread_name_prefix="odin-k8s")

    # -- the Executor protocol ------------------------------------------------------------------------------
    async def start(self, run: TaskRun) -> Handle:
        key, handler = self._handler(run.resource_type)
        spec = self._spec_of(run)
        name = names.object_name(run.job_id, run.task, run.attempt)
        handle = {"kind": key, "name": name, "namespace": self.config.namespace}
        body = handler.build(self._context(run, spec, name))
        if spec.object_patch:
            body = {**body, "spec": merge_patch(body["spec"], spec.object_patch.get("spec") or {})}
        if spec.queue:
            await self._check_queue(spec.queue)
        if self.config.runs_claim and run.shared is not None:
            # The pod mounts RUN_PATH by subPath; made here so it belongs to the scheduler's user, not root.
            await self._call(run.shared.run.mkdir, parents=True, exist_ok=True)
        self._ensure_watches(handler)
        try:
            created = await self._call(self.api.request, "POST",
                                              handler.collection_path(self.config.namespace), body=body)
        except KubeApiError as exc:
            if exc.reason == "AlreadyExists":
                return await self.adopt(run, handle)
            raise _start_error(handler, exc) from None
        except _UNREACHABLE as exc:
            raise _unreachable(exc) from None
        return {**handle, "uid": created["metadata"].get("uid", "")}

    async def adopt(self, run: TaskRun, handle: Handle) -> Handle:
        key, handler = self._handler(str(handle.get("kind") or run.resource_type))
        name = str(handle.get("name") or names.object_name(run.job_id, run.task, run.attempt))
        namespace = str(handle.get("namespace") or self.config.namespace)
        self._ensure_watches(handler)
        obj = await self._get(handler, namespace, name)
        if obj is None:
            raise PermanentError(f"{handler.kind} {namespace}/{name} is gone and left no result",
                                 reason="SchedulerRestarted")
        labels = obj["metadata"].get("labels", {})
        if labels.get(names.LABEL_RUN) != name or labels.get(names.MANAGED_BY) != names.MANAGER:
            raise PermanentError(f"{handler.kind} {namespace}/{name} exists but was not created by Odin",
                                 reason="NameConflict")
        return {"kind": key, "name": name, "namespace": namespace, "uid": obj["metadata"].get("uid", ""),
                "adopted": True}

    async def wait(self, run: TaskRun, handle: Handle) -> Outcome:
        handler, namespace, name = self._target(handle)
        await self._synced(handler)
        logs = AttemptLogs(self.api, namespace, run.log_file, labelled=handler.kind != "Pod")
        queue = self._spec_of(run).queue
        if queue:
            self._ensure_workload_watch()
        try:
            status = await self._follow(run, handler, namespace, name, logs, queue)
        finally:
            self._cancelled.discard(name)
        pods = self.pods_of(name)
        await self._call(logs.finish, pods, handler.replica_label)
        outcome = _outcome(status)
        if outcome.succeeded:
            obj = self._watch(handler).get(name) or {}
            outcome = outputs.succeeded(outcome.exit_code or 0, termination_message(*handler.outputs_source(obj, pods)))
        # Deleted in `release`, once the outcome is stored: until then a restart must find the object again.
        self._ended[name] = status
        return outcome

    async def release(self, run: TaskRun, handle: Handle, outcome: Outcome) -> None:
        handler, namespace, name = self._target(handle)
        status = self._ended.pop(name, None)
        if status is not None:
            await self._clean_up(handler, namespace, name, status)

    async def cancel(self, run: TaskRun, handle: Handle) -> None:
        handler, namespace, name = self._target(handle)
        self._cancelled.add(name)
        await self._delete(handler, namespace, name, grace=self.config.delete_grace_seconds)
        deadline = time.monotonic() + self.config.delete_grace_seconds + 30
        while time.monotonic() < deadline and (self._watch(handler).get(name) or self.pods_of(name)):
            await self._sleep_until_change(name, 1.0)

    def resource_id(self, handle: Handle) -> str:
        _, handler = self._handler(str(handle.get("kind", "Pod")))
        return f"{handler.kind.lower()}/{handle.get('name', '')}"

    def on_progress(self, listener: ProgressListener) -> None:
        self._listener = listener

    # -- beyond the protocol --------------------------------------------------------------------------------
    def progress(self, handle: Handle) -> Status | None:
        """Where a waited-on attempt stands now (pending with a reason such as InsufficientGPU, running, ...)."""
        return self._progress.get(str(handle.get("name")))

    def pods_of(self, name: str) -> list[Obj]:
        pods = self._watches.get(self._pod_path())
        if pods is None:
            return []
        with self._index_lock:
            pod_names = sorted(self._pods_by_run.get(name, ()))
        return [pod for pod in (pods.get(p) for p in pod_names) if pod is not None]

    async def events(self, handle: Handle) -> list[ClusterEvent]:
        """Kubernetes events of the attempt's object and its pods, oldest first."""
        return [cluster_event(e) for e in await self.raw_events(handle)]

    async def raw_events(self, handle: Handle) -> list[dict[str, Any]]:
        """The Event objects themselves (involvedObject = the attempt's object or one of its pods)."""
        if not handle.get("name"):
            return []
        name, namespace = str(handle["name"]), str(handle.get("namespace") or self.config.namespace)
        involved = [name, *(p["metadata"]["name"] for p in self.pods_of(name))]
        found: list[dict[str, Any]] = []
        for obj_name in dict.fromkeys(involved):
            try:
                body = await self._call(self.api.request, "GET", f"/api/v1/namespaces/{namespace}/events",
                                        [("fieldSelector", f"involvedObject.name={obj_name}")])
            except KubeApiError as exc:
                raise TemporaryError(f"listing events of {obj_name}: {exc}", delay=2.0) from None
            except _UNREACHABLE as exc:
                raise _unreachable(exc) from None
            found += body.get("items", [])
        return sorted(found, key=_event_time)

    async def sweep(self, live: LivePredicate) -> list[str]:
        """Deletes Odin's objects of attempts nobody follows (`live(job id, task, attempt)` says which the engine
        follows): unfinished ones always (they hold cluster resources
        for a result nobody will read), finished ones when the cleanup policy says so (a cleanup that failed)."""
        deleted = []
        for handler in _collections(self.config.namespace):
            try:
                listing = await self._call(self.api.request, "GET", handler.collection_path(self.config.namespace),
                                           [("labelSelector", names.managed_selector())])
            except KubeApiError as exc:
                if exc.status != 404:  # 404: a kind this cluster does not serve
                    log.warning("sweep: listing %s failed: %s", handler.kind, exc)
                continue
            objects = listing.get("items", [])
            pods = await self._pods_by_owner(handler, objects)
            for obj in objects:
                if _is_orphan(obj, live) and self._doomed(handler.status(obj, pods.get(_name(obj), []))):
                    await self._delete(handler, self.config.namespace, _name(obj), grace=0)
                    deleted.append(_name(obj))
        if deleted:
            log.info("sweep deleted %d orphaned object(s): %s", len(deleted), ", ".join(deleted[:20]))
        return deleted

    async def remove_job(self, job_id: str) -> None:
        """Deletes every object of the job's attempts, whatever the cleanup policy kept."""
        selector = f"{names.managed_selector()},{names.LABEL_JOB}={names.label_value(job_id)}"
        for handler in _collections(self.config.namespace):
            try:
                listing = await self._call(self.api.request, "GET", handler.collection_path(self.config.namespace),
                                           [("labelSelector", selector)])
            except KubeApiError as exc:
                if exc.status != 404:
                    raise TemporaryError(f"listing {handler.kind} objects of job {job_id}: {exc}") from None
                continue
            except _UNREACHABLE as exc:
                raise _unreachable(exc) from None
            for obj in listing.get("items", []):
                meta = obj["metadata"]
                owned = meta.get("annotations", {}).get(names.ANNOTATION_JOB_ID) == job_id
                if owned and meta.get("labels", {}).get(names.LABEL_RUN) == meta["name"]:
                    await self._delete(handler, self.config.namespace, meta["name"], grace=0)

    def watch_stats(self) -> dict[str, dict[str, int]]:
        return {path: {"relists": w.relists, "reconnects": w.reconnects, "expired": w.expired}
                for path, w in self._watches.items()}

    async def close(self) -> None:
        for watch in self._watches.values():
            watch.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.api.close()

    # -- internals ------------------------------------------------------------------------------------------
    async def _call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    def _handler(self, resource_type: str) -> tuple[str, ResourceHandler]:
        key = RESOURCE_TYPE_ALIASES.get(resource_type, resource_type) or "Pod"
        handler = handler_for(key)
        if handler is None:
            raise PermanentError(f"resource_type {resource_type!r} is not supported by the Kubernetes executor",
                                 reason="UnsupportedResourceType")
        return key, handler

    def _target(self, handle: Handle) -> tuple[ResourceHandler, str, str]:
        """The handler, namespace and name of a started attempt's object, its watches running."""
        _, handler = self._handler(str(handle["kind"]))
        self._ensure_watches(handler)
        return handler, str(handle.get("namespace") or self.config.namespace), str(handle["name"])

    def _context(self, run: TaskRun, spec: TaskSpec, name: str) -> BuildContext:
        owner = run.owner
        labels = names.labels_for(run.job_id, run.task, owner, run.attempt, name)
        annotations = {names.ANNOTATION_TASK_ID: run.task_id, names.ANNOTATION_JOB_ID: run.job_id}
        env = {**run.env, "ODIN_TASK_ID": run.task_id, "ODIN_JOB_ID": run.job_id, "ODIN_ATTEMPT": str(run.attempt)}
        pod = PodContext(run_name=name, labels=labels, annotations=annotations, env=env, shared=run.shared)
        return BuildContext(name=name, namespace=self.config.namespace, spec=spec, pod=pod, config=self.config)

    def _pod_path(self) -> str:
        return f"/api/v1/namespaces/{self.config.namespace}/pods"

    def _watch(self, handler: ResourceHandler) -> ResourceWatch:
        return self._watches[handler.collection_path(self.config.namespace)]

    def _ensure_watches(self, handler: ResourceHandler) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        for path in (self._pod_path(), handler.collection_path(self.config.namespace)):
            on_change = self._on_pod_change if path == self._pod_path() else self._on_object_change
            self._start_watch(path, path, names.managed_selector(), on_change)

    def _ensure_workload_watch(self) -> None:
        self._start_watch(_WORKLOADS, f"/apis/{KUEUE_API}/namespaces/{self.config.namespace}/workloads", "",
                          self._on_workload_change)

    def _start_watch(self, key: str, path: str, selector: str, on_change: Callable[[Obj], None]) -> None:
        if key in self._watches:
            return
        watch = ResourceWatch(self.api, path, selector, on_change, watch_timeout=self.config.watch_timeout_seconds,
                              reconnect_max=self.config.reconnect_max_seconds)
        self._watches[key] = watch
        watch.start()

    def _on_workload_change(self, workload: Obj) -> None:
        """Kueue's Workload of an attempt (owned by the attempt's object): index it and wake the waiter."""
        meta = workload.get("metadata", {})
        for owner in meta.get("ownerReferences") or []:
            run = str(owner.get("name", ""))
            with self._index_lock:
                if workload.get("odin/deleted"):
                    self._workload_by_run.pop(run, None)
                else:
                    self._workload_by_run[run] = str(meta.get("name", ""))
            self._notify(run)

    def _workload_of(self, name: str) -> Obj | None:
        watch = self._watches.get(_WORKLOADS)
        with self._index_lock:
            workload = self._workload_by_run.get(name)
        return watch.get(workload) if watch is not None and workload else None

    async def _check_queue(self, queue: str) -> None:
        """A LocalQueue that does not exist fails the attempt at once (Kueue would leave it pending forever)."""
        path = f"/apis/{KUEUE_API}/namespaces/{self.config.namespace}/localqueues/{queue}"
        try:
            await self._call(self.api.request, "GET", path)
        except KubeApiError as exc:
            if exc.status == 404:
                raise PermanentError(f"LocalQueue {queue} does not exist in namespace {self.config.namespace} "
                                     "(or Kueue is not installed)", reason="QueueNotFound") from None
            raise TemporaryError(f"reading LocalQueue {queue}: {exc}", delay=2.0) from None
        except _UNREACHABLE as exc:
            raise _unreachable(exc) from None

    async def _synced(self, handler: ResourceHandler) -> None:
        for watch in (self._watches[self._pod_path()], self._watch(handler)):
            while not await self._call(watch.synced.wait, 5.0):
                log.warning("waiting for the first list of %s: %s", watch.path, watch.error or "no answer yet")

    def _on_pod_change(self, pod: Obj) -> None:
        """Called by the pod watch thread: index the pod under its attempt, then wake that attempt's waiter."""
        meta = pod.get("metadata", {})
        labels = meta.get("labels", {})
        run = labels.get(names.LABEL_RUN)
        if not run:
            return
        with self._index_lock:
            pods = self._pods_by_run.setdefault(run, set())
            if pod.get("odin/deleted"):
                pods.discard(meta["name"])
            else:
                pods.add(meta["name"])
            if not pods:
                del self._pods_by_run[run]
        self._notify(run)

    def _on_object_change(self, obj: Obj) -> None:
        run = obj.get("metadata", {}).get("labels", {}).get(names.LABEL_RUN)
        if run:
            self._notify(run)

    def _notify(self, run: str) -> None:
        if self._loop is not None and self._waiters.get(run):
            self._loop.call_soon_threadsafe(self._wake, run)

    def _wake(self, run: str) -> None:
        for event in self._waiters.get(run, ()):
            event.set()

    async def _sleep_until_change(self, name: str, timeout: float) -> None:
        event = asyncio.Event()
        self._waiters.setdefault(name, set()).add(event)
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            self._waiters[name].discard(event)

    async def _pods_by_owner(self, handler: ResourceHandler, objects: list[Obj]) -> dict[str, list[Obj]]:
        """The pods of each listed attempt object (by `odin.run`); a Pod attempt is its own pod."""
        if handler.kind == "Pod" or not objects:
            return {}
        listing = await self._call(self.api.request, "GET", self._pod_path(),
                                   [("labelSelector", names.managed_selector())])
        by_run: dict[str, list[Obj]] = {}
        for pod in listing.get("items", []):
            by_run.setdefault(pod["metadata"].get("labels", {}).get(names.LABEL_RUN, ""), []).append(pod)
        return by_run

    def _doomed(self, status: Status) -> bool:
        """Whether an attempt's object goes once the attempt is over (unfinished: it is over for Odin)."""
        policy = self.config.cleanup
        return not status.done or status.stuck or status.discard or policy == CleanupPolicy.ALWAYS or (
            policy == CleanupPolicy.DELETE_ON_SUCCESS and status.phase == Phase.SUCCEEDED)

    def _report(self, run: TaskRun, name: str, status: Status) -> None:
        """Tells the engine when an attempt's phase or reason changed (the message alone does not count)."""
        old = self._progress.get(name)
        self._progress[name] = status
        changed = old is None or (old.phase, old.reason) != (status.phase, status.reason)
        if changed and self._listener is not None and not status.done:
            self._listener(run, Progress(str(status.phase), status.reason, status.message))

    async def _follow(self, run: TaskRun, handler: ResourceHandler, namespace: str, name: str,
                      logs: AttemptLogs, queue: str | None = None) -> Status:
        """Re-reads the attempt on every change until it ends (or is stuck for too long)."""
        stuck_since: float | None = None
        while True:
            obj = self._watch(handler).get(name) or await self._get(handler, namespace, name)
            if obj is None or obj.get("odin/deleted"):
                return _vanished(handler, name, name in self._cancelled)
            pods = self.pods_of(name)
            for pod in pods:
                logs.ensure(pod, handler.replica_label(pod))
            status = handler.status(obj, pods)
            if queue and not status.done:
                status = _with_queue(status, queue_status(self._workload_of(name), queue))
            self._report(run, name, status)
            if status.done:
                return status
            stuck_since = (stuck_since or time.monotonic()) if status.stuck else None
            if stuck_since is not None and time.monotonic() - stuck_since > self.config.stuck_timeout_seconds:
                return Status(Phase.FAILED, status.reason, f"{status.message} (gave up after "
                              f"{self.config.stuck_timeout_seconds:.0f}s)", stuck=True)
            timeout = RECHECK_SECONDS if stuck_since is None else min(
                RECHECK_SECONDS, self.config.stuck_timeout_seconds - (time.monotonic() - stuck_since) + 0.05)
            await self._sleep_until_change(name, max(0.05, timeout))

    async def _get(self, handler: ResourceHandler, namespace: str, name: str) -> Obj | None:
        try:
            return await self._call(self.api.request, "GET", handler.object_path(namespace, name))
        except KubeApiError as exc:
            if exc.status == 404:
                return None
            raise TemporaryError(f"reading {handler.kind} {name}: {exc}", delay=2.0) from None
        except _UNREACHABLE as exc:
            raise _unreachable(exc) from None

    async def _delete(self, handler: ResourceHandler, namespace: str, name: str, grace: int) -> None:
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background",
                "gracePeriodSeconds": grace}
        try:
            await self._call(self.api.request, "DELETE", handler.object_path(namespace, name), body=body)
        except KubeApiError as exc:
            if exc.status != 404:
                raise TemporaryError(f"deleting {handler.kind} {name}: {exc}", delay=2.0) from None
        except _UNREACHABLE as exc:
            raise _unreachable(exc) from None

    async def _clean_up(self, handler: ResourceHandler, namespace: str, name: str, status: Status) -> None:
        self._progress.pop(name, None)
        if self._doomed(status):
            try:
                await self._delete(handler, namespace, name, grace=self.config.delete_grace_seconds)
            except TemporaryError as exc:
                log.warning("cleanup of %s %s failed (the sweeper will retry): %s", handler.kind, name, exc)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: mappings merge key by key, `null` deletes, anything else replaces."""
    if not isinstance(patch, Mapping):
        return patch
    merged = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def _with_queue(status: Status, queued: Status) -> Status:
    """An unfinished attempt's status with Kueue's view: an eviction ends it; while it waits (suspended, or no pod
    yet), the Workload's state is the reason users see."""
    if queued.phase == Phase.FAILED:
        return queued
    if status.phase == Phase.PENDING and status.reason in ("", "Suspended", "SchedulingGated"):
        return queued
    return status


def termination_message(pod: Obj | None, container: str) -> str | None:
    """The termination message (the outputs file) of `container` in `pod`; None when it left none."""
    if pod is None:
        return None
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == container:
            message = ((status.get("state") or {}).get("terminated") or {}).get("message")
            return str(message) if message else None
    return None


def _name(obj: Obj) -> str:
    return str(obj["metadata"]["name"])


def _collections(namespace: str) -> list[ResourceHandler]:
    """One handler per collection Odin creates objects in (ElasticJob shares PyTorchJob's)."""
    by_path: dict[str, ResourceHandler] = {}
    for handler in HANDLERS.values():
        by_path.setdefault(handler.collection_path(namespace), handler)
    return list(by_path.values())


def _is_orphan(obj: Obj, live: LivePredicate) -> bool:
    """An attempt's own object (not a pod some controller made for it) whose attempt nobody follows."""
    meta = obj["metadata"]
    labels, annotations = meta.get("labels", {}), meta.get("annotations", {})
    run = labels.get(names.LABEL_RUN)
    if run != meta["name"] or meta.get("deletionTimestamp"):
        return False
    job_id, task_id = annotations.get(names.ANNOTATION_JOB_ID, ""), annotations.get(names.ANNOTATION_TASK_ID, "")
    task = task_id[len(job_id) + 2:] if task_id.startswith(f"{job_id}--") else ""
    try:
        attempt = int(labels.get(names.LABEL_ATTEMPT, ""))
    except ValueError:
        return True  # not an attempt Odin could have made
    return not live(job_id, task, attempt)


def _event_time(event: Obj) -> str:
    return str(event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp") or "")


def cluster_event(event: Obj) -> ClusterEvent:
    """A Kubernetes Event (core/v1) as the executor interface reports it."""
    involved = event.get("involvedObject") or {}
    source = event.get("source") or {}
    when = _event_time(event)
    time_us = 0
    if when:
        with contextlib.suppress(ValueError):
            time_us = int(datetime.fromisoformat(when.replace("Z", "+00:00")).timestamp() * 1_000_000)
    return ClusterEvent(
        type=str(event.get("type") or ""), reason=str(event.get("reason") or ""),
        message=str(event.get("message") or ""),
        source=str(source.get("component") or event.get("reportingComponent") or ""), time_us=time_us,
        object=f"{str(involved.get('kind') or '').lower()}/{involved.get('name', '')}",
        count=int(event.get("count") or (event.get("series") or {}).get("count") or 1),
    )


def _start_error(handler: ResourceHandler, exc: KubeApiError) -> Exception:
    if exc.status == 404:
        return PermanentError(f"the cluster does not serve {handler.kind} ({handler.api_version}): {exc.message}",
                              reason="KindNotInstalled")
    # A validating webhook's refusal (a training runtime's limits, Kueue's checks) arrives as 403: it is about the
    # object, not about Odin's rights.
    if exc.status in (400, 422) or (exc.status == 403 and "denied the request" in exc.message):
        return PermanentError(f"the cluster rejected the {handler.kind}: {exc.message}", reason="InvalidObject")
    if exc.status in (401, 403):
        return PermanentError(f"not allowed to create the {handler.kind}: {exc.message}", reason="Forbidden")
    return TemporaryError(f"creating the {handler.kind}: {exc}", delay=2.0)


def _unreachable(exc: Exception) -> TemporaryError:
    return TemporaryError(f"the Kubernetes API is unreachable: {exc}", delay=2.0)


def _vanished(handler: ResourceHandler, name: str, cancelled: bool) -> Status:
    if cancelled:
        return Status(Phase.FAILED, "Cancelled", f"{handler.kind} {name} was deleted by a cancel")
    return Status(Phase.FAILED, "Deleted", f"{handler.kind} {name} was deleted before it finished")


def _outcome(status: Status) -> Outcome:
    if status.phase == Phase.SUCCEEDED:
        return Outcome(True, status.exit_code if status.exit_code is not None else 0)
    # An image that cannot be pulled or a missing secret will not fix itself on a retry.
    return Outcome(False, status.exit_code, status.reason, status.message, retryable=not status.stuck)
