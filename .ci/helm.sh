#!/usr/bin/env bash
# helm v3.22.0 for the chart's checks (tests/deploy/test_helm_chart.py), built from the Go module
# proxy into a cache outside git, like the Kafka jars (.ci/kafka.sh). Idempotent: a second run
# only prints the path. Prints the binary's path on stdout; progress goes to stderr.
#
#   .ci/helm.sh            # build when missing, print the path
set -euo pipefail

version=v3.22.0
# The Kubernetes version helm lint and helm template assume (no cluster): that of the client-go
# helm v3.22.0 is built with (v0.37 -> 1.37), as helm's own Makefile sets it.
kube_minor=37
cache=${RECON_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/recon}
bin=$cache/bin
helm=$bin/helm
stamp=$bin/.helm-$version-k8s1.$kube_minor
go=${RECON_GO:-/usr/local/go/bin/go}

log() { printf '[helm] %s\n' "$*" >&2; }

if [ -x "$helm" ] && [ -f "$stamp" ]; then
  echo "$helm"
  exit 0
fi

mkdir -p "$bin"
# One build at a time: make and pytest may both ask for helm.
exec 9>"$bin/.helm.lock"
if command -v flock >/dev/null; then flock 9; fi
if [ -x "$helm" ] && [ -f "$stamp" ]; then
  echo "$helm"
  exit 0
fi

if [ ! -x "$go" ]; then
  go=$(command -v go || true)
  [ -n "$go" ] || { log "no Go toolchain (RECON_GO=${RECON_GO:-/usr/local/go/bin/go} is missing, no go on PATH)"; exit 1; }
fi
log "building helm.sh/helm/v3/cmd/helm@$version from the Go module proxy into $bin (takes minutes)"
# The Go toolchain switches itself (GOTOOLCHAIN, through the proxy) when the module asks for a
# newer one than the installed.
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$version"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$kube_minor"
done
GOBIN=$bin GOFLAGS=-buildvcs=false CGO_ENABLED=0 "$go" install -trimpath -ldflags "$ldflags" \
  "helm.sh/helm/v3/cmd/helm@$version" >&2
rm -f "$bin"/.helm-v*
touch "$stamp"
log "$("$helm" version --short 2>&1)"
echo "$helm"
