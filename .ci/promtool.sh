#!/usr/bin/env bash
# promtool v0.316.0 (Prometheus 3.16.0) for the alert rules' checks (tests/deploy/
# test_prometheus_rules.py), built from the Go module proxy into a cache outside git, like the
# Kafka jars (.ci/kafka.sh). Idempotent: a second run only prints the path. Prints the binary's
# path on stdout; progress goes to stderr.
#
#   .ci/promtool.sh        # build when missing, print the path
set -euo pipefail

version=v0.316.0
release=3.16.0  # the Prometheus release of that module version (promtool --version)
cache=${RECON_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/recon}
bin=$cache/bin
promtool=$bin/promtool
stamp=$bin/.promtool-$version
go=${RECON_GO:-/usr/local/go/bin/go}
# The toolchain to fall back to, through the proxy, if the module asks for a newer Go.
toolchain=${RECON_GOTOOLCHAIN:-go1.27.3}

log() { printf '[promtool] %s\n' "$*" >&2; }

if [ -x "$promtool" ] && [ -f "$stamp" ]; then
  echo "$promtool"
  exit 0
fi

mkdir -p "$bin"
# One build at a time: make and pytest may both ask for promtool.
exec 9>"$bin/.promtool.lock"
if command -v flock >/dev/null; then flock 9; fi
if [ -x "$promtool" ] && [ -f "$stamp" ]; then
  echo "$promtool"
  exit 0
fi

if [ ! -x "$go" ]; then
  go=$(command -v go || true)
  [ -n "$go" ] || { log "no Go toolchain (looked for /usr/local/go/bin/go and go on PATH)"; exit 1; }
fi
module=github.com/prometheus/prometheus/cmd/promtool@$version
ldflags="-s -w -X github.com/prometheus/common/version.Version=$release"
log "building $module from the Go module proxy into $bin (takes minutes)"
rm -f "$stamp"
if ! GOBIN=$bin GOFLAGS=-buildvcs=false "$go" install -ldflags "$ldflags" "$module" >&2; then
  log "retrying with GOTOOLCHAIN=$toolchain"
  GOBIN=$bin GOFLAGS=-buildvcs=false GOTOOLCHAIN=$toolchain "$go" install -ldflags "$ldflags" "$module" >&2
fi
rm -f "$bin"/.promtool-v*
touch "$stamp"
log "$("$promtool" --version 2>&1 | head -1)"
echo "$promtool"
