#!/usr/bin/env bash
# Builds the container images of the Kubernetes test node without any registry or Docker engine, into a cache
# outside the repository (idempotent; a cached image is not rebuilt):
#   odin.local/pause:1      the pod sandbox: tools/images/pause (Go, static)            ~1 MB
#   odin.local/python:3     Debian bookworm (mmdebstrap, minbase) with python3 (full stdlib)  ~50 MB
# Each is an OCI archive (umoci from a root filesystem) that `ctr images import` loads into the node's containerd.
#   ODIN_IMAGES_CACHE  cache root (default ~/.cache/odin-tools/images)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dest="${ODIN_IMAGES_CACHE:-$HOME/.cache/odin-tools/images}"
mkdir -p "$dest"
# A change to this script or the pause source rebuilds the images.
stamp="$(cat "$here/build.sh" "$here/pause/main.go" | sha256sum | cut -c1-16)"

# oci_archive NAME TAG ROOTFS_DIR ENTRYPOINT... : an OCI image archive $dest/NAME.tar named odin.local/NAME:TAG.
oci_archive() {
  local name=$1 tag=$2 rootfs=$3; shift 3
  local work; work="$(mktemp -d "$dest/.build-$name.XXXXXX")"
  umoci init --layout "$work/layout"
  umoci new --image "$work/layout:$tag"
  umoci unpack --image "$work/layout:$tag" "$work/bundle" >/dev/null
  rm -rf "$work/bundle/rootfs"
  mv "$rootfs" "$work/bundle/rootfs"
  umoci repack --image "$work/layout:$tag" "$work/bundle"
  local args=()
  for part in "$@"; do args+=(--config.entrypoint "$part"); done
  umoci config --image "$work/layout:$tag" --author odin --os linux --architecture amd64 "${args[@]}" \
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  umoci gc --layout "$work/layout"
  # ctr names an imported image after the index's ref.name annotation: make it the full reference.
  python3 - "$work/layout/index.json" "odin.local/$name:$tag" <<'PY'
import json, sys
path, ref = sys.argv[1], sys.argv[2]
index = json.load(open(path))
for manifest in index["manifests"]:
    manifest.setdefault("annotations", {})["org.opencontainers.image.ref.name"] = ref
json.dump(index, open(path, "w"))
PY
  tar -C "$work/layout" -cf "$dest/.$name.tar" .
  mv "$dest/.$name.tar" "$dest/$name.tar"
  rm -rf "$work"
}

if [ "$(cat "$dest/stamp" 2>/dev/null)" = "$stamp" ] && [ -f "$dest/pause.tar" ] && [ -f "$dest/python.tar" ]; then
  echo "test images: cached in $dest"
  exit 0
fi
command -v umoci >/dev/null && command -v mmdebstrap >/dev/null || {
  echo "build.sh: needs umoci and mmdebstrap (apt-get install umoci mmdebstrap, or run scripts/setup)" >&2; exit 1; }
start=$SECONDS
rm -rf "$dest"/.build-*

echo "test images: building odin.local/pause:1"
pause_root="$(mktemp -d "$dest/.build-pause-root.XXXXXX")"
(cd "$here/pause" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$pause_root/pause" .)
oci_archive pause 1 "$pause_root" /pause

echo "test images: building odin.local/python:3 (mmdebstrap bookworm minbase + python3)"
py_root="$(mktemp -d "$dest/.build-python-root.XXXXXX")"
rmdir "$py_root"
mmdebstrap --quiet --variant=minbase --include=python3 --dpkgopt=path-exclude=/usr/share/doc/* \
  --dpkgopt=path-exclude=/usr/share/man/* --dpkgopt=path-exclude=/usr/share/locale/* \
  --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*' bookworm "$py_root"
oci_archive python 3 "$py_root" /bin/sh -c 'exec "$@"' --

echo "$stamp" > "$dest/stamp"
ls -l "$dest"/*.tar
echo "test images: built in $((SECONDS - start))s into $dest"
