"""The user's path end to end: `odin dev up`, then `odin run examples/hello --watch`, logs, jobs, errors.

Real processes throughout: the local suite (every service), the local executor running python3 tasks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def odin(*args: str, state: Path, stdin: str | None = None, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """`odin ARGS` as a user runs it, with `state` as ODIN_HOME (the local suite lives in `state/dev`)."""
    env = {k: v for k, v in os.environ.items() if k not in ("ODIN_ADDRESS", "ODIN_TOKEN", "ODIN_TOKEN_FILE")}
    return subprocess.run([str(BIN / "odin"), *args], capture_output=True, text=True, input=stdin,
                          timeout=timeout, cwd=REPO, env={**env, "ODIN_HOME": str(state)})


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The local suite, up, with the dev admin logged in."""
    state = tmp_path_factory.mktemp("home")
    up = odin("dev", "up", state=state, timeout=120)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        password = (state / "dev" / "admin-password").read_text()
        login = odin("login", "--username", "admin", "--password-stdin", state=state, stdin=password)
        assert login.returncode == 0, login.stdout + login.stderr
        yield state
    finally:
        odin("dev", "down", state=state, timeout=60)


@pytest.fixture(scope="module")
def hello_job(suite: Path) -> tuple[str, list[dict[str, object]]]:
    """Runs examples/hello with --watch --json once; returns its job name and the JSON lines printed."""
    run = odin("run", "examples/hello", "--watch", "--json", "--label", "suite=e2e", state=suite)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    return str(lines[0]["name"]), lines


def test_run_watch_json_streams_every_event_to_success(hello_job: tuple[str, list[dict[str, object]]]) -> None:
    name, lines = hello_job
    created, events, final = lines[0], lines[1:-1], lines[-1]
    assert final["name"] == name and final["state"] == "STATE_SUCCEEDED"
    seqs = [int(str(e["seq"])) for e in events]
    assert seqs == sorted(set(seqs)) and seqs[0] > int(str(created.get("lastEventSeq", 0)))
    finished = {e["task"] for e in events if e.get("taskState") == "STATE_SUCCEEDED"}
    assert finished == {f"{name}/tasks/{t}" for t in ("prepare", "train-a", "train-b", "evaluate")}
    assert events[-1]["jobState"] == "STATE_SUCCEEDED"


def test_status_shows_the_retry_and_the_outputs(suite: Path, hello_job: tuple[str, list[dict[str, object]]]) -> None:
    name, _ = hello_job
    status = odin("status", name, "--json", state=suite)
    assert status.returncode == 0, status.stderr
    tasks = {t["name"].rsplit("/", 1)[1]: t for t in json.loads(status.stdout)["tasks"]}
    assert tasks["train-b"]["attempt"] == 2  # failed once on purpose, then retried
    assert tasks["evaluate"]["outputs"]["best"].endswith("model.json")
    assert set(tasks["evaluate"]["depends"]) == {"train-a", "train-b"}
    text = odin("status", name.removeprefix("jobs/"), state=suite)
    assert text.returncode == 0 and "SUCCEEDED" in text.stdout and "train-b" in text.stdout


def test_logs_of_a_task(suite: Path, hello_job: tuple[str, list[dict[str, object]]]) -> None:
    name, _ = hello_job
    job_id = name.removeprefix("jobs/")
    logs = odin("logs", f"{job_id}/evaluate", state=suite)
    assert logs.returncode == 0, logs.stderr
    assert "best model:" in logs.stdout
    first_attempt = odin("logs", f"{job_id}--train-b", "--attempt", "1", state=suite)
    assert "simulated flaky failure" in first_attempt.stdout


def test_jobs_lists_the_job(suite: Path, hello_job: tuple[str, list[dict[str, object]]]) -> None:
    name, _ = hello_job
    listing = odin("jobs", "--json", "--label", "suite=e2e", state=suite)
    assert listing.returncode == 0, listing.stderr
    jobs = json.loads(listing.stdout)["jobs"]
    assert [j["name"] for j in jobs] == [name] and jobs[0]["pipeline"] == "hello"
    table = odin("jobs", state=suite)
    assert name.removeprefix("jobs/") in table.stdout


def test_a_bad_pipeline_prints_its_violation_paths(suite: Path, tmp_path: Path) -> None:
    (tmp_path / "main.yml").write_text(
        "name: broken\ntasks:\n  - {name: a, image: x, command: 'true', depends: trian}\n"
        "  - {name: b, image: x}\n")
    run = odin("run", str(tmp_path), "--watch", state=suite)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert "tasks[0].depends" in run.stderr and "tasks[1].command" in run.stderr
    listing = odin("jobs", "--json", "--pipeline", "broken", state=suite)
    assert json.loads(listing.stdout)["jobs"] == []  # nothing was stored


@pytest.mark.slow
def test_the_demo_script_runs_green() -> None:
    demo = subprocess.run([str(REPO / "scripts" / "demo")], capture_output=True, text=True, timeout=240, cwd=REPO)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "job hello-" in demo.stdout and "SUCCEEDED" in demo.stdout
