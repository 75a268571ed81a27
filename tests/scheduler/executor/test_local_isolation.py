"""Finding 10: a local task sees neither the scheduler's environment nor (when the scheduler is root) its files.

Before the fix a task inherited the scheduler's whole environment (minus ODIN_*) and ran as its user: it could
read `/proc/<scheduler>/environ`, the store, the service token and, under `odin dev`, the auth keys.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from odin_scheduler.executor.base import SharedPaths, TaskRun
from odin_scheduler.executor.local import LocalExecutor
from odin_scheduler.executor.task_user import privilege_notice, resolve, searchable_path
from odin_scheduler.paths import Layout

from odin.cli import dev
from odin.devsuite import local_tasks_notice

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: tasks then run as the task user")


def task_run(layout: Layout, script: str, env: dict[str, str] | None = None, attempt: int = 1) -> TaskRun:
    job, task = "j-iso", "step"
    return TaskRun(job_id=job, task=task, task_id=f"{job}--{task}", attempt=attempt, command=("sh", "-c", script),
                   args=(), image="", resource_type="Process", cwd=layout.task_dir(job, f"{job}--{task}"),
                   attempt_dir=layout.attempt_dir(job, task, attempt), env=env or {},
                   shared=SharedPaths(layout.root, layout.run_path(job), layout.work_path(job)))  # fmt: skip


async def run_to_end(executor: LocalExecutor, run: TaskRun) -> str:
    outcome = await executor.wait(run, await executor.start(run))
    assert outcome.succeeded, (outcome, run.log_file.read_text())
    return run.log_file.read_text()


async def test_a_task_sees_only_its_own_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ODIN_SCHEDULER_STORE_URL", "postgresql://odin:hunter2@db/odin")
    monkeypatch.setenv("ODIN_SCHEDULER_AUTH_TOKEN_FILE", "/secret/service-token")
    monkeypatch.setenv("PGPASSWORD", "hunter2")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "hunter2")
    layout = Layout(tmp_path / "runs")
    run = task_run(layout, "env", env={"GREETING": "hi"})
    seen = dict(line.split("=", 1) for line in (await run_to_end(LocalExecutor(), run)).splitlines() if "=" in line)
    assert "hunter2" not in json.dumps(seen)
    assert not [k for k in seen if k.startswith("ODIN_SCHEDULER") or k in ("PGPASSWORD", "AWS_SECRET_ACCESS_KEY")]
    assert seen["GREETING"] == "hi" and seen["ODIN_TASK_ID"] == run.task_id and seen["ODIN_JOB_ID"] == run.job_id
    assert seen["ODIN_OUTPUTS"] == str(run.attempt_dir / "outputs.json")
    # The scheduler's PATH, less what a task user could not reach (as root: private homes like /root).
    expected = searchable_path(os.environ["PATH"]) if os.geteuid() == 0 else os.environ["PATH"]
    assert seen["PATH"] == expected and "HOME" in seen and "LANG" in seen


@as_root
async def test_as_root_a_task_runs_unprivileged_and_cannot_read_the_schedulers_files(tmp_path: Path) -> None:
    # As in `odin dev`: the token and the store next to the runs, private to the scheduler.
    base = tmp_path / "suite"
    base.mkdir(mode=0o700)
    token = base / "service-token"
    token.write_text("odin-service-secret")
    token.chmod(0o600)
    layout = Layout(base / "runs")
    earlier = task_run(layout, "echo earlier", attempt=1)
    await run_to_end(LocalExecutor(), earlier)  # leaves a log, a pid and an exit code in the state dir
    script = (
        'echo "uid=$(id -u) groups=$(id -G)"; '
        f"cat {token} && echo READ-TOKEN; "
        f"cat {earlier.log_file} && echo READ-LOG; "
        f"cat {earlier.attempt_dir / 'exitcode'} && echo READ-EXITCODE; "
        f"ls {layout.state_root} && echo LISTED-STATE; "
        f"cat /proc/{os.getpid()}/environ && echo READ-ENVIRON; "
        f"echo data > {layout.run_path('j-iso')}/shared.txt && echo WROTE-RUN-PATH; "
        "echo mine > model.txt && echo WROTE-CWD; "
        """echo '{"model": "m"}' > "$ODIN_OUTPUTS"; true"""
    )
    run = task_run(layout, script, attempt=2)
    executor = LocalExecutor()
    outcome = await executor.wait(run, await executor.start(run))
    output = run.log_file.read_text()
    assert outcome.succeeded and outcome.outputs == {"model": "m"}, (outcome, output)
    uid, groups = output.split("uid=")[1].splitlines()[0].split(" groups=")
    assert uid == "65534" and "0" not in groups.split()  # nobody, without root's groups
    for leaked in ("READ-TOKEN", "odin-service-secret", "READ-LOG", "READ-EXITCODE", "LISTED-STATE", "READ-ENVIRON"):
        assert leaked not in output, output
    assert "WROTE-RUN-PATH" in output and "WROTE-CWD" in output
    assert (layout.run_path("j-iso") / "shared.txt").read_text() == "data\n"
    assert (run.cwd / "model.txt").stat().st_uid == 65534
    assert run.log_file.stat().st_mode & 0o077 == 0 and (run.attempt_dir / "exitcode").stat().st_mode & 0o077 == 0


def test_not_root_says_that_tasks_run_with_the_schedulers_privileges(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="odin.scheduler.local")
    assert resolve("nobody", root=lambda: False) is None
    assert any("with its privileges" in r.getMessage() for r in caplog.records)


def test_odin_dev_up_prints_the_notice_when_not_root(capsys: pytest.CaptureFixture[str]) -> None:
    assert local_tasks_notice(is_root=lambda: True) is None
    notice = local_tasks_notice(is_root=lambda: False)
    assert notice is not None and "privileges" in notice
    dev.print_local_tasks_notice(is_root=lambda: False)
    assert "local tasks run" in capsys.readouterr().out


def test_the_task_user_is_never_root() -> None:
    from odin.runtime.config import ConfigError

    with pytest.raises(ConfigError, match="uid 0"):
        resolve("root", root=lambda: True)
    with pytest.raises(ConfigError, match="no such user"):
        resolve("no-such-odin-user", root=lambda: True)
    assert "privileges" in privilege_notice("alice")


def test_the_task_path_keeps_only_directories_the_task_user_can_reach(tmp_path: Path) -> None:
    private = tmp_path / "private"
    (private / "bin").mkdir(parents=True)
    private.chmod(0o700)  # like /root holding a virtual environment
    public = tmp_path / "public" / "bin"
    public.mkdir(parents=True)
    for directory in (tmp_path, *tmp_path.parents):
        directory.chmod(directory.stat().st_mode | 0o001)
    assert searchable_path(f"{private / 'bin'}:{public}:/usr/bin") == f"{public}:/usr/bin"
    assert searchable_path(str(private / "bin")) == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
