#!/usr/bin/env bash
# Local PostgreSQL from Debian's packages: a project-owned cluster in .local/pg on 127.0.0.1,
# with the role and database created idempotently. Skipped when DATABASE_URL names a server.
#
#   .ci/postgres.sh up | down | status | url
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
state=$root/.local/pg
port=${RECON_PG_PORT:-55432}
default_url="postgresql://recon:recon@127.0.0.1:$port/recon"

log() { printf '[postgres] %s\n' "$*" >&2; }

bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  if [ -z "$d" ]; then
    log "installing PostgreSQL from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
    d=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  fi
  echo "$d"
}

# The server refuses to run as root: run it as the postgres account when we are root.
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

running() { [ -f "$state/data/postmaster.pid" ] && as_owner "$(bindir)/pg_ctl" -D "$state/data" status >/dev/null 2>&1; }

up() {
  if [ -n "${DATABASE_URL:-}" ]; then log "using existing server from DATABASE_URL"; return; fi
  local bin; bin=$(bindir)
  mkdir -p "$state"
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    chown postgres: "$state"
  fi
  if [ ! -f "$state/data/PG_VERSION" ]; then
    log "initialising cluster in $state/data"
    as_owner "$bin/initdb" -D "$state/data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  fi
  if ! running; then
    mkdir -p "$state/run" && { [ "$(id -u)" != 0 ] || chown postgres: "$state/run"; }
    log "starting on 127.0.0.1:$port"
    as_owner "$bin/pg_ctl" -D "$state/data" -l "$state/server.log" -w -t 60 \
      -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$state/run -c max_connections=200 -c fsync=on" start >/dev/null
  fi
  local psql=("$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -v ON_ERROR_STOP=1 -qtA)
  "${psql[@]}" -d postgres -c "SELECT 1 FROM pg_roles WHERE rolname='recon'" | grep -q 1 ||
    "${psql[@]}" -d postgres -c "CREATE ROLE recon LOGIN PASSWORD 'recon' CREATEDB"
  "${psql[@]}" -d postgres -c "SELECT 1 FROM pg_database WHERE datname='recon'" | grep -q 1 ||
    "${psql[@]}" -d postgres -c "CREATE DATABASE recon OWNER recon"
  log "ready: $default_url"
}

down() {
  if running; then log "stopping"; as_owner "$(bindir)/pg_ctl" -D "$state/data" -m fast -w stop >/dev/null; fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) if running; then echo "running on 127.0.0.1:$port"; else echo "stopped"; exit 1; fi ;;
  url) echo "${DATABASE_URL:-$default_url}" ;;
  *) echo "usage: $0 up|down|status|url" >&2; exit 2 ;;
esac
