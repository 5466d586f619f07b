#!/usr/bin/env bash
# Local PostgreSQL from Debian's packages: a project-owned cluster in .local/pg on 127.0.0.1,
# with the role and database created idempotently. Skipped when DATABASE_URL names a server.
#
# TLS is on, with a local CA and a server certificate (127.0.0.1, localhost) made by openssl once
# (.local/pg/tls). The role recon_tls, whose password is generated once, may log in only over
# TLS with scram-sha-256; `url-tls` prints its DATABASE_URL (sslmode=verify-full). The role
# recon keeps trust over TCP for everything else.
#
#   .ci/postgres.sh up | down | status | url | url-tls
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
state=$root/.local/pg
tls=$state/tls
port=${RECON_PG_PORT:-55432}
default_url="postgresql://recon:recon@127.0.0.1:$port/recon"
tls_role=recon_tls

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

# The local CA and the server's certificate (SAN 127.0.0.1 and localhost), made once and reused;
# the server's key belongs to the account that runs the server.
make_tls() {
  if [ -s "$tls/server.pem" ] && [ -s "$tls/server.key" ] && [ -s "$tls/ca.pem" ] && [ -s "$tls/client.password" ]; then
    return
  fi
  command -v openssl >/dev/null || { export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq openssl >/dev/null; }
  log "making a local CA and the server's certificate in $tls"
  rm -rf "$tls.tmp" && mkdir -p "$tls.tmp"
  (
    cd "$tls.tmp"
    umask 077
    # Distinctive, so a test can look for it in every log line and page.
    printf 'Pg-%s-scram\n' "$(openssl rand -hex 16)" > client.password
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -subj "/CN=recon local PostgreSQL CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -keyout ca.key -out ca.pem 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -sha256 -subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1,DNS:localhost" > server.ext
    openssl x509 -req -sha256 -days 3650 -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
      -extfile server.ext -out server.pem 2>/dev/null
    rm -f server.csr server.ext ca.srl
    chmod 644 ca.pem server.pem
  )
  chmod 755 "$tls.tmp"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$tls.tmp/server.key"; fi
  rm -rf "$tls" && mv "$tls.tmp" "$tls"
}

tls_url() {
  echo "postgresql://$tls_role:$(cat "$tls/client.password")@127.0.0.1:$port/recon?sslmode=verify-full&sslrootcert=$tls/ca.pem"
}

# pg_hba.conf: the TLS role's lines go first, so they match before initdb's trust lines.
hba_block() {
  cat <<HBA
# recon: $tls_role logs in only over TLS, with its password (.ci/postgres.sh) -- begin
hostssl all $tls_role 127.0.0.1/32 scram-sha-256
hostssl all $tls_role ::1/128 scram-sha-256
host all $tls_role all reject
local all $tls_role reject
# recon: $tls_role -- end
HBA
}

# TLS on (ALTER SYSTEM, a reload: no restart), the TLS-only role and its password, idempotently.
setup_tls() {
  local psql=("$@")
  local hba="$state/data/pg_hba.conf"
  if ! grep -q "^# recon: $tls_role logs in only over TLS" "$hba"; then
    { hba_block; cat "$hba"; } > "$hba.new"
    cat "$hba.new" > "$hba" && rm -f "$hba.new"  # in place: keeps the owner and mode
  fi
  "${psql[@]}" -d postgres <<SQL >/dev/null
ALTER SYSTEM SET ssl = on;
ALTER SYSTEM SET ssl_cert_file = '$tls/server.pem';
ALTER SYSTEM SET ssl_key_file = '$tls/server.key';
ALTER SYSTEM SET password_encryption = 'scram-sha-256';
SELECT pg_reload_conf();
SQL
  local ssl=""
  for _ in $(seq 50); do
    ssl=$("${psql[@]}" -d postgres -c "SHOW ssl")
    [ "$ssl" = on ] && break
    sleep 0.1
  done
  if [ "$ssl" != on ]; then log "TLS did not turn on; see $state/server.log"; tail -5 "$state/server.log" >&2; return 1; fi
  "${psql[@]}" -d postgres -c "SELECT 1 FROM pg_roles WHERE rolname='$tls_role'" | grep -q 1 ||
    "${psql[@]}" -d postgres -c "CREATE ROLE $tls_role LOGIN"
  # SET password_encryption first: the reload may not have reached this session yet.
  "${psql[@]}" -d postgres <<SQL >/dev/null
SET password_encryption = 'scram-sha-256';
ALTER ROLE $tls_role LOGIN PASSWORD '$(cat "$tls/client.password")';
GRANT CONNECT, CREATE, TEMPORARY ON DATABASE recon TO $tls_role;
SQL
  log "TLS on; $tls_role logs in over TLS only (scram-sha-256): $0 url-tls"
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
  make_tls
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
  setup_tls "${psql[@]}"
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
  # The TLS-only role's URL (sslmode=verify-full against the local CA).
  url-tls)
    if [ ! -s "$tls/client.password" ]; then echo "no TLS set-up yet: run $0 up" >&2; exit 1; fi
    tls_url ;;
  *) echo "usage: $0 up|down|status|url|url-tls" >&2; exit 2 ;;
esac
