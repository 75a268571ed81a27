"""`odin run|watch|status|show|logs|cancel|retry|delete|jobs|events`: run pipelines and watch them.

Every command takes `--address` (default `$ODIN_ADDRESS`, else the local suite of `odin dev up`),
`--project` (default `$ODIN_PROJECT`, else the one `odin projects use` chose; `run` creates the job there and
`jobs` lists only its jobs, while a job id names its job in any project) and `--json` (one JSON document, or
JSON lines for streams). A job is named by its id (`hello-ab12cd34`) or
`jobs/<id>`; a task by `<job>/<task>`, `jobs/<job>/tasks/<task>` or its task id `<job>--<task>`.
Exit codes: 0 success, 1 a failed call or a job that did not succeed, 2 bad usage, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml

from odin.cli.jobs_follow import follow_job, print_events, print_logs
from odin.cli.output import (
    colour_enabled,
    elapsed,
    message_dict,
    print_error,
    print_json,
    short_time,
    state_text,
    table,
)
from odin.cli.overrides import accept_overrides
from odin.client import (
    InvalidArgument,
    InvalidName,
    OdinError,
    SchedulerClient,
    ServiceAddresses,
    Unavailable,
    is_local_pipeline,
    job_name,
    job_options,
    pack_pipeline,
    task_name,
)
from odin.client.login import current_token, session_path
from odin.client.names import short_task
from odin.client.project import current_project
from odin.client.states import job_state_name, parse_job_state, task_state_name
from odin.pipeline_spec.durations import parse_duration
from odin.scheduler.v1 import scheduler_pb2 as pb

Handler = Callable[[argparse.Namespace, SchedulerClient], Awaitable[int]]
DEFAULT_LIST_LIMIT = 20


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Adds this module's commands to `odin`."""
    common = _common_options()
    _add_run(commands, common)
    job_command = _job_parser(commands, common)
    job_command("watch", "follow a job's tasks live until it ends (exit 0 if it succeeded)", _watch)
    job_command("status", "a job's state and its tasks", _status)
    job_command("show", "a job in full: options, spec and each task's command", _show)
    cancel = job_command("cancel", "cancel a job (running tasks are stopped)", _cancel)
    cancel.add_argument("--message", default="", help="why, recorded on the job")
    retry = job_command("retry", "re-run a job's failed, cancelled and skipped tasks", _retry)
    retry.add_argument("--watch", "-w", action="store_true", help="follow the job until it ends")
    delete = job_command("delete", "delete a job with its tasks, events, logs and files", _delete)
    delete.add_argument("--force", action="store_true", help="cancel the job first if it is still running")
    events = job_command("events", "a job's state changes in order (JSON lines with --json)", _events)
    events.add_argument("--after-seq", type=int, default=0, metavar="N", help="only events after seq N")
    events.add_argument("--follow", "-f", action="store_true", help="keep printing until the job ends")
    _add_logs(commands, common)
    _add_list(commands, common)


# -- parsers ------------------------------------------------------------------------------------------


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--address", metavar="HOST:PORT",
                        help="the gateway or scheduler (default: $ODIN_ADDRESS, else the local suite)")
    common.add_argument("--state-dir", type=Path, help="the local suite's state directory (as for `odin dev`)")
    common.add_argument("--json", action="store_true", help="print JSON (JSON lines for streams)")
    common.add_argument("--project", metavar="PROJECT",
                        help="run: the project the job runs in; jobs: only that project's jobs (default: "
                             "$ODIN_PROJECT, else `odin projects use`; a job id already names its project)")
    return common


def _add_run(commands: argparse._SubParsersAction[Any], common: argparse.ArgumentParser) -> None:
    run = commands.add_parser(
        "run", parents=[common], help="run a pipeline (a directory, a main.yml, or a pipeline name)",
        description="Runs a pipeline. PIPELINE is a local directory holding main.yml (sent with its files), "
                    "a main.yml path, or the name of a pipeline in the pipelines repository. "
                    "--x:KEY VALUE sets template parameters; dots nest (--x:train.epochs 3).",
    )
    accept_overrides(run)
    run.add_argument("source", metavar="PIPELINE")
    run.add_argument("--watch", "-w", action="store_true", help="follow the job until it ends")
    run.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="attach a label")
    run.add_argument("--parallelism", type=int, default=0, metavar="N", help="most tasks running at once")
    run.add_argument("--on-failure", choices=["finish", "cancel"], default="",
                     help="when a task fails: let running tasks finish (default) or cancel them")
    run.add_argument("--timeout", type=_duration, help="deadline of the whole job (90s, 30m, 1h)")
    run.add_argument("--revision", default="", help="branch, tag or commit of a repository pipeline")
    run.add_argument("--validate-only", action="store_true", help="check the pipeline; start nothing")
    run.add_argument("--request-id", help="idempotency key (default: a new UUID)")
    run.set_defaults(func=_command(_run))


