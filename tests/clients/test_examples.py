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


def test_the_grpcurl_example_runs_hello_by_reflection_through_the_gateway(live_suite: LiveSuite,
                                                                          grpcurl: str) -> None:
    require_tool("jq")
    env = {**live_suite.smoke_env(), "GRPCURL": grpcurl}
    done = subprocess.run(["bash", str(REPO / "examples" / "grpcurl" / "run_hello.sh")], env=env,
                          capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    # Every public service is listed by reflection through the gateway, with no descriptor file.
    assert {"odin.auth.v1.AuthService", "odin.auth.v1.AuditService", "odin.scheduler.v1.SchedulerService",
            "odin.pipelines.v1.PipelinesService", "odin.midgard.v1.MidgardService"} <= set(lines)
    job = next(line.removeprefix("created ") for line in lines if line.startswith("created "))
    assert any("train-b  STATE_SUCCEEDED  attempt 2" in line for line in lines), done.stdout
    assert f"job {job}: STATE_SUCCEEDED" in lines and "best model:" in done.stdout
    assert live_suite.admin_password not in done.stdout + done.stderr
