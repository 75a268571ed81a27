"""The audit log's store and `AuditService`: records from every Odin service, listed by admins.

The auth service's own records go straight to its database (a buffered sink, so a slow disk
never blocks a call); the other services send theirs with `WriteAuditRecords` under the suite
robot's token. Listing is newest first with keyset paging on (time, id).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import uuid
from collections.abc import Sequence
from typing import Any

from odin.auth.v1 import auth_pb2 as pb
from odin.auth.v1 import auth_pb2_grpc as pb_grpc
from odin.runtime import paging
from odin.runtime.audit_sink import MAX_BATCH, BufferedAuditSink
from odin.runtime.auth import current_identity
from odin.runtime.errors import InvalidArgument, PermissionDenied
from odin.runtime.projects import project_id, project_name
from odin.runtime.server import ServiceRuntime
from odin.runtime.timestamps import from_seconds
from odin.runtime.tokens import Role
from odin_auth.store import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_records (
    id TEXT PRIMARY KEY,
    time DOUBLE PRECISION NOT NULL,
    actor TEXT NOT NULL,
    method TEXT NOT NULL,
    resource TEXT NOT NULL,
    project TEXT NOT NULL,
    request_id TEXT NOT NULL,
    result TEXT NOT NULL,
    client TEXT NOT NULL,
    service TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_records_by_time ON audit_records (time, id);
CREATE INDEX IF NOT EXISTS audit_records_by_actor ON audit_records (actor, time);
CREATE INDEX IF NOT EXISTS audit_records_by_project ON audit_records (project, time)
"""
_COLUMNS = "id, time, actor, method, resource, project, request_id, result, client, service"
_TEXT_FIELDS = ("actor", "method", "resource", "project", "request_id", "result", "client", "service")
_MAX_TEXT = 1024
_USERNAME = re.compile(r"^[a-z][a-z0-9._-]{0,62}$")
# The suite's robot: until it has its own role (Role.SERVICE) it is an admin known by this name.
PAGE_DEFAULT, PAGE_MAX = 100, 1000
# WriteAuditRecords is further limited to the robot by the handler (and SERVICE_CALLS lets it through).
ROLES: dict[str, Role] = {"WriteAuditRecords": Role.ADMIN, "ListAuditRecords": Role.ADMIN}


@dataclasses.dataclass(frozen=True)
class AuditFilter:
    actor: str = ""
    project: str = ""
    method: str = ""


