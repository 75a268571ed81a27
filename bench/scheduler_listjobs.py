"""ListJobs with 100,000 jobs in PostgreSQL: latency of the first page and of a deep page.

    .venv/bin/python bench/scheduler_listjobs.py [--jobs 100000] [--runs 200]

Starts a private PostgreSQL (tests/support/postgres.py), bulk-loads jobs with COPY, then times the
domain call ListJobs makes (keyset query + page token + conversion to protobuf), 50 jobs a page:
the first page, a page 90% deep (by its keyset token), a filtered first page (pipeline + label), and
the first page a member of one of the ten projects sees (the visibility filter in the query), in the
BASIC view (no spec) and the FULL view.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from odin_scheduler import convert
from odin_scheduler.model import JobFilter
from odin_scheduler.service import Scheduler
from odin_scheduler.store import open_store
from odin_scheduler.store.rows import JOB_COLUMNS, job_params
from support.postgres import private_postgres

from odin.runtime import paging
from odin.scheduler.v1 import scheduler_pb2 as pb


def load(url: str, count: int) -> None:
    """COPY in text format, one line per job, built from a template row (no per-row JSON encoding)."""
    from odin_scheduler.model import Job, JobState, TaskCounts

    spec = {"name": "p", "tasks": [{"name": "train", "image": "x", "command": ["python", "train.py"]}]}
    template = job_params(Job(id="", pipeline="", revision="", owner="", state=JobState.SUCCEEDED, create_us=0,
                              spec=spec, counts=TaskCounts(succeeded=1)))  # fmt: skip
    states = [2, 3, 3, 3, 4, 5]
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY jobs ({', '.join(JOB_COLUMNS)}) FROM STDIN") as copy:
            for i in range(count):
                row = dict(template, id=f"p{i % 20}-{i:08d}", pipeline=f"p{i % 20}", owner=f"users/u{i % 50}",
                           state=states[i % 6], create_us=1_700_000_000_000_000 + i * 1000,
                           labels=f'{{"team":"t{i % 7}"}}', project=f"team{i % 10}")  # fmt: skip
                copy.write("\t".join("\\N" if row[c] is None else str(row[c]) for c in JOB_COLUMNS) + "\n")
        conn.execute("ANALYZE jobs")


def p95(samples: list[float]) -> float:
    return sorted(samples)[int(len(samples) * 0.95)]


async def measure(url: str, count: int, runs: int) -> None:
    store = open_store(url)
    await store.open()
    scheduler = Scheduler(store, None, None, None, resource_type=None)  # type: ignore[arg-type]

    sizes: list[int] = []

    async def page(where: JobFilter, token: str = "", view: int = pb.JOB_VIEW_BASIC) -> str:
        result = await scheduler.list_jobs(where, 50, token, False)
        sizes.append(sum(convert.job(j, view).ByteSize() for j in result.items))  # type: ignore[arg-type, misc]
        return result.next_page_token

    everything = JobFilter()
    deep_job = (await store.list_jobs(everything, 1, None))[0]
    deep_us = deep_job.create_us - int(count * 0.9) * 1000
    deep_token = paging.encode_token({"t": deep_us, "i": "~"}, {"p": "", "s": [], "o": "", "l": {}, "j": "", "v": None})
    filtered = JobFilter(pipeline="p3", labels={"team": "t3"})
    member = JobFilter(visible=frozenset({"team3"}))
    cases = [("first page", everything, "", pb.JOB_VIEW_BASIC),
             ("page 90% deep", everything, deep_token, pb.JOB_VIEW_BASIC),
             ("filtered first page (pipeline+label)", filtered, "", pb.JOB_VIEW_BASIC),
             ("first page of a member of 1 of 10 projects", member, "", pb.JOB_VIEW_BASIC),
             ("first page, FULL view", everything, "", pb.JOB_VIEW_FULL)]
    for name, where, token, view in cases:
        await page(where, token, view)  # warm
        samples, sizes[:] = [], []
        for _ in range(runs):
            started = time.perf_counter()
            await page(where, token, view)
            samples.append((time.perf_counter() - started) * 1000)
        median = sorted(samples)[len(samples) // 2]
        print(f"ListJobs {name}, {count} jobs: p50 {median:.2f} ms, p95 {p95(samples):.2f} ms, "
              f"{sizes[-1]} bytes a page")
    await store.close()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args(argv)
    with private_postgres() as server:
        with psycopg.connect(server.url(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench")
        url = server.url("bench")

        async def migrate() -> None:
            store = open_store(url)
            await store.open()
            await store.close()

        asyncio.run(migrate())
        started = time.perf_counter()
        load(url, args.jobs)
        print(f"loaded {args.jobs} jobs with COPY in {time.perf_counter() - started:.1f}s")
        asyncio.run(measure(url, args.jobs, args.runs))


if __name__ == "__main__":
    main(sys.argv[1:])
