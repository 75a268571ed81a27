#!/usr/bin/env bash
# Installs FerretDB v1 (a MongoDB wire-protocol server on PostgreSQL), the test server of the scheduler's
# MongoDB store, from its Go module into a cache outside the repository. Idempotent: a cached binary of the
# pinned version is not rebuilt. Binaries are never committed.
#   ODIN_FERRETDB_TOOLS  cache root (default ~/.cache/odin-tools/ferretdb); the binary lands in <root>/<version>/bin
# Prints the binary's path last. Cold build: several minutes on 2 shared cores (low priority, one package at a time).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=version.env
source "$here/version.env"
dest="${ODIN_FERRETDB_TOOLS:-$HOME/.cache/odin-tools/ferretdb}/$FERRETDB_VERSION/bin"
if [ -x "$dest/ferretdb" ]; then
  echo "ferretdb: cached in $dest" >&2
  echo "$dest/ferretdb"
  exit 0
fi
mkdir -p "$dest"
# Build into a scratch folder and move into place, so an interrupted build never leaves a half-written binary.
scratch="$(mktemp -d "$dest/.build.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
start=$SECONDS
echo "ferretdb: building $FERRETDB_VERSION (cold: several minutes on 2 cores)" >&2
(cd "$scratch" && GOBIN="$scratch" GOFLAGS="-p=1 -mod=mod" nice -n 19 \
  go install -trimpath -ldflags='-s -w' "github.com/FerretDB/FerretDB/cmd/ferretdb@$FERRETDB_VERSION")
mv "$scratch/ferretdb" "$dest/ferretdb"
echo "ferretdb: built in $((SECONDS - start))s into $dest" >&2
echo "$dest/ferretdb"