def _job_parser(
    commands: argparse._SubParsersAction[Any], common: argparse.ArgumentParser
) -> Callable[[str, str, Handler], argparse.ArgumentParser]:
    def add(name: str, help_text: str, handler: Handler) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(
            name, parents=[common], help=help_text, description=help_text)
        parser.add_argument("job", metavar="JOB", help="job id or jobs/<id>")
        parser.set_defaults(func=_command(handler))
        return parser

    return add


def _add_logs(commands: argparse._SubParsersAction[Any], common: argparse.ArgumentParser) -> None:
    logs = commands.add_parser("logs", parents=[common], help="a task's output",
                               description="Prints a task's output: live while it runs with -f.")
    logs.add_argument("task", metavar="TASK", help="<job>/<task>, jobs/<job>/tasks/<task> or a task id")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing until the task ends")
    logs.add_argument("--offset", type=int, default=0, help="start at this byte (negative: from the end)")
    logs.add_argument("--attempt", type=int, default=0, help="the attempt to show (default: the latest)")
    logs.set_defaults(func=_command(_logs))


def _add_list(commands: argparse._SubParsersAction[Any], common: argparse.ArgumentParser) -> None:
    jobs = commands.add_parser("jobs", parents=[common], help="list jobs, newest first")
    jobs.add_argument("--pipeline", default="", help="only jobs of this pipeline")
    jobs.add_argument("--state", action="append", default=[], metavar="STATE",
                      help="only jobs in this state (repeat, or comma-separate: running,failed)")
    jobs.add_argument("--owner", default="", help="only jobs of this user (`me` for yourself)")
    jobs.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="only jobs with label")
    jobs.add_argument("--limit", type=int, default=DEFAULT_LIST_LIMIT, help="at most N jobs (default 20)")
    jobs.add_argument("--all", action="store_true", help="every matching job")
    jobs.set_defaults(func=_command(_list))


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _command(handler: Handler) -> Callable[[argparse.Namespace], int]:
    """Runs `handler` with a client; errors become a message and an exit code, never a traceback."""

    async def with_client(args: argparse.Namespace) -> int:
        addresses = ServiceAddresses.from_environment(args.address, args.state_dir)
        token = await current_token(addresses.suite_state_dir())
        session = session_path(addresses.suite_state_dir())
        async with SchedulerClient.connect(addresses.address("scheduler"), token=token, session=session) as client:
            try:
                return await handler(args, client)
            except Unavailable as error:
                raise _unreachable(error, client.address) from None

    def run(args: argparse.Namespace) -> int:
        try:
            return asyncio.run(with_client(args))
        except InvalidName as exc:
            print_error(InvalidArgument(str(exc)), args.json)
            return 2
        except OdinError as error:
            print_error(error, args.json)
            return 1

    return run


def _unreachable(error: Unavailable, address: str) -> Unavailable:
    """Says where the client tried to go when the connection itself failed (no ErrorInfo from a server)."""
    if error.reason != error.code:
        return error
    return Unavailable(f"cannot reach the scheduler at {address} ({error.message}); is it running? "
                       "(`odin dev up` starts the local suite)", code=error.code, reason=error.reason)


# -- handlers -----------------------------------------------------------------------------------------


async def _run(args: argparse.Namespace, client: SchedulerClient) -> int:
    source: pb.PipelineRef | pb.InlinePipeline
    if is_local_pipeline(args.source):
        source = pack_pipeline(args.source)
    else:
        source = client.pipeline_ref(args.source, args.revision)
    try:
        options = job_options(parallelism=args.parallelism, failure_policy=args.on_failure, timeout=args.timeout)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None
    job = await client.create_job(source, parameters=args.parameters, options=options,
                                  labels=_labels(args.label), validate_only=args.validate_only,
                                  request_id=args.request_id, project=current_project(args.project))
    if args.watch and not args.validate_only:
        return await follow_job(client, job, args.json)
    if args.json:
        print_json(job)
    elif args.validate_only:
        print(f"pipeline {job.pipeline} is valid")
    else:
        job_id = job.name.removeprefix("jobs/")
        print(f"started {job_id}\n  watch it: odin watch {job_id}\n  logs:     odin logs {job_id}/<task>")
    return 0


async def _watch(args: argparse.Namespace, client: SchedulerClient) -> int:
    return await follow_job(client, await client.get_job(job_name(args.job)), args.json)


