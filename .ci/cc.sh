#!/usr/bin/env bash
# The compiled core (streams/native.py) needs a C compiler and the interpreter's headers:
# installed from Debian's packages when missing, like the broker's and database's.
set -euo pipefail
py=${1:-python3}
include=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
missing=()
command -v cc >/dev/null 2>&1 || missing+=(gcc)
[ -f "$include/Python.h" ] || missing+=(python3-dev)
if [ ${#missing[@]} -gt 0 ]; then
  echo "[cc] installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi
