"""The embedded API (`odin.engine`): per-hop overhead of a 1,000-task chain, and what importing it costs.

    .venv/bin/python bench/embedded_chain.py [--chain 1000] [--rounds 3] [--executor instant|local]

Runs the chain through `odin.engine.run_async` (default SQLite store in a temporary directory) and reports,
as `bench/scheduler_engine.py` does for the engine driven directly:
  cycle = next task dispatched - previous task dispatched (commit the outcome, dispatch, start, run, reap)
  gap   = next task dispatched - previous task's end recorded (the decision alone)
  wall  = the whole run_async call (engine start, job creation, the chain, watch replay, shutdown) / tasks
Import cost: `python -X importtime`, cumulative, best of 5, for the bare import and for the first use.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import re
import subprocess
import sys
import time
from typing import Any

from odin_scheduler.executor.base import Executor
from odin_scheduler.executor.instant import InstantExecutor
from odin_scheduler.executor.local import LocalExecutor

import odin.engine


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def chain(n: int) -> dict[str, Any]:
    tasks = [{"name": f"t{i}", "image": "x", "command": "true", **({"depends": f"t{i - 1}"} if i else {})}
             for i in range(n)]  # fmt: skip
    return {"name": "bench", "tasks": tasks}


async def one_round(n: int, executor: Executor) -> tuple[list[float], list[float], float]:
    started = time.perf_counter()
    done = await odin.engine.run_async(chain(n), executor=executor)
    wall = time.perf_counter() - started
    assert done.succeeded, done.job
    tasks = list(done.tasks.values())
    cycles = [(b.start_us - a.start_us) / 1000 for a, b in itertools.pairwise(tasks)]  # type: ignore[operator]
    gaps = [(b.start_us - a.end_us) / 1000 for a, b in itertools.pairwise(tasks)]  # type: ignore[operator]
    return cycles, gaps, wall


def import_ms(statement: str, module: str) -> float:
    """Cumulative import time of `module` while running `statement`, best of 5 fresh interpreters."""
    best = float("inf")
    for _ in range(5):
        out = subprocess.run([sys.executable, "-X", "importtime", "-c", statement], capture_output=True, text=True,
                             check=True).stderr  # fmt: skip
        match = re.search(rf"^import time:\s+\d+ \|\s+(\d+) \| {re.escape(module)}$", out, re.MULTILINE)
        assert match, f"{module} not in the import log"
        best = min(best, int(match.group(1)) / 1000)
    return best


def first_use_ms() -> float:
    """Wall time of `import odin.engine` plus touching `odin.engine.run` (which loads the engine), best of 5."""
    code = "import time; t = time.perf_counter(); import odin.engine; odin.engine.run; print(time.perf_counter() - t)"
    return min(float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                    check=True).stdout) * 1000 for _ in range(5))  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chain", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--executor", choices=["instant", "local"], default="instant")
    args = parser.parse_args()
    print(f"import odin.engine: {import_ms('import odin.engine', 'odin.engine'):.1f} ms cumulative (importtime)")
    print(f"import odin.engine + first use of odin.engine.run: {first_use_ms():.0f} ms wall")
    for round_ in range(1, args.rounds + 1):
        executor = InstantExecutor() if args.executor == "instant" else LocalExecutor()
        cycles, gaps, wall = await one_round(args.chain, executor)
        print(f"round {round_}: {args.chain}-task chain, {args.executor}: cycle p50 {percentile(cycles, 50):.2f} ms "
              f"p99 {percentile(cycles, 99):.2f} ms; gap p50 {percentile(gaps, 50):.3f} ms; "
              f"wall {wall:.2f} s = {wall / args.chain * 1000:.2f} ms/task")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
