"""Where a job's files live: task-visible data under `root`, the scheduler's bookkeeping under `state`.

    <root>/<job id>/                          RUN_PATH: the job's workspace, shared by its tasks (read-write)
    <root>/<job id>/<task id>/                a task's working directory (`${RUN_PATH}/${TASK_ID}`)
    <root>/.pipelines/<job id>/               WORK_PATH: the pipeline's files as the job was created (tasks
                                              on Kubernetes get it read-only; ROOT_PATH is `<root>/.pipelines`)
    <state>/attempts/<job id>/<task>/<n>/     attempt n's bookkeeping: output.log, pid, exitcode, outputs.json

`root` is what task pods mount (each only its own job's two directories, by subPath); `state` is never mounted
into a task, so no task can plant files where the scheduler keeps logs and exit codes. It defaults to the sibling
directory `<root>-state`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

PIPELINES_DIR = ".pipelines"


@dataclass(frozen=True)
class Layout:
    root: Path
    state: Path | None = None

    @property
    def state_root(self) -> Path:
        """Scheduler-private files: attempt logs, exit codes, pid files."""
        return self.state if self.state is not None else self.root.with_name(f"{self.root.name}-state")

    @property
    def root_path(self) -> Path:
        """`${ROOT_PATH}`: the directory holding every job's pipeline files."""
        return self.root / PIPELINES_DIR

    def run_path(self, job_id: str) -> Path:
        return self.root / job_id

    def task_dir(self, job_id: str, task_id: str) -> Path:
        return self.run_path(job_id) / task_id

    def work_path(self, job_id: str) -> Path:
        return self.root_path / job_id

    def attempts_root(self) -> Path:
        return self.state_root / "attempts"

    def attempt_dir(self, job_id: str, task: str, attempt: int) -> Path:
        return self.attempts_root() / job_id / task / str(attempt)

    def log_file(self, job_id: str, task: str, attempt: int) -> Path:
        return self.attempt_dir(job_id, task, attempt) / "output.log"

    def remove_job(self, job_id: str) -> None:
        """Deletes everything the job left on disk (idempotent)."""
        for path in (self.run_path(job_id), self.work_path(job_id), self.attempts_root() / job_id):
            shutil.rmtree(path, ignore_errors=True)
