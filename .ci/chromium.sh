#!/usr/bin/env bash
# Headless Chromium for the report's page test (tests/streams/ops): Debian's package, installed
# when missing, like the broker's and the database's. Prints the binary's path.
set -euo pipefail
for candidate in chromium chromium-browser; do
  if command -v "$candidate" >/dev/null 2>&1; then
    command -v "$candidate"
    exit 0
  fi
done
echo "[chromium] installing Debian's chromium" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2 && apt-get install -y -qq chromium >/dev/null
command -v chromium
