"""Write the authorization matrix of docs/auth.md from the services' role tables.

Usage: python tools/authz_matrix.py [--check]

Every service declares what each RPC needs in one table (`roles=` of `runtime.add_service`);
this renders them all, so the document cannot drift from what the interceptor enforces.
With --check it fails when docs/auth.md is not current (scripts/check runs it in CI).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Mapping
from pathlib import Path

from google.protobuf import descriptor_pool

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "auth.md"
START, END = "<!-- authz-matrix:start (tools/authz_matrix.py) -->", "<!-- authz-matrix:end -->"

# (gRPC service, module that holds its role table, the table's name), in the order shown.
TABLES = (
    ("odin.auth.v1.AuthService", "odin_auth.servicer", "ROLES"),
    ("odin.auth.v1.AuditService", "odin_auth.audit", "ROLES"),
    ("odin.scheduler.v1.SchedulerService", "odin_scheduler.main", "ROLES"),
    ("odin.pipelines.v1.PipelinesService", "odin_pipelines.main", "ROLES"),
    ("odin.midgard.v1.MidgardService", "odin_midgard.main", "ROLES"),
    ("odin.midgard.v1.AgentService", "odin_midgard.agent_main", "AGENT_ROLES"),
)


def _load_descriptors() -> None:
    for module in ("odin.auth.v1.auth_pb2", "odin.scheduler.v1.scheduler_pb2", "odin.pipelines.v1.pipelines_pb2",
                   "odin.midgard.v1.midgard_pb2"):
        importlib.import_module(module)


def _row(service: str, method: str, rule: object) -> str:
    """One RPC: its scope, then which roles may call it (in that scope), then the robot."""
    from odin.runtime.auth import SERVICE_CALLS, ProjectRole
    from odin.runtime.tokens import Role

    needed = rule.role if isinstance(rule, ProjectRole) else rule
    assert isinstance(needed, Role)
    if needed is Role.ANONYMOUS:
        scope = "open (no token needed)"
    else:
        scope = "the resource's project" if isinstance(rule, ProjectRole) else "global role"
    cells = ["✓" if role >= needed else "" for role in (Role.VIEWER, Role.USER, Role.ADMIN)]
    robot = "✓" if f"/{service}/{method}" in SERVICE_CALLS else ""
    return f"| {service.rsplit('.', 1)[-1]} | {method} | {scope} | {' | '.join(cells)} | {robot} |"


def render() -> str:
    from odin.runtime.tokens import Role

    _load_descriptors()
    lines = [START, "", "| Service | RPC | Role checked in | viewer | user | admin | service robot |",
             "|---|---|---|---|---|---|---|"]
    for service, module, attribute in TABLES:
        table: Mapping[str, object] = getattr(importlib.import_module(module), attribute)
        for method in descriptor_pool.Default().FindServiceByName(service).methods:
            lines.append(_row(service, method.name, table.get(method.name, Role.ADMIN)))
    lines += ["", END]
    return "\n".join(lines)


def updated(text: str, matrix: str) -> str:
    if START not in text or END not in text:
        raise SystemExit(f"{DOC} lacks the markers {START} … {END}")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return head + matrix + tail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when docs/auth.md is not current")
    args = parser.parse_args(argv)
    text = DOC.read_text()
    new = updated(text, render())
    if args.check:
        if new != text:
            print("stale: the authorization matrix in docs/auth.md (run python tools/authz_matrix.py)",
                  file=sys.stderr)
            return 1
        return 0
    DOC.write_text(new)
    print(f"wrote the authorization matrix to {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
