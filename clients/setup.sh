#!/usr/bin/env bash
# Installs what the Go and Java clients need to be generated and built, idempotently (called by scripts/setup):
# the Go protoc plugins into ~/.cache/odin-tools/bin, the Go module cache, and the Maven repository (~/.m2) with
# the Java client's dependencies and its protoc / protoc-gen-grpc-java binaries, so tests can build with `mvn -o`.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS_BIN=${ODIN_TOOLS_BIN:-$HOME/.cache/odin-tools/bin}
PROTOC_GEN_GO=v1.36.12
PROTOC_GEN_GO_GRPC=v1.6.2

fail() { echo "setup: $*" >&2; exit 1; }

command -v go >/dev/null 2>&1 || fail "Go is missing: install Go >= 1.21 (it fetches the toolchain clients/go/go.mod asks for)"
command -v java >/dev/null 2>&1 || fail "java is missing (scripts/setup installs openjdk-17-jdk-headless on Debian)"
command -v mvn >/dev/null 2>&1 || fail "mvn is missing (scripts/setup installs maven on Debian)"

mkdir -p "$TOOLS_BIN"
installed_version() { go version -m "$1" 2>/dev/null | awk '$1 == "mod" {print $3}'; }
if [ "$(installed_version "$TOOLS_BIN/protoc-gen-go")" != "$PROTOC_GEN_GO" ]; then
  echo "setup: go install protoc-gen-go@$PROTOC_GEN_GO"
  GOBIN=$TOOLS_BIN go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO"
fi
if [ "$(installed_version "$TOOLS_BIN/protoc-gen-go-grpc")" != "$PROTOC_GEN_GO_GRPC" ]; then
  echo "setup: go install protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC"
  GOBIN=$TOOLS_BIN go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC"
fi
(cd clients/go && go mod download)

# An offline build succeeds once everything is in ~/.m2; otherwise resolve it online once.
# `install` runs odin-api's unit tests too, so the test providers are resolved as well.
if ! (cd clients/java && mvn -q -B -o install >/dev/null 2>&1); then
  echo "setup: resolving the Java client's Maven dependencies"
  (cd clients/java && mvn -q -B install)
fi
echo "setup: Go and Java client toolchains ready"
