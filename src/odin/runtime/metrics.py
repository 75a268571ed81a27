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
