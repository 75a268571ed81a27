"""Building a new job: ids, options after defaults, and the rows a CreateJob stores."""

from __future__ import annotations

import dataclasses
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from odin.pipeline_spec import PipelineSpec, render_spec_dict, task_id
from odin_scheduler.model import (
    DEFAULT_PROJECT,
    EventType,
    FailurePolicy,
    Job,
    JobOptions,
    JobState,
    NewEvent,
    Task,
    TaskCounts,
    TaskState,
)

MAIN_FILE = "main.yml"
ID_ALPHABET = string.ascii_lowercase + string.digits
ID_SUFFIX_LENGTH = 8


def new_job_id(pipeline: str) -> str:
    """`<pipeline name>-<8 random lower-case letters and digits>`, as in the original Odin."""
    return f"{pipeline}-{''.join(secrets.choice(ID_ALPHABET) for _ in range(ID_SUFFIX_LENGTH))}"


@dataclass(frozen=True)
class ResolvedPipeline:
    """A pipeline's text and files; `field` is the request field violations inside it are reported under."""

    main_yml: str
    files: Mapping[str, str] = field(default_factory=dict)
    pipeline: str = ""
    revision: str = ""
    field: str = "inline.main_yml"


@dataclass(frozen=True)
class RequestedOptions:
    """JobOptions as the client sent them: zero / None mean "use the pipeline's or the default"."""

    parallelism: int = 0
    failure_policy: FailurePolicy | None = None
    timeout_seconds: float | None = None


@dataclass(frozen=True)
class NewJob:
    """What CreateJob knows once the pipeline is resolved and valid."""

    spec: PipelineSpec
    pipeline: str
    revision: str
    owner: str
    options: RequestedOptions = RequestedOptions()
    labels: Mapping[str, str] = field(default_factory=dict)
    parameters: Mapping[str, Any] = field(default_factory=dict)
    request_id: str = ""
    project: str = DEFAULT_PROJECT


def effective_options(spec: PipelineSpec, requested: RequestedOptions) -> JobOptions:
    return JobOptions(
        parallelism=requested.parallelism or spec.parallelism or 0,
        failure_policy=requested.failure_policy or FailurePolicy.FINISH_RUNNING,
        timeout_seconds=requested.timeout_seconds if requested.timeout_seconds else spec.timeout_seconds,
    )


def build_job(
    new: NewJob, job_id: str, now_us: int, resource_type: str | None
) -> tuple[Job, list[Task], list[NewEvent]]:
    """The job row, its task rows (PENDING) and the JOB_CREATED event; `resource_type` overrides the spec's."""
    stored_spec = {**render_spec_dict(new.spec), "parameters": dict(new.parameters)}
    job = Job(
        id=job_id, pipeline=new.pipeline, revision=new.revision, state=JobState.PENDING, owner=new.owner,
        create_us=now_us, run_us=now_us, spec=stored_spec, options=effective_options(new.spec, new.options),
        labels=dict(new.labels), request_id=new.request_id, reason="Created", message="", project=new.project,
    )  # fmt: skip
    tasks = [
        Task(
            job_id=job_id, name=t.name, position=i, task_id=task_id(job_id, t.name), depends=t.depends,
            state=TaskState.PENDING, max_attempts=1 + t.retries.limit, create_us=now_us, image=t.image,
            resource_type=resource_type or t.resource_type, command=t.command, args=t.args,
        )
        for i, t in enumerate(new.spec.tasks)
    ]
    job = dataclasses.replace(job, counts=TaskCounts(pending=len(tasks)))
    return job, tasks, [NewEvent(EventType.JOB_CREATED, JobState.PENDING, reason="Created")]
