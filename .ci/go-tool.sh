# Sourced by .ci/helm.sh and .ci/promtool.sh: build one Go command from the Go module proxy into
# a cache outside git (like the Kafka jars of .ci/kafka.sh), once per version, and print its path.
#
#   go_tool NAME MODULE@VERSION STAMP LDFLAGS VERSION_ARGS...
#
# NAME is the binary, STAMP names the build (a new stamp rebuilds), LDFLAGS are passed to the
# linker, VERSION_ARGS print the built binary's version to the log. Progress goes to stderr,
# the path to stdout. One build at a time (flock): make and pytest may both ask for it. If the
# module asks for a newer Go than the installed one, the build is retried with RECON_GOTOOLCHAIN
# (default go1.27.3), which the go command takes from the proxy.

go_tool() {
  local name=$1 module=$2 stamp_name=$3 ldflags=$4
  shift 4
  local cache=${RECON_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/recon}
  local bin=$cache/bin
  local tool=$bin/$name stamp=$bin/.$stamp_name
  local go=${RECON_GO:-/usr/local/go/bin/go}
  local toolchain=${RECON_GOTOOLCHAIN:-go1.27.3}
  log() { printf '[%s] %s\n' "$name" "$*" >&2; }

  if [ -x "$tool" ] && [ -f "$stamp" ]; then
    echo "$tool"
    return 0
  fi
  mkdir -p "$bin"
  exec 9>"$bin/.$name.lock"
  if command -v flock >/dev/null; then flock 9; fi
  if [ -x "$tool" ] && [ -f "$stamp" ]; then  # built while we waited for the lock
    echo "$tool"
    return 0
  fi
  if [ ! -x "$go" ]; then
    go=$(command -v go || true)
    [ -n "$go" ] || { log "no Go toolchain (RECON_GO=${RECON_GO:-/usr/local/go/bin/go} is missing, no go on PATH)"; return 1; }
  fi
  log "building $module from the Go module proxy into $bin (takes minutes)"
  local build=(env GOBIN="$bin" GOFLAGS=-buildvcs=false CGO_ENABLED=0)
  if ! "${build[@]}" "$go" install -trimpath -ldflags "$ldflags" "$module" >&2; then
    log "retrying with GOTOOLCHAIN=$toolchain"
    "${build[@]}" GOTOOLCHAIN="$toolchain" "$go" install -trimpath -ldflags "$ldflags" "$module" >&2
  fi
  rm -f "$bin/.$name"-v*
  touch "$stamp"
  log "$("$tool" "$@" 2>&1 | head -1)"
  echo "$tool"
}
