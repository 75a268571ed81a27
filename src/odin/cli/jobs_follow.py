"""The streaming side of the jobs CLI: following a job to its end, its events and task logs."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator

from odin.cli.output import colour_enabled, message_dict, print_json, short_time
from odin.cli.watch_view import JobView, LinePrinter, TableScreen, event_text
from odin.client import SchedulerClient
from odin.client.states import job_state_name
from odin.scheduler.v1 import scheduler_pb2 as pb

REDRAW_SECONDS = 0.25


async def follow_job(client: SchedulerClient, job: pb.Job, as_json: bool) -> int:
    """Shows the job until it ends: 0 when it succeeded, 1 otherwise."""
    tasks = [task async for task in client.list_tasks(job.name)]
    view = JobView(job, tasks)
    events = client.watch_job(job.name, after_seq=job.last_event_seq)
    screen = TableScreen(colour=colour_enabled()) if sys.stdout.isatty() and not as_json else None
    if as_json:
        print_json(job)
        async for event in events:
            print_json(event)
    elif screen is not None:
        await _draw_live(view, screen, events)
    else:
        printer = LinePrinter()
        print(f"watching {job.name.removeprefix('jobs/')} ({job_state_name(job.state)})", flush=True)
        async for event in events:
            view.apply(event)
            printer.event(event)
    return await _print_outcome(client, job.name, as_json, screen)


async def _draw_live(view: JobView, screen: TableScreen, events: AsyncIterator[pb.JobEvent]) -> None:
    """Applies events as they come and redraws a few times a second (durations keep ticking)."""
    done = asyncio.Event()

    async def redraw() -> None:
        while not done.is_set():
            screen.draw(view)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), REDRAW_SECONDS)

    painter = asyncio.create_task(redraw())
    try:
        async for event in events:
            view.apply(event)
    finally:
        done.set()
        await painter


async def _print_outcome(client: SchedulerClient, name: str, as_json: bool, screen: TableScreen | None) -> int:
    """The final job as the store has it: JSON, or its task table (redrawn in place on a terminal)."""
    job = await client.get_job(name)
    if as_json:
        print_json(job)
    else:
        view = JobView(job, [task async for task in client.list_tasks(name)])
        if screen is not None:
            screen.draw(view)
        else:
            print("\n".join(view.lines(colour=False)))
        message = f": {job.message}" if job.message else ""
        print(f"job {name.removeprefix('jobs/')} {job_state_name(job.state)}{message}", flush=True)
    return 0 if job.state == pb.Job.STATE_SUCCEEDED else 1


async def print_events(client: SchedulerClient, job: str, after_seq: int, follow: bool, as_json: bool) -> int:
    """Stored events after `after_seq`; with `follow`, then live ones until the job ends."""
    source = (client.watch_job(job, after_seq=after_seq) if follow
              else client.list_job_events(job, after_seq=after_seq))
    async for event in source:
        if as_json:
            print_json(event)
        else:
            print(event_line(event), flush=True)
    return 0


def event_line(event: pb.JobEvent) -> str:
    """`12  10:04:01  task train RUNNING attempt 1  (Reason: message)`."""
    return f"{event.seq:>6}  {short_time(event.time)}  {event_text(event, gap='  ')}"


async def print_logs(
    client: SchedulerClient, task: str, *, follow: bool, offset: int, attempt: int, as_json: bool
) -> int:
    """Writes the task's output as it comes (raw text, or JSON lines of pieces)."""
    async for piece in client.stream_logs(task, follow=follow, offset=offset, attempt=attempt):
        if as_json:
            print_json(message_dict(piece))
        else:
            sys.stdout.write(piece.data)
            sys.stdout.flush()
    return 0
