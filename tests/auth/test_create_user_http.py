"""Finding 3: CreateUser over HTTP takes the password in the JSON body, never in the query string.

The gateway's transcoder follows the `google.api.http` rule compiled into the protoset it loads; with
`body: "user"` the password could only travel as `?password=…`, which Envoy's access log records.
(Envoy itself is not available in this test environment; tests/gateway checks the rendered config.)
"""

from __future__ import annotations

from google.api import annotations_pb2

from odin.auth.v1 import auth_pb2 as pb


def test_create_user_binds_the_whole_body() -> None:
    method = pb.DESCRIPTOR.services_by_name["AuthService"].methods_by_name["CreateUser"]
    rule = method.GetOptions().Extensions[annotations_pb2.http]
    assert (rule.post, rule.body) == ("/v1/users", "*")


def test_the_access_log_has_no_request_bodies() -> None:
    from pathlib import Path

    template = (Path(__file__).parents[2] / "src/odin/gateway/envoy.yaml.j2").read_text()
    log_format = template.split("json_format:", 1)[1].split("route_config:", 1)[0]
    assert "BODY" not in log_format.upper().replace("BYTES", "")  # paths (with queries) only, never bodies