async def _job_and_tasks(args: argparse.Namespace, client: SchedulerClient) -> tuple[pb.Job, list[pb.Task]]:
    """The job with its tasks; with --json they are printed here and the caller prints nothing more."""
    job = await client.get_job(job_name(args.job))
    tasks = [task async for task in client.list_tasks(job.name)]
    if args.json:
        print_json({"job": message_dict(job), "tasks": [message_dict(t) for t in tasks]})
    return job, tasks


async def _status(args: argparse.Namespace, client: SchedulerClient) -> int:
    job, tasks = await _job_and_tasks(args, client)
    if args.json:
        return 0
    print("\n".join(_job_summary(job)))
    print()
    print("\n".join(_task_table(tasks, colour_enabled(), _queues(job))))
    return 0


async def _show(args: argparse.Namespace, client: SchedulerClient) -> int:
    job, tasks = await _job_and_tasks(args, client)
    if args.json:
        return 0
    print("\n".join(_job_summary(job)))
    print(f"Options:   {_options_text(job.options)}")
    print("Spec:")
    spec = message_dict(job.spec)
    print("  " + yaml.safe_dump(spec, sort_keys=False).rstrip().replace("\n", "\n  "))
    queues = _queues(job)
    for task in tasks:
        print()
        print("\n".join(_task_detail(task, queues.get(short_task(task.name), ""))))
    return 0


async def _cancel(args: argparse.Namespace, client: SchedulerClient) -> int:
    job = await client.cancel_job(job_name(args.job), args.message)
    _print_job_line(job, args.json, "cancel requested for")
    return 0


async def _retry(args: argparse.Namespace, client: SchedulerClient) -> int:
    job = await client.retry_job(job_name(args.job))
    if args.watch:
        return await follow_job(client, job, args.json)
    _print_job_line(job, args.json, "retrying")
    return 0


async def _delete(args: argparse.Namespace, client: SchedulerClient) -> int:
    name = job_name(args.job)
    await client.delete_job(name, force=args.force)
    if args.json:
        print_json({"deleted": name})
    else:
        print(f"deleted {name.removeprefix('jobs/')}")
    return 0


async def _events(args: argparse.Namespace, client: SchedulerClient) -> int:
    return await print_events(client, job_name(args.job), args.after_seq, args.follow, args.json)


async def _logs(args: argparse.Namespace, client: SchedulerClient) -> int:
    try:
        name = task_name(args.task)
    except InvalidName:
        return await _explain_task_names(args, client)
    return await print_logs(client, name, follow=args.follow, offset=args.offset, attempt=args.attempt,
                            as_json=args.json)


async def _explain_task_names(args: argparse.Namespace, client: SchedulerClient) -> int:
    """`odin logs <job>` without a task: say which tasks there are."""
    job = job_name(args.task)
    names = [short_task(task.name) async for task in client.list_tasks(job)]
    raise InvalidArgument(f"name a task of {job.removeprefix('jobs/')}: "
                          + ", ".join(f"{job.removeprefix('jobs/')}/{n}" for n in names))


async def _list(args: argparse.Namespace, client: SchedulerClient) -> int:
    try:
        states = [parse_job_state(s) for text in args.state for s in text.split(",") if s.strip()]
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None
    owner = f"users/{args.owner}" if args.owner and not args.owner.startswith("users/") else args.owner
    jobs = [job async for job in client.list_jobs(
        pipeline=args.pipeline, states=states, owner=owner, labels=args.label,
        limit=None if args.all else args.limit, project=current_project(args.project))]
    if args.json:
        print_json({"jobs": [message_dict(job) for job in jobs]})
        return 0
    if not jobs:
        print("no jobs")
        return 0
    colour = colour_enabled()
    rows = [[job.name.removeprefix("jobs/"), job.pipeline, state_text(job_state_name(job.state), colour),
             job.owner.removeprefix("users/") or "-", short_time(job.create_time),
             elapsed(job.start_time, job.end_time), _progress(job.task_counts)] for job in jobs]
    headers = ["JOB", "PIPELINE", "STATE", "OWNER", "CREATED", "DURATION", "TASKS"]
    projects = [_project_id(job) for job in jobs]
    if set(projects) - {"default", ""}:  # only when jobs outside the default project are listed
        rows = [[*row[:1], project, *row[1:]] for row, project in zip(rows, projects, strict=True)]
        headers = [headers[0], "PROJECT", *headers[1:]]
    print("\n".join(table(rows, headers)))
    return 0


def _project_id(job: pb.Job) -> str:
    return job.project.removeprefix("projects/")


# -- text ---------------------------------------------------------------------------------------------


