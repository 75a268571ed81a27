#!/usr/bin/env bash
# Builds the test cluster's control plane from Go modules into a cache outside the repository:
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubelet  (k8s.io/kubernetes, via the wrapper module here)
#   kwok                                                     (sigs.k8s.io/kwok)
#   training-operator + its CRDs                             (github.com/kubeflow/training-operator, v1 kinds)
#   trainer, jobset, kueue controllers + CRDs and manifests  (Kubeflow Trainer v2, JobSet, Kueue)
# Idempotent: a binary already in the cache is not rebuilt. Binaries are never committed.
#   ODIN_KUBE_TOOLS  cache root (default ~/.cache/odin-tools/kube); binaries land in <root>/<KUBE_VERSION>/
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
if ! grep -Eq "^(require)?[[:space:]]*k8s.io/kubernetes $KUBE_VERSION( //.*)?\$" "$here/go.mod"; then
  echo "build.sh: versions.env says $KUBE_VERSION but go.mod requires another k8s.io/kubernetes" >&2
  exit 1
fi
dest="${ODIN_KUBE_TOOLS:-$HOME/.cache/odin-tools/kube}/$KUBE_VERSION"
mkdir -p "$dest"

missing=()
for cmd in kube-apiserver kube-controller-manager kube-scheduler kubelet; do
  [ -x "$dest/$cmd" ] || missing+=("k8s.io/kubernetes/cmd/$cmd")
done
kwok_stamp="$dest/kwok.version"
need_kwok=1
if [ -x "$dest/kwok" ] && [ "$(cat "$kwok_stamp" 2>/dev/null)" = "$KWOK_VERSION" ]; then need_kwok=0; fi
to_dir="$dest/training-operator-$TRAINING_OPERATOR_VERSION"
need_to=1
if [ -x "$to_dir/training-operator" ] && [ -f "$to_dir/crds/kubeflow.org_pytorchjobs.yaml" ]; then need_to=0; fi
# controller NAME VERSION: whether <dest>/NAME-VERSION/NAME is missing (then it is built below).
controllers=()
for spec in "trainer:$TRAINER_VERSION" "jobset:$JOBSET_VERSION" "kueue:$KUEUE_VERSION"; do
  [ -x "$dest/${spec%%:*}-${spec#*:}/${spec%%:*}" ] || controllers+=("$spec")
done
if [ ${#missing[@]} -eq 0 ] && [ $need_kwok -eq 0 ] && [ $need_to -eq 0 ] && [ ${#controllers[@]} -eq 0 ]; then
  echo "kube tools: cached in $dest"
  exit 0
fi

# Build into a scratch folder and move into place, so an interrupted build never leaves a half-written binary.
scratch="$(mktemp -d "$dest/.build.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
start=$SECONDS
if [ ${#missing[@]} -gt 0 ]; then
  echo "kube tools: building ${missing[*]##*/} $KUBE_VERSION (cold: ~25 min on 2 cores)"
  minor="${KUBE_VERSION#v*.}"; minor="${minor%%.*}"
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  (cd "$here" && nice -n 10 go build -trimpath -ldflags="$ldflags" -o "$scratch/" "${missing[@]}")
  mv "$scratch"/kube* "$dest/"  # kube-* and kubelet
fi
if [ $need_kwok -eq 1 ]; then
  echo "kube tools: building kwok $KWOK_VERSION"
  (cd "$scratch" && GOBIN="$scratch" GOFLAGS=-mod=mod nice -n 10 \
    go install -trimpath -ldflags='-s -w' "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION")
  mv "$scratch/kwok" "$dest/kwok"
  echo "$KWOK_VERSION" > "$kwok_stamp"
fi
if [ $need_to -eq 1 ]; then
  echo "kube tools: building the Kubeflow training operator $TRAINING_OPERATOR_VERSION"
  module="github.com/kubeflow/training-operator@$TRAINING_OPERATOR_VERSION"
  (cd "$scratch" && GOBIN="$scratch" GOFLAGS=-mod=mod nice -n 10 \
    go install -trimpath -ldflags='-s -w' "github.com/kubeflow/training-operator/cmd/training-operator.v1@$TRAINING_OPERATOR_VERSION")
  source_dir="$(cd "$scratch" && GOFLAGS=-mod=mod go mod download -json "$module" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  mkdir -p "$scratch/to/crds"
  cp "$source_dir"/manifests/base/crds/kubeflow.org_{tfjobs,pytorchjobs}.yaml "$scratch/to/crds/"
  mv "$scratch/training-operator.v1" "$scratch/to/training-operator"
  rm -rf "$to_dir"
  mv "$scratch/to" "$to_dir"
fi
module_dir() {  # the module cache directory of MODULE@VERSION
  (cd "$scratch" && GOFLAGS=-mod=mod go mod download -json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
}
for spec in "${controllers[@]}"; do
  name="${spec%%:*}"; version="${spec#*:}"; out="$scratch/$name"
  echo "kube tools: building the $name controller $version"
  mkdir -p "$out/crds" "$out/manifests"
  case "$name" in
    trainer)
      (cd "$scratch" && GOBIN="$out" GOFLAGS=-mod=mod nice -n 10 go install -trimpath -ldflags='-s -w' \
        "github.com/kubeflow/trainer/v2/cmd/trainer-controller-manager@$version")
      mv "$out/trainer-controller-manager" "$out/trainer"
      src="$(module_dir "github.com/kubeflow/trainer/v2@$version")"
      cp "$src"/manifests/base/crds/trainer.kubeflow.org_*.yaml "$out/crds/"
      cp "$src/manifests/base/webhook/manifests.yaml" "$out/manifests/webhooks.yaml"
      cp "$src/manifests/base/runtimes/torch_distributed.yaml" "$out/manifests/" ;;
    jobset)
      (cd "$here/jobset" && nice -n 10 go build -trimpath -ldflags='-s -w' -o "$out/jobset" sigs.k8s.io/jobset)
      src="$(module_dir "sigs.k8s.io/jobset@$version")"
      cp "$src"/config/components/crd/bases/*.yaml "$out/crds/"
      cp "$src/config/components/webhook/manifests.yaml" "$out/manifests/webhooks.yaml" ;;
    kueue)
      (cd "$scratch" && GOBIN="$out" GOFLAGS=-mod=mod nice -n 10 go install -trimpath -ldflags='-s -w' \
        "sigs.k8s.io/kueue/cmd/kueue@$version")
      src="$(module_dir "sigs.k8s.io/kueue@$version")"
      cp "$src"/config/components/crd/bases/*.yaml "$out/crds/"
      cp "$src/config/components/webhook/manifests.yaml" "$out/manifests/webhooks.yaml" ;;
  esac
  chmod -R u+w "$out"
  rm -rf "$dest/$name-$version"
  mv "$out" "$dest/$name-$version"
done
echo "kube tools: built in $((SECONDS - start))s into $dest"
