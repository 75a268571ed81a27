"""Pipelines service latency over gRPC against a real odin-pipelines process (prints numbers).

    .venv/bin/python bench/pipelines_repository.py [--pipelines 1000] [--rounds 100]

Targets (issue 5): a commit of a 10-file pipeline p95 <= 150 ms; GetPipeline p95 <= 20 ms;
ListPipelines over 1,000 pipelines <= 100 ms. The repository is seeded with N pipelines in one
commit (seed_path), then every measured call goes through gRPC on loopback.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import grpc

from odin.devsuite import _health, free_port
from odin.pipelines.v1 import pipelines_pb2 as pb
from odin.pipelines.v1 import pipelines_pb2_grpc

MAIN = "name: bench\ntasks:\n- name: t{n}\n  image: busybox\n  command: [echo, '{n}']\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pipelines", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="odin-bench-pipelines-") as tmp:
        root = Path(tmp)
        _write_seed(root / "seed", args.pipelines)
        process, address = _start(root)
        try:
            _measure(pipelines_pb2_grpc.PipelinesServiceStub(grpc.insecure_channel(address)), args)
        finally:
            process.terminate()
            process.wait(15)


def _write_seed(seed: Path, count: int) -> None:
    for n in range(count):
        directory = seed / f"p{n:05d}"
        directory.mkdir(parents=True)
        (directory / "main.yml").write_text(MAIN.format(n=n))
        (directory / "conf.yml").write_text(f"lr: 0.{n}\n" * 20)


def _start(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "ODIN_PIPELINES_REPO_PATH": str(root / "repo"), "ODIN_PIPELINES_PORT": str(port),
           "ODIN_PIPELINES_SEED_PATH": str(root / "seed"), "ODIN_PIPELINES_AUTH_DISABLED": "true",
           "ODIN_PIPELINES_LOG_LEVEL": "warning"}
    process = subprocess.Popen([str(Path(sys.executable).parent / "odin-pipelines")], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while _health(address, 0.5) != "SERVING":
        if time.monotonic() > deadline or process.poll() is not None:
            raise SystemExit("odin-pipelines did not start")
        time.sleep(0.1)
    return process, address


def _measure(api: pipelines_pb2_grpc.PipelinesServiceStub, args: argparse.Namespace) -> None:
    ten_files = [pb.PipelineFile(path="main.yml", content=MAIN.format(n=0))] + [
        pb.PipelineFile(path=f"conf/f{i}.yml", content=f"value: {i}\n" * 200) for i in range(9)]
    counter = iter(range(10**9))
    _report("CreatePipeline, 10 files (one commit)", args.rounds, lambda: api.CreatePipeline(pb.CreatePipelineRequest(
        pipeline_id=f"new-{next(counter)}", pipeline=pb.Pipeline(files=ten_files)), timeout=10))
    head = api.GetPipeline(pb.GetPipelineRequest(name="pipelines/new-0"), timeout=10).pipeline.etag
    state = {"etag": head}

    def update() -> None:
        reply = api.UpdatePipeline(pb.UpdatePipelineRequest(
            name="pipelines/new-0", expected_revision=state["etag"],
            upsert_files=[pb.PipelineFile(path=f"conf/f{i}.yml", content=f"v: {time.time()}\n") for i in range(9)]),
            timeout=10)
        state["etag"] = reply.pipeline.etag

    _report("UpdatePipeline, 9 files changed (one commit)", args.rounds, update)
    _report("GetPipeline (2 files, head)", args.rounds * 2, lambda: api.GetPipeline(
        pb.GetPipelineRequest(name="pipelines/p00042"), timeout=10))
    _report("GetPipeline (10 files, at a commit)", args.rounds * 2, lambda: api.GetPipeline(
        pb.GetPipelineRequest(name="pipelines/new-0", revision=head), timeout=10))
    total = args.pipelines + args.rounds + 1  # the warm-up call created one more

    def list_all() -> None:
        token, seen = "", 0
        while True:
            page = api.ListPipelines(pb.ListPipelinesRequest(page_size=500, page_token=token), timeout=10)
            seen += len(page.pipelines)
            token = page.next_page_token
            if not token:
                break
        assert seen == total, seen

    _report(f"ListPipelines, all {total} pipelines (pages of 500)", 20, list_all)
    _report("ListPipelines, one page of 500", 20, lambda: api.ListPipelines(
        pb.ListPipelinesRequest(page_size=500), timeout=10))
    _report("RenderPipeline (plain, validated)", args.rounds, lambda: api.RenderPipeline(
        pb.RenderPipelineRequest(name="pipelines/p00042"), timeout=10))


def _report(what: str, rounds: int, call: Callable[[], object]) -> None:
    call()  # warm caches and connections once
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    p95 = times[max(0, int(len(times) * 0.95) - 1)]
    median = statistics.median(times)
    print(f"{what:<52} n={rounds:<4} p50={median:7.1f} ms  p95={p95:7.1f} ms  max={times[-1]:7.1f} ms")


if __name__ == "__main__":
    main()
