"""Stores for jobs, tasks and events; `open_store(url)` picks the backend by the URL scheme."""

from __future__ import annotations

from pathlib import Path

from odin_scheduler.store.base import JobCursor, StaleJob, Store, StoreError

__all__ = ["JobCursor", "StaleJob", "Store", "StoreError", "open_store"]


def open_store(url: str) -> Store:
    """`sqlite:///relative.db`, `sqlite:////absolute.db`, `postgresql://…` or `mongodb://host:port/database`.

    Then `await store.open()`.
    """
    if url.startswith("sqlite:///"):
        from odin_scheduler.store.sqlite import SqliteStore

        return SqliteStore(Path(url.removeprefix("sqlite:///")))
    if url.startswith(("postgresql://", "postgres://")):
        from odin_scheduler.store.postgres import PostgresStore

        return PostgresStore(url)
    if url.startswith(("mongodb://", "mongodb+srv://")):
        from odin_scheduler.store.mongo import MongoStore

        return MongoStore(url)
    scheme = url.split(":", 1)[0]
    raise ValueError(f"unsupported store URL scheme in {scheme!r}: use sqlite:///, postgresql:// or mongodb://")