def _labels(pairs: list[str]) -> dict[str, str]:
    labels = {}
    for pair in pairs:
        key, has_value, value = pair.partition("=")
        if not has_value or not key:
            raise InvalidArgument(f'--label {pair}: write KEY=VALUE, e.g. "--label team=nlp"')
        labels[key] = value
    return labels


def _print_job_line(job: pb.Job, as_json: bool, verb: str) -> None:
    if as_json:
        print_json(job)
    else:
        print(f"{verb} {job.name.removeprefix('jobs/')} ({job_state_name(job.state)})")


def _job_summary(job: pb.Job) -> list[str]:
    revision = job.revision[:12] if job.revision else "inline"
    why = f" ({job.reason}{': ' + job.message if job.message else ''})" if job.reason else ""
    labels = ", ".join(f"{k}={v}" for k, v in sorted(job.labels.items())) or "-"
    return [
        f"Job:       {job.name.removeprefix('jobs/')}",
        f"Pipeline:  {job.pipeline} @ {revision}",
        f"State:     {state_text(job_state_name(job.state), colour_enabled())}{why}",
        *([f"Project:   {_project_id(job)}"] if _project_id(job) not in ("", "default") else []),
        f"Owner:     {job.owner.removeprefix('users/') or '-'}",
        f"Created:   {short_time(job.create_time)}   started {short_time(job.start_time)}   "
        f"ended {short_time(job.end_time)}   took {elapsed(job.start_time, job.end_time)}",
        f"Labels:    {labels}",
        f"Tasks:     {_progress(job.task_counts)}",
    ]


def _progress(counts: pb.TaskCounts) -> str:
    """`3/5 succeeded, 1 running, 1 failed`."""
    fields = ["pending", "queued", "running", "succeeded", "failed", "cancelled", "skipped"]
    values = {f: getattr(counts, f) for f in fields}
    total = sum(values.values())
    others = [f"{values[f]} {f}" for f in fields if f != "succeeded" and values[f]]
    return ", ".join([f"{values['succeeded']}/{total} succeeded", *others])


def _queues(job: pb.Job) -> dict[str, str]:
    """Each task's Kueue queue, from the stored spec (empty when the job uses none)."""
    tasks = message_dict(job.spec).get("tasks") or []
    return {str(t.get("name")): str(t["queue"]) for t in tasks if isinstance(t, dict) and t.get("queue")}


def _task_table(tasks: list[pb.Task], colour: bool, queues: dict[str, str] | None = None) -> list[str]:
    """One row per task; a QUEUE column when any task waits in a Kueue queue (REASON then says where it stands:
    WaitingForQuota, QuotaReserved, Admitted, Preempted)."""
    rows = [[short_task(t.name), state_text(task_state_name(t.state), colour), _attempts(t),
             elapsed(t.start_time, t.end_time), str(t.exit_code) if t.HasField("exit_code") else "-",
             t.resource_id or "-", t.reason] for t in tasks]
    header = ["TASK", "STATE", "ATTEMPT", "DURATION", "EXIT", "RESOURCE", "REASON"]
    if queues:
        rows = [[*row[:6], queues.get(short_task(t.name), "-"), row[6]] for row, t in zip(rows, tasks, strict=True)]
        header = [*header[:6], "QUEUE", header[6]]
    return table(rows, header)


def _attempts(task: pb.Task) -> str:
    return f"{task.attempt}/{task.max_attempts}" if task.max_attempts > 1 else str(task.attempt or "-")


def _task_detail(task: pb.Task, queue: str = "") -> list[str]:
    lines = [
        f"Task {short_task(task.name)}  ({task.task_id})",
        f"  state:    {task_state_name(task.state)}{' (' + task.reason + ')' if task.reason else ''}"
        f"  attempt {_attempts(task)}",
        f"  image:    {task.image or '-'}",
        f"  command:  {' '.join(task.command) or '-'}",
        f"  args:     {' '.join(task.args) or '-'}",
        f"  depends:  {', '.join(task.depends) or '-'}",
    ]
    if queue:
        lines.append(f"  queue:    {queue} (Kueue){'  ' + task.reason if task.reason else ''}")
    if task.message:
        lines.append(f"  message:  {task.message}")
    if task.outputs.fields:
        lines.append(f"  outputs:  {json.dumps(message_dict(task.outputs))}")
    return lines


def _options_text(options: pb.JobOptions) -> str:
    policy = pb.JobOptions.FailurePolicy.Name(options.failure_policy).removeprefix("FAILURE_POLICY_").lower()
    timeout = f"{options.timeout.ToTimedelta()}" if options.HasField("timeout") else "none"
    return f"parallelism {options.parallelism or 'unlimited'}, on failure {policy}, timeout {timeout}"


