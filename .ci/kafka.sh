#!/usr/bin/env bash
# Local Apache Kafka 3.9.1 (KRaft, single node: broker+controller on 127.0.0.1).
# Jars come from Maven Central into a cache outside git; data and logs live in .local/kafka.
# Skipped entirely when KAFKA_BOOTSTRAP_SERVERS names an existing cluster.
#
# Beside PLAINTEXT it serves SASL_SSL (SCRAM-SHA-512 over TLS) on RECON_KAFKA_PORT+2, with a
# local CA and a server certificate made by openssl once (.local/kafka/tls) and a client user
# whose password is generated once; `env-sasl` prints what a client needs to use it.
#
#   .ci/kafka.sh fetch | up | down | status | env-sasl
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
version=3.9.1
cache=${RECON_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/recon}
libs=$cache/kafka-$version/libs
state=$root/.local/kafka
port=${RECON_KAFKA_PORT:-19092}
# The controller listens next to the broker unless told otherwise, so two checkouts with
# different RECON_KAFKA_PORT values never fight over one controller port.
cport=${RECON_KAFKA_CONTROLLER_PORT:-$((port + 1))}
sport=${RECON_KAFKA_SASL_PORT:-$((port + 2))}
pidfile=$state/kafka.pid
tls=$state/tls
sasl_user=recon-client

log() { printf '[kafka] %s\n' "$*" >&2; }

ensure_tools() {
  if command -v java >/dev/null && command -v mvn >/dev/null; then return; fi
  log "installing Java 17 and Maven from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless maven >/dev/null
}

fetch() {
  if [ -f "$libs/kafka_2.13-$version.jar" ] && [ -f "$libs/reload4j-1.2.25.jar" ]; then return; fi
  ensure_tools
  log "fetching kafka_2.13:$version and its runtime dependencies from Maven Central into $libs"
  rm -rf "$libs.tmp"
  mvn -B -q -f "$root/.ci/kafka/pom.xml" \
    org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$libs.tmp"
  rm -rf "$libs" && mv "$libs.tmp" "$libs"
}

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

# The local CA and the broker's certificate (SAN 127.0.0.1 and localhost), made once and reused:
# a client trusts ca.pem (KAFKA_SSL_CAFILE). The broker reads a PEM keystore: its private key
# (PKCS#8, encrypted with keystore.password by PBES1: Java 17 cannot read PBES2 keys) followed
# by its certificate and the CA's.
make_tls() {
  if [ -s "$tls/server.keystore.pem" ] && [ -s "$tls/ca.pem" ] && [ -s "$tls/keystore.password" ] &&
    [ -s "$tls/client.password" ]; then return; fi
  command -v openssl >/dev/null || { export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq openssl >/dev/null; }
  log "making a local CA and the broker's certificate in $tls"
  rm -rf "$tls.tmp" && mkdir -p "$tls.tmp" && chmod 700 "$tls.tmp"  # 755 once complete
  (
    cd "$tls.tmp"
    umask 077
    openssl rand -hex 24 > keystore.password
    # Distinctive, so a test can look for it in every log line and page.
    printf 'Kc-%s-scram\n' "$(openssl rand -hex 16)" > client.password
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -subj "/CN=recon local Kafka CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -keyout ca.key -out ca.pem 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -sha256 -subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1,DNS:localhost" > server.ext
    openssl x509 -req -sha256 -days 3650 -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
      -extfile server.ext -out server.pem 2>/dev/null
    openssl pkcs8 -topk8 -v1 PBE-SHA1-3DES -in server.key \
      -passout "file:keystore.password" -out server.key.enc
    cat server.key.enc server.pem ca.pem > server.keystore.pem
    rm -f server.csr server.ext server.key.enc ca.srl
    chmod 644 ca.pem
  )
  chmod 755 "$tls.tmp"  # ca.pem for any client; the keys and passwords stay 600
  rm -rf "$tls" && mv "$tls.tmp" "$tls"
}

# The client's settings for the SASL_SSL listener, rewritten at every `up` (the port may change).
write_client_env() {
  cat > "$tls/client.env" <<ENV
KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$sport
KAFKA_SECURITY_PROTOCOL=SASL_SSL
KAFKA_SASL_MECHANISM=SCRAM-SHA-512
KAFKA_SASL_USERNAME=$sasl_user
KAFKA_SASL_PASSWORD=$(cat "$tls/client.password")
KAFKA_SSL_CAFILE=$tls/ca.pem
ENV
  chmod 600 "$tls/client.env"
}

# The SCRAM users, through the admin API on the PLAINTEXT listener once the broker runs: so it
# works on storage formatted before the SASL listener existed, and again at every `up`.
scram_users() {
  "$root/.venv/bin/python" - "$port" "$sasl_user" "$tls/client.password" <<'PY'
import sys
from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

port, user, password_file = sys.argv[1:]
password = open(password_file).read().strip().encode()
admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"})
info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192)
futures = admin.alter_user_scram_credentials([UserScramCredentialUpsertion(user, info, password)])
for future in futures.values():
    future.result(timeout=30)
