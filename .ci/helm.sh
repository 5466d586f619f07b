#!/usr/bin/env bash
# helm v3.22.0 for the chart's checks (tests/deploy/test_helm_chart.py), built from the Go module
# proxy into a cache outside git (.ci/go-tool.sh). Idempotent: a second run only prints the path.
#
#   .ci/helm.sh            # build when missing, print the path
set -euo pipefail
. "$(dirname "$0")/go-tool.sh"

version=v3.22.0
# The Kubernetes version helm lint and helm template assume (no cluster): that of the client-go
# helm v3.22.0 is built with (v0.37 -> 1.37), as helm's own Makefile sets it.
kube_minor=37
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$version"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$kube_minor"
done
go_tool helm "helm.sh/helm/v3/cmd/helm@$version" "helm-$version-k8s1.$kube_minor" "$ldflags" \
  version --short
