"""Scheduler engine benchmarks: per-hop overhead of a linear chain, and fan-out dispatch time.

    .venv/bin/python bench/scheduler_engine.py [--chain 1000] [--fanout 500]

Runs the engine in-process on a SQLite store (the embedded default) with the instant executor
(engine cost alone) and the local executor (`true` as a host process). Per hop:
  gap   = next task dispatched - previous task's end recorded (pure orchestration)
  cycle = next task dispatched - previous task dispatched (gap + start, run and reap of the process)
Fan-out 1 → N → 1: time from the root's end to the N-th middle task dispatched.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from odin_scheduler.engine import Engine, EngineConfig
from odin_scheduler.executor.base import Executor
from odin_scheduler.executor.instant import InstantExecutor
from odin_scheduler.executor.local import LocalExecutor
from odin_scheduler.jobs import NewJob, build_job, new_job_id
from odin_scheduler.model import Event, Task, TaskState
from odin_scheduler.paths import Layout
from odin_scheduler.store import open_store

from odin.pipeline_spec import load_pipeline


async def run_job(
    tasks: list[dict[str, Any]], executor: Executor, max_parallel: int
) -> tuple[list[Task], list[Event], dict[str, float]]:
    """Runs one job to its end; returns its tasks, its events and when each attempt's process started."""
    spec = load_pipeline({"name": "bench", "tasks": tasks})
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{tmp}/s.db")
        await store.open()
        engine = Engine(store, executor, Layout(Path(tmp) / "runs"), EngineConfig(max_parallel_tasks=max_parallel))
        await engine.start()
        job, rows, events = build_job(NewJob(spec, "bench", "", "users/bench"), new_job_id("bench"),
                                      time.time_ns() // 1000, "Process")  # fmt: skip
        await engine.create_job(job, rows, events)
        seq, ended = 0, None
        while ended is None:  # follow the event log (cheap), not the job row (carries the whole spec)
            await store.wait_for_events(seq, 1.0)
            for event in await store.list_events(seq, job_id=job.id, limit=100_000):
                seq = event.seq
                ended = event if event.ends_job else ended
        assert ended.job_state.name == "SUCCEEDED", ended
        result = await store.list_tasks(job.id)
        history = await store.list_events(0, job_id=job.id, limit=100_000)
        # The wrapper writes `pid` once the process runs: its mtime is when the task really started.
        started = _process_starts(Path(tmp, "runs", ".odin"))
        await engine.stop()
        await store.close()
        return result, history, started


def _process_starts(bookkeeping: Path) -> dict[str, float]:
    return {p.parent.parent.name: p.stat().st_mtime for p in bookkeeping.glob("*/*/1/pid")}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def chain(n: int, executor: Executor) -> None:
    tasks = [{"name": f"t{i}", "image": "x", "command": "true", **({"depends": f"t{i - 1}"} if i else {})}
             for i in range(n)]  # fmt: skip
    started = time.perf_counter()
    done, _, _ = await run_job(tasks, executor, 64)
    wall = time.perf_counter() - started
    gaps = [(b.start_us - a.end_us) / 1000 for a, b in itertools.pairwise(done)]  # type: ignore[operator]
    cycles = [(b.start_us - a.start_us) / 1000 for a, b in itertools.pairwise(done)]  # type: ignore[operator]
    print(f"chain {n} [{executor.name}]: wall {wall:.2f}s | gap p50 {percentile(gaps, 50):.2f} ms "
          f"p99 {percentile(gaps, 99):.2f} ms | cycle p50 {percentile(cycles, 50):.2f} ms "
          f"p99 {percentile(cycles, 99):.2f} ms | mean cycle {statistics.mean(cycles):.2f} ms")  # fmt: skip


async def fanout(n: int, executor: Executor) -> None:
    tasks: list[dict[str, Any]] = [{"name": "root", "image": "x", "command": "true"}]
    tasks += [{"name": f"m{i}", "image": "x", "command": "true", "depends": "root"} for i in range(n)]
    sink: dict[str, Any] = {"name": "sink", "image": "x", "command": "true", "depends": [f"m{i}" for i in range(n)]}
    tasks.append(sink)
    result, events, started = await run_job(tasks, executor, n + 10)
    done = {t.name: t for t in result}
    root_end = done["root"].end_us or 0
    committed = max(e.time_us for e in events if e.task.startswith("m") and e.task_state is TaskState.RUNNING)
    line = f"fan-out 1->{n}->1 [{executor.name}]: {n} dispatches committed {(committed - root_end) / 1000:.1f} ms"
    if started:
        last = max(started[f"m{i}"] for i in range(n))
        line += f", all {n} processes running {(last * 1e6 - root_end) / 1000:.0f} ms"
    sink_ms = ((done["sink"].start_us or 0) - root_end) / 1000
    print(f"{line} after the root ended; sink dispatched {sink_ms:.0f} ms after the root ended")


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chain", type=int, default=1000)
    parser.add_argument("--fanout", type=int, default=500)
    args = parser.parse_args(argv)
    for make in (InstantExecutor, LocalExecutor):
        await chain(args.chain, make())
    for make in (InstantExecutor, LocalExecutor):
        await fanout(args.fanout, make())


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
