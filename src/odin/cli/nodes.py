"""`odin nodes` and `odin gpus`: the cluster's machines and GPUs, from the Midgard aggregator.

`odin gpus` prints a table like the original `odin-gpus` (host, gpu, type, free, power, util,
memory, processes, job); `--watch` redraws it whenever a node changes (WatchNodes), at most once
a second.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from odin.cli.output import message_dict, print_json, run_reporting_errors, short_time, table
from odin.client.addresses import ServiceAddresses
from odin.client.channel import call_metadata, open_channel
from odin.client.login import current_token, session_path
from odin.client.paging import collect_pages
from odin.midgard.v1 import midgard_pb2 as pb
from odin.midgard.v1 import midgard_pb2_grpc

TIMEOUT = 10.0
GIB = 1024**3
WATCH_MIN_REDRAW_SECONDS = 1.0


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Adds `odin nodes` and `odin gpus`."""
    nodes = commands.add_parser("nodes", help="list the cluster's nodes", description="List nodes (Midgard).")
    _common(nodes)
    nodes.set_defaults(func=lambda args: run_reporting_errors(_nodes(args), args.json))
    gpus = commands.add_parser("gpus", help="list GPUs and which job holds them",
                               description="List GPUs across nodes (Midgard), like the original odin-gpus.")
    _common(gpus)
    gpus.add_argument("--free", action="store_true", help="only GPUs that answer and run no process")
    gpus.add_argument("--model", default="", help="only GPUs whose product name contains this")
    gpus.add_argument("--node", default="", help="only GPUs of this node (NAME or nodes/NAME)")
    gpus.add_argument("--watch", action="store_true", help="redraw whenever a node changes (Ctrl-C stops)")
    gpus.set_defaults(func=lambda args: run_reporting_errors(_gpus(args), args.json))


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", help="the Midgard service or gateway, host:port (default: ODIN_ADDRESS, "
                                          "else the local suite)")
    parser.add_argument("--json", action="store_true", help="print proto JSON")


class _Midgard:
    """The stub plus the bearer token every call carries."""

    def __init__(self, args: argparse.Namespace, token: str | None) -> None:
        addresses = ServiceAddresses.from_environment(args.address)
        self.metadata = call_metadata(token)
        self.channel = open_channel(addresses.address("midgard"), session_path(addresses.suite_state_dir()))
        self.stub = midgard_pb2_grpc.MidgardServiceStub(self.channel)

    @classmethod
    async def open(cls, args: argparse.Namespace) -> _Midgard:
        """A client with the login session's token, renewed first when it is about to expire."""
        addresses = ServiceAddresses.from_environment(args.address)
        return cls(args, await current_token(addresses.suite_state_dir()))

    async def list_nodes(self) -> list[pb.Node]:
        request = pb.ListNodesRequest(page_size=1000)
        return await collect_pages(lambda token: self._page(self.stub.ListNodes, request, token), "nodes")

    async def list_gpus(self, request: pb.ListGpusRequest) -> list[pb.Gpu]:
        request.page_size = 1000
        return await collect_pages(lambda token: self._page(self.stub.ListGpus, request, token), "gpus")

    async def _page(self, method: Any, request: Any, token: str) -> Any:
        request.page_token = token
        return await method(request, timeout=TIMEOUT, metadata=self.metadata)

    def watch(self) -> AsyncIterator[pb.WatchNodesResponse]:
        stream: AsyncIterator[pb.WatchNodesResponse] = self.stub.WatchNodes(pb.WatchNodesRequest(),
                                                                             metadata=self.metadata)
        return stream


# -- odin nodes -------------------------------------------------------------------------------

async def _nodes(args: argparse.Namespace) -> int:
    client = await _Midgard.open(args)
    try:
        nodes = await client.list_nodes()
    finally:
        await client.channel.close()
    if args.json:
        print_json({"nodes": [message_dict(n) for n in nodes]})
    else:
        print("\n".join(nodes_table(nodes)) if nodes else "no nodes")
    return 0


def nodes_table(nodes: Sequence[pb.Node]) -> list[str]:
    header = ("NODE", "STATE", "CPUS", "CPU%", "LOAD", "MEMORY", "GPUS", "DRIVER", "UPDATED", "MESSAGE")
    return table([_node_row(n) for n in nodes], header)


def _node_row(node: pb.Node) -> list[str]:
    system = node.system
    free = sum(1 for g in node.gpus if _is_free(g))
    memory = f"{_gib(system.memory_total_bytes - system.memory_available_bytes)}/{_gib(system.memory_total_bytes)}"
    return [
        _short_node(node.name),
        pb.Node.State.Name(node.state).removeprefix("STATE_"),
        str(system.cpu_count or "-"),
        f"{system.cpu_percent:.0f}" if system.cpu_count else "-",
        f"{system.load_average[0]:.2f}" if system.load_average else "-",
        memory if system.memory_total_bytes else "-",
        f"{len(node.gpus)} ({free} free)" if node.gpus else "0",
        _driver(node.gpu_driver) if node.HasField("gpu_driver") else "-",
        short_time(node.collect_time),
        node.state_message or node.gpu_driver.unavailable_reason,
    ]


