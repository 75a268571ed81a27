"""Records ↔ protobuf messages (the servicer's packing and unpacking)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from google.protobuf import duration_pb2, json_format, struct_pb2, timestamp_pb2

from odin.runtime.errors import InvalidArgument
from odin.runtime.projects import project_id, project_name

__all__ = ["InvalidArgument"]
from odin.scheduler.v1 import scheduler_pb2 as pb
from odin_scheduler.executor.base import ClusterEvent
from odin_scheduler.jobs import RequestedOptions
from odin_scheduler.model import DEFAULT_PROJECT, Event, FailurePolicy, Job, JobFilter, JobState, Task, TaskState
from odin_scheduler.watch import Heartbeat

JOB_NAME = re.compile(r"jobs/([^/]+)")
TASK_NAME = re.compile(r"jobs/([^/]+)/tasks/([^/]+)")
# `projects/{project}/pipelines/{pipeline}`, `pipelines/{pipeline}` or a bare pipeline id.
PIPELINE_REF = re.compile(r"(?:projects/([^/]+)/)?(?:pipelines/)?([^/]+)")
# Kubernetes label syntax: an optional DNS prefix, then a name of at most 63 characters.
LABEL_KEY = re.compile(r"([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
MAX_LABELS = 32
MAX_REQUEST_ID = 128


def job_id(name: str, field: str = "name") -> str:
    match = JOB_NAME.fullmatch(name)
    if not match:
        raise InvalidArgument.field(field, f'"{name}" is not a job name (jobs/{{job}})')
    return match.group(1)


def task_name(name: str, field: str = "name") -> tuple[str, str]:
    match = TASK_NAME.fullmatch(name)
    if not match:
        raise InvalidArgument.field(field, f'"{name}" is not a task name (jobs/{{job}}/tasks/{{task}})')
    return match.group(1), match.group(2)


def timestamp(us: int | None) -> timestamp_pb2.Timestamp | None:
    if us is None:
        return None
    return timestamp_pb2.Timestamp(seconds=us // 1_000_000, nanos=(us % 1_000_000) * 1000)


def job(record: Job, view: int = pb.JOB_VIEW_FULL) -> pb.Job:
    """The job as a message; the BASIC view leaves out the spec and the parameters (the bulky parts)."""
    message = pb.Job(
        name=f"jobs/{record.id}", pipeline=record.pipeline, revision=record.revision, state=_enum(record.state),
        reason=record.reason, message=record.message, owner=record.owner, labels=dict(record.labels),
        options=_options(record), task_counts=pb.TaskCounts(**vars(record.counts)),
        create_time=timestamp(record.create_us), start_time=timestamp(record.start_us),
        end_time=timestamp(record.end_us), last_event_seq=record.last_event_seq, request_id=record.request_id,
        etag=str(record.version), project=project_name(record.project),
    )  # fmt: skip
    if view == pb.JOB_VIEW_FULL:
        json_format.ParseDict(_plain(record.spec), message.spec)
        if record.parameters:
            json_format.ParseDict(_plain(record.parameters), message.parameters)
    return message


def job_view(value: int, default: int) -> int:
    """The requested JobView; `default` when unset."""
    if value not in pb.JobView.values():
        raise InvalidArgument.field("view", f"unknown value {value}")
    return value or default


def pipeline_ref(name: str) -> tuple[str, str]:
    """(project or "", pipeline id) of a PipelineRef name."""
    match = PIPELINE_REF.fullmatch(name)
    if not match or not match.group(2):
        raise InvalidArgument.field("pipeline.name", "must be `projects/{project}/pipelines/{pipeline}`, "
                                                     "`pipelines/{pipeline}` or a pipeline id")
    return (project_id(match.group(1), "pipeline.name") if match.group(1) else ""), match.group(2)


def create_project(request: pb.CreateJobRequest) -> str:
    """The project a CreateJob runs in: `project`, else its pipeline reference's, else the default one."""
    explicit = project_id(request.project, "project", default="")
    named = pipeline_ref(request.pipeline.name)[0] if request.WhichOneof("source") == "pipeline" else ""
    if explicit and named and explicit != named:
        raise InvalidArgument.field("project", f"is {project_name(explicit)}, but the pipeline belongs to "
                                               f"{project_name(named)}")
    return explicit or named or DEFAULT_PROJECT


