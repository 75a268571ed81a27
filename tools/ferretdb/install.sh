#!/usr/bin/env bash
# Installs FerretDB v1 (a MongoDB wire-protocol server on PostgreSQL), the test server of the scheduler's
# MongoDB store, from its Go module into a cache outside the repository. Idempotent: a cached binary of the
# pinned version is not rebuilt. Binaries are never committed.
#   ODIN_FERRETDB_TOOLS  cache root (default ~/.cache/odin-tools/ferretdb); the binary lands in <root>/<version>/bin
# Prints the binary's path last. Cold build: ~4 min on 2 shared cores (low priority, one package at a time).
#
# Why not a plain `go install …/cmd/ferretdb@version`: FerretDB embeds build/version/version.txt, which its
# release process generates and the module zip lacks (the binary then panics at start). So the module's source
# is fetched with `go mod download`, copied to a scratch folder, given that file, and built there.
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
# Build in a scratch folder and move into place, so an interrupted build never leaves a half-written binary.
scratch="$(mktemp -d "$dest/.build.XXXXXX")"
trap 'chmod -R u+w "$scratch" 2>/dev/null; rm -rf "$scratch"' EXIT
start=$SECONDS
echo "ferretdb: building $FERRETDB_VERSION (cold: ~4 min on 2 cores)" >&2
module="github.com/FerretDB/FerretDB@$FERRETDB_VERSION"
src="$(cd "$scratch" && GOFLAGS=-mod=mod go mod download -json "$module" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')"
[ -d "$src" ] || { echo "ferretdb: go mod download gave no source folder for $module" >&2; exit 1; }
cp -r "$src" "$scratch/src"
chmod -R u+w "$scratch/src"
echo "$FERRETDB_VERSION" > "$scratch/src/build/version/version.txt"
(cd "$scratch/src" && GOFLAGS="-p=1 -mod=mod -buildvcs=false" nice -n 19 \
  go build -trimpath -ldflags='-s -w' -o "$scratch/ferretdb" ./cmd/ferretdb)
"$scratch/ferretdb" --version >/dev/null
mv "$scratch/ferretdb" "$dest/ferretdb"
echo "ferretdb: built in $((SECONDS - start))s into $dest" >&2
echo "$dest/ferretdb"
