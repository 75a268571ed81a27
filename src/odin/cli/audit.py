"""`odin audit [--actor U] [--project P] [--method M]`: the audit log, newest first (admins)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from odin.auth.v1 import auth_pb2 as pb
from odin.auth.v1 import auth_pb2_grpc as pb_grpc
from odin.cli.output import message_dict, print_json, run_reporting_errors, short_time, table
from odin.client import ServiceAddresses
from odin.client.channel import call_metadata, open_channel
from odin.client.login import current_token, session_path
from odin.client.paging import collect_pages

PAGE_MAX = 1000


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Adds `odin audit` to `odin`."""
    audit = commands.add_parser("audit", help="who changed what, newest first (admins)",
                                description="The audit log: one record per call that changes something "
                                            "(any RPC not bound to HTTP GET), newest first.")
    audit.add_argument("--address", help="auth service or gateway address (default $ODIN_ADDRESS, else odin dev)")
    audit.add_argument("--json", action="store_true", help="print JSON")
    audit.add_argument("--actor", default="", help="only calls by this user (username or users/NAME)")
    audit.add_argument("--project", default="", help="only calls in this project (id or projects/ID)")
    audit.add_argument("--method", default="", help="only this method, e.g. CreateJob")
    audit.add_argument("--limit", type=_positive, default=50, help="show at most this many records (default 50)")
    audit.set_defaults(func=_run)


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive number")
    return value


def _run(args: argparse.Namespace) -> int:
    return run_reporting_errors(_audit(args), args.json)


async def _audit(args: argparse.Namespace) -> int:
    addresses = ServiceAddresses.from_environment(args.address)
    metadata = call_metadata(await current_token(addresses.suite_state_dir()))
    async with open_channel(addresses.address("auth"), session_path(addresses.suite_state_dir())) as channel:
        stub = pb_grpc.AuditServiceStub(channel)
        records: list[pb.AuditRecord] = await collect_pages(_pages(stub, args, metadata), "records", args.limit)
    if args.json:
        print_json({"records": [message_dict(r) for r in records]})
        return 0
    rows = [[short_time(r.time), r.actor.removeprefix("users/") or "-", r.method.rsplit("/", 1)[-1],
             r.resource or "-", r.result, r.request_id or "-", r.client or "-"] for r in records]
    print("\n".join(table(rows, ["TIME", "ACTOR", "METHOD", "RESOURCE", "RESULT", "REQUEST ID", "CLIENT"])))
    return 0


def _pages(stub: pb_grpc.AuditServiceStub, args: argparse.Namespace, metadata: Any
           ) -> Callable[[str], Any]:
    async def page(token: str) -> pb.ListAuditRecordsResponse:
        request = pb.ListAuditRecordsRequest(page_size=min(args.limit, PAGE_MAX), page_token=token, actor=args.actor,
                                             project=args.project, method=args.method)
        reply: pb.ListAuditRecordsResponse = await stub.ListAuditRecords(request, metadata=metadata, timeout=10)
        return reply

    return page
