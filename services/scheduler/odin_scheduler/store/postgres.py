"""The PostgreSQL store: psycopg 3 with a connection pool, versioned migrations, LISTEN/NOTIFY tail.

Event order: every writing transaction allocates its seqs with `UPDATE seq_counter ... RETURNING`,
which row-locks the counter until the transaction ends. So writers that append events are
serialized and commit in seq order: once event N is visible, every event below N is committed and
visible too, and a watcher can never see N+1 before N. (A `bigserial` alone would not do: two
transactions could take 7 and 8 and commit 8 first, and a reader between the commits would skip 7.)
The same transaction calls `pg_notify` with the new seq, which PostgreSQL delivers at commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from odin_scheduler.model import Event, Job, JobFilter, JobState, NewEvent, Task, now_us
from odin_scheduler.store import rows
from odin_scheduler.store.base import JobCursor, StaleJob

log = logging.getLogger("odin.scheduler.store")

CHANNEL = "odin_scheduler_events"
# Serializes migrations when several schedulers start at once.
MIGRATION_LOCK = 0x0D1_5C4ED

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE jobs (
        id text PRIMARY KEY, pipeline text NOT NULL, revision text NOT NULL, state smallint NOT NULL,
        owner text NOT NULL, create_us bigint NOT NULL, start_us bigint, end_us bigint, reason text NOT NULL,
        message text NOT NULL, request_id text UNIQUE, labels jsonb NOT NULL, options jsonb NOT NULL,
        spec jsonb NOT NULL, counts jsonb NOT NULL, last_event_seq bigint NOT NULL, version integer NOT NULL,
        run_us bigint NOT NULL
    );
    CREATE INDEX jobs_by_time ON jobs (create_us DESC, id DESC);
    CREATE INDEX jobs_by_pipeline ON jobs (pipeline, create_us DESC, id DESC);
    CREATE INDEX jobs_by_owner ON jobs (owner, create_us DESC, id DESC);
    CREATE INDEX jobs_by_state ON jobs (state, create_us DESC, id DESC);
    CREATE INDEX jobs_by_labels ON jobs USING gin (labels jsonb_path_ops);
    CREATE TABLE tasks (
        job_id text NOT NULL REFERENCES jobs(id) ON DELETE CASCADE, name text NOT NULL, position integer NOT NULL,
        task_id text NOT NULL, depends jsonb NOT NULL, state smallint NOT NULL, max_attempts integer NOT NULL,
        create_us bigint NOT NULL, image text NOT NULL, resource_type text NOT NULL, reason text NOT NULL,
        message text NOT NULL, attempt integer NOT NULL, exit_code integer, command jsonb NOT NULL,
        args jsonb NOT NULL, resource_id text NOT NULL, outputs jsonb NOT NULL, handle jsonb NOT NULL,
        start_us bigint, end_us bigint, next_attempt_us bigint,
        PRIMARY KEY (job_id, name)
    );
    CREATE TABLE events (
        seq bigint PRIMARY KEY, job_id text NOT NULL, type smallint NOT NULL, time_us bigint NOT NULL,
        job_state smallint NOT NULL, task text NOT NULL, task_state smallint NOT NULL, attempt integer NOT NULL,
        reason text NOT NULL, message text NOT NULL
    );
    CREATE INDEX events_by_job ON events (job_id, seq);
    CREATE TABLE seq_counter (id integer PRIMARY KEY CHECK (id = 1), value bigint NOT NULL);
    INSERT INTO seq_counter VALUES (1, 0);
    """,
    # 2: jobs belong to projects (existing ones to `default`); request ids are unique per owner.
    """
    ALTER TABLE jobs ADD COLUMN project text NOT NULL DEFAULT 'default';
    ALTER TABLE jobs DROP CONSTRAINT IF EXISTS jobs_request_id_key;
    CREATE UNIQUE INDEX jobs_by_request ON jobs (owner, request_id);
    CREATE INDEX jobs_by_project ON jobs (project, create_us DESC, id DESC);
    """,
)

JSON_COLUMNS = frozenset({"labels", "options", "spec", "counts", "depends", "command", "args", "outputs", "handle"})


