"""Reads of the cache for ListNodes, GetNode and ListGpus: name checks, filters and keyset paging."""

from __future__ import annotations

import dataclasses

from odin.midgard.v1 import midgard_pb2
from odin.runtime.errors import InvalidArgument, NotFound
from odin.runtime.paging import decode_token, encode_token, page_size
from odin_midgard.cache import NodeCache

DEFAULT_PAGE = 100
MAX_PAGE = 1000


def check_node_name(name: str, field: str) -> str:
    """`nodes/{node}` with a non-empty `{node}` and no further segments."""
    prefix, _, node = name.partition("/")
    if prefix != "nodes" or not node or "/" in node:
        raise InvalidArgument.field(field, "must be a node name, nodes/{node}")
    return name


def _position(token: dict[str, object] | None, *keys: str) -> tuple[object, ...] | None:
    """The keyset position a page token holds; a token without it is INVALID_ARGUMENT."""
    if token is None:
        return None
    if any(key not in token for key in keys):
        raise InvalidArgument.field("page_token", "is not a token this method returned")
    return tuple(token[key] for key in keys)


def get_node(cache: NodeCache, name: str) -> midgard_pb2.Node:
    if not name:
        raise InvalidArgument.field("name", "is required")
    node = cache.find(check_node_name(name, "name"))
    if node is None:
        raise NotFound(f"{name} is not a known node", reason="NODE_NOT_FOUND", metadata={"name": name})
    return node


def list_nodes(cache: NodeCache, request: midgard_pb2.ListNodesRequest) -> midgard_pb2.ListNodesResponse:
    size = page_size(request.page_size, default=DEFAULT_PAGE, maximum=MAX_PAGE)
    after = _position(decode_token(request.page_token, "nodes"), "name", "address")
    keyed = [((e.view.name, e.target.address), e.view) for e in cache.entries()]
    if after is not None:
        keyed = [(k, n) for k, n in keyed if k > after]
    response = midgard_pb2.ListNodesResponse(nodes=[n for _, n in keyed[:size]])
    if len(keyed) > size:
        name, address = keyed[size - 1][0]
        response.next_page_token = encode_token({"name": name, "address": address}, "nodes")
    return response


@dataclasses.dataclass(frozen=True)
class GpuFilter:
    node: str
    model: str
    free_only: bool

    def matches(self, node: midgard_pb2.Node, gpu: midgard_pb2.Gpu) -> bool:
        if self.node and node.name != self.node:
            return False
        if self.model and self.model.lower() not in gpu.product_name.lower():
            return False
        return not self.free_only or is_free(gpu)


def is_free(gpu: midgard_pb2.Gpu) -> bool:
    """A GPU that answers and runs no compute process."""
    return gpu.state == midgard_pb2.Gpu.STATE_OK and not gpu.processes


def list_gpus(cache: NodeCache, request: midgard_pb2.ListGpusRequest) -> midgard_pb2.ListGpusResponse:
    size = page_size(request.page_size, default=DEFAULT_PAGE, maximum=MAX_PAGE)
    if request.node:
        check_node_name(request.node, "node")
    wanted = GpuFilter(request.node, request.model.strip(), request.free_only)
    fingerprint = dataclasses.asdict(wanted)
    after = _position(decode_token(request.page_token, fingerprint), "node", "address", "index")
    keyed = [
        ((entry.view.name, entry.target.address, gpu.index), gpu)
        for entry in cache.entries()
        for gpu in entry.view.gpus
        if wanted.matches(entry.view, gpu)
    ]
    if after is not None:
        keyed = [(k, g) for k, g in keyed if k > after]
    response = midgard_pb2.ListGpusResponse(gpus=[g for _, g in keyed[:size]])
    if len(keyed) > size:
        node, address, index = keyed[size - 1][0]
        response.next_page_token = encode_token({"node": node, "address": address, "index": index}, fingerprint)
    return response
