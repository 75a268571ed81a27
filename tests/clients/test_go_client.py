"""The Go client (clients/go), generated and built from protos/, against the live suite through Envoy."""

from __future__ import annotations

from pathlib import Path

from client_harness import (
    REPO,
    LiveSuite,
    builds_a_client,
    check_smoke_steps,
    generate,
    require_tool,
    run_build,
    run_smoke,
)


@builds_a_client
def test_go_client_talks_to_the_suite_through_the_gateway(live_suite: LiveSuite, tmp_path: Path) -> None:
    go = require_tool("go")
    generate("go")
    binary = tmp_path / "odin-go-smoke"
    run_build([go, "build", "-o", str(binary), "./cmd/odin-go-smoke"], REPO / "clients" / "go")
    steps = run_smoke([str(binary)], live_suite.smoke_env(), tmp_path)
    check_smoke_steps(steps, "hello from go")
