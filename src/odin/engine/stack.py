"""The scheduler's domain objects wired in-process, as `odin-scheduler`'s setup wires them, minus gRPC.

Store → Engine (reconcile loop, attempts, recovery) → EventHub (the WatchJob follower) → Scheduler (the
use cases every RPC calls). Whatever this module creates it also closes, in reverse order; a store or an
executor handed in by the caller stays the caller's.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from odin_scheduler.engine import Engine, EngineConfig
from odin_scheduler.executor.base import Executor
from odin_scheduler.paths import Layout
from odin_scheduler.service import Scheduler
from odin_scheduler.store import Store, open_store
from odin_scheduler.watch import EventHub

# Seconds of quiet before the scheduler's watch stream emits a heartbeat; `JobHandle.events` drops them.
HEARTBEAT_SECONDS = 10.0
# Executors whose tasks run as host processes: recorded as `Process`, as the service records them.
PROCESS_EXECUTORS = frozenset({"local", "instant"})


@contextlib.asynccontextmanager
async def open_scheduler(
    executor: Executor | None, store: Store | str | None, run_path: str | Path | None, max_parallel_tasks: int
) -> AsyncIterator[Scheduler]:
    """A running engine over `store` (default: SQLite in a temporary directory) with its files under `run_path`."""
    async with contextlib.AsyncExitStack() as stack:
        scratch = None
        if store is None or run_path is None:
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="odin-engine-")))
        opened = await _open_store(stack, store, scratch)
        runner = executor
        if runner is None:
            runner = _local_executor()
            stack.push_async_callback(runner.close)
        layout = _layout(run_path, scratch)
        engine = Engine(opened, runner, layout, EngineConfig(max_parallel_tasks=max_parallel_tasks))
        await engine.start()
        stack.push_async_callback(engine.stop)
        hub = EventHub(opened)
        await hub.start()
        stack.push_async_callback(hub.close)
        resource_type = "Process" if runner.name in PROCESS_EXECUTORS else None
        yield Scheduler(opened, engine, hub, layout, resource_type=resource_type, heartbeat_seconds=HEARTBEAT_SECONDS)


async def _open_store(stack: contextlib.AsyncExitStack, store: Store | str | None, scratch: Path | None) -> Store:
    if store is not None and not isinstance(store, str):
        return store  # the caller's, already open
    url = store if store is not None else f"sqlite:///{_scratch(scratch) / 'scheduler.db'}"
    opened = open_store(url)
    await opened.open()
    stack.push_async_callback(opened.close)
    return opened


def _layout(run_path: str | Path | None, scratch: Path | None) -> Layout:
    return Layout(Path(run_path if run_path is not None else _scratch(scratch) / "runs").resolve())


def _scratch(scratch: Path | None) -> Path:
    assert scratch is not None, "a temporary directory is made whenever a default needs one"
    return scratch


def _local_executor() -> Executor:
    from odin_scheduler.executor.local import LocalExecutor

    # Embedded, tasks belong to the embedding program and run as its user (no scheduler secrets to guard).
    return LocalExecutor(task_user_name=None)