def _driver(driver: pb.GpuDriver) -> str:
    if not driver.available:
        return "none"
    text = f"{driver.driver_version or '?'} cuda {driver.cuda_version or '?'}"
    return f"{text} (simulated)" if driver.simulated else text


# -- odin gpus --------------------------------------------------------------------------------

async def _gpus(args: argparse.Namespace) -> int:
    client = await _Midgard.open(args)
    node = args.node if not args.node or args.node.startswith("nodes/") else f"nodes/{args.node}"
    request = pb.ListGpusRequest(node=node, model=args.model, free_only=args.free)
    try:
        if args.watch:
            await _watch_gpus(client, request, args.json)
        else:
            _print_gpus(await client.list_gpus(request), await _states(client), args.json)
    finally:
        await client.channel.close()
    return 0


async def _states(client: _Midgard) -> dict[str, pb.Node.State.ValueType]:
    """Node name → state, to mark GPUs whose node is stale."""
    return {n.name: n.state for n in await client.list_nodes()}


async def _watch_gpus(client: _Midgard, request: pb.ListGpusRequest, as_json: bool) -> None:
    """Level-triggered: any change re-reads the (filtered) GPU list, redrawn at most once a second."""
    last_draw = 0.0
    async for message in client.watch():
        if not message.HasField("change") and last_draw:
            continue
        wait = WATCH_MIN_REDRAW_SECONDS - (time.monotonic() - last_draw)
        if wait > 0:
            await asyncio.sleep(wait)
        gpus = await client.list_gpus(pb.ListGpusRequest(node=request.node, model=request.model,
                                                         free_only=request.free_only))
        if not as_json and sys.stdout.isatty():
            sys.stdout.write("\x1b[H\x1b[2J")
        _print_gpus(gpus, await _states(client), as_json)
        last_draw = time.monotonic()


def _print_gpus(gpus: Sequence[pb.Gpu], states: dict[str, pb.Node.State.ValueType], as_json: bool) -> None:
    if as_json:
        print_json({"gpus": [message_dict(g) for g in gpus]})
        return
    print("\n".join(gpus_table(gpus, states)) if gpus else "no GPUs")
    sys.stdout.flush()


def gpus_table(gpus: Sequence[pb.Gpu], states: dict[str, pb.Node.State.ValueType] | None = None) -> list[str]:
    header = ("HOST", "GPU", "TYPE", "FREE", "POWER", "UTIL", "MEMORY", "PROCESSES", "JOB")
    return table([_gpu_row(g, states or {}) for g in gpus], header)


def _gpu_row(gpu: pb.Gpu, states: dict[str, pb.Node.State.ValueType]) -> list[str]:
    node = gpu.name.split("/gpus/")[0]
    host = _short_node(node)
    if states.get(node, pb.Node.STATE_READY) != pb.Node.STATE_READY:
        host += f" ({pb.Node.State.Name(states[node]).removeprefix('STATE_').lower()})"
    lost = gpu.state == pb.Gpu.STATE_LOST
    jobs = sorted({p.job.removeprefix("jobs/") for p in gpu.processes if p.job})
    return [
        host,
        str(gpu.index),
        gpu.product_name.removeprefix("NVIDIA ") or "-",
        "LOST" if lost else ("yes" if _is_free(gpu) else "no"),
        _power(gpu),
        f"{gpu.utilization_gpu_percent}%" if gpu.HasField("utilization_gpu_percent") else "-",
        _memory(gpu),
        ", ".join(_process(p) for p in gpu.processes) or "-",
        ", ".join(jobs) or "-",
    ]


def _power(gpu: pb.Gpu) -> str:
    if not gpu.HasField("power_draw_watts"):
        return "-"
    if gpu.HasField("power_limit_watts"):
        return f"{gpu.power_draw_watts:.0f}/{gpu.power_limit_watts:.0f}W"
    return f"{gpu.power_draw_watts:.0f}W"


def _memory(gpu: pb.Gpu) -> str:
    if not gpu.HasField("memory_total_bytes"):
        return "-"
    return f"{_gib(gpu.memory_used_bytes)}/{_gib(gpu.memory_total_bytes)}"


def _process(process: pb.GpuProcess) -> str:
    used = f" {process.used_memory_bytes / GIB:.1f}G" if process.HasField("used_memory_bytes") else ""
    return f"{process.process_name or '?'}({process.pid}){used}"


def _is_free(gpu: pb.Gpu) -> bool:
    return gpu.state == pb.Gpu.STATE_OK and not gpu.processes


def _gib(value: int) -> str:
    return f"{value / GIB:.1f}GiB"


def _short_node(name: str) -> str:
    return name.removeprefix("nodes/")
