#!/usr/bin/env bash
# promtool v0.316.0 (Prometheus 3.16.0) for the alert rules' checks (tests/deploy/
# test_prometheus_rules.py), built from the Go module proxy into a cache outside git
# (.ci/go-tool.sh). Idempotent: a second run only prints the path.
#
#   .ci/promtool.sh        # build when missing, print the path
set -euo pipefail
. "$(dirname "$0")/go-tool.sh"

version=v0.316.0
release=3.16.0  # the Prometheus release of that module version (promtool --version)
go_tool promtool "github.com/prometheus/prometheus/cmd/promtool@$version" "promtool-$version" \
  "-s -w -X github.com/prometheus/common/version.Version=$release" --version
