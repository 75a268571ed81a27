"""The aggregator's cache, its queries (filters, paging, errors) and the watch deltas, in process."""

from __future__ import annotations

import asyncio

import pytest
from odin_midgard import queries
from odin_midgard.cache import NodeCache
from odin_midgard.discovery import AgentTarget
from odin_midgard.watch import WatchState, watch_nodes

from odin.midgard.v1 import midgard_pb2 as pb
from odin.runtime.errors import InvalidArgument, NotFound

Change = pb.NodeChange


def snapshot(node: str, models: list[str], busy: tuple[int, ...] = (), lost: tuple[int, ...] = ()) -> pb.Node:
    gpus = [
        pb.Gpu(name=f"nodes/{node}/gpus/{i}", index=i, product_name=m,
               state=pb.Gpu.STATE_LOST if i in lost else pb.Gpu.STATE_OK,
               processes=[pb.GpuProcess(pid=100 + i)] if i in busy else [])
        for i, m in enumerate(models)
    ]
    return pb.Node(name=f"nodes/{node}", gpus=gpus)


@pytest.fixture
def cache() -> NodeCache:
    cache = NodeCache()
    for port, name, models, busy, lost in [
        (1, "b", ["NVIDIA H100 80GB HBM3"] * 3, (0,), (2,)),
        (2, "a", ["NVIDIA A100-SXM4-40GB", "NVIDIA GeForce RTX 4090"], (), ()),
        (3, "c", [], (), ()),
    ]:
        cache.add(AgentTarget(f"127.0.0.1:{port}"))
        cache.succeeded(f"127.0.0.1:{port}", snapshot(name, models, busy, lost))
    return cache


def test_states_follow_collections() -> None:
    cache = NodeCache()
    cache.add(AgentTarget("127.0.0.1:9", node="never"))
    assert cache.find("nodes/never").state == pb.Node.STATE_UNREACHABLE  # type: ignore[union-attr]
    cache.failed("127.0.0.1:9", "the agent cannot be reached")
    never = cache.find("nodes/never")
    assert never and never.state == pb.Node.STATE_UNREACHABLE and never.state_message == "the agent cannot be reached"
    cache.succeeded("127.0.0.1:9", snapshot("real-name", ["X"]))
    assert cache.find("nodes/never") is None
    node = cache.find("nodes/real-name")
    assert node and node.state == pb.Node.STATE_READY and node.agent_address == "127.0.0.1:9" and node.gpus
    cache.failed("127.0.0.1:9", "the agent did not answer within 1s")
    stale = cache.find("nodes/real-name")
    assert stale and stale.state == pb.Node.STATE_STALE and len(stale.gpus) == 1
    assert stale.state_message == "the agent did not answer within 1s"


def test_the_same_failure_twice_is_no_change() -> None:
    cache = NodeCache()
    cache.add(AgentTarget("127.0.0.1:9"))
    cache.failed("127.0.0.1:9", "down")
    revision = cache.entries()[0].revision
    cache.failed("127.0.0.1:9", "down")
    assert cache.entries()[0].revision == revision


def test_list_nodes_orders_by_name_and_pages(cache: NodeCache) -> None:
    first = queries.list_nodes(cache, pb.ListNodesRequest(page_size=2))
    assert [n.name for n in first.nodes] == ["nodes/a", "nodes/b"] and first.next_page_token
    rest = queries.list_nodes(cache, pb.ListNodesRequest(page_size=2, page_token=first.next_page_token))
    assert [n.name for n in rest.nodes] == ["nodes/c"] and not rest.next_page_token


def test_get_node_and_its_errors(cache: NodeCache) -> None:
    assert queries.get_node(cache, "nodes/b").agent_address == "127.0.0.1:1"
    with pytest.raises(NotFound) as missing:
        queries.get_node(cache, "nodes/zz")
    assert missing.value.reason == "NODE_NOT_FOUND" and missing.value.metadata == {"name": "nodes/zz"}
    for bad in ["", "b", "nodes/", "nodes/b/gpus/0", "jobs/b"]:
        with pytest.raises(InvalidArgument) as invalid:
            queries.get_node(cache, bad)
        assert invalid.value.violations[0][0] == "name"


