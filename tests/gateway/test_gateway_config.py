"""The generated Envoy configuration: Envoy accepts it, and it covers every public RPC."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from gateway_backend import SigningKey

from odin.gateway import PUBLIC_SERVICES, GatewaySettings, JwtSettings, load_methods, render
from odin.gateway.process import validate

UPSTREAMS = {"auth": "127.0.0.1:7001", "scheduler": "127.0.0.1:7002", "pipelines": "127.0.0.1:7003",
             "midgard": "127.0.0.1:7004"}


def settings(tmp_path: Path, **overrides: object) -> GatewaySettings:
    return GatewaySettings(listen="127.0.0.1:7000", admin="127.0.0.1:7009", upstreams=UPSTREAMS,
                           access_log=tmp_path / "access.log", **overrides)  # type: ignore[arg-type]


def listener_filters(config: dict) -> dict:  # type: ignore[type-arg]
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    return hcm  # type: ignore[no-any-return]


@pytest.mark.parametrize("jwt", [JwtSettings(), JwtSettings(issuer="odin", audiences=("odin",))])
def test_envoy_validates_the_rendered_config_with_remote_jwks(tmp_path: Path, jwt: JwtSettings) -> None:
    path = tmp_path / "envoy.yaml"
    path.write_text(render(settings(tmp_path, jwt=jwt)))
    validate(path)


def test_envoy_validates_the_rendered_config_with_a_local_jwks_file(tmp_path: Path) -> None:
    jwks = SigningKey.generate().jwks_file(tmp_path / "jwks.json")
    path = tmp_path / "envoy.yaml"
    path.write_text(render(settings(tmp_path, jwt=JwtSettings(jwks_file=jwks))))
    validate(path)


def test_envoy_rejects_a_broken_config(tmp_path: Path) -> None:
    path = tmp_path / "envoy.yaml"
    path.write_text(render(settings(tmp_path)).replace("codec_type: AUTO", "codec_type: NOPE"))
    with pytest.raises(Exception, match="NOPE"):
        validate(path)


def test_every_public_rpc_has_a_route_to_its_service(tmp_path: Path) -> None:
    config = yaml.safe_load(render(settings(tmp_path)))
    routes = listener_filters(config)["route_config"]["virtual_hosts"][0]["routes"]
    for method in load_methods():
        route = next(r for r in routes if r["match"].get("path") == method.grpc_path
                     or r["match"].get("prefix") == f"/{method.service}/")
        assert route["route"]["cluster"] == method.upstream, method.grpc_path
        retried = "retry_policy" in route["route"]
        assert retried == method.is_read, f"{method.grpc_path}: retries only for reads"
        if method.server_streaming:
            assert route["route"]["timeout"] == "0s" and route["route"]["idle_timeout"] == "60s"


def test_every_public_rpc_has_an_http_binding() -> None:
    methods = load_methods()
    assert {m.service for m in methods} == set(PUBLIC_SERVICES)
    assert all(m.http_verb and m.http_path for m in methods)


def test_listener_and_admin_bind_only_where_told(tmp_path: Path) -> None:
    config = yaml.safe_load(render(settings(tmp_path)))
    assert config["admin"]["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 7009}
    listener = config["static_resources"]["listeners"][0]["address"]["socket_address"]
    assert listener == {"address": "127.0.0.1", "port_value": 7000}


def test_open_paths_are_only_token_endpoints_and_health(tmp_path: Path) -> None:
    config = yaml.safe_load(render(settings(tmp_path)))
    jwt = next(f for f in listener_filters(config)["http_filters"] if f["name"] == "envoy.filters.http.jwt_authn")
    rules = jwt["typed_config"]["rules"]
    open_paths = {r["match"]["path"] for r in rules if "requires" not in r}
    assert "/odin.auth.v1.AuthService/Login" in open_paths and "/v1/auth:login" in open_paths
    assert "/v1/jwks" in open_paths and "/grpc.health.v1.Health/Check" in open_paths
    assert not any("Scheduler" in p or p.startswith("/v1/jobs") for p in open_paths)
    assert rules[-1] == {"match": {"prefix": "/"}, "requires": {"provider_name": "odin"}}


def test_a_missing_upstream_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="midgard"):
        GatewaySettings(listen="127.0.0.1:1", admin="127.0.0.1:2", access_log=tmp_path / "a",
                        upstreams={k: v for k, v in UPSTREAMS.items() if k != "midgard"})