def task(record: Task) -> pb.Task:
    message = pb.Task(
        name=f"jobs/{record.job_id}/tasks/{record.name}", task_id=record.task_id, depends=list(record.depends),
        state=_enum(record.state), reason=record.reason, message=record.message, attempt=record.attempt,
        max_attempts=record.max_attempts, image=record.image, command=list(record.command), args=list(record.args),
        resource_type=record.resource_type, resource_id=record.resource_id, create_time=timestamp(record.create_us),
        start_time=timestamp(record.start_us), end_time=timestamp(record.end_us),
        next_attempt_time=timestamp(record.next_attempt_us),
    )  # fmt: skip
    if record.exit_code is not None:
        message.exit_code = record.exit_code
    if record.outputs:
        json_format.ParseDict(_plain(record.outputs), message.outputs)
    return message


def event(record: Event) -> pb.JobEvent:
    return pb.JobEvent(
        seq=record.seq, job=f"jobs/{record.job_id}", type=_enum(record.type), time=timestamp(record.time_us),
        task=f"jobs/{record.job_id}/tasks/{record.task}" if record.task else "", job_state=_enum(record.job_state),
        task_state=_enum(record.task_state or 0), attempt=record.attempt, reason=record.reason,
        message=record.message,
    )  # fmt: skip


def cluster_event(record: ClusterEvent) -> pb.ClusterEvent:
    return pb.ClusterEvent(
        type=record.type, reason=record.reason, message=record.message, source=record.source,
        time=timestamp(record.time_us) if record.time_us else None, object=record.object, count=record.count,
    )  # fmt: skip


def heartbeat(record: Heartbeat) -> pb.Heartbeat:
    return pb.Heartbeat(latest_seq=record.latest_seq, time=timestamp(record.time_us))


class EventResponses:
    """Each event's `WatchJobResponse(event=…)`, serialized once and shared by every stream that sends
    it (the runtime passes bytes through), so 500 watchers cost one conversion per event, not 500.

    WatchJobsResponse numbers its fields like WatchJobResponse, so the same bytes are a valid
    WatchJobsResponse too (tests/scheduler/test_watch_fanout.py holds that). A stored event never
    changes, so its seq names its bytes for good; beyond `capacity` the oldest entries are dropped.
    """

    def __init__(self, capacity: int = 20_000) -> None:
        self.capacity = capacity
        self._wire: dict[int, bytes] = {}

    def __call__(self, record: Event) -> bytes:
        wire = self._wire.get(record.seq)
        if wire is None:
            wire = pb.WatchJobResponse(event=event(record)).SerializeToString()
            if len(self._wire) >= self.capacity:
                del self._wire[next(iter(self._wire))]  # dicts keep insertion order: the oldest
            self._wire[record.seq] = wire
        return wire


def requested_options(options: pb.JobOptions) -> RequestedOptions:
    violations = []
    if options.parallelism < 0:
        violations.append(("options.parallelism", "must not be negative"))
    if options.failure_policy not in pb.JobOptions.FailurePolicy.values():
        violations.append(("options.failure_policy", f"unknown value {options.failure_policy}"))
    timeout = options.timeout.ToTimedelta().total_seconds() if options.HasField("timeout") else None
    if timeout is not None and timeout <= 0:
        violations.append(("options.timeout", "must be positive"))
    if violations:
        raise InvalidArgument("invalid job options", violations)
    policy = FailurePolicy(options.failure_policy) if options.failure_policy else None
    return RequestedOptions(options.parallelism, policy, timeout)


