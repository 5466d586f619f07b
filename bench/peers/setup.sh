#!/usr/bin/env bash
# Creates .local/peers-venv (gitignored) and installs bench/peers/requirements.txt into it, once:
# a stamp holding the requirements' checksum makes reruns free until the pins change.
# Prints the venv's python on stdout so callers can do PY=$(bench/peers/setup.sh).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
venv=${RECON_PEERS_VENV:-$root/.local/peers-venv}
reqs=$root/bench/peers/requirements.txt
stamp=$venv/.installed
want=$(sha256sum "$reqs" | cut -d' ' -f1)

if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "[peers] installing $(grep -v '^#' "$reqs" | xargs) into $venv" >&2
  test -x "$venv/bin/python" || "${PY:-python3}" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$reqs" >&2
  echo "$want" > "$stamp"
fi
echo "$venv/bin/python"
