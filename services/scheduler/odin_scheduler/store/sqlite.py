"""The embedded SQLite store: one file, WAL, one writer thread and one reader thread.

Every write runs on the single writer connection, so transactions are serialized and `seq` values
(allocated from a counter row inside the writing transaction) become visible strictly in order. The
live tail is an in-process signal raised after each commit: SQLite has one scheduler process.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from odin_scheduler.model import Event, Job, JobFilter, JobState, NewEvent, Task, now_us
from odin_scheduler.store import rows
from odin_scheduler.store.base import JobCursor, StaleJob

T = TypeVar("T")

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY, pipeline TEXT NOT NULL, revision TEXT NOT NULL, state INTEGER NOT NULL,
        owner TEXT NOT NULL, create_us INTEGER NOT NULL, start_us INTEGER, end_us INTEGER,
        reason TEXT NOT NULL, message TEXT NOT NULL, request_id TEXT UNIQUE, labels TEXT NOT NULL,
        options TEXT NOT NULL, spec TEXT NOT NULL, counts TEXT NOT NULL, last_event_seq INTEGER NOT NULL,
        version INTEGER NOT NULL, run_us INTEGER NOT NULL
    );
    CREATE INDEX jobs_by_time ON jobs (create_us DESC, id DESC);
    CREATE INDEX jobs_by_pipeline ON jobs (pipeline, create_us DESC, id DESC);
    CREATE INDEX jobs_by_owner ON jobs (owner, create_us DESC, id DESC);
    CREATE INDEX jobs_by_state ON jobs (state, create_us DESC, id DESC);
    CREATE TABLE tasks (
        job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE, name TEXT NOT NULL,
        position INTEGER NOT NULL, task_id TEXT NOT NULL, depends TEXT NOT NULL, state INTEGER NOT NULL,
        max_attempts INTEGER NOT NULL, create_us INTEGER NOT NULL, image TEXT NOT NULL,
        resource_type TEXT NOT NULL, reason TEXT NOT NULL, message TEXT NOT NULL, attempt INTEGER NOT NULL,
        exit_code INTEGER, command TEXT NOT NULL, args TEXT NOT NULL, resource_id TEXT NOT NULL,
        outputs TEXT NOT NULL, handle TEXT NOT NULL, start_us INTEGER, end_us INTEGER, next_attempt_us INTEGER,
        PRIMARY KEY (job_id, name)
    );
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY, job_id TEXT NOT NULL, type INTEGER NOT NULL, time_us INTEGER NOT NULL,
        job_state INTEGER NOT NULL, task TEXT NOT NULL, task_state INTEGER NOT NULL, attempt INTEGER NOT NULL,
        reason TEXT NOT NULL, message TEXT NOT NULL
    );
    CREATE INDEX events_by_job ON events (job_id, seq);
    CREATE TABLE seq_counter (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL);
    INSERT INTO seq_counter VALUES (1, 0);
    """,
    # 2: jobs belong to projects (existing ones to `default`); request ids are unique per owner. SQLite cannot drop
    # the inline UNIQUE of migration 1, so the table is rebuilt (foreign keys are off meanwhile: see _migrate).
    """
    CREATE TABLE jobs_v2 (
        id TEXT PRIMARY KEY, pipeline TEXT NOT NULL, revision TEXT NOT NULL, state INTEGER NOT NULL,
        owner TEXT NOT NULL, create_us INTEGER NOT NULL, start_us INTEGER, end_us INTEGER,
        reason TEXT NOT NULL, message TEXT NOT NULL, request_id TEXT, labels TEXT NOT NULL,
        options TEXT NOT NULL, spec TEXT NOT NULL, counts TEXT NOT NULL, last_event_seq INTEGER NOT NULL,
        version INTEGER NOT NULL, run_us INTEGER NOT NULL, project TEXT NOT NULL DEFAULT 'default'
    );
    INSERT INTO jobs_v2 (id, pipeline, revision, state, owner, create_us, start_us, end_us, reason, message,
                         request_id, labels, options, spec, counts, last_event_seq, version, run_us, project)
        SELECT id, pipeline, revision, state, owner, create_us, start_us, end_us, reason, message, request_id,
               labels, options, spec, counts, last_event_seq, version, run_us, 'default' FROM jobs;
    DROP TABLE jobs;
    ALTER TABLE jobs_v2 RENAME TO jobs;
    CREATE INDEX jobs_by_time ON jobs (create_us DESC, id DESC);
    CREATE INDEX jobs_by_pipeline ON jobs (pipeline, create_us DESC, id DESC);
    CREATE INDEX jobs_by_owner ON jobs (owner, create_us DESC, id DESC);
    CREATE INDEX jobs_by_state ON jobs (state, create_us DESC, id DESC);
    CREATE INDEX jobs_by_project ON jobs (project, create_us DESC, id DESC);
    CREATE UNIQUE INDEX jobs_by_request ON jobs (owner, request_id);
    """,
)


class SqliteStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="sqlite-reader")
        self._wconn: sqlite3.Connection | None = None
        self._rconn: sqlite3.Connection | None = None
        self._latest = 0
        self._changed = asyncio.Event()

    # -- lifecycle -------------------------------------------------------------------------------

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._wconn = await self._on(self._writer, self._connect)
        await self._on(self._writer, self._migrate)
        self._rconn = await self._on(self._reader, self._connect)
        self._latest = await self.latest_seq()

    async def close(self) -> None:
        for pool, conn in ((self._writer, self._wconn), (self._reader, self._rconn)):
            if conn is not None:
                await self._on(pool, conn.close)
            pool.shutdown(wait=True)
        self._wconn = self._rconn = None

    async def ping(self) -> bool:
        return bool(await self._read(lambda c: c.execute("SELECT 1").fetchone()[0]))

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable across process crashes (kill -9) in WAL mode; only an OS crash may lose
        # the last transactions.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def _migrate(self) -> None:
        conn = self._w
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_us INTEGER)")
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        # Rebuilding a table drops it: with foreign keys on that would cascade into the tasks. The pragma is a
        # no-op inside a transaction, so it is switched around them (the check below proves nothing dangles).
        conn.execute("PRAGMA foreign_keys=OFF")
        try:
            for version, script in enumerate(MIGRATIONS, start=1):
                if version in done:
                    continue
                record = f"INSERT INTO schema_migrations VALUES ({version}, {now_us()})"
                conn.executescript(f"BEGIN IMMEDIATE; {script}; {record}; COMMIT;")
            dangling = conn.execute("PRAGMA foreign_key_check").fetchall()
            if dangling:
                raise RuntimeError(f"the store has {len(dangling)} rows whose job is missing")
        finally:
            conn.execute("PRAGMA foreign_keys=ON")

    # -- jobs and tasks ----------------------------------------------------------------------------

    async def create_job(self, job: Job, tasks: Sequence[Task], events: Sequence[NewEvent]) -> tuple[Job, bool]:
        def run(conn: sqlite3.Connection) -> tuple[Job, bool, list[Event]]:
            if job.request_id:  # idempotency keys are the owner's own: another user's never matches
                sql = "SELECT * FROM jobs WHERE owner = ? AND request_id = ?"
                row = conn.execute(sql, (job.owner, job.request_id)).fetchone()
                if row is not None:
                    return rows.job_from_row(row), False, []
            stored = self._append_events(conn, job, events)
            conn.execute(_insert("jobs", rows.JOB_COLUMNS), rows.job_params(stored[0]))
            conn.executemany(_insert("tasks", rows.TASK_COLUMNS), [rows.task_params(t) for t in tasks])
            return stored[0], True, stored[1]

        stored, created, written = await self._write(run)
        self._announce(written)
        return stored, created

    async def get_job(self, job_id: str) -> Job | None:
        row = await self._read(lambda c: c.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())
        return rows.job_from_row(row) if row else None

    async def list_jobs(self, where: JobFilter, limit: int, after: JobCursor | None = None) -> list[Job]:
        clauses, params = _job_where(where)
        if after is not None:
            clauses.append("(create_us < ? OR (create_us = ? AND id < ?))")
            params += [after.create_us, after.create_us, after.id]
        sql = f"SELECT * FROM jobs {rows.where_sql(clauses)} ORDER BY create_us DESC, id DESC LIMIT ?"
        found = await self._read(lambda c: c.execute(sql, [*params, limit]).fetchall())
        return [rows.job_from_row(r) for r in found]

    async def count_jobs(self, where: JobFilter) -> int:
        clauses, params = _job_where(where)
        sql = f"SELECT count(*) FROM jobs {rows.where_sql(clauses)}"
        return int(await self._read(lambda c: c.execute(sql, params).fetchone()[0]))

    async def list_unfinished_jobs(self) -> list[Job]:
        sql = "SELECT * FROM jobs WHERE state IN (?, ?) ORDER BY create_us"
        found = await self._read(lambda c: c.execute(sql, (JobState.PENDING, JobState.RUNNING)).fetchall())
        return [rows.job_from_row(r) for r in found]

    async def get_task(self, job_id: str, name: str) -> Task | None:
        sql = "SELECT * FROM tasks WHERE job_id = ? AND name = ?"
        row = await self._read(lambda c: c.execute(sql, (job_id, name)).fetchone())
        return rows.task_from_row(row) if row else None

    async def list_tasks(self, job_id: str) -> list[Task]:
        sql = "SELECT * FROM tasks WHERE job_id = ? ORDER BY position"
        return [rows.task_from_row(r) for r in await self._read(lambda c: c.execute(sql, (job_id,)).fetchall())]

    async def commit(
        self, job: Job, tasks: Sequence[Task], events: Sequence[NewEvent], expected_version: int
    ) -> tuple[Job, list[Event]]:
        def run(conn: sqlite3.Connection) -> tuple[Job, list[Event]]:
            row = conn.execute("SELECT version FROM jobs WHERE id = ?", (job.id,)).fetchone()
            if row is None or row[0] != expected_version:
                raise StaleJob(job.id)
            stored, written = self._append_events(conn, job, events, version=expected_version + 1)
            conn.execute(_update("jobs", rows.JOB_MUTABLE_COLUMNS, ("id",)), rows.job_update_params(stored))
            conn.executemany(
                _update("tasks", rows.TASK_COLUMNS, ("job_id", "name")), [rows.task_params(t) for t in tasks]
            )
            return stored, written

        stored, written = await self._write(run)
        self._announce(written)
        return stored, written

    async def delete_job(self, job_id: str) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            conn.execute("DELETE FROM events WHERE job_id = ?", (job_id,))
            return conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount > 0

        return await self._write(run)

    # -- events --------------------------------------------------------------------------------------

    async def list_events(
        self, after_seq: int, *, job_id: str | None = None, up_to: int | None = None, limit: int = 1000
    ) -> list[Event]:
        sql, params = rows.events_query(after_seq, job_id, up_to, limit, "?")
        found = await self._read(lambda c: c.execute(sql, params).fetchall())
        return [rows.event_from_row(r) for r in found]

    async def latest_seq(self) -> int:
        return int(await self._read(lambda c: c.execute("SELECT value FROM seq_counter").fetchone()[0]))

    async def wait_for_events(self, after_seq: int, timeout: float) -> None:
        if self._latest > after_seq:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    # -- helpers ---------------------------------------------------------------------------------------

    def _append_events(
        self, conn: sqlite3.Connection, job: Job, events: Sequence[NewEvent], version: int | None = None
    ) -> tuple[Job, list[Event]]:
        """Allocates seqs from the counter row (inside the caller's transaction) and inserts the events."""
        now = now_us()
        last = conn.execute("UPDATE seq_counter SET value = value + ? RETURNING value", (len(events),)).fetchone()[0]
        written = [
            Event(last - len(events) + i + 1, job.id, e.type, now, e.job_state, e.task, e.task_state, e.attempt,
                  e.reason, e.message)
            for i, e in enumerate(events)
        ]  # fmt: skip
        conn.executemany(_insert("events", rows.EVENT_COLUMNS), [rows.event_params(e) for e in written])
        stored = _with(job, last_event_seq=written[-1].seq if written else job.last_event_seq, version=version)
        return stored, written

    def _announce(self, written: list[Event]) -> None:
        if written:
            self._latest = max(self._latest, written[-1].seq)
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()

    @property
    def _w(self) -> sqlite3.Connection:
        assert self._wconn is not None, "store is not open"
        return self._wconn

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def in_transaction() -> T:
            conn = self._w
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        return await self._on(self._writer, in_transaction)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._rconn
        assert conn is not None, "store is not open"
        return await self._on(self._reader, lambda: fn(conn))

    @staticmethod
    async def _on(pool: ThreadPoolExecutor, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(pool, fn)


def _with(job: Job, *, last_event_seq: int, version: int | None) -> Job:
    return dataclasses.replace(job, last_event_seq=last_event_seq, version=job.version if version is None else version)


def _job_where(where: JobFilter) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if where.pipeline:
        clauses.append("pipeline = ?")
        params.append(where.pipeline)
    if where.owner:
        clauses.append("owner = ?")
        params.append(where.owner)
    if where.states:
        clauses.append(f"state IN ({','.join('?' * len(where.states))})")
        params += sorted(int(s) for s in where.states)
    for key, value in sorted(where.labels.items()):
        clauses.append("json_extract(labels, ?) = ?")
        params += ['$."' + key.replace('"', "") + '"', value]
    more, values = rows.project_clauses(where.project, where.visible, "?")
    return clauses + more, params + values




def _named(column: str) -> str:
    return f":{column}"


def _insert(table: str, columns: Sequence[str]) -> str:
    return rows.insert_sql(table, columns, _named)


def _update(table: str, columns: Sequence[str], keys: Sequence[str]) -> str:
    return rows.update_sql(table, columns, keys, _named)
