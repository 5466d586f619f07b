#!/usr/bin/env bash
# Local Apache Kafka 3.9.1 (KRaft, single node: broker+controller on 127.0.0.1).
# Jars come from Maven Central into a cache outside git; data and logs live in .local/kafka.
# Skipped entirely when KAFKA_BOOTSTRAP_SERVERS names an existing cluster.
#
#   .ci/kafka.sh fetch | up | down | status
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
pidfile=$state/kafka.pid

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

write_config() {
  mkdir -p "$state/data" "$state/logs"
  cat > "$state/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
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
  if running; then wait_ready 60; return; fi
  fetch
  write_config
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
  status) if running; then echo "running (pid $(cat "$pidfile")) on 127.0.0.1:$port"; else echo "stopped"; exit 1; fi ;;
  *) echo "usage: $0 fetch|up|down|status" >&2; exit 2 ;;
esac
