"""The service robot's token kept in a Kubernetes Secret (how deploy/ hands it to the other services), against a
real API server: written when empty or no longer valid, left alone while it has most of its lifetime."""

from __future__ import annotations

import base64
from pathlib import Path

from kubernetes import client
from odin_auth.main import AuthConfig, build_core
from odin_auth.robot import SecretTokenStore, ensure_robot, renew_token_file
from support.kube import KubeCluster

NAME = "odin-service-token"


def secret_token(api: client.CoreV1Api, namespace: str) -> str:
    data = api.read_namespaced_secret(NAME, namespace).data or {}
    return base64.b64decode(data.get("token", "")).decode()


async def test_the_robot_token_is_written_to_the_secret_and_renewed(kube_cluster: KubeCluster,
                                                                   tmp_path: Path) -> None:
    api = client.CoreV1Api(kube_cluster.api_client())
    namespace = kube_cluster.namespace
    # deploy/ ships the Secret empty, so the auth service needs only get and patch on it.
    api.create_namespaced_secret(namespace, {"metadata": {"name": NAME}, "type": "Opaque", "data": {}})
    try:
        core = build_core(AuthConfig(store_url=f"sqlite:///{tmp_path / 'auth.db'}", keys_path=tmp_path / "keys",
                                     argon2_memory_kib=8, argon2_time_cost=1))
        await ensure_robot(core)
        store = SecretTokenStore(api, namespace, NAME)

        await renew_token_file(core, store, lifetime_seconds=3600)
        first = secret_token(api, namespace)
        assert first.startswith("odin_")
        assert (await core.api_token_identity(first)).username == "odin-system"

        wait = await renew_token_file(core, store, lifetime_seconds=3600)
        assert secret_token(api, namespace) == first and wait > 1000  # fresh: untouched until half-life

        api.patch_namespaced_secret(NAME, namespace, {"data": {"token": base64.b64encode(b"odin_bogus").decode()}})
        await renew_token_file(core, store, lifetime_seconds=3600)
        replaced = secret_token(api, namespace)
        assert replaced not in (first, "odin_bogus")
        assert (await core.api_token_identity(replaced)).username == "odin-system"
    finally:
        api.delete_namespaced_secret(NAME, namespace)
