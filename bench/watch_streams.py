#!/usr/bin/env python3
"""N concurrent WatchJob streams against a real scheduler process while a job emits events.

Starts `odin-scheduler` (SQLite store, local executor, auth off) as its own process and creates a job
whose first task waits on a gate file, followed by many instant `true` tasks run with limited
parallelism. The streams are spread over `--clients` client processes (so one client's CPU is not
the bottleneck). Then:

1. memory per idle stream: the scheduler's RSS before and after opening N streams that replayed the
   job's first events and now wait (the gate is closed, nothing happens), divided by N;
2. delivery latency: the gate opens, the job emits its events; each stream records when it received
   each event, compared with the event's own `time` (same machine, same clock);
3. lost and duplicated events: each stream's seqs against the job's stored events (ListJobEvents);
4. CPU per delivered message, scheduler and clients; the scheduler's figure includes the engine
   running the job (`--streams 1` measures that share alone), and the machine's load average.

Streams use the raw generated stub (not odin.client, whose de-duplication would hide a server
duplicate). `--profile FILE` runs the scheduler under cProfile. Prints the numbers; see
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import psutil
from grpc import aio

from odin.devsuite import _health, free_port
from odin.scheduler.v1 import scheduler_pb2 as pb
from odin.scheduler.v1 import scheduler_pb2_grpc

BIN = Path(sys.executable).parent


@dataclass
class Received:
    """What one client process's streams received: per stream, the seqs and the live latencies (ms)."""

    seqs: list[list[int]] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0


def pipeline(gate: Path, tasks: int, chains: int, task_seconds: float) -> str:
    """A gate task, then `tasks` tasks of `task_seconds` each in `chains` parallel chains, so events come at
    a steady rate (3 per task: queued, running, succeeded) rather than in one burst when the gate opens."""
    work = f"command: sleep, args: ['{task_seconds}']" if task_seconds > 0 else "command: 'true'"
    lines = [f"name: bench\nparallelism: {chains}\ntasks:",
             "  - {name: gate, image: none, command: sh, args: ['-c', "
             f"'while [ ! -f {gate} ]; do sleep 0.005; done']}}"]
    for i in range(tasks):
        previous = f"t{i - chains:04d}" if i >= chains else "gate"
        lines.append(f"  - {{name: t{i:04d}, image: none, {work}, depends: {previous}}}")
    return "\n".join(lines) + "\n"


def start_scheduler(state: Path, store_url: str = "", profile: str = "") -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "ODIN_SCHEDULER_HOST": "127.0.0.1", "ODIN_SCHEDULER_PORT": str(port),
           "ODIN_SCHEDULER_STORE_URL": store_url or f"sqlite:///{state / 'scheduler.db'}",
           "ODIN_SCHEDULER_RUN_PATH": str(state / "runs"), "ODIN_SCHEDULER_EXECUTOR": "local",
           "ODIN_SCHEDULER_AUTH_DISABLED": "true", "ODIN_SCHEDULER_LOG_LEVEL": "WARNING"}
    command = [str(BIN / "odin-scheduler")]
    if profile:
        command = [sys.executable, "-m", "cProfile", "-o", profile, *command]
    log = (state / "scheduler.log").open("ab")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                               start_new_session=True)
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while _health(address, 0.5) != "SERVING":
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the scheduler did not start; see {state / 'scheduler.log'}")
        time.sleep(0.05)
    return process, address


# ---- client processes --------------------------------------------------------------------------


def client_main(address: str, job: str, streams: int, channels: int, pipe: Connection) -> None:
    """One client process: opens `streams` WatchJob streams, reports when all replayed, waits for 'go'
    (the gate opening time), follows them to the job's end and sends back what it received."""
    pipe.send(asyncio.run(_client(address, job, streams, channels, pipe)))
    pipe.close()


async def _client(address: str, job: str, count: int, channels: int, pipe: Connection) -> Received:
    chans = [aio.insecure_channel(address) for _ in range(channels)]
    stubs = [scheduler_pb2_grpc.SchedulerServiceStub(c) for c in chans]
    streams: list[list[tuple[int, float, float]]] = [[] for _ in range(count)]
    firsts = [asyncio.Event() for _ in range(count)]
    watchers = [asyncio.create_task(_watch(stubs[i % channels], job, streams[i], firsts[i])) for i in range(count)]
    await asyncio.gather(*(f.wait() for f in firsts))
    pipe.send("ready")
    gate_time: float = await asyncio.to_thread(pipe.recv)
    started = time.process_time()
    await asyncio.gather(*watchers)
    cpu = time.process_time() - started
    for channel in chans:
        await channel.close()
    return Received(
        seqs=[[seq for seq, _, _ in s] for s in streams],
        latency_ms=[(recv - sent) * 1000 for s in streams for _, sent, recv in s if sent >= gate_time],
        cpu_seconds=cpu,
    )


async def _watch(stub: scheduler_pb2_grpc.SchedulerServiceStub, job: str, received: list[tuple[int, float, float]],
                 first: asyncio.Event) -> None:
    async for response in stub.WatchJob(pb.WatchJobRequest(name=job, after_seq=0)):
        if response.HasField("event"):
            now = time.time()
            event = response.event
            received.append((event.seq, event.time.seconds + event.time.nanos / 1e9, now))
            first.set()


# ---- the coordinator ---------------------------------------------------------------------------