class PostgresStore:
    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.url = url
        self.pool = AsyncConnectionPool(url, min_size=min_size, max_size=max_size, open=False,
                                        kwargs={"autocommit": True, "row_factory": dict_row})  # fmt: skip
        self._latest = 0
        self._changed = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None
        self._closing = False

    async def open(self) -> None:
        await self.pool.open(wait=True, timeout=30)
        await self._migrate()
        self._latest = await self.latest_seq()
        self._listener = asyncio.create_task(self._listen(), name="postgres-listen")

    async def close(self) -> None:
        self._closing = True
        if self._listener is not None:
            # psycopg may turn a cancel during connect into its own error: the flag ends the loop then.
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._listener, 5)
        await self.pool.close()

    async def ping(self) -> bool:
        async with self.pool.connection(timeout=5) as conn:
            await conn.execute("SELECT 1")
        return True

    async def _migrate(self) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied_us bigint)"
            )
            found = await (await conn.execute("SELECT version FROM schema_migrations")).fetchall()
            done = {_field(r, "version") for r in found}
            for version, script in enumerate(MIGRATIONS, start=1):
                if version not in done:
                    await conn.execute(script.encode())
                    await conn.execute("INSERT INTO schema_migrations VALUES (%s, %s)", (version, now_us()))

    # -- jobs and tasks ----------------------------------------------------------------------------

    async def create_job(self, job: Job, tasks: Sequence[Task], events: Sequence[NewEvent]) -> tuple[Job, bool]:
        async with self.pool.connection() as conn:
            try:
                async with conn.transaction():
                    stored, written = await self._append_events(conn, job, events)
                    await conn.execute(_insert("jobs", rows.JOB_COLUMNS), rows.job_params(stored))
                    async with conn.cursor() as cur:
                        await cur.executemany(_insert("tasks", rows.TASK_COLUMNS), [rows.task_params(t) for t in tasks])
            except psycopg.errors.UniqueViolation:
                existing = await self._job_by_request(conn, job.owner, job.request_id)
                if existing is None:
                    raise
                return existing, False
        self._announce(written)
        return stored, True

    async def _job_by_request(self, conn: psycopg.AsyncConnection[Any], owner: str, request_id: str) -> Job | None:
        if not request_id:
            return None
        sql = "SELECT * FROM jobs WHERE owner = %s AND request_id = %s"
        row = await (await conn.execute(sql, (owner, request_id))).fetchone()
        return rows.job_from_row(row) if row else None

    async def get_job(self, job_id: str) -> Job | None:
        row = await self._one("SELECT * FROM jobs WHERE id = %s", (job_id,))
        return rows.job_from_row(row) if row else None

    async def list_jobs(self, where: JobFilter, limit: int, after: JobCursor | None = None) -> list[Job]:
        clauses, params = _job_where(where)
        if after is not None:
            clauses.append("(create_us, id) < (%s, %s)")
            params += [after.create_us, after.id]
        sql = f"SELECT * FROM jobs {rows.where_sql(clauses)} ORDER BY create_us DESC, id DESC LIMIT %s"
        return [rows.job_from_row(r) for r in await self._all(sql, [*params, limit])]

    async def count_jobs(self, where: JobFilter) -> int:
        clauses, params = _job_where(where)
        row = await self._one(f"SELECT count(*) AS n FROM jobs {rows.where_sql(clauses)}", params)
        return int(row["n"]) if row else 0

    async def list_unfinished_jobs(self) -> list[Job]:
        sql = "SELECT * FROM jobs WHERE state IN (%s, %s) ORDER BY create_us"
        return [rows.job_from_row(r) for r in await self._all(sql, [JobState.PENDING, JobState.RUNNING])]

    async def get_task(self, job_id: str, name: str) -> Task | None:
        row = await self._one("SELECT * FROM tasks WHERE job_id = %s AND name = %s", (job_id, name))
        return rows.task_from_row(row) if row else None

    async def list_tasks(self, job_id: str) -> list[Task]:
        found = await self._all("SELECT * FROM tasks WHERE job_id = %s ORDER BY position", [job_id])
        return [rows.task_from_row(r) for r in found]

    async def commit(
        self, job: Job, tasks: Sequence[Task], events: Sequence[NewEvent], expected_version: int
    ) -> tuple[Job, list[Event]]:
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute("SELECT version FROM jobs WHERE id = %s FOR UPDATE", (job.id,))
            row = await cur.fetchone()
            if row is None or row["version"] != expected_version:  # type: ignore[call-overload]
                raise StaleJob(job.id)
            stored, written = await self._append_events(conn, job, events, version=expected_version + 1)
            await conn.execute(_update("jobs", rows.JOB_MUTABLE_COLUMNS, ("id",)), rows.job_update_params(stored))
            if tasks:
                async with conn.cursor() as many:
                    await many.executemany(_update("tasks", rows.TASK_COLUMNS, ("job_id", "name")),
                                           [rows.task_params(t) for t in tasks])  # fmt: skip
        self._announce(written)
        return stored, written

    async def delete_job(self, job_id: str) -> bool:
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("DELETE FROM events WHERE job_id = %s", (job_id,))
            cur = await conn.execute("DELETE FROM jobs WHERE id = %s", (job_id,))
            return cur.rowcount > 0

    # -- events --------------------------------------------------------------------------------------

    async def list_events(
        self, after_seq: int, *, job_id: str | None = None, up_to: int | None = None, limit: int = 1000
    ) -> list[Event]:
        sql, params = rows.events_query(after_seq, job_id, up_to, limit, "%s")
        return [rows.event_from_row(r) for r in await self._all(sql, params)]

    async def latest_seq(self) -> int:
        row = await self._one("SELECT value FROM seq_counter", ())
        return int(row["value"]) if row else 0

    async def wait_for_events(self, after_seq: int, timeout: float) -> None:
        if self._latest > after_seq:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    # -- helpers ---------------------------------------------------------------------------------------

    async def _append_events(
        self, conn: psycopg.AsyncConnection[Any], job: Job, events: Sequence[NewEvent], version: int | None = None
    ) -> tuple[Job, list[Event]]:
        now = now_us()
        cur = await conn.execute("UPDATE seq_counter SET value = value + %s RETURNING value", (len(events),))
        last = (await cur.fetchone())["value"]  # type: ignore[index]
        written = [
            Event(last - len(events) + i + 1, job.id, e.type, now, e.job_state, e.task, e.task_state, e.attempt,
                  e.reason, e.message)
            for i, e in enumerate(events)
        ]  # fmt: skip
        if written:
            async with conn.cursor() as many:
                await many.executemany(_insert("events", rows.EVENT_COLUMNS), [rows.event_params(e) for e in written])
            await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(last)))
        stored = dataclasses.replace(
            job, last_event_seq=written[-1].seq if written else job.last_event_seq,
            version=job.version if version is None else version,
        )  # fmt: skip
        return stored, written

    def _announce(self, written: list[Event]) -> None:
        if written:
            self._advance(written[-1].seq)

    def _advance(self, seq: int) -> None:
        if seq > self._latest:
            self._latest = seq
            self._notify()

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _listen(self) -> None:
        """Follows NOTIFY on its own connection (other schedulers' writes too); reconnects on failure."""
        while not self._closing:
            try:
                async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self._advance(await self.latest_seq())  # what was committed while not listening
                    async for notice in conn.notifies():
                        self._advance(int(notice.payload or 0))
            except (psycopg.Error, OSError) as exc:
                if self._closing:
                    return
                log.warning("event listener lost its connection; reconnecting", extra={"error": type(exc).__name__})
                await asyncio.sleep(1.0)

    async def _one(self, sql: str, params: Sequence[Any]) -> dict[str, Any] | None:
        async with self.pool.connection() as conn:
            return await (await conn.execute(sql.encode(), params)).fetchone()  # type: ignore[return-value]

    async def _all(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn:
            return await (await conn.execute(sql.encode(), params)).fetchall()  # type: ignore[return-value]


def _field(row: Any, name: str) -> Any:
    return row[name]


def _job_where(where: JobFilter) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if where.pipeline:
        clauses.append("pipeline = %s")
        params.append(where.pipeline)
    if where.owner:
        clauses.append("owner = %s")
        params.append(where.owner)
    if where.states:
        clauses.append("state = ANY(%s)")
        params.append(sorted(int(s) for s in where.states))
    if where.labels:
        clauses.append("labels @> %s::jsonb")
        params.append(json.dumps(dict(where.labels)))
    more, values = rows.project_clauses(where.project, where.visible, "%s")
    return clauses + more, params + values




def _placeholder(column: str) -> str:
    return f"%({column})s::jsonb" if column in JSON_COLUMNS else f"%({column})s"


def _insert(table: str, columns: Sequence[str]) -> str:
    return rows.insert_sql(table, columns, _placeholder)


def _update(table: str, columns: Sequence[str], keys: Sequence[str]) -> str:
    return rows.update_sql(table, columns, keys, _placeholder)