PY
  log "SASL_SSL (SCRAM-SHA-512) on 127.0.0.1:$sport for user $sasl_user; client settings: $0 env-sasl"
}

write_config() {
  mkdir -p "$state/data" "$state/logs"
  cat > "$state/server.properties.new" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport,SASL_SSL://127.0.0.1:$sport
advertised.listeners=PLAINTEXT://127.0.0.1:$port,SASL_SSL://127.0.0.1:$sport
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
inter.broker.listener.name=PLAINTEXT
# SASL_SSL for clients only: SCRAM-SHA-512 users (made after start, see scram_users), TLS with
# the server certificate of the local CA (make_tls). Inter-broker and controller stay PLAINTEXT.
listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=$tls/server.keystore.pem
listener.name.sasl_ssl.ssl.key.password=$(cat "$tls/keystore.password")
listener.name.sasl_ssl.ssl.client.auth=none
log.dirs=$state/data
num.partitions=3
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=8
default.replication.factor=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
# Replays re-read old event times: never expire local test data by timestamp.
log.retention.ms=-1
log.segment.bytes=67108864
PROPS
  cat > "$state/log4j.properties" <<PROPS
log4j.rootLogger=WARN, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=$state/logs/server.log
log4j.appender.file.MaxFileSize=20MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
PROPS
}

# The config in use, replaced by the new one; returns 1 when they differ (a restart is due).
install_config() {
  if cmp -s "$state/server.properties.new" "$state/server.properties"; then rm -f "$state/server.properties.new"; return 0; fi
  mv "$state/server.properties.new" "$state/server.properties"
  return 1
}

wait_ready() {
  local deadline=$((SECONDS + ${1:-90}))
  while [ $SECONDS -lt $deadline ]; do
    if ! running; then log "broker exited; last log lines:"; tail -30 "$state/logs/server.log" >&2 || true; return 1; fi
    # Ready means it answers a metadata request, not merely that the port is open.
    if "$root/.venv/bin/python" - "$port" <<'PY' 2>/dev/null; then
import sys
from confluent_kafka.admin import AdminClient
md = AdminClient({"bootstrap.servers": f"127.0.0.1:{sys.argv[1]}"}).list_topics(timeout=2)
sys.exit(0 if md.brokers else 1)
PY
      log "ready on 127.0.0.1:$port"; return 0
    fi
    sleep 1
  done
  log "not ready after ${1:-90}s"; return 1
}

up() {
  if [ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then log "using existing cluster $KAFKA_BOOTSTRAP_SERVERS"; return; fi
  make_tls
  write_client_env
  write_config
  if running; then
    if install_config; then wait_ready 60 && scram_users; return; fi
    log "the configuration changed (e.g. the SASL_SSL listener is new): restarting the broker"
    down
  else
    install_config || true
  fi
  fetch
  if [ ! -f "$state/data/meta.properties" ]; then
    local uuid
    uuid=$(java -Dlog4j.configuration="file:$state/log4j.properties" -cp "$libs/*" kafka.tools.StorageTool random-uuid)
    log "formatting storage (cluster id $uuid)"
    java -Dlog4j.configuration="file:$state/log4j.properties" -cp "$libs/*" kafka.tools.StorageTool format -t "$uuid" -c "$state/server.properties" >/dev/null
  fi
  log "starting broker"
  nohup java -Xms512m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$state/log4j.properties" -Dkafka.logs.dir="$state/logs" \
    -cp "$libs/*" kafka.Kafka "$state/server.properties" >"$state/logs/stdout.log" 2>&1 &
  echo $! > "$pidfile"
  wait_ready 120
  scram_users
}

down() {
  if ! running; then rm -f "$pidfile"; return; fi
  local pid; pid=$(cat "$pidfile")
  log "stopping broker (pid $pid)"
  kill "$pid"
  for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

case "${1:-}" in
  fetch) fetch ;;
  up) up ;;
  down) down ;;
  status) if running; then echo "running (pid $(cat "$pidfile")) on 127.0.0.1:$port, SASL_SSL on 127.0.0.1:$sport"; else echo "stopped"; exit 1; fi ;;
  # What a client needs for the SASL_SSL listener, as KEY=value lines (`set -a; . <(...)`).
  env-sasl)
    if [ ! -s "$tls/client.env" ]; then echo "no SASL_SSL set-up yet: run $0 up" >&2; exit 1; fi
    cat "$tls/client.env" ;;
  *) echo "usage: $0 fetch|up|down|status|env-sasl" >&2; exit 2 ;;
esac
