"""The engine at run time: one place that changes jobs, runs attempts, and recovers after a crash.

Level-triggered: `poke(job)` only says "look at this job"; the reconcile reads the job as stored
(through a write-through cache that is dropped on any conflict), applies the rules in `decide`,
and persists the result in one transaction. An attempt's end is handled the same way: its outcome
and everything that follows from it (the next tasks dispatched) are one commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from odin_scheduler.engine import decide
from odin_scheduler.engine.change import Change
from odin_scheduler.engine.plan import (
    Rendered,
    TaskPlan,
    expand_mount_paths,
    job_variables,
    plans,
    render,
    task_ids_variable,
)
from odin_scheduler.executor.base import (
    Executor,
    Handle,
    Outcome,
    PermanentError,
    Progress,
    SharedPaths,
    TaskRun,
    TemporaryError,
)
from odin_scheduler.model import Event, EventType, Job, NewEvent, Task, TaskState, attempt_is_current, now_us
from odin_scheduler.paths import Layout
from odin_scheduler.store.base import StaleJob, Store

log = logging.getLogger("odin.scheduler.engine")
T = TypeVar("T")
US = 1_000_000
# A short attempt's handle is stored with its outcome (one commit per hop instead of two); a longer
# one's after this delay. Until then a restart still finds the attempt: `Executor.start` is idempotent.
HANDLE_RECORD_DELAY = 0.05


class JobNotFound(Exception):
    pass


@dataclass(frozen=True)
class EngineConfig:
    max_parallel_tasks: int = 64
    # An attempt's outcome is committed until the store takes it (a PostgreSQL restart, a full disk): the first
    # retry after this many seconds, doubling up to the cap, each with jitter.
    finish_retry_seconds: float = 0.1
    finish_retry_max_seconds: float = 30.0


@dataclass
class _View:
    """The cached, stored state of one job (replaced wholesale on conflict)."""

    job: Job
    tasks: dict[str, Task]
    plans: dict[str, TaskPlan]
    task_ids: str
    # Each task's entry of the stored job spec, handed to the executor (resources, GPUs, volumes, ...).
    specs: dict[str, Mapping[str, Any]]


@dataclass
class _Runner:
    job_id: str
    task: str
    attempt: int
    env: Mapping[str, str] | None = None
    handle: Handle | None = None
    run: TaskRun | None = None
    stop_requested: bool = False
    handle_recorded: bool = False
    coroutine: asyncio.Task[None] | None = field(default=None, repr=False)


class Engine:
    def __init__(self, store: Store, executor: Executor, layout: Layout, config: EngineConfig = EngineConfig(),
                 clock: Callable[[], int] = now_us) -> None:  # fmt: skip
        self.store = store
        self.executor = executor
        self.layout = layout
        self.config = config
        self.clock = clock
        self.rng = random.Random()
        self._views: dict[str, _View] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._runners: dict[tuple[str, str], _Runner] = {}
        self._reserved = 0
        self._slot_waiters: set[str] = set()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._dirty: dict[str, None] = {}
        self._wakeup = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        executor.on_progress(self._on_progress)

    # -- lifecycle -----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Recovers unfinished jobs (re-adopting running attempts), then starts reconciling."""
        for job in await self.store.list_unfinished_jobs():
            view = await self._view(job.id)
            for task in view.tasks.values():
                if task.state is TaskState.RUNNING:
                    self._spawn_runner(job.id, task, adopt=dict(task.handle))
            self.poke(job.id)
        # Every attempt the store says runs now has a runner, so whatever else the executor finds is an orphan.
        self._background_task(self._sweep())
        self._loop_task = asyncio.create_task(self._reconcile_loop(), name="engine-reconcile")

    async def stop(self) -> None:
        """Stops following attempts; running processes keep running and are adopted on the next start."""
        for timer in self._timers.values():
            timer.cancel()
        tasks = [t for t in (self._loop_task, *self._background, *(r.coroutine for r in self._runners.values())) if t]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- API -------------------------------------------------------------------------------------------

    async def create_job(self, job: Job, tasks: Sequence[Task], events: Sequence[NewEvent]) -> tuple[Job, bool]:
        stored, created = await self.store.create_job(job, tasks, events)
        if created:
            self.poke(stored.id)
        return stored, created

    async def cancel_job(self, job_id: str, message: str) -> Job:
        return await self._mutate(job_id, lambda c, v: decide.cancel_job(c, message, self.clock()))

    async def retry_job(self, job_id: str) -> Job:
        job = await self._mutate(job_id, lambda c, v: decide.retry_job(c, v.plans, self.clock()))
        self.poke(job_id)
        return job

    async def delete_job(self, job_id: str, grace_seconds: float = 30.0) -> None:
        """Removes an ended job's rows and files, once its stopped attempts have exited."""
        runners = [r.coroutine for r in self._runners.values() if r.job_id == job_id and r.coroutine]
        if runners:
            await asyncio.wait(runners, timeout=grace_seconds)
        await self.executor.remove_job(job_id)  # TemporaryError: nothing deleted yet, the caller may retry
        async with self._lock(job_id):
            self._forget(job_id)
            found = await self.store.delete_job(job_id)
        self.layout.remove_job(job_id)
        if not found:
            raise JobNotFound(job_id)

    async def wait_for_attempts(self, job_id: str, timeout: float | None = None) -> None:
        """Returns once the job's attempts are no longer followed and their stop requests are done.

        After a cancel this means its processes were stopped; the embedded API (`odin.engine`) waits
        here before closing the engine, which would otherwise leave them running for a later adoption.
        """
        waiting = {r.coroutine for r in self._runners.values() if r.job_id == job_id and r.coroutine}
        waiting |= self._background
        if waiting:
            await asyncio.wait(waiting, timeout=timeout)

    def poke(self, job_id: str) -> None:
        """Asks for a reconcile of `job_id` soon."""
        self._dirty[job_id] = None
        self._wakeup.set()

    @property
    def running_attempts(self) -> int:
        return len(self._runners)

    # -- reconcile -------------------------------------------------------------------------------------

    async def _reconcile_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._dirty:
                job_id = next(iter(self._dirty))
                del self._dirty[job_id]
                try:
                    await self._mutate(job_id, self._advance)
                except JobNotFound:
                    self._forget(job_id)
                except Exception:  # one bad job must not stop the others; look again later
                    log.exception("reconcile failed", extra={"job": job_id})
                    self._wake_at(job_id, self.clock() + 5 * US)

    def _advance(self, c: Change, view: _View, own_slots: int = 0) -> None:
        """The reconcile rule; `own_slots` are slots of attempts ending in this same change."""
        free = self.config.max_parallel_tasks - len(self._runners) - self._reserved + own_slots

        def rendering(name: str, tasks: Mapping[str, Task]) -> Rendered:
            return render(view.plans[name], c.job.id, self.layout, view.task_ids, tasks)

        wake = decide.advance(c, view.plans, self.clock(), free, rendering)
        if c.blocked_on_slots:
            self._slot_waiters.add(c.job.id)
        if wake is not None:
            self._wake_at(c.job.id, wake)

    async def _mutate(self, job_id: str, rule: Callable[[Change, _View], object]) -> Job:
        """Applies `rule` to the stored job and commits the result once (re-reading on conflict)."""
        async with self._lock(job_id):
            for _ in range(5):
                view = await self._view(job_id)
                change = Change(view.job, view.tasks)
                rule(change, view)
                if not change.dirty:
                    return view.job
                self._reserved += len(change.to_start)
                try:
                    await self._commit(view, change)
                    return view.job
                except StaleJob:
                    self._views.pop(job_id, None)
                finally:
                    self._reserved -= len(change.to_start)
            raise RuntimeError(f"job {job_id} kept changing under the engine")

    async def _commit(self, view: _View, change: Change) -> list[Event]:
        job = change.finish()
        stored, events = await self.store.commit(job, list(change.changed.values()), change.events, view.job.version)
        view.job = stored
        view.tasks.update(change.changed)
        for name in change.to_start:
            if (stored.id, name) in self._runners:  # the attempt that just ended, replaced by its retry
                del self._runners[(stored.id, name)]
            self._spawn_runner(stored.id, view.tasks[name], adopt=None, env=change.rendered[name].env)
        for task in change.to_stop:
            runner = self._runners.get((stored.id, task.name))
            if runner is not None:
                self._background_task(self._stop_runner(runner))
        if stored.state.terminal and not any(key[0] == stored.id for key in self._runners):
            self._forget(stored.id)
        return events

    async def _view(self, job_id: str) -> _View:
        view = self._views.get(job_id)
        if view is None:
            job = await self.store.get_job(job_id)
            if job is None:
                raise JobNotFound(job_id)
            tasks = await self.store.list_tasks(job_id)
            task_plans = plans(job.spec)
            specs = {t["name"]: t for t in job.spec["tasks"]}
            view = _View(job, {t.name: t for t in tasks}, task_plans, task_ids_variable(job_id, list(task_plans)),
                         specs)
            self._views[job_id] = view
        return view

    def _forget(self, job_id: str) -> None:
        self._views.pop(job_id, None)
        lock = self._locks.get(job_id)
        if lock is not None and not lock.locked():
            del self._locks[job_id]
        timer = self._timers.pop(job_id, None)
        if timer is not None:
            timer.cancel()

    def _lock(self, job_id: str) -> asyncio.Lock:
        return self._locks.setdefault(job_id, asyncio.Lock())

    def _wake_at(self, job_id: str, when_us: int) -> None:
        old = self._timers.pop(job_id, None)
        if old is not None:
            old.cancel()
        delay = max(0.0, (when_us - self.clock()) / US)
        self._timers[job_id] = asyncio.get_running_loop().call_later(delay, self.poke, job_id)

    def _background_task(self, coroutine: Coroutine[object, object, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- attempts --------------------------------------------------------------------------------------

    def _spawn_runner(
        self, job_id: str, task: Task, adopt: Handle | None, env: Mapping[str, str] | None = None
    ) -> None:
        runner = _Runner(job_id, task.name, task.attempt, env=env)
        self._runners[(job_id, task.name)] = runner
        runner.coroutine = asyncio.create_task(self._run_attempt(runner, adopt), name=f"attempt {task.task_id}")

    async def _run_attempt(self, runner: _Runner, adopt: Handle | None) -> None:
        key = (runner.job_id, runner.task)
        try:
            outcome = await self._attempt_outcome(runner, adopt)
        except asyncio.CancelledError:
            self._runners.pop(key, None)
            raise
        except Exception as exc:  # an executor bug must still end the attempt, never leave it RUNNING
            log.exception("attempt crashed", extra={"job": runner.job_id, "task": runner.task})
            outcome = Outcome(False, None, "ExecutorError", f"the executor failed: {exc}", retryable=True)
        try:
            # The slot stays taken until the outcome is committed, so the event log never shows more
            # running attempts than the limits allow; the job's own next task may reuse it (`_finish`).
            await self._store_outcome(runner, outcome)
        finally:
            if self._runners.get(key) is runner:
                del self._runners[key]
            self._forget_if_done(runner.job_id)
            self._release_slot()
        # Only now may the executor remove what holds the result (a Kubernetes object): had it gone before the
        # commit, a crash in between would find neither the outcome nor the object and run the task again.
        await self._release(runner, outcome)

    async def _store_outcome(self, runner: _Runner, outcome: Outcome) -> None:
        """Commits the attempt's outcome, retrying with capped backoff for as long as the store refuses.

        Giving up would leave the task RUNNING with nobody following it until the next restart, which then
        runs it again; the runner (and its slot) stays until the store has the outcome or the job is gone.
        """
        delay = self.config.finish_retry_seconds
        failures = 0
        while True:
            recorded = runner.handle_recorded
            try:
                await self._mutate(runner.job_id, lambda c, v: self._finish(c, v, runner, outcome))
                if failures:
                    log.info("attempt outcome stored after %d failed commit(s)", failures,
                             extra={"job": runner.job_id, "task": runner.task})  # fmt: skip
                return
            except JobNotFound:
                return
            except Exception as exc:  # the store is down or full: keep the outcome and try again
                failures += 1
                runner.handle_recorded = recorded  # that commit did not store the handle either
                self._views.pop(runner.job_id, None)  # it may or may not have landed: re-read next time
                wait = delay * (0.5 + self.rng.random() / 2)
                log.warning("storing an attempt's outcome failed (%s: %s); retry %d in %.1fs", type(exc).__name__,
                            exc, failures, wait, extra={"job": runner.job_id, "task": runner.task})  # fmt: skip
                await asyncio.sleep(wait)
                delay = min(delay * 2, self.config.finish_retry_max_seconds)

    async def _release(self, runner: _Runner, outcome: Outcome) -> None:
        if runner.run is None or runner.handle is None:
            return
        try:
            await self.executor.release(runner.run, runner.handle, outcome)
        except Exception as exc:  # housekeeping: what is left is swept on the next start
            log.warning("cleaning up after an attempt failed: %s", exc, extra={"job": runner.job_id,
                                                                               "task": runner.task})

    def _finish(self, c: Change, view: _View, runner: _Runner, outcome: Outcome) -> None:
        self._record_handle(c, runner)  # a short attempt's handle is stored with its outcome
        plan = view.plans[runner.task]
        decide.finish_attempt(c, runner.task, runner.attempt, outcome, plan, self.clock(), self.rng)
        self._advance(c, view, own_slots=1)

    def _forget_if_done(self, job_id: str) -> None:
        view = self._views.get(job_id)
        if view is not None and view.job.state.terminal and not any(k[0] == job_id for k in self._runners):
            self._forget(job_id)

    def _release_slot(self) -> None:
        waiters, self._slot_waiters = self._slot_waiters, set()
        for job_id in waiters:
            self.poke(job_id)

    async def _attempt_outcome(self, runner: _Runner, adopt: Handle | None) -> Outcome:
        view = await self._view(runner.job_id)
        task = view.tasks[runner.task]
        run = runner.run = self._task_run(view, task, runner.env)
        try:
            handle = await self._start(run, adopt)
        except PermanentError as exc:
            return Outcome(False, None, exc.reason, exc.message, retryable=exc.reason == "SchedulerRestarted")
        runner.handle = handle
        if runner.stop_requested:  # stopped while it was starting
            await self.executor.cancel(run, handle)
        recorder = asyncio.get_running_loop().call_later(
            HANDLE_RECORD_DELAY, lambda: self._background_task(self._record_handle_later(runner))
        )
        try:
            return await self._wait(run, handle, task, view.plans[task.name])
        finally:
            recorder.cancel()

    async def _record_handle_later(self, runner: _Runner) -> None:
        """Stores the handle of an attempt that is still running (adoption uses it after a restart)."""
        if self._runners.get((runner.job_id, runner.task)) is runner and not runner.handle_recorded:
            with contextlib.suppress(JobNotFound):
                await self._mutate(runner.job_id, lambda c, v: self._record_handle(c, runner))

    async def _start(self, run: TaskRun, adopt: Handle | None) -> Handle:
        while True:
            try:
                if adopt:
                    return await self.executor.adopt(run, adopt)
                return await self.executor.start(run)
            except TemporaryError as exc:
                log.warning("executor busy, retrying", extra={"task": run.task_id, "error": exc.message})
                await asyncio.sleep(exc.delay)

    def _record_handle(self, c: Change, runner: _Runner) -> None:
        task = c.tasks[runner.task]
        if runner.handle is None or runner.handle_recorded or not attempt_is_current(task, runner.attempt):
            return
        c.update_task(runner.task, handle=dict(runner.handle), resource_id=self.executor.resource_id(runner.handle))
        runner.handle_recorded = True

    async def _wait(self, run: TaskRun, handle: Handle, task: Task, plan: TaskPlan) -> Outcome:
        """Waits for the attempt; past its timeout the attempt is killed (its whole process group)."""
        waiter = asyncio.ensure_future(self.executor.wait(run, handle))
        try:
            timeout = None
            if plan.timeout_seconds is not None and task.start_us is not None:
                timeout = max(0.0, (task.start_us + plan.timeout_seconds * US - self.clock()) / US)
            done, _ = await asyncio.wait({waiter}, timeout=timeout)
            if waiter in done:
                return waiter.result()
            await self.executor.cancel(run, handle)
            with contextlib.suppress(Exception):
                await waiter
            message = f"exceeded its timeout of {plan.timeout_seconds:g}s and was killed"
            return Outcome(False, None, "DeadlineExceeded", message)
        finally:
            if not waiter.done():
                waiter.cancel()

    async def _stop_runner(self, runner: _Runner) -> None:
        runner.stop_requested = True
        if runner.run is not None and runner.handle is not None:
            await self.executor.cancel(runner.run, runner.handle)

    def _task_run(self, view: _View, task: Task, env: Mapping[str, str] | None) -> TaskRun:
        plan = view.plans[task.name]
        rendered = env or render(plan, view.job.id, self.layout, view.task_ids, view.tasks).env
        job_id, layout = view.job.id, self.layout
        variables = job_variables(task.name, job_id, layout, view.task_ids)
        return TaskRun(
            job_id=job_id, task=task.name, task_id=task.task_id, attempt=task.attempt,
            command=task.command, args=task.args, image=task.image, resource_type=task.resource_type,
            cwd=layout.task_dir(job_id, task.task_id),
            attempt_dir=layout.attempt_dir(job_id, task.name, task.attempt), env=rendered,
            spec=expand_mount_paths(view.specs.get(task.name, {}), variables), owner=view.job.owner,
            shared=SharedPaths(layout.root, layout.run_path(job_id), layout.work_path(job_id)),
        )  # fmt: skip

    # -- what the executor reports ------------------------------------------------------------------------

    def _on_progress(self, run: TaskRun, progress: Progress) -> None:
        """An attempt's phase or reason changed before it ended (e.g. its pod is Unschedulable)."""
        runner = self._runners.get((run.job_id, run.task))
        if runner is not None and runner.attempt == run.attempt:
            self._background_task(self._record_progress(run, progress))

    async def _record_progress(self, run: TaskRun, progress: Progress) -> None:
        if not self._follows(run.job_id, run.task, run.attempt):
            return  # the attempt ended meanwhile: its outcome says the rest
        with contextlib.suppress(JobNotFound):
            await self._mutate(run.job_id, lambda c, v: _note_progress(c, run, progress))

    async def _sweep(self) -> None:
        try:
            await self.executor.sweep(self._follows)
        except Exception as exc:  # the sweep is housekeeping: it must never stop the scheduler
            log.warning("sweeping orphaned attempts failed", extra={"error": str(exc)})

    def _follows(self, job_id: str, task: str, attempt: int) -> bool:
        runner = self._runners.get((job_id, task))
        return runner is not None and runner.attempt == attempt


def _note_progress(c: Change, run: TaskRun, progress: Progress) -> None:
    """Shows the progress on the running task; a new reason is also an event (a new message alone is not)."""
    task = c.tasks.get(run.task)
    if task is None or not attempt_is_current(task, run.attempt):
        return
    if (task.reason, task.message) == (progress.reason, progress.message):
        return
    c.update_task(run.task, reason=progress.reason, message=progress.message)
    if task.reason != progress.reason:
        message = progress.message or f"the attempt is {progress.phase}"
        c.events.append(NewEvent(EventType.TASK_PROGRESS, c.job.state, run.task, TaskState.RUNNING, run.attempt,
                                 progress.reason, message))  # fmt: skip
