"""The MongoDB store's event log: seqs allocated by unique inserts, read up to a contiguous watermark.

Why not a counter document with `$inc`: FerretDB v1 executes every update as read, modify in Go, then
write back by `_id`, with no lock in between, so two concurrent `$inc`s can both return the same value.
The one atomic primitive it shares with MongoDB is the unique index, so the seq *is* the event's `_id`:

* Allocation: an event is inserted at `_id = next`; a duplicate-key error means another writer holds
  that seq, so the writer moves past it and tries again. A seq is only ever tried after the seq below
  it was seen committed (by our own insert, a probe, or that duplicate-key error), so the log is dense:
  when seq N exists, every seq below N exists. Deleting a job turns its events into tombstones instead
  of removing them, so a seq is never free again and never reused.
* Visibility: events enter the log with `ready: false`, are marked ready once the rows they describe
  are written, and readers only read up to the *watermark*: the highest W such that every seq <= W
  exists and is ready (or a tombstone). The watermark advances contiguously, so a reader never sees
  N+1 while N is still missing, and never sees an event before the job state it reports.
* Dedupe: each event carries `key` (its commit record id and index) under a unique index; replaying a
  commit after a crash finds the keys already in the log and never appends an event twice.

Pages: FerretDB v1 pushes only equality filters down to PostgreSQL (ranges and sorts run in Go over
every matching document), so each event also carries `page = seq // PAGE` and the global tail reads one
page at a time by equality. On MongoDB the `_id` index serves the same queries directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from odin_scheduler.store.mongo_docs import EVENT_PAYLOAD, Doc

PAGE = 100


class EventLog:
    def __init__(self, events: AsyncCollection[Doc]) -> None:
        self.events = events
        # Every seq <= watermark exists and is ready (or a tombstone): what readers may read.
        self.watermark = 0
        # Where the next allocation tries first; a hint, corrected by duplicate-key errors.
        self._next = 1
        self._allocating = asyncio.Lock()
        # Seqs this process made ready above the watermark (lets it advance without a query).
        self._ready_here: set[int] = set()

    async def load(self) -> None:
        """Finds the log's end and the watermark (at open)."""
        top = await self.events.find_one({}, {"_id": 1}, sort=[("_id", -1)])
        end = int(top["_id"]) if top else 0
        first_unready = await self.events.find_one({"ready": False}, {"_id": 1}, sort=[("_id", 1)])
        self._next = end + 1
        self.watermark = min(end, int(first_unready["_id"]) - 1) if first_unready else end

    # -- writing -------------------------------------------------------------------------------------

    async def append(self, docs: Sequence[Doc]) -> list[int]:
        """Inserts the (not ready) event documents in order and returns their seqs.

        A document whose `key` is already in the log (a replayed commit) is not inserted again: the
        seq it already has is returned.
        """
        seqs: list[int] = []
        pending = list(docs)
        async with self._allocating:
            while pending:
                start = self._next
                batch = [{**doc, "_id": start + i, "page": (start + i) // PAGE} for i, doc in enumerate(pending)]
                inserted, failed = await self._insert(batch)
                seqs += range(start, start + inserted)
                pending = pending[inserted:]
                self._next = start + inserted
                if failed:
                    existing = await self.events.find_one({"key": pending[0]["key"]}, {"_id": 1})
                    if existing is not None:  # the commit is being replayed: this event is already in
                        seqs.append(int(existing["_id"]))
                        pending.pop(0)
                    else:  # another writer holds that seq
                        await self._skip_taken()
        return seqs

    async def _insert(self, batch: list[Doc]) -> tuple[int, bool]:
        """(how many of the batch went in, whether it stopped at a duplicate key)."""
        try:
            await self.events.insert_many(batch, ordered=True)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if not errors or any(e.get("code") != 11000 for e in errors):
                raise
            return int(errors[0]["index"]), True
        return len(batch), False

    async def _skip_taken(self) -> None:
        """Moves `_next` past the seqs other writers already hold (the log is dense, so to its end)."""
        while True:
            page = self._next // PAGE
            cursor = self.events.find({"page": page, "_id": {"$gte": self._next}}, {"_id": 1})
            found = [int(d["_id"]) async for d in cursor]
            for seq in sorted(found):
                if seq != self._next:
                    return
                self._next += 1
            if self._next // PAGE == page:
                return

    async def mark_ready(self, commit: str, seqs: Iterable[int]) -> None:
        await self.events.update_many({"commit": commit, "ready": False}, {"$set": {"ready": True}})
        self._ready_here.update(s for s in seqs if s > self.watermark)
        while self.watermark + 1 in self._ready_here:
            self.watermark += 1
            self._ready_here.discard(self.watermark)

    async def tombstone(self, job_id: str) -> None:
        """Strips the job's events to tombstones: the seq stays taken, the content is gone."""
        unset: dict[str, Any] = dict.fromkeys(EVENT_PAYLOAD, "")
        await self.events.update_many({"job_id": job_id}, {"$set": {"ready": True, "void": True}, "$unset": unset})

    # -- reading ---------------------------------------------------------------------------------------

    async def advance(self) -> bool:
        """Moves the watermark over events other writers (or crashed ones, once replayed) made ready."""
        start = mark = self.watermark
        while True:
            page = (mark + 1) // PAGE
            cursor = self.events.find({"page": page, "_id": {"$gt": mark}}, {"_id": 1, "ready": 1})
            found = sorted([(int(d["_id"]), bool(d.get("ready"))) async for d in cursor])
            for seq, ready in found:
                if seq != mark + 1 or not (ready or seq in self._ready_here):
                    break
                mark = seq
            if (mark + 1) // PAGE == page or not found:
                break
        if mark > self.watermark:
            self.watermark = mark
            self._ready_here = {s for s in self._ready_here if s > mark}
            self._next = max(self._next, mark + 1)
        return self.watermark > start

    async def read(self, after: int, up_to: int, limit: int) -> list[Doc]:
        """Documents with after < seq <= up_to in seq order, tombstones included, one page per query."""
        found: list[Doc] = []
        page = (after + 1) // PAGE
        while len(found) < limit and page <= up_to // PAGE:
            query = {"page": page, "_id": {"$gt": after, "$lte": up_to}}
            found += [d async for d in self.events.find(query).sort("_id", 1).limit(limit - len(found))]
            page += 1
        return found
