"""The console's jobs page with 100,000 jobs in PostgreSQL: time to the first rendered page, in Chromium.

    .venv/bin/python bench/ui_jobs_page.py [--jobs 100000] [--runs 10]

Loads the jobs with COPY (as bench/scheduler_listjobs.py does) into a private PostgreSQL, starts the
suite on it with the console, logs in, then opens `#/jobs` in a fresh tab `runs` times: from the
navigation's start to the table showing its 50 rows (the page's own `performance.now()`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from odin_scheduler.store import open_store
from scheduler_listjobs import load
from support.postgres import private_postgres
from ui_common import chromium, login, median, suite


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=10)
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
        with suite(url) as running, chromium() as browser:
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            page = context.new_page()
            login(page, running)
            cold: list[float] = []
            for i in range(args.runs + 1):
                tab = context.new_page()
                tab.goto(running.url + "#/jobs", wait_until="commit")
                tab.locator("table.jobs tbody tr").nth(49).wait_for(timeout=60_000)
                ms = float(tab.evaluate("performance.now()"))
                if i:  # the first load also fills the HTTP cache; report it separately
                    cold.append(ms)
                else:
                    print(f"first load (empty cache): {ms:.0f} ms")
                tab.close()
            print(f"jobs page, {args.jobs} jobs in PostgreSQL, navigation to 50 rendered rows: "
                  f"median {median(cold):.0f} ms, max {max(cold):.0f} ms over {len(cold)} loads")
            # Paging deeper by keyset: the time from clicking "Older" to the next page's rows.
            pages: list[float] = []
            for _ in range(5):
                first = page.locator("table.jobs tbody tr").first.get_attribute("data-job")
                started = time.perf_counter()
                page.get_by_role("button", name="Older →").click()
                page.wait_for_function(
                    "(first) => document.querySelector('table.jobs tbody tr')?.dataset.job !== first", arg=first)
                pages.append((time.perf_counter() - started) * 1000)
            print(f"next page (keyset): median {median(pages):.0f} ms")


if __name__ == "__main__":
    main(sys.argv[1:])
