"""Where a job's files live under the scheduler's `run_path`.

    <run_path>/<job id>/                      RUN_PATH: the job's workspace, shared by its tasks
    <run_path>/<job id>/<task id>/            a task's working directory (`${RUN_PATH}/${TASK_ID}`)
    <run_path>/.pipelines/<job id>/           WORK_PATH: the pipeline's files as the job was created
    <run_path>/.odin/<job id>/<task>/<n>/     attempt n's bookkeeping: output.log, pid, exitcode, outputs.json

Bookkeeping lives outside RUN_PATH so tasks never see (or clobber) it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def root_path(self) -> Path:
        """`${ROOT_PATH}`: the directory holding every job's pipeline files."""
        return self.root / ".pipelines"

    def run_path(self, job_id: str) -> Path:
        return self.root / job_id

    def task_dir(self, job_id: str, task_id: str) -> Path:
        return self.run_path(job_id) / task_id

    def work_path(self, job_id: str) -> Path:
        return self.root_path / job_id

    def attempt_dir(self, job_id: str, task: str, attempt: int) -> Path:
        return self.root / ".odin" / job_id / task / str(attempt)

    def log_file(self, job_id: str, task: str, attempt: int) -> Path:
        return self.attempt_dir(job_id, task, attempt) / "output.log"

    def remove_job(self, job_id: str) -> None:
        """Deletes everything the job left on disk (idempotent)."""
        for path in (self.run_path(job_id), self.work_path(job_id), self.root / ".odin" / job_id):
            shutil.rmtree(path, ignore_errors=True)
