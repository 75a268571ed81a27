"""A thin JSON client for the Kubernetes API over the official client's connection and credentials.

Objects stay plain dicts (the same for Pods, Jobs and custom resources), and watches are read line by line, so
the executor controls resourceVersion bookkeeping and 410 handling itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from odin_scheduler.executor.kubernetes.config import KubernetesConfig

Query = Sequence[tuple[str, str]]


class KubeApiError(Exception):
    """A non-2xx answer: `status` (HTTP), `reason` (Kubernetes StatusReason, e.g. AlreadyExists), message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


def _error(status: int, payload: bytes) -> KubeApiError:
    try:
        body = json.loads(payload)
        return KubeApiError(status, str(body.get("reason", "")), str(body.get("message", "")))
    except ValueError:
        return KubeApiError(status, "", payload[:200].decode(errors="replace"))


class KubeApi:
    def __init__(self, api_client: Any) -> None:
        self._client = api_client
        self.requests = 0  # calls made (streams included), for benchmarks and diagnostics

    @classmethod
    def from_config(cls, config: KubernetesConfig) -> KubeApi:
        from kubernetes import client
        from kubernetes import config as kube_config

        loader: Any = kube_config  # the client's loaders are untyped
        configuration = client.Configuration()
        if config.kubeconfig:
            loader.load_kube_config(config_file=config.kubeconfig, context=config.context or None,
                                    client_configuration=configuration)
        else:
            loader.load_incluster_config(client_configuration=configuration)
        configuration.connection_pool_maxsize = config.api_threads + 16  # + the watches' long-lived streams
        return cls(client.ApiClient(configuration))

    def close(self) -> None:
        self._client.close()

    def _send(self, method: str, path: str, query: Query | None, body: object | None, timeout: Any) -> Any:
        self.requests += 1
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        _, url, headers, body, _ = self._client.param_serialize(
            method, path, query_params=list(query or []), header_params=headers, body=body,
            auth_settings=["BearerToken"])
        return self._client.rest_client.request(method, url, headers=headers, body=body, _request_timeout=timeout)

    def request(self, method: str, path: str, query: Query | None = None, body: object | None = None,
                timeout: float = 30.0) -> dict[str, Any]:
        """One call; raises KubeApiError on a non-2xx answer, OSError-like urllib3 errors when unreachable."""
        response = self._send(method, path, query, body, timeout)
        payload = response.read()
        if not 200 <= response.status < 300:
            raise _error(response.status, payload)
        return json.loads(payload) if payload else {}

    def text(self, path: str, query: Query | None = None, timeout: float = 30.0) -> str:
        """A call whose answer is text (pod logs)."""
        response = self._send("GET", path, query, None, timeout)
        payload = response.read()
        if not 200 <= response.status < 300:
            raise _error(response.status, payload)
        return str(payload.decode(errors="replace"))

    @contextmanager
    def stream(self, path: str, query: Query, read_timeout: float) -> Iterator[Any]:
        """A streaming GET (watch, followed logs); yields the response: iterate it for lines, `shutdown()` it from
        another thread to end it early."""
        response = self._send("GET", path, query, None, (10.0, read_timeout))
        raw = response.response
        try:
            if not 200 <= response.status < 300:
                raise _error(response.status, raw.read())
            yield raw
        finally:
            raw.release_conn()
