"""The examples under examples/ run as written against the live suite, through the gateway."""

from __future__ import annotations

import subprocess

from client_harness import REPO, LiveSuite, require_tool


def test_the_curl_example_runs_hello_to_success(live_suite: LiveSuite) -> None:
    require_tool("curl")
    require_tool("jq")
    done = subprocess.run(["bash", str(REPO / "examples" / "curl" / "run_hello.sh")], env=live_suite.smoke_env(),
                          capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    job = lines[0].removeprefix("created ")
    assert job.startswith("jobs/hello-")
    assert any("train-b  STATE_QUEUED  attempt 1  NonZeroExit" in line for line in lines), done.stdout  # failed once
    assert any("train-b  STATE_SUCCEEDED  attempt 2" in line for line in lines), done.stdout  # and retried
    assert f"job {job}: STATE_SUCCEEDED" in lines
    assert "best model:" in done.stdout  # evaluate's log, read back after the task ended
    assert live_suite.admin_password not in done.stdout + done.stderr