@pytest.mark.parametrize(("request_", "expected"), [
    (pb.ListGpusRequest(), ["a/0", "a/1", "b/0", "b/1", "b/2"]),
    (pb.ListGpusRequest(free_only=True), ["a/0", "a/1", "b/1"]),
    (pb.ListGpusRequest(model="h100"), ["b/0", "b/1", "b/2"]),
    (pb.ListGpusRequest(model="RTX", free_only=True), ["a/1"]),
    (pb.ListGpusRequest(node="nodes/b", free_only=True), ["b/1"]),
    (pb.ListGpusRequest(node="nodes/c"), []),
])
def test_gpu_filters(cache: NodeCache, request_: pb.ListGpusRequest, expected: list[str]) -> None:
    found = queries.list_gpus(cache, request_).gpus
    assert [g.name.removeprefix("nodes/").replace("/gpus/", "/") for g in found] == expected


def test_gpu_pages_keep_their_filters(cache: NodeCache) -> None:
    seen = []
    request = pb.ListGpusRequest(page_size=2)
    while True:
        page = queries.list_gpus(cache, request)
        seen += [g.name for g in page.gpus]
        if not page.next_page_token:
            break
        request.page_token = page.next_page_token
    assert len(seen) == 5 and seen == sorted(seen)
    first = queries.list_gpus(cache, pb.ListGpusRequest(page_size=1))
    with pytest.raises(InvalidArgument) as other_filters:
        queries.list_gpus(cache, pb.ListGpusRequest(page_size=1, free_only=True, page_token=first.next_page_token))
    assert other_filters.value.violations[0][0] == "page_token"


@pytest.mark.parametrize(("request_", "field"), [
    (pb.ListGpusRequest(page_size=-1), "page_size"),
    (pb.ListGpusRequest(node="b"), "node"),
    (pb.ListGpusRequest(page_token="garbage!"), "page_token"),
])
def test_bad_gpu_requests_name_the_field(cache: NodeCache, request_: pb.ListGpusRequest, field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        queries.list_gpus(cache, request_)
    assert caught.value.violations[0][0] == field


def test_a_nodes_token_is_refused_by_list_gpus(cache: NodeCache) -> None:
    token = queries.list_nodes(cache, pb.ListNodesRequest(page_size=1)).next_page_token
    with pytest.raises(InvalidArgument):
        queries.list_gpus(cache, pb.ListGpusRequest(page_token=token))


def kinds(changes: list[pb.NodeChange]) -> list[tuple[str, str]]:
    return [(Change.Type.Name(c.type).removeprefix("TYPE_"), c.node.name) for c in changes]


def test_watch_state_sends_added_then_deltas(cache: NodeCache) -> None:
    state = WatchState()
    assert kinds(state.changes(cache.entries())) == [("ADDED", "nodes/a"), ("ADDED", "nodes/b"), ("ADDED", "nodes/c")]
    assert state.changes(cache.entries()) == []
    cache.failed("127.0.0.1:1", "down")
    cache.remove("127.0.0.1:3")
    cache.add(AgentTarget("127.0.0.1:4", node="d"))
    changes = state.changes(cache.entries())
    assert kinds(changes) == [("REMOVED", "nodes/c"), ("MODIFIED", "nodes/b"), ("ADDED", "nodes/d")]
    assert changes[1].node.state == pb.Node.STATE_STALE
    assert changes[0].node == pb.Node(name="nodes/c")
    cache.succeeded("127.0.0.1:4", snapshot("d-renamed", []))
    assert kinds(state.changes(cache.entries())) == [("REMOVED", "nodes/d"), ("ADDED", "nodes/d-renamed")]


async def test_watch_stream_heartbeats_and_ends_on_stopping(cache: NodeCache) -> None:
    stopping = asyncio.Event()
    stream = watch_nodes(cache, stopping, heartbeat_seconds=0.05)
    first = [await anext(stream) for _ in range(3)]
    assert all(m.change.type == Change.TYPE_ADDED for m in first)
    assert (await anext(stream)).HasField("heartbeat")
    cache.failed("127.0.0.1:2", "down")
    message = await anext(stream)
    assert message.change.type == Change.TYPE_MODIFIED and message.change.node.name == "nodes/a"
    stopping.set()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(stream), 1)
