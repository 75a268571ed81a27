#!/usr/bin/env bash
# Builds kubectl of KUBE_VERSION (k8s.io/kubernetes/cmd/kubectl) into the kube tools cache, beside the control plane
# that build.sh makes. deploy/'s tests use it for `kubectl kustomize`, server-side dry-run and `kubectl auth can-i`.
# It builds in a scratch copy of the wrapper module (go.mod/go.sum next to this script), so build.sh's pins stay as
# they are; the modules kubectl adds (kustomize, cli-runtime's deps) are chosen by minimal version selection from the
# pinned k8s.io/kubectl's own go.mod and verified against the checksum database.
# Idempotent: a kubectl already in the cache is not rebuilt.
#   ODIN_KUBE_TOOLS  cache root (default ~/.cache/odin-tools/kube); the binary lands in <root>/<KUBE_VERSION>/kubectl
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
dest="${ODIN_KUBE_TOOLS:-$HOME/.cache/odin-tools/kube}/$KUBE_VERSION"
stamp="$dest/kubectl.version"
if [ -x "$dest/kubectl" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$KUBE_VERSION" ]; then
  echo "kubectl: cached in $dest"
  exit 0
fi
mkdir -p "$dest"
scratch="$(mktemp -d "$dest/.kubectl.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
cp "$here/go.mod" "$here/go.sum" "$scratch/"
minor="${KUBE_VERSION#v*.}"; minor="${minor%%.*}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done
echo "kubectl: building $KUBE_VERSION (cold: ~10 min on 2 cores; warm after build.sh: a few minutes)"
start=$SECONDS
(cd "$scratch" && GOFLAGS="-mod=mod ${GOFLAGS:-}" nice -n 10 \
  go build -trimpath -ldflags="$ldflags" -o "$scratch/kubectl" k8s.io/kubernetes/cmd/kubectl)
mv "$scratch/kubectl" "$dest/kubectl"
echo "$KUBE_VERSION" > "$stamp"
echo "kubectl: built in $((SECONDS - start))s into $dest"
