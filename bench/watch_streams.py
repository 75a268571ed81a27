#!/usr/bin/env python3
"""500 concurrent WatchJob streams against a real scheduler process while a job emits events.

Starts `odin-scheduler` (SQLite store, local executor, auth off) and creates a job whose first task waits
on a gate file, followed by many instant `true` tasks run with limited parallelism. Then:

1. memory per idle stream: the scheduler's RSS before and after opening N streams that replayed the
   job's first events and now wait (the gate is closed, nothing happens), divided by N;
2. delivery latency: the gate opens, the job emits its events; each stream records when it received
   each event, compared with the event's own `time` (same machine, same clock);
3. lost and duplicated events: each stream's seqs against the job's stored events (ListJobEvents).

Streams use the raw generated stub (not odin.client, whose de-duplication would hide a server
duplicate). Prints the numbers; see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from grpc import aio

from odin.devsuite import _health, free_port
from odin.scheduler.v1 import scheduler_pb2 as pb
from odin.scheduler.v1 import scheduler_pb2_grpc

BIN = Path(sys.executable).parent


@dataclass
class Stream:
    """What one watcher received: (seq, event time, receive time) per event."""

    received: list[tuple[int, float, float]] = field(default_factory=list)
    first: asyncio.Event = field(default_factory=asyncio.Event)


def pipeline(gate: Path, tasks: int, parallelism: int) -> str:
    lines = [f"name: bench\nparallelism: {parallelism}\ntasks:",
             "  - {name: gate, image: none, command: sh, args: ['-c', "
             f"'while [ ! -f {gate} ]; do sleep 0.005; done']}}"]
    lines += [f"  - {{name: t{i:04d}, image: none, command: 'true', depends: gate}}" for i in range(tasks)]
    return "\n".join(lines) + "\n"


def start_scheduler(state: Path, store_url: str = "") -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "ODIN_SCHEDULER_HOST": "127.0.0.1", "ODIN_SCHEDULER_PORT": str(port),
           "ODIN_SCHEDULER_STORE_URL": store_url or f"sqlite:///{state / 'scheduler.db'}",
           "ODIN_SCHEDULER_RUN_PATH": str(state / "runs"), "ODIN_SCHEDULER_EXECUTOR": "local",
           "ODIN_SCHEDULER_AUTH_DISABLED": "true", "ODIN_SCHEDULER_LOG_LEVEL": "WARNING"}
    log = (state / "scheduler.log").open("ab")
    process = subprocess.Popen([str(BIN / "odin-scheduler")], env=env, stdout=log, stderr=log,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while _health(address, 0.5) != "SERVING":
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the scheduler did not start; see {state / 'scheduler.log'}")
        time.sleep(0.05)
    return process, address


async def watch(stub: scheduler_pb2_grpc.SchedulerServiceStub, job: str, stream: Stream) -> None:
    call = stub.WatchJob(pb.WatchJobRequest(name=job, after_seq=0))
    async for response in call:
        if response.HasField("event"):
            now = time.time()
            event = response.event
            stream.received.append((event.seq, event.time.seconds + event.time.nanos / 1e9, now))
            stream.first.set()


def rss(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(args: argparse.Namespace, address: str, pid: int, state: Path) -> None:
    channels = [aio.insecure_channel(address) for _ in range(args.channels)]
    stubs = [scheduler_pb2_grpc.SchedulerServiceStub(c) for c in channels]
    gate = state / "gate"
    created = await stubs[0].CreateJob(pb.CreateJobRequest(
        request_id="bench", inline=pb.InlinePipeline(main_yml=pipeline(gate, args.tasks, args.parallelism))))
    job = created.job.name
    await asyncio.sleep(1.0)  # the gate task is running; the job is quiet from here on
    before = rss(pid)

    streams = [Stream() for _ in range(args.streams)]
    opened = time.perf_counter()
    watchers = [asyncio.create_task(watch(stubs[i % len(stubs)], job, s)) for i, s in enumerate(streams)]
    await asyncio.wait_for(asyncio.gather(*(s.first.wait() for s in streams)), 60)
    open_seconds = time.perf_counter() - opened
    await asyncio.sleep(2.0)  # let the server settle (buffers, GC) while the streams sit idle
    after = rss(pid)

    server_cpu, client_cpu = cpu_seconds(pid), cpu_seconds(os.getpid())
    gate_time = time.time()
    gate.touch()
    await asyncio.wait_for(asyncio.gather(*watchers), args.timeout)
    finished = time.time()
    cpu = (cpu_seconds(pid) - server_cpu, cpu_seconds(os.getpid()) - client_cpu)

    stored: list[int] = []
    token = ""
    while True:
        page = await stubs[0].ListJobEvents(pb.ListJobEventsRequest(parent=job, page_size=1000, page_token=token))
        stored += [e.seq for e in page.events]
        token = page.next_page_token
        if not token:
            break
    final = (await stubs[0].GetJob(pb.GetJobRequest(name=job))).job
    report(args, streams, stored, final, (gate_time, finished), (before, after), open_seconds, cpu)
    for channel in channels:
        await channel.close()


def report(args: argparse.Namespace, streams: list[Stream], stored: list[int], final: pb.Job,
           window: tuple[float, float], memory: tuple[int, int], open_seconds: float, cpu: tuple[float, float]) -> None:
    (gate_time, finished), (before, after) = window, memory
    expected = set(stored)
    lost = sum(len(expected - {seq for seq, _, _ in s.received}) for s in streams)
    duplicated = sum(len(s.received) - len({seq for seq, _, _ in s.received}) for s in streams)
    out_of_order = sum(any(a[0] >= b[0] for a, b in zip(s.received, s.received[1:], strict=False)) for s in streams)
    live = [(recv - sent) * 1000 for s in streams for _, sent, recv in s.received if sent >= gate_time]
    live_events = sum(1 for _, sent, _ in streams[0].received if sent >= gate_time)
    rate = live_events / max(finished - gate_time, 1e-9)
    print(f"job {final.name}: {pb.Job.State.Name(final.state)}, {len(stored)} events stored, "
          f"{args.tasks + 1} tasks, parallelism {args.parallelism}")
    print(f"streams: {args.streams} on {args.channels} channels, all open and replayed in {open_seconds:.2f}s")
    print(f"event rate while running: {rate:.0f} events/s ({live_events} events in {finished - gate_time:.2f}s)")
    print(f"deliveries measured: {len(live)} ({len(live) // max(args.streams, 1)} per stream)")
    print(f"delivery latency ms: p50 {statistics.median(live):.1f}  p90 {percentile(live, 0.9):.1f}  "
          f"p99 {percentile(live, 0.99):.1f}  max {max(live):.1f}")
    print(f"CPU seconds while running: scheduler {cpu[0]:.2f}, this client {cpu[1]:.2f} "
          f"(machine load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    print(f"lost events: {lost}   duplicated events: {duplicated}   streams out of order: {out_of_order}")
    print(f"scheduler RSS: {before / 2**20:.1f} MiB idle job, {after / 2**20:.1f} MiB with {args.streams} idle "
          f"streams -> {(after - before) / args.streams / 1024:.1f} KiB per idle stream")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--tasks", type=int, default=200, help="instant tasks after the gate")
    parser.add_argument("--parallelism", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--store-url", default="", help="the scheduler's store (default: SQLite in a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="odin-bench-watch-") as tmp:
        state = Path(tmp)
        process, address = start_scheduler(state, args.store_url)
        try:
            asyncio.run(run(args, address, process.pid, state))
        finally:
            process.terminate()
            process.wait(15)


if __name__ == "__main__":
    main()
