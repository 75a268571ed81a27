"""Renders the Envoy configuration from `envoy.yaml.j2`, the descriptor set and the suite's addresses."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from odin.gateway.methods import DESCRIPTOR_SET, PUBLIC_SERVICES, Method, load_methods

TEMPLATE = Path(__file__).resolve().parent / "envoy.yaml.j2"
# Browsers on the developer's own machine; production lists its real origins.
LOCAL_ORIGINS = (r"https?://(localhost|127\.0\.0\.1)(:[0-9]+)?",)


@dataclass(frozen=True)
class JwtSettings:
    """How the gateway checks access tokens at the edge.

    With `jwks_file` it reads the keys from that file; otherwise it fetches them from the auth
    service's transcoded `GET /v1/jwks` through its own listener and refreshes them periodically.
    Empty `issuer`/`audiences` are not checked (the services check them again anyway).
    """

    issuer: str = ""
    audiences: tuple[str, ...] = ()
    jwks_file: Path | None = None
    jwks_cache_seconds: int = 300


@dataclass(frozen=True)
class GatewaySettings:
    """Everything that differs between one gateway and another."""

    listen: str
    admin: str
    upstreams: Mapping[str, str]
    access_log: Path
    jwt: JwtSettings = field(default_factory=JwtSettings)
    descriptor_set: Path = DESCRIPTOR_SET
    cors_origins: tuple[str, ...] = LOCAL_ORIGINS
    unary_timeout_seconds: int = 30
    # Watch and log streams send a heartbeat about every 10 s; six missed ones end the stream.
    stream_idle_timeout_seconds: int = 60
    max_request_bytes: int = 8 * 1024 * 1024
    health_check_interval_seconds: float = 2.0
    read_retries: int = 2
    # The web console's built files (ui/dist), served at `/`; None serves no console.
    ui_dir: Path | None = None

    def __post_init__(self) -> None:
        missing = sorted(set(PUBLIC_SERVICES.values()) - set(self.upstreams))
        if missing:
            raise ValueError(f"gateway: no upstream address for {', '.join(missing)}")
        for address in (self.listen, self.admin, *self.upstreams.values()):
            _split(address)


def _split(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"gateway: {address!r} is not host:port")
    return host, int(port)


@dataclass(frozen=True)
class UiFile:
    """One file of the built console and the URL path Envoy answers it at."""

    path: str
    file: Path
    content_type: str
    cache_control: str


_CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                  ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png",
                  ".json": "application/json", ".ico": "image/x-icon", ".txt": "text/plain; charset=utf-8",
                  ".woff2": "font/woff2", ".map": "application/json"}


def ui_files(ui_dir: Path | None) -> list[UiFile]:
    """Every file of the built console; `index.html` also at `/`. Hashed assets are cached for good."""
    if ui_dir is None:
        return []
    if not (ui_dir / "index.html").is_file():
        raise ValueError(f"gateway: {ui_dir} has no index.html; build the console (cd ui && npm ci && npm run build)")
    found: list[UiFile] = []
    for file in sorted(p for p in ui_dir.rglob("*") if p.is_file()):
        relative = file.relative_to(ui_dir).as_posix()
        content_type = _CONTENT_TYPES.get(file.suffix, "application/octet-stream")
        cache = "public, max-age=31536000, immutable" if relative.startswith("assets/") else "no-cache"
        found.append(UiFile("/" + relative, file.resolve(), content_type, cache))
        if relative == "index.html":
            found.append(UiFile("/", file.resolve(), content_type, cache))
    return found


def render(settings: GatewaySettings) -> str:
    """The Envoy bootstrap as YAML text."""
    methods = load_methods(settings.descriptor_set)
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    env.filters["q"] = json.dumps  # every string goes in as a JSON (so YAML) literal
    env.filters["host"] = lambda address: _split(address)[0]
    env.filters["port"] = lambda address: _split(address)[1]
    env.filters["upstream"] = PUBLIC_SERVICES.__getitem__
    template = env.from_string(TEMPLATE.read_text())
    files = ui_files(settings.ui_dir)
    return template.render(
        s=settings,
        services=sorted(PUBLIC_SERVICES),
        upstreams=sorted(settings.upstreams.items()),
        streams=[m for m in methods if m.server_streaming],
        reads=[m for m in methods if m.is_read and not m.server_streaming],
        open_paths=_open_paths(methods),
        ui_files=files,
        ui_max_bytes=max((f.file.stat().st_size for f in files), default=0) + 1024,
    )


def _open_paths(methods: list[Method]) -> list[str]:
    """The gRPC and HTTP paths that need no token; HTTP paths with variables cannot be open."""
    paths = ["/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch", "/healthz",
             "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
             "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"]
    for method in methods:
        if method.is_open:
            paths.append(method.grpc_path)
            if method.http_path and "{" not in method.http_path:
                paths.append(method.http_path)
    return paths
