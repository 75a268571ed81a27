"""The embedded engine behaves exactly as the service: every test here runs both ways (see conftest.py)
with the same pipeline and the same assertions on final states, attempts, outputs and event sequences."""

from __future__ import annotations

import json
from pathlib import Path

from engine_runners import Refusal, Runner, Step
from support.waiting import assert_eventually

import odin.engine


def task(name: str, command: str, *extra: str) -> str:
    lines = [f"  - name: {name}", "    image: local", f"    command: [sh, -c, {json.dumps(command)}]"]
    return "\n".join(lines + [f"    {e}" for e in extra])


def pipeline(name: str, *tasks: str) -> str:
    return f"name: {name}\ntasks:\n" + "\n".join(tasks) + "\n"


def gone(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().split()[2] == "Z"


async def test_outputs_reach_later_tasks_through_references(runner: Runner) -> None:
    yml = pipeline(
        "refs",
        task("make", """echo '{"model": "m1", "score": 0.9}' > $$ODIN_OUTPUTS"""),
        task("use", """echo "{\\"got\\": \\"$$0/$$SCORE\\"}" > $$ODIN_OUTPUTS""",
             'args: ["^make.outputs.model"]', 'env: {SCORE: "{^make.outputs.score}"}'),
    )  # fmt: skip
    done = await runner.run(yml)
    assert (done.state, done.reason) == ("SUCCEEDED", "Succeeded")
    assert done.tasks["make"].outputs == {"model": "m1", "score": 0.9}
    assert done.tasks["use"].args == ("m1",) and done.tasks["use"].outputs == {"got": "m1/0.9"}
    assert done.steps == [
        Step("", "PENDING", 0, "Created"), Step("make", "QUEUED", 0, ""), Step("", "RUNNING", 0, "Running"),
        Step("make", "RUNNING", 1, ""), Step("make", "SUCCEEDED", 1, "Succeeded"), Step("use", "QUEUED", 0, ""),
        Step("use", "RUNNING", 1, ""), Step("use", "SUCCEEDED", 1, "Succeeded"), Step("", "SUCCEEDED", 0, "Succeeded"),
    ]  # fmt: skip


async def test_a_failing_task_is_retried_until_it_succeeds(runner: Runner) -> None:
    command = "echo x >> ${RUN_PATH}/tries; test $$(wc -l < ${RUN_PATH}/tries) -ge 3"
    done = await runner.run(pipeline("flaky", task("flaky", command, "retries: {limit: 3, backoff: 10ms}")))
    assert done.state == "SUCCEEDED"
    flaky = done.tasks["flaky"]
    assert (flaky.state, flaky.attempt, flaky.max_attempts, flaky.exit_code) == ("SUCCEEDED", 3, 4, 0)
    assert done.of("flaky") == [
        Step("flaky", "QUEUED", 0, ""), Step("flaky", "RUNNING", 1, ""), Step("flaky", "QUEUED", 1, "NonZeroExit"),
        Step("flaky", "RUNNING", 2, ""), Step("flaky", "QUEUED", 2, "NonZeroExit"), Step("flaky", "RUNNING", 3, ""),
        Step("flaky", "SUCCEEDED", 3, "Succeeded"),
    ]  # fmt: skip


async def test_a_task_past_its_timeout_is_killed_and_retried_per_policy(runner: Runner, task_shared: Path) -> None:
    pids = task_shared / "pids"
    slow = task("slow", f"echo $$$$ >> {pids}; exec sleep 30", "timeout: 300ms", "retries: {limit: 1, backoff: 0s}")
    done = await runner.run(pipeline("slow", slow, task("after", "true", "depends: slow")))
    assert (done.state, done.reason) == ("FAILED", "TaskFailed")
    assert (done.tasks["slow"].state, done.tasks["slow"].reason, done.tasks["slow"].attempt) == (
        "FAILED", "DeadlineExceeded", 2)  # fmt: skip
    assert (done.tasks["after"].state, done.tasks["after"].reason) == ("SKIPPED", "UpstreamFailed")
    assert [s.reason for s in done.of("slow")] == ["", "", "DeadlineExceeded", "", "DeadlineExceeded"]
    assert all(gone(int(pid)) for pid in pids.read_text().split())


async def test_the_job_deadline_cancels_what_runs(runner: Runner) -> None:
    done = await runner.run(pipeline("late", task("sleepy", "exec sleep 30")),
                            options=odin.engine.Options(timeout_seconds=0.3))  # fmt: skip
    assert (done.state, done.reason) == ("FAILED", "DeadlineExceeded")
    assert done.tasks["sleepy"].state == "CANCELLED"
    assert done.of("")[-1] == Step("", "FAILED", 0, "DeadlineExceeded")


async def test_cancel_running_policy_stops_the_other_tasks(runner: Runner) -> None:
    yml = pipeline(
        "policy",
        task("bad", "sleep 0.3; exit 3"),
        task("long", "exec sleep 30"),
        task("after", "true", "depends: bad"),
    )
    options = odin.engine.Options(failure_policy=odin.engine.FailurePolicy.CANCEL_RUNNING)
    done = await runner.run(yml, options=options)
    assert (done.state, done.reason) == ("FAILED", "TaskFailed")
    results = {name: (t.state, t.reason, t.exit_code) for name, t in done.tasks.items()}
    assert results == {
        "bad": ("FAILED", "NonZeroExit", 3),
        "long": ("CANCELLED", "JobFailed", None),
        "after": ("SKIPPED", "UpstreamFailed", None),
    }
    assert done.of("after") == [Step("after", "SKIPPED", 0, "UpstreamFailed")]


async def test_cancel_stops_running_tasks_and_cancels_the_rest(runner: Runner, task_shared: Path) -> None:
    pid_file = task_shared / "pid"
    yml = pipeline(
        "cancel",
        task("first", "true"),
        task("wait", f"echo $$$$ > {pid_file}; exec sleep 30", "depends: first"),
        task("after", "true", "depends: wait"),
    )
    done = await runner.run(
        yml, cancel_when_running="wait", ready=lambda: pid_file.exists() and pid_file.stat().st_size > 0
    )
    assert (done.state, done.reason, done.message) == ("CANCELLED", "Cancelled", "enough")
    assert {n: t.state for n, t in done.tasks.items()} == {"first": "SUCCEEDED", "wait": "CANCELLED",
                                                           "after": "CANCELLED"}  # fmt: skip
    assert done.of("wait")[-1] == Step("wait", "CANCELLED", 1, "Cancelled")
    assert done.steps[-1] == Step("", "CANCELLED", 0, "Cancelled")
    assert_eventually(lambda: gone(int(pid_file.read_text())), timeout=5)


async def test_parameters_render_main_yml_as_a_template(runner: Runner) -> None:
    yml = pipeline("params", task("greet", """echo '{"said": "{{ greeting }}"}' > $$ODIN_OUTPUTS"""))
    done = await runner.run(yml, params={"greeting": "hej"})
    assert done.tasks["greet"].outputs == {"said": "hej"}


BAD_PIPELINES = {
    "tasks:\n  - name: a\n    image: x\n    command: x\n    depends: trian\n": Refusal("PIPELINE_INVALID", [
        ("inline.main_yml.tasks[0].depends", 'unknown task "trian"')]),
    "tasks:\n  - name: a\n    image: x\n    command: x\n    args: ['${NOPE}']\n": Refusal("PIPELINE_INVALID", [
        ("inline.main_yml.tasks[0].args[0]", 'unknown variable "NOPE"')]),
    "tasks:\n  - name: a\n    image: x\n    command: x\n    args: ['^ghost.outputs.x']\n": Refusal("PIPELINE_INVALID", [
        ("inline.main_yml.tasks[0].args[0]", 'unknown task "ghost" in reference "^ghost.outputs.x"')]),
    "   ": Refusal("INVALID_ARGUMENT", [("inline.main_yml", "is required")]),
}  # fmt: skip


async def test_a_refused_pipeline_gets_the_same_error(runner: Runner) -> None:
    for main_yml, expected in BAD_PIPELINES.items():
        assert await runner.violations(main_yml) == expected, main_yml
