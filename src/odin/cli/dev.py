"""`odin dev up|down|status`: the local suite (see odin.devsuite)."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from odin.devsuite import Suite, SuiteError, local_tasks_notice


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Adds `odin dev`."""
    dev = commands.add_parser("dev", help="run the whole suite locally", description=__doc__)
    dev.add_argument("--state-dir", type=Path, help="where the suite keeps its state (default ~/.local/state/odin/dev)")
    sub = dev.add_subparsers(dest="dev_command", metavar="ACTION", required=True)
    up = sub.add_parser("up", help="start every service on loopback and wait until healthy")
    up.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for health (default 30)")
    up.add_argument("--json", action="store_true", help="print addresses as JSON")
    up.set_defaults(func=_up)
    down = sub.add_parser("down", help="stop the suite")
    down.set_defaults(func=_down)
    status = sub.add_parser("status", help="show each service's address and health")
    status.add_argument("--json", action="store_true", help="print as JSON")
    status.set_defaults(func=_status)


def print_local_tasks_notice(is_root: Callable[[], bool] | None = None) -> None:
    """Says up front when local tasks run with the suite's own privileges (the suite is not root)."""
    notice = local_tasks_notice(is_root) if is_root else local_tasks_notice()
    if notice:
        print(notice, flush=True)


def _up(args: argparse.Namespace) -> int:
    if not args.json:  # --json prints one JSON document; the scheduler's log says it there
        print_local_tasks_notice()
    suite = Suite(args.state_dir)
    started = time.perf_counter()
    try:
        services = suite.up(timeout=args.timeout)
    except SuiteError as exc:
        print(f"odin dev up: {exc}")
        return 1
    elapsed = time.perf_counter() - started
    if args.json:
        print(json.dumps({"services": services, "seconds": round(elapsed, 3), "state_dir": str(suite.state_dir)}))
        return 0
    for name, entry in services.items():
        metrics = f"  metrics http://{entry['metrics']}/metrics" if entry.get("metrics") else ""
        print(f"{name:<15} {entry['address']:<22} pid {entry['pid']}{metrics}")
    print(f"all {len(services)} services healthy in {elapsed:.2f}s (state in {suite.state_dir})")
    return 0


def _down(args: argparse.Namespace) -> int:
    stopped = Suite(args.state_dir).down()
    print(f"stopped: {', '.join(stopped)}" if stopped else "the suite was not running")
    return 0


def _status(args: argparse.Namespace) -> int:
    suite = Suite(args.state_dir)
    health = suite.status()
    healthy = bool(health) and all(s == "SERVING" for s in health.values())
    if args.json:
        print(json.dumps({"services": suite.info() or {}, "health": health}))
        return 0 if healthy else 1
    if not health:
        print("the suite is not running (odin dev up starts it)")
    info = suite.info() or {}
    for name, status in health.items():
        metrics = info.get(name, {}).get("metrics")
        print(f"{name:<15} {suite.address(name) or '-':<22} {status}" + (f"  metrics http://{metrics}/metrics"
                                                                          if metrics else ""))
    return 0 if healthy else 1
