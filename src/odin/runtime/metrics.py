"""Prometheus metrics: one `/metrics` endpoint per process, on its own port.

Each process has its own registry (not prometheus_client's global one), so tests that run
several services in one interpreter do not mix their numbers. The endpoint is prometheus_client's
small threaded HTTP server: scrapes never touch the event loop.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

log = logging.getLogger("odin.metrics")


class MetricsEndpoint:
    """Serves `registry` at `http://<address>/metrics` until `close()`."""

    def __init__(self, address: str, registry: CollectorRegistry) -> None:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"metrics address {address!r} is not host:port")
        self.registry = registry
        self._server: Any
        self._thread: threading.Thread
        self._server, self._thread = start_http_server(int(port), addr=host.strip("[]"), registry=registry)
        self.port = int(self._server.server_port)
        self.address = f"{host}:{self.port}"
        log.info("metrics served", extra={"address": f"http://{self.address}/metrics"})

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


# Seconds; a unary call of Odin's takes 1-50 ms, a login ~60 ms, a CreateJob with rendering up to seconds.
RPC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class RpcMetrics:
    """Every RPC of one process: calls by method and code, latency, open streams, messages streamed.

    Labels stay bounded: the method (from the service's own descriptor) and the status code, never a job id
    or a user name. The error interceptor reports each call here, so metrics add no interceptor layer.
    """

    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.service = service
        self.requests = Counter("odin_rpc_requests", "RPCs handled, by method and status code.",
                                ["service", "method", "code"], registry=registry)
        self.duration = Histogram("odin_rpc_duration_seconds", "How long unary RPCs took, by method.",
                                  ["service", "method"], buckets=RPC_BUCKETS, registry=registry)
        self.streams = Gauge("odin_rpc_streams_open", "Server streams open now, by method.",
                             ["service", "method"], registry=registry)
        self.messages = Counter("odin_rpc_stream_messages_sent", "Messages sent on server streams, by method.",
                                ["service", "method"], registry=registry)
        self._children: dict[tuple[str, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (metric._name, *labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(self.service, *labels)
        return found

    def unary_ended(self, method: str, code: str, seconds: float) -> None:
        self._child(self.requests, method, code).inc()
        self._child(self.duration, method).observe(seconds)

    def stream_opened(self, method: str) -> None:
        self._child(self.streams, method).inc()

    def stream_ended(self, method: str, code: str, messages: int) -> None:
        self._child(self.streams, method).dec()
        self._child(self.requests, method, code).inc()
        if messages:
            self._child(self.messages, method).inc(messages)