def check_create(request: pb.CreateJobRequest) -> None:
    """Request-level checks (the pipeline itself is validated by the pipeline language)."""
    violations: list[tuple[str, str]] = []
    if len(request.request_id) > MAX_REQUEST_ID:
        violations.append(("request_id", f"at most {MAX_REQUEST_ID} characters"))
    violations += label_violations(request.labels.items(), "labels")
    if violations:
        raise InvalidArgument("invalid request", violations)


def label_violations(labels: Iterable[tuple[str, str]], field: str) -> list[tuple[str, str]]:
    items = list(labels)
    found = []
    if len(items) > MAX_LABELS:
        found.append((field, f"at most {MAX_LABELS} labels"))
    for key, value in items:
        if not LABEL_KEY.fullmatch(key):
            found.append((f"{field}[{key!r}]", "is not a valid label key"))
        elif not LABEL_VALUE.fullmatch(value):
            found.append((f"{field}[{key!r}]", f'"{value}" is not a valid label value'))
    return found


def label_filter(labels: Iterable[str], field: str = "labels") -> dict[str, str]:
    parsed: dict[str, str] = {}
    for index, item in enumerate(labels):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidArgument.field(f"{field}[{index}]", f'"{item}" must be key=value')
        parsed[key] = value
    return parsed


def job_filter(pipeline: str, states: Iterable[int], owner: str, labels: Iterable[str], me: str, *,
               project: str = "", visible: frozenset[str] | None = None) -> JobFilter:
    """The filter of ListJobs / WatchJobs; `visible` (None: all) is what the caller may see."""
    values = list(states)
    chosen = frozenset(JobState(s) for s in values if s in JobState._value2member_map_)
    if len(chosen) != len(set(values)):
        raise InvalidArgument.field("states", "unknown or unspecified state")
    wanted = project_id(project, "project", default="")
    pipeline_project, pipeline_id = ("", "")
    if pipeline:
        match = PIPELINE_REF.fullmatch(pipeline)
        if not match:
            raise InvalidArgument.field("pipeline", "must be `projects/{project}/pipelines/{pipeline}`, "
                                                    "`pipelines/{pipeline}` or a pipeline id")
        pipeline_project = project_id(match.group(1), "pipeline") if match.group(1) else ""
        pipeline_id = match.group(2)
    if wanted and pipeline_project and wanted != pipeline_project:
        raise InvalidArgument.field("pipeline", f"belongs to {project_name(pipeline_project)}, not to the project "
                                                f"filter {project_name(wanted)}")
    return JobFilter(
        pipeline=pipeline_id,
        states=chosen,
        owner=me if owner == "users/me" else owner,
        labels=label_filter(labels),
        project=wanted or pipeline_project,
        visible=visible,
    )


def task_states(states: Iterable[int]) -> frozenset[TaskState]:
    values = list(states)
    chosen = frozenset(TaskState(s) for s in values if s in TaskState._value2member_map_)
    if len(chosen) != len(set(values)):
        raise InvalidArgument.field("states", "unknown or unspecified state")
    return chosen


def _options(record: Job) -> pb.JobOptions:
    options = pb.JobOptions(parallelism=record.options.parallelism, failure_policy=_enum(record.options.failure_policy))
    timeout = record.options.timeout_seconds
    if timeout is not None:
        options.timeout.CopyFrom(duration_pb2.Duration(seconds=int(timeout), nanos=int(timeout % 1 * 1e9)))
    return options


def _enum(value: int) -> Any:
    """Our IntEnums carry the proto's numbers; the generated stubs type them as NewTypes."""
    return int(value)


def _plain(value: Any) -> Any:
    """Struct holds JSON values only: tuples become lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def struct_dict(message: struct_pb2.Struct) -> dict[str, Any]:
    return json_format.MessageToDict(message)
