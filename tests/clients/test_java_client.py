"""The Java client (clients/java, Maven generates its stubs from protos/) against the live suite through Envoy."""

from __future__ import annotations

from pathlib import Path

from client_harness import REPO, LiveSuite, builds_a_client, check_smoke_steps, require_tool, run_build, run_smoke

JAVA = REPO / "clients" / "java"


@builds_a_client
def test_java_client_talks_to_the_suite_through_the_gateway(live_suite: LiveSuite, tmp_path: Path) -> None:
    java, mvn = require_tool("java"), require_tool("mvn")
    # Offline: scripts/setup resolved the dependencies and codegen binaries into ~/.m2 once.
    run_build([mvn, "-q", "-B", "-o", "package"], JAVA)
    classpath = f"{JAVA / 'target' / 'classes'}:{(JAVA / 'target' / 'classpath.txt').read_text().strip()}"
    steps = run_smoke([java, "-cp", classpath, "odin.smoke.OdinSmoke"], live_suite.smoke_env(), tmp_path)
    check_smoke_steps(steps, "hello from java")
