"""The MongoDB store (pymongo's asyncio client), built to hold on servers without transactions.

Tested on FerretDB v1, which has no multi-document transactions and whose updates are not atomic
read-modify-writes; the only atomic step it shares with MongoDB is an insert under a unique index.
So every write is a *commit record* first (docs/stores.md has the full argument):

1. The record `<job>@<version>` is inserted into `commits`. Its unique `_id` is the version check (one
   writer wins each version) and the commit point: from here on the commit is decided and any store
   instance can finish it from the record, which carries the job fields, task rows and events.
2. The events are appended to the log, not ready (seqs allocated by unique insert, see mongo_log).
3. The job document, then the task documents, are written, each guarded by `version < new version`.
4. The events are marked ready; readers see them once the contiguous watermark passes them.
5. The record is marked applied and its payload dropped.

A writer that dies between 1 and 5 leaves an unapplied record; it is replayed (idempotently: events
are deduplicated by key, rows by version) at the next open, by the janitor after `settle_after`
seconds, or by the next writer of that job. Within one process a per-job lock serializes the writers
and replayers of a job. The live tail polls the log (FerretDB has no change streams).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import weakref
from collections.abc import Sequence
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from odin_scheduler.model import DEFAULT_PROJECT, Event, Job, JobFilter, JobState, NewEvent, Task, now_us
from odin_scheduler.store import mongo_docs as docs
from odin_scheduler.store.base import JobCursor, StaleJob, StoreError
from odin_scheduler.store.mongo_docs import Doc
from odin_scheduler.store.mongo_log import EventLog

log = logging.getLogger("odin.scheduler.store")

SCHEMA_VERSION = 2
DEFAULT_DATABASE = "odin_scheduler"
# FerretDB v1 keeps one PostgreSQL connection per update statement until the whole command ends, plus one
# for its write transaction, from a pool of 50: a bulk update of 50 rows, or ~25 concurrent updates, would
# wait forever for a connection. So task rows are updated TASK_CHUNK per command, BULK_SLOTS commands at a
# time, and the client keeps at most POOL_SIZE connections (unless the URL sets maxPoolSize).
TASK_CHUNK = 8
BULK_SLOTS = 2
POOL_SIZE = 16

# Each migration creates the indexes of one schema version: every query the store makes has one.
MIGRATIONS: tuple[dict[str, list[tuple[list[tuple[str, int]], dict[str, Any]]]], ...] = (
    {
        "jobs": [
            ([("create_us", DESCENDING), ("_id", DESCENDING)], {"name": "jobs_by_time"}),
            ([("pipeline", ASCENDING), ("create_us", DESCENDING), ("_id", DESCENDING)], {"name": "jobs_by_pipeline"}),
            ([("owner", ASCENDING), ("create_us", DESCENDING), ("_id", DESCENDING)], {"name": "jobs_by_owner"}),
            ([("state", ASCENDING), ("create_us", DESCENDING), ("_id", DESCENDING)], {"name": "jobs_by_state"}),
            ([("label_pairs", ASCENDING)], {"name": "jobs_by_label"}),
            ([("deleting", ASCENDING)], {"name": "jobs_deleting"}),
        ],
        "tasks": [([("job_id", ASCENDING), ("position", ASCENDING)], {"name": "tasks_by_job"})],
        "events": [
            ([("key", ASCENDING)], {"name": "events_by_key", "unique": True}),
            ([("job_id", ASCENDING), ("_id", ASCENDING)], {"name": "events_by_job"}),
            ([("page", ASCENDING), ("_id", ASCENDING)], {"name": "events_by_page"}),
            ([("commit", ASCENDING)], {"name": "events_by_commit"}),
            ([("ready", ASCENDING), ("_id", ASCENDING)], {"name": "events_by_ready"}),
        ],
        "commits": [
            ([("request_key", ASCENDING)], {"name": "commits_by_request", "unique": True}),
            ([("job_id", ASCENDING), ("version", ASCENDING)], {"name": "commits_by_job"}),
            ([("applied", ASCENDING)], {"name": "commits_unapplied"}),
        ],
    },
    # 2: jobs belong to projects; request keys name their owner (the documents are rewritten by _migrate_data).
    {
        "jobs": [
            ([("project", ASCENDING), ("create_us", DESCENDING), ("_id", DESCENDING)], {"name": "jobs_by_project"}),
        ],
    },
)


class MongoStore:
    def __init__(self, url: str, *, poll_interval: float = 0.1, settle_after: float = 1.0) -> None:
        self.url = url
        self.poll_interval = poll_interval
        # How old another process's unapplied record must be before this one finishes it.
        self.settle_after = settle_after
        options: dict[str, Any] = {} if "maxpoolsize=" in url.lower() else {"maxPoolSize": POOL_SIZE}
        self.client: AsyncMongoClient[Doc] = AsyncMongoClient(url, serverSelectionTimeoutMS=10_000, **options)
        default = self.client.get_default_database(DEFAULT_DATABASE)
        self.db: AsyncDatabase[Doc] = default
        self.jobs, self.tasks = self.db["jobs"], self.db["tasks"]
        self.commits, self.meta = self.db["commits"], self.db["meta"]
        self.log = EventLog(self.db["events"])
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._mine: set[str] = set()  # records this process wrote and has not applied (failed mid-way)
        self._versions: dict[str, int] = {}  # job version this process last wrote: skips the version read
        self._finishing: dict[str, asyncio.Task[None]] = {}  # step 5 of a job's last commit, off the hot path
        self._changed = asyncio.Event()
        self._nudge = asyncio.Event()
        self._follower: asyncio.Task[None] | None = None
        self._bulk_slots = asyncio.Semaphore(BULK_SLOTS)

    # -- lifecycle -------------------------------------------------------------------------------------

    async def open(self) -> None:
        await self._migrate()
        await self.settle(older_than=self.settle_after, wait=True)
        await self._finish_deletions()
        await self.log.load()
        self._follower = asyncio.create_task(self._follow(), name="mongo-follow")

    async def close(self) -> None:
        for job_id in list(self._finishing):
            await self._finish(job_id)
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
        await self.client.close()

    async def ping(self) -> bool:
        await self.db.command("ping")
        return True

    async def schema_version(self) -> int:
        found = await self.meta.find_one({"_id": "schema"})
        return int(found["version"]) if found else 0

    async def _migrate(self) -> None:
        current = await self.schema_version()
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"the store's schema version {current} is newer than this scheduler's ({SCHEMA_VERSION}): "
                "upgrade the scheduler"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            for collection, indexes in MIGRATIONS[version - 1].items():
                for keys, options in indexes:
                    await self.db[collection].create_index(keys, **options)
            await self._migrate_data(version)
            # Idempotent when two schedulers migrate at once: both write the same version.
            await self.meta.update_one({"_id": "schema"}, {"$set": {"version": version, "applied_us": now_us()}},
                                       upsert=True)  # fmt: skip

    async def _migrate_data(self, version: int) -> None:
        """Rewrites documents for schema `version`; idempotent, so a migration cut short is simply redone."""
        if version != 2:
            return
        await self.jobs.update_many({"project": {"$exists": False}}, {"$set": {"project": DEFAULT_PROJECT}})
        # Request keys were global (`r:<id>`); they become the owner's own (docs.request_key).
        old = [r async for r in self.commits.find({"request_key": {"$regex": "^r:"}}, {"job_id": 1, "request_key": 1})]
        for record in old:
            job = await self.jobs.find_one({"_id": record["job_id"]}, {"owner": 1})
            if job is None:
                continue  # its job is gone: the record goes with the purge
            key = docs.request_key(job["owner"], record["request_key"].removeprefix("r:"))
            await self.commits.update_one({"_id": record["_id"]}, {"$set": {"request_key": key}})

    # -- jobs and tasks --------------------------------------------------------------------------------

    async def create_job(self, job: Job, tasks: Sequence[Task], events: Sequence[NewEvent]) -> tuple[Job, bool]:
        rid = docs.commit_id(job.id, job.version)
        request_key = docs.request_key(job.owner, job.request_id) if job.request_id else f"c:{rid}"
        record = {
            "_id": rid, "job_id": job.id, "version": job.version, "kind": "create", "request_key": request_key,
            "applied": False, "created_us": now_us(), "job": docs.job_doc(job),
            "tasks": [docs.task_doc(t, job.version) for t in tasks],
            "events": docs.pending_events(job.id, rid, events, now_us()),
        }  # fmt: skip
        async with self._lock(job.id):
            try:
                await self.commits.insert_one(record)
            except DuplicateKeyError:
                existing = await self._job_by_request(request_key)
                if existing is None:
                    raise
                return existing, False
            written = await self._apply_mine(record)
        return _stored(job, written, job.version), True

    async def _job_by_request(self, request_key: str) -> Job | None:
        found = await self.commits.find_one({"request_key": request_key}, {"job_id": 1})
        if found is None:
            return None
        await self._settle_job(found["job_id"])
        return await self.get_job(found["job_id"])

    async def get_job(self, job_id: str) -> Job | None:
        found = await self.jobs.find_one({"_id": job_id, "deleting": False})
        return docs.job_from_doc(found) if found else None

    async def list_jobs(self, where: JobFilter, limit: int, after: JobCursor | None = None) -> list[Job]:
        query = _job_query(where)
        if after is not None:
            query["$or"] = [{"create_us": {"$lt": after.create_us}},
                            {"create_us": after.create_us, "_id": {"$lt": after.id}}]  # fmt: skip
        cursor = self.jobs.find(query).sort([("create_us", DESCENDING), ("_id", DESCENDING)]).limit(limit)
        return [docs.job_from_doc(d) async for d in cursor]

    async def count_jobs(self, where: JobFilter) -> int:
        return int(await self.jobs.count_documents(_job_query(where)))

    async def list_unfinished_jobs(self) -> list[Job]:
        query = {"deleting": False, "state": {"$in": [int(JobState.PENDING), int(JobState.RUNNING)]}}
        return [docs.job_from_doc(d) async for d in self.jobs.find(query).sort("create_us", ASCENDING)]

    async def get_task(self, job_id: str, name: str) -> Task | None:
        found = await self.tasks.find_one({"_id": docs.task_key(job_id, name)})
        return docs.task_from_doc(found) if found else None

    async def list_tasks(self, job_id: str) -> list[Task]:
        cursor = self.tasks.find({"job_id": job_id}).sort("position", ASCENDING)
        return [docs.task_from_doc(d) async for d in cursor]

    async def commit(
        self, job: Job, tasks: Sequence[Task], events: Sequence[NewEvent], expected_version: int
    ) -> tuple[Job, list[Event]]:
        version = expected_version + 1
        rid = docs.commit_id(job.id, version)
        record = {
            "_id": rid, "job_id": job.id, "version": version, "kind": "commit", "request_key": f"c:{rid}",
            "applied": False, "created_us": now_us(), "job": {**docs.job_update(job), "version": version},
            "tasks": [docs.task_doc(t, version) for t in tasks],
            "events": docs.pending_events(job.id, rid, events, now_us()),
        }  # fmt: skip
        async with self._lock(job.id):
            await self._finish(job.id)
            if any(rid.rsplit("@", 1)[0] == job.id for rid in self._mine):
                await self._settle_job_locked(job.id)  # an earlier commit of this job failed half-way: finish it first
            if self._versions.get(job.id) != expected_version:  # else the record's unique id is the check
                found = await self.jobs.find_one({"_id": job.id, "deleting": False}, {"version": 1})
                if found is None or found["version"] != expected_version:
                    raise StaleJob(job.id)
            try:
                await self.commits.insert_one(record)
            except DuplicateKeyError:  # another process committed this version first
                await self._settle_job_locked(job.id, wait=True)
                raise StaleJob(job.id) from None
            written = await self._apply_mine(record)
        return _stored(job, written, version), written

    async def delete_job(self, job_id: str) -> bool:
        async with self._lock(job_id):
            found = await self.jobs.find_one({"_id": job_id}, {"deleting": 1})
            if found is None:
                return False
            await self._settle_job_locked(job_id, wait=True)
            self._versions.pop(job_id, None)
            await self.jobs.update_one({"_id": job_id}, {"$set": {"deleting": True}})
            await self._purge(job_id)
            return not found["deleting"]

    async def _purge(self, job_id: str) -> None:
        """Removes a job marked `deleting`; each step is idempotent, so a crashed purge is resumed."""
        await self.log.tombstone(job_id)
        await self.tasks.delete_many({"job_id": job_id})
        await self.commits.delete_many({"job_id": job_id})
        await self.jobs.delete_one({"_id": job_id})

    async def _finish_deletions(self) -> None:
        async for found in self.jobs.find({"deleting": True}, {"_id": 1}):
            async with self._lock(found["_id"]):
                await self._purge(found["_id"])

    # -- events ----------------------------------------------------------------------------------------

    async def list_events(
        self, after_seq: int, *, job_id: str | None = None, up_to: int | None = None, limit: int = 1000
    ) -> list[Event]:
        top = self.log.watermark if up_to is None else up_to
        if job_id is None:
            found = await self.log.read(after_seq, top, limit)
        else:
            query = {"job_id": job_id, "_id": {"$gt": after_seq, "$lte": top}}
            found = [d async for d in self.log.events.find(query).sort("_id", ASCENDING).limit(limit)]
        return [docs.event_from_doc(d) for d in found if not d.get("void")]

    async def latest_seq(self) -> int:
        return self.log.watermark

    async def wait_for_events(self, after_seq: int, timeout: float) -> None:
        if self.log.watermark > after_seq:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    # -- applying commit records -----------------------------------------------------------------------

    async def _apply_mine(self, record: Doc) -> list[Event]:
        """Applies a record this call just wrote; when that fails, the record stays for a replay."""
        self._mine.add(record["_id"])
        written = await self._apply(record)
        self._mine.discard(record["_id"])
        return written

    async def _apply(self, record: Doc) -> list[Event]:
        """Steps 2-5 of a commit (see the module docstring); idempotent. Caller holds the job's lock."""
        rid, job_id = record["_id"], record["job_id"]
        # The task rows do not depend on the seqs: they are written while the events get theirs.
        seqs, _ = await asyncio.gather(self._events_and_job(record), self._write_tasks(record))
        self._versions[job_id] = max(self._versions.get(job_id, 0), record["version"])
        await self.log.mark_ready(rid, seqs)
        if seqs and self.log.watermark < seqs[-1]:
            self._nudge.set()  # another writer's event sits below ours: let the follower look
        elif seqs:
            self._notify()
        # Step 5 may run after the call returns: until it is done the record only looks unapplied, and a
        # replay of an applied record changes nothing. The job's next locked operation awaits it.
        self._finishing[job_id] = asyncio.create_task(self._mark_applied(rid), name=f"applied {rid}")
        return [docs.event_from_doc({**e, "_id": s}) for e, s in zip(record["events"], seqs, strict=True)]

    async def _events_and_job(self, record: Doc) -> list[int]:
        seqs = await self.log.append(record["events"])
        fields = dict(record["job"])
        if seqs:
            fields["last_event_seq"] = seqs[-1]
        if record["kind"] == "create":
            with contextlib.suppress(DuplicateKeyError):
                await self.jobs.insert_one(fields)
        else:
            guard = {"_id": record["job_id"], "version": {"$lt": record["version"]}}
            await self.jobs.update_one(guard, {"$set": fields})
        return seqs

    async def _write_tasks(self, record: Doc) -> None:
        if not record["tasks"]:
            return
        if record["kind"] == "create":
            await _insert_missing(self.tasks, record["tasks"])
        else:
            version = record["version"]
            guarded = [UpdateOne({"_id": t["_id"], "version": {"$lt": version}}, {"$set": t}) for t in record["tasks"]]
            for start in range(0, len(guarded), TASK_CHUNK):
                async with self._bulk_slots:
                    await self.tasks.bulk_write(guarded[start : start + TASK_CHUNK], ordered=False)

    async def _mark_applied(self, rid: str) -> None:
        await self.commits.update_one({"_id": rid}, {"$set": {"applied": True},
                                                     "$unset": {"job": "", "tasks": "", "events": ""}})  # fmt: skip

    async def _finish(self, job_id: str) -> None:
        """Waits for the job's pending step 5 (a failure leaves the record to be replayed: harmless)."""
        finishing = self._finishing.pop(job_id, None)
        if finishing is not None:
            with contextlib.suppress(Exception):
                await finishing

    async def settle(self, older_than: float, wait: bool = False) -> int:
        """Replays unapplied records (this process's failed ones at once, others' once `older_than`)."""
        done = 0
        async for found in self.commits.find({"applied": False}, {"job_id": 1}):
            async with self._lock(found["job_id"]):
                done += await self._settle_job_locked(found["job_id"], wait=wait, older_than=older_than)
        return done

    async def _settle_job(self, job_id: str) -> None:
        async with self._lock(job_id):
            await self._settle_job_locked(job_id, wait=True)

    async def _settle_job_locked(self, job_id: str, *, wait: bool = False, older_than: float | None = None) -> int:
        """Replays the job's unapplied records in version order; returns how many."""
        limit = self.settle_after if older_than is None else older_than
        await self._finish(job_id)
        done = 0
        while True:
            cursor = self.commits.find({"job_id": job_id, "applied": False}).sort("version", ASCENDING).limit(1)
            pending = [d async for d in cursor]
            if not pending:
                return done
            record = pending[0]
            age = (now_us() - record["created_us"]) / 1e6
            if record["_id"] not in self._mine and age < limit:
                if not wait:
                    return done
                await asyncio.sleep(min(limit - age, self.poll_interval))  # another process may be writing it
                continue
            log.warning("replaying an unapplied commit", extra={"commit": record["_id"]})
            await self._apply(record)
            await self._finish(job_id)
            self._mine.discard(record["_id"])
            done += 1

    # -- live tail -------------------------------------------------------------------------------------

    async def _follow(self) -> None:
        """Polls the log for other processes' events and replays stale records; change streams are not
        available on FerretDB, so this is how every backend-independent watcher gets woken."""
        next_settle = time.monotonic() + self.settle_after
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._nudge.wait(), self.poll_interval)
            self._nudge.clear()
            try:
                if await self.log.advance():
                    self._notify()
                if time.monotonic() >= next_settle:
                    await self.settle(older_than=self.settle_after)
                    next_settle = time.monotonic() + self.settle_after
            except Exception as exc:  # the server may be briefly down: keep following
                log.warning("store follower failed; retrying", extra={"error": type(exc).__name__})
                await asyncio.sleep(1.0)

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _lock(self, job_id: str) -> asyncio.Lock:
        lock = self._locks.get(job_id)
        if lock is None:
            lock = self._locks[job_id] = asyncio.Lock()
        return lock


def _stored(job: Job, written: list[Event], version: int) -> Job:
    last = written[-1].seq if written else job.last_event_seq
    return dataclasses.replace(job, last_event_seq=last, version=version)


async def _insert_missing(collection: Any, documents: list[Doc]) -> None:
    """Inserts documents, ignoring those already there (a replay)."""
    try:
        await collection.insert_many(documents, ordered=False)
    except BulkWriteError as exc:
        if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
            raise


def _job_query(where: JobFilter) -> Doc:
    query: Doc = {"deleting": False}
    if where.pipeline:
        query["pipeline"] = where.pipeline
    if where.owner:
        query["owner"] = where.owner
    if where.states:
        query["state"] = {"$in": sorted(int(s) for s in where.states)}
    if where.labels:
        query["label_pairs"] = {"$all": sorted(docs.label_pair(k, v) for k, v in where.labels.items())}
    if where.project:
        query["project"] = where.project
    if where.visible is not None:
        visible = sorted(where.visible)
        query["project"] = {"$in": [where.project] if where.project in where.visible else []} \
            if where.project else {"$in": visible}
    return query


