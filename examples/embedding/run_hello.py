"""Runs the `examples/hello` pipeline inside this Python process with `odin.engine`: no server, no gRPC.

    python examples/embedding/run_hello.py

It prints each task's state changes as the engine records them (the same events `odin jobs watch` shows),
then the result: which model won and the loss the evaluate task published as its outputs.
"""

import asyncio
import sys
from pathlib import Path

import odin.engine

HELLO = Path(__file__).resolve().parent.parent / "hello"  # a directory: main.yml plus the scripts it runs


async def main() -> int:
    options = odin.engine.Options(timeout_seconds=120)  # the job's deadline, as `odin jobs run --timeout 2m`
    async with odin.engine.start(HELLO, options=options) as job:
        print(f"job {job.id}")
        async for event in job.events():
            if event.task_state is not None:
                attempt = f" (attempt {event.attempt})" if event.attempt else ""
                print(f"  {event.task:<9} {event.task_state.name.lower()}{attempt} {event.reason}".rstrip())
        done = await job.wait()
    print(f"job {done.state.name.lower()}: {done.job.counts.succeeded} tasks succeeded")
    if done.succeeded:
        best = done.outputs["evaluate"]
        print(f"best model: {Path(best['best']).parent.name} (loss {best['loss']:.4f})")
    else:
        print(done.logs.get("evaluate", ""), file=sys.stderr)
    return 0 if done.succeeded else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
