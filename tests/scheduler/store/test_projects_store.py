"""Projects in the store, on every backend: the project filters, per-owner request ids, and the migration of
a store written before projects existed."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
from odin_scheduler.model import JobFilter
from odin_scheduler.store import Store, open_store, rows
from odin_scheduler.store import postgres as pg_store
from odin_scheduler.store import sqlite as sqlite_store
from odin_scheduler.store.mongo import MongoStore
from test_store import make_job


async def test_request_ids_are_scoped_to_their_owner(store: Store) -> None:
    mine, created = await store.create_job(*make_job("j1", owner="users/me", request_id="same"))
    assert created
    theirs, created = await store.create_job(*make_job("j2", owner="users/them", request_id="same"))
    assert created and theirs.id == "j2" and theirs.owner == "users/them"  # never my job
    again, created = await store.create_job(*make_job("j3", owner="users/me", request_id="same"))
    assert not created and again.id == mine.id


async def test_project_filters_and_counts_see_only_visible_projects(store: Store) -> None:
    for i, project in enumerate(["default", "red", "red", "blue"]):
        await store.create_job(*make_job(f"j{i}", create_us=1000 + i, project=project))
    assert (await store.get_job("j1")).project == "red"  # type: ignore[union-attr]
    red = JobFilter(project="red")
    assert [j.id for j in await store.list_jobs(red, 10)] == ["j2", "j1"]
    visible = JobFilter(visible=frozenset({"default", "blue"}))
    assert [j.id for j in await store.list_jobs(visible, 10)] == ["j3", "j0"]
    assert await store.count_jobs(visible) == 2
    nothing = JobFilter(visible=frozenset())
    assert await store.list_jobs(nothing, 10) == [] and await store.count_jobs(nothing) == 0
    outside = JobFilter(project="red", visible=frozenset({"blue"}))
    assert await store.list_jobs(outside, 10) == [] and await store.count_jobs(outside) == 0


def _old_sql_job(job_id: str, owner: str, request_id: str) -> dict[str, object]:
    params = rows.job_params(make_job(job_id, owner=owner, request_id=request_id)[0])
    del params["project"]
    return params


def _old_task(job_id: str) -> dict[str, object]:
    return rows.task_params(make_job(job_id)[1][0])


async def _check_migrated(url: str) -> None:
    store = open_store(url)
    await store.open()
    try:
        job = await store.get_job("old")
        assert job is not None and job.project == "default"
        assert "t" in [t.name for t in await store.list_tasks("old")]  # the rebuild kept the tasks
        assert [j.id for j in await store.list_jobs(JobFilter(project="default"), 10)] == ["old"]
        # The old global request id is now the owner's: another user creates their own job with it.
        _, created = await store.create_job(*make_job("new", owner="users/b", request_id="rid"))
        assert created
        again, created = await store.create_job(*make_job("dup", owner="users/a", request_id="rid"))
        assert not created and again.id == "old"
    finally:
        await store.close()


async def test_migration_from_a_store_without_projects(store_url: str) -> None:
    cols = [c for c in rows.JOB_COLUMNS if c != "project"]
    if store_url.startswith("sqlite"):
        conn = sqlite3.connect(store_url.removeprefix("sqlite:///"))
        conn.executescript(sqlite_store.MIGRATIONS[0])
        conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_us INTEGER)")
        conn.execute("INSERT INTO schema_migrations VALUES (1, 0)")
        conn.execute(rows.insert_sql("jobs", cols, lambda c: f":{c}"), _old_sql_job("old", "users/a", "rid"))
        conn.execute(rows.insert_sql("tasks", rows.TASK_COLUMNS, lambda c: f":{c}"), _old_task("old"))
        conn.commit()
        conn.close()
    elif store_url.startswith("postgres"):
        with psycopg.connect(store_url, autocommit=True) as conn:
            conn.execute(pg_store.MIGRATIONS[0].encode())
            conn.execute("CREATE TABLE schema_migrations (version integer PRIMARY KEY, applied_us bigint)")
            conn.execute("INSERT INTO schema_migrations VALUES (1, 0)")
            conn.execute(rows.insert_sql("jobs", cols, pg_store._placeholder).encode(),  # type: ignore[arg-type]
                         _old_sql_job("old", "users/a", "rid"))  # fmt: skip
            conn.execute(rows.insert_sql("tasks", rows.TASK_COLUMNS, pg_store._placeholder).encode(),  # type: ignore[arg-type]
                         _old_task("old"))  # fmt: skip
    else:
        # A store at schema 2 turned back into what schema 1 wrote: no project, a global request key.
        mongo = MongoStore(store_url)
        await mongo.open()
        await mongo.create_job(*make_job("old", owner="users/a", request_id="rid"))
        await mongo.jobs.update_one({"_id": "old"}, {"$unset": {"project": ""}})
        await mongo.commits.update_one({"job_id": "old"}, {"$set": {"request_key": "r:rid"}})
        await mongo.meta.update_one({"_id": "schema"}, {"$set": {"version": 1}})
        await mongo.close()
    await _check_migrated(store_url)


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_sqlite_migration_is_applied_once(store_url: str) -> None:
    for _ in range(2):
        store = open_store(store_url)
        await store.open()
        await store.close()
    conn = sqlite3.connect(store_url.removeprefix("sqlite:///"))
    versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    conn.close()
    assert versions == [1, 2]