def rss(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def create_job(address: str, state: Path, args: argparse.Namespace) -> str:
    async with aio.insecure_channel(address) as channel:
        stub = scheduler_pb2_grpc.SchedulerServiceStub(channel)
        yml = pipeline(state / "gate", args.tasks, args.chains, args.task_seconds)
        created = await stub.CreateJob(pb.CreateJobRequest(request_id="bench", inline=pb.InlinePipeline(main_yml=yml)))
        return str(created.job.name)


async def stored_events(address: str, job: str) -> tuple[list[int], pb.Job]:
    async with aio.insecure_channel(address) as channel:
        stub = scheduler_pb2_grpc.SchedulerServiceStub(channel)
        seqs: list[int] = []
        token = ""
        while True:
            page = await stub.ListJobEvents(pb.ListJobEventsRequest(parent=job, page_size=1000, page_token=token))
            seqs += [e.seq for e in page.events]
            token = page.next_page_token
            if not token:
                return seqs, (await stub.GetJob(pb.GetJobRequest(name=job))).job


def run(args: argparse.Namespace, address: str, pid: int, state: Path) -> None:
    job = asyncio.run(create_job(address, state, args))
    time.sleep(1.0)  # the gate task is running; the job is quiet from here on
    before = rss(pid)
    context = mp.get_context("spawn")
    shares = [args.streams // args.clients + (i < args.streams % args.clients) for i in range(args.clients)]
    pipes, clients = [], []
    for share in shares:
        mine, theirs = context.Pipe()
        process = context.Process(target=client_main, args=(address, job, share, args.channels, theirs))
        process.start()
        pipes.append(mine)
        clients.append(process)
    opened = time.perf_counter()
    for pipe in pipes:
        if not pipe.poll(120) or pipe.recv() != "ready":
            raise SystemExit("a client did not open its streams")
    open_seconds = time.perf_counter() - opened
    time.sleep(2.0)  # let the server settle (buffers, GC) while the streams sit idle
    after = rss(pid)

    server_cpu = cpu_seconds(pid)
    load_before = os.getloadavg()[0]
    gate_time = time.time()
    for pipe in pipes:
        pipe.send(gate_time)
    (state / "gate").touch()
    results: list[Received] = []
    for pipe in pipes:
        if not pipe.poll(args.timeout):
            raise SystemExit("a client did not finish in time")
        results.append(pipe.recv())
    finished = time.time()
    server = cpu_seconds(pid) - server_cpu
    load_after = os.getloadavg()[0]
    for process in clients:
        process.join(10)
    stored, final = asyncio.run(stored_events(address, job))
    report(args, results, stored, final, (gate_time, finished), (before, after), open_seconds, server,
           (load_before, load_after))


def report(args: argparse.Namespace, results: list[Received], stored: list[int], final: pb.Job,
           window: tuple[float, float], memory: tuple[int, int], open_seconds: float, server_cpu: float,
           load: tuple[float, float]) -> None:
    (gate_time, finished), (before, after) = window, memory
    seqs = [s for r in results for s in r.seqs]
    live = [ms for r in results for ms in r.latency_ms]
    expected = set(stored)
    lost = sum(len(expected - set(s)) for s in seqs)
    duplicated = sum(len(s) - len(set(s)) for s in seqs)
    out_of_order = sum(any(a >= b for a, b in itertools.pairwise(s)) for s in seqs)
    live_events = len(live) // max(args.streams, 1)
    rate = live_events / max(finished - gate_time, 1e-9)
    client_cpu = sum(r.cpu_seconds for r in results)
    print(f"job {final.name}: {pb.Job.State.Name(final.state)}, {len(stored)} events stored, "
          f"{args.tasks + 1} tasks of {args.task_seconds}s in {args.chains} chains")
    print(f"streams: {args.streams} over {args.clients} client processes x {args.channels} channels, "
          f"all open and replayed in {open_seconds:.2f}s")
    print(f"event rate while running: {rate:.0f} events/s ({live_events} events in {finished - gate_time:.2f}s)")
    print(f"deliveries measured: {len(live)} ({live_events} per stream)")
    print(f"delivery latency ms: p50 {statistics.median(live):.1f}  p90 {percentile(live, 0.9):.1f}  "
          f"p99 {percentile(live, 0.99):.1f}  max {max(live):.1f}")
    print(f"CPU seconds while running: scheduler {server_cpu:.2f} "
          f"({server_cpu / max(len(live), 1) * 1e6:.0f} us per delivered message, engine included), "
          f"clients {client_cpu:.2f} ({client_cpu / max(len(live), 1) * 1e6:.0f} us per message)")
    print(f"machine load average: {load[0]:.1f} at the start, {load[1]:.1f} at the end ({os.cpu_count()} cores)")
    print(f"lost events: {lost}   duplicated events: {duplicated}   streams out of order: {out_of_order}")
    print(f"scheduler RSS: {before / 2**20:.1f} MiB idle job, {after / 2**20:.1f} MiB with {args.streams} idle "
          f"streams -> {(after - before) / args.streams / 1024:.1f} KiB per idle stream")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--clients", type=int, default=4, help="client processes the streams are spread over")
    parser.add_argument("--channels", type=int, default=2, help="channels per client process")
    parser.add_argument("--tasks", type=int, default=200, help="tasks after the gate (3 events each)")
    parser.add_argument("--chains", type=int, default=4, help="the tasks run in this many parallel chains")
    parser.add_argument("--task-seconds", type=float, default=0.1,
                        help="each task sleeps this long: 4 chains of 0.1 s tasks emit about 100 events/s")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--store-url", default="", help="the scheduler's store (default: SQLite in a temp dir)")
    parser.add_argument("--profile", default="", help="run the scheduler under cProfile, writing stats here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="odin-bench-watch-") as tmp:
        state = Path(tmp)
        process, address = start_scheduler(state, args.store_url, args.profile)
        try:
            run(args, address, process.pid, state)
        finally:
            process.terminate()
            process.wait(30)


if __name__ == "__main__":
    main()
