"""The Go client library (clients/go) and its example program, against the live suite through Envoy."""

from __future__ import annotations

import subprocess
from pathlib import Path

from client_harness import (
    BUILD_TIMEOUT,
    REPO,
    LiveSuite,
    builds_a_client,
    check_smoke_steps,
    require_tool,
    run_build,
    run_smoke,
)

GO_DIR = REPO / "clients" / "go"


@builds_a_client
def test_go_client_talks_to_the_suite_through_the_gateway(live_suite: LiveSuite, tmp_path: Path) -> None:
    go = require_tool("go")
    binary = tmp_path / "odin-go-smoke"
    run_build([go, "build", "-o", str(binary), "./cmd/odin-go-smoke"], GO_DIR)
    steps = run_smoke([str(binary)], live_suite.smoke_env(), tmp_path)
    check_smoke_steps(steps, "hello from go")


@builds_a_client
def test_the_go_library_tests_pass_against_the_suite(live_suite: LiveSuite) -> None:
    go = require_tool("go")
    done = subprocess.run([go, "test", "-count=1", "-v", "./odin/"], cwd=GO_DIR, env=live_suite.smoke_env(),
                          capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    # The live test must have run (it skips only without ODIN_GATEWAY), as must the resumption tests.
    for test in ("TestLiveSuite", "TestWatchJobResumesAfterADroppedStreamWithoutGapsOrRepeats",
                 "TestTaskLogsResumeAtTheLastOffset", "TestTheAccessTokenIsRefreshedBeforeItExpires"):
        assert f"--- PASS: {test}" in output, output[-6000:]
