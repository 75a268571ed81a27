"""The shared service runtime: config, logging, errors, interceptors and the gRPC server."""