class AuditStore:
    """The `audit_records` table in the auth service's database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create_schema(self) -> None:
        with self.db.transaction() as tx:
            if self.db.url.startswith("postgres"):  # concurrent replicas must not race on CREATE TABLE
                tx.run("SELECT pg_advisory_xact_lock(7012)")
            for statement in filter(str.strip, SCHEMA.split(";")):
                tx.run(statement)

    def insert(self, records: Sequence[pb.AuditRecord]) -> None:
        """Stores `records` in one transaction (all or none)."""
        with self.db.transaction() as tx:
            for record in records:
                tx.run(f"INSERT INTO audit_records ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       [uuid.uuid4().hex, record.time.ToNanoseconds() / 1e9,
                        *(getattr(record, f) for f in _TEXT_FIELDS)])

    def list(self, where: AuditFilter, before: tuple[float, str] | None, limit: int) -> list[pb.AuditRecord]:
        """Records matching `where`, newest first, strictly older than `before` (time, id)."""
        clauses: list[str] = []
        params: list[Any] = []
        if where.actor:
            clauses.append("actor = ?")
            params.append(where.actor)
        if where.project:
            clauses.append("project = ?")
            params.append(where.project)
        if where.method:
            # "ends with", written so no character of the filter is a wildcard on either database
            clauses.append("substr(method, length(method) - length(?) + 1) = ?")
            params += [where.method, where.method]
        if before is not None:
            clauses.append("(time < ? OR (time = ? AND id < ?))")
            params += [before[0], before[0], before[1]]
        condition = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self.db.transaction() as tx:
            rows = tx.rows(f"SELECT {_COLUMNS} FROM audit_records {condition} ORDER BY time DESC, id DESC LIMIT ?",
                           [*params, limit])
        return [_record(row) for row in rows]


def _record(row: Sequence[Any]) -> pb.AuditRecord:
    return pb.AuditRecord(name=f"auditRecords/{row[0]}", time=from_seconds(float(row[1])),
                          **dict(zip(_TEXT_FIELDS, (str(v) for v in row[2:]), strict=True)))


class AuditServicer(pb_grpc.AuditServiceServicer):
    def __init__(self, store: AuditStore) -> None:
        self.store = store

    async def WriteAuditRecords(self, request: pb.WriteAuditRecordsRequest, context: Any
                                ) -> pb.WriteAuditRecordsResponse:
        caller = current_identity()
        if not caller.is_service:  # the robot (odin_auth.robot migrates an old admin robot to this role)
            raise PermissionDenied("only the Odin services write audit records", reason="ROLE_REQUIRED",
                                   metadata={"required_role": "service"})
        _check_records(request.records)
        await asyncio.to_thread(self.store.insert, request.records)
        return pb.WriteAuditRecordsResponse()

    async def ListAuditRecords(self, request: pb.ListAuditRecordsRequest, context: Any
                               ) -> pb.ListAuditRecordsResponse:
        where = _filter(request)
        size = paging.page_size(request.page_size, default=PAGE_DEFAULT, maximum=PAGE_MAX)
        position = paging.decode_token(request.page_token, dataclasses.astuple(where))
        before = _position(position) if position is not None else None
        rows = await asyncio.to_thread(self.store.list, where, before, size + 1)
        token = ""
        if len(rows) > size:
            last = rows[size - 1]
            token = paging.encode_token({"t": last.time.ToNanoseconds() / 1e9, "id": last.name.split("/", 1)[1]},
                                        dataclasses.astuple(where))
        return pb.ListAuditRecordsResponse(records=rows[:size], next_page_token=token)


def _check_records(records: Sequence[pb.AuditRecord]) -> None:
    if len(records) > MAX_BATCH:
        raise InvalidArgument.field("records", f"at most {MAX_BATCH} per call")
    problems = []
    for index, record in enumerate(records):
        if not record.method:
            problems.append((f"records[{index}].method", "is required"))
        if not record.HasField("time"):
            problems.append((f"records[{index}].time", "is required"))
        problems += [(f"records[{index}].{f}", f"must be at most {_MAX_TEXT} characters")
                     for f in _TEXT_FIELDS if len(getattr(record, f)) > _MAX_TEXT]
    if problems:
        raise InvalidArgument(f"{len(problems)} invalid audit record field(s)", problems)


def _filter(request: pb.ListAuditRecordsRequest) -> AuditFilter:
    actor = request.actor.removeprefix("users/")
    if actor and not _USERNAME.match(actor):
        raise InvalidArgument.field("actor", "must be `users/{username}` or a username")
    if len(request.method) > 200:
        raise InvalidArgument.field("method", "must be at most 200 characters")
    project = project_name(project_id(request.project, "project")) if request.project else ""
    return AuditFilter(actor=f"users/{actor}" if actor else "", project=project, method=request.method)


def _position(position: dict[str, Any]) -> tuple[float, str]:
    try:
        return float(position["t"]), str(position["id"])
    except (KeyError, TypeError, ValueError):
        raise InvalidArgument.field("page_token", "is not a token this method returned") from None


def register_audit(runtime: ServiceRuntime, db: Database) -> None:
    """Creates the table, serves AuditService and stores this service's own records directly."""
    store = AuditStore(db)
    store.create_schema()
    runtime.audit.use(BufferedAuditSink(lambda records: asyncio.to_thread(store.insert, records)))
    name = pb.DESCRIPTOR.services_by_name["AuditService"].full_name
    runtime.add_service(name, pb_grpc.add_AuditServiceServicer_to_server, AuditServicer(store), roles=ROLES)
