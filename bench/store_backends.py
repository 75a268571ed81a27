#!/usr/bin/env python3
"""The scheduler's 1,000-task chain on each store backend, side by side: SQLite, PostgreSQL, MongoDB (FerretDB v1).

For each backend: a private PostgreSQL (and FerretDB on it, tests/support; binary from tools/ferretdb/install.sh),
a real `odin-scheduler` (local executor, auth off) on that store, and one job whose N `true` tasks each depend on
the one before, so every hop is store-bound: the attempt's end, the next task's dispatch, their events. Prints the
job's wall time, time per hop, events stored, and whether the event log is dense and duplicate-free. Then the
WatchJob fan-out (bench/watch_streams.py) can be run per backend with `--watch STREAMS`.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from grpc import aio

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from support.ferretdb import private_ferretdb  # noqa: E402
from support.postgres import PostgresServer, private_postgres  # noqa: E402
from watch_streams import start_scheduler  # noqa: E402

from odin.scheduler.v1 import scheduler_pb2 as pb  # noqa: E402
from odin.scheduler.v1 import scheduler_pb2_grpc  # noqa: E402


def chain(tasks: int) -> str:
    lines = ["name: chain", "tasks:", "  - {name: t0000, image: none, command: 'true'}"]
    lines += [f"  - {{name: t{i:04d}, image: none, command: 'true', depends: t{i - 1:04d}}}" for i in range(1, tasks)]
    return "\n".join(lines) + "\n"


async def run_chain(address: str, tasks: int, timeout: float) -> None:
    async with aio.insecure_channel(address) as channel:
        stub = scheduler_pb2_grpc.SchedulerServiceStub(channel)
        started = time.perf_counter()
        job = (await stub.CreateJob(pb.CreateJobRequest(inline=pb.InlinePipeline(main_yml=chain(tasks))))).job
        async for _ in stub.WatchJob(pb.WatchJobRequest(name=job.name), timeout=timeout):
            pass
        wall = time.perf_counter() - started
        final = (await stub.GetJob(pb.GetJobRequest(name=job.name))).job
        seqs: list[int] = []
        token = ""
        while True:
            page = await stub.ListJobEvents(pb.ListJobEventsRequest(parent=job.name, page_size=1000, page_token=token))
            seqs += [e.seq for e in page.events]
            token = page.next_page_token
            if not token:
                break
    dense = seqs == list(range(seqs[0], seqs[0] + len(seqs))) if seqs else False
    print(
        f"  job {pb.Job.State.Name(final.state)} in {wall:.1f}s: {wall / tasks * 1000:.1f} ms per hop, "
        f"{len(seqs)} events ({len(seqs) / wall:.0f}/s), dense and unique: {dense and len(set(seqs)) == len(seqs)}"
    )


def new_pg_database(server: PostgresServer, name: str) -> str:
    import psycopg

    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")  # type: ignore[arg-type]
        conn.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]
    return server.url(name)


@contextmanager
def scheduler(state: Path, url: str) -> Iterator[str]:
    process, address = start_scheduler(state, url)
    try:
        yield address
    finally:
        process.terminate()
        process.wait(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1000, help="chain length (0: no chain)")
    parser.add_argument("--backends", default="sqlite,postgresql,mongodb")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--watch", type=int, default=0, help="also run bench/watch_streams.py with this many streams")
    parser.add_argument("--watch-tasks", type=int, default=100)
    args = parser.parse_args()
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="odin-bench-stores-")))
        pg = stack.enter_context(private_postgres())
        ferret = stack.enter_context(private_ferretdb(pg, "ferretdb_bench"))
        for n, backend in enumerate(args.backends.split(",")):
            state = tmp / f"{n}-{backend}"
            state.mkdir()
            urls = {"sqlite": f"sqlite:///{state / 'scheduler.db'}", "postgresql": new_pg_database(pg, f"chain_{n}"),
                    "mongodb": ferret.url(f"chain_{n}")}  # fmt: skip
            if args.tasks:
                print(f"{backend}: {args.tasks}-task chain")
                with scheduler(state, urls[backend]) as address:
                    asyncio.run(run_chain(address, args.tasks, args.timeout))
            if args.watch:
                watch_urls = {"sqlite": "", "postgresql": new_pg_database(pg, f"watch_{n}"),
                              "mongodb": ferret.url(f"watch_{n}")}  # fmt: skip
                print(f"{backend}: {args.watch} WatchJob streams, {args.watch_tasks} tasks")
                subprocess.run([sys.executable, str(HERE / "watch_streams.py"), "--streams", str(args.watch),
                                "--tasks", str(args.watch_tasks), "--store-url", watch_urls[backend]],
                               check=True)  # fmt: skip


if __name__ == "__main__":
    main()
