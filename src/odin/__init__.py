"""Odin: gRPC services that run machine-learning pipelines.

`odin.<service>.v1` holds code generated from protos/ (never edited by hand);
`odin.runtime` is the service runtime every service shares; `odin.cli` is the `odin` command.
"""
