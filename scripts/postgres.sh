#!/usr/bin/env bash
# A PostgreSQL database for the test suite.
#
#   scripts/postgres.sh url     # print a URL to a fresh database (creating it), starting a
#                               # private server first when nothing answers on 127.0.0.1:5432
#   scripts/postgres.sh drop URL
#   scripts/postgres.sh stop    # stop the private server if this script started one
#
# The private server: initdb into $GH_PG_DIR
# (default /tmp/gatehouse-pg), port 55433, loopback only, trust auth, fsync off (test data
# only). PostgreSQL refuses to run as root, so as root its binaries run as user postgres.
set -euo pipefail

DIR=${GH_PG_DIR:-/tmp/gatehouse-pg}
PRIVATE_PORT=${GH_PG_PORT:-55433}
log() { echo "postgres.sh: $*" >&2; }

as_pg() { if [[ $(id -u) = 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }

answers() { pg_isready -q -h 127.0.0.1 -p "$1" -t 2 2>/dev/null; }

ensure_tools() {
  if ! command -v psql >/dev/null || ! ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
    log "installing PostgreSQL from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null && apt-get install -y -q postgresql >/dev/null
  fi
}

start_private() {
  local bin; bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  if [[ -f $DIR/pgdata/postmaster.pid ]] && answers "$PRIVATE_PORT"; then return 0; fi
  rm -rf "$DIR"; mkdir -p "$DIR/sock"
  [[ $(id -u) = 0 ]] && chown -R postgres:postgres "$DIR"
  as_pg "$bin/initdb" -D "$DIR/pgdata" -U postgres --auth=trust --no-sync -E UTF8 --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1 \
    || { cat "$DIR/initdb.log" >&2; exit 1; }
  as_pg "$bin/pg_ctl" -D "$DIR/pgdata" -l "$DIR/postgres.log" -w -t 30 \
    -o "-p $PRIVATE_PORT -k $DIR/sock -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
    start >/dev/null || { cat "$DIR/postgres.log" >&2; exit 1; }
  touch "$DIR/started-by-us"
  log "private server up on 127.0.0.1:$PRIVATE_PORT"
}

cmd_url() {
  ensure_tools
  local port=5432
  if [[ -n ${GH_PG_FORCE_PRIVATE:-} ]] || ! answers 5432; then
    start_private
    port=$PRIVATE_PORT
  fi
  local db="gatehouse_test_$$_$RANDOM"
  psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -c "CREATE DATABASE $db" >/dev/null
  echo "postgres://postgres@127.0.0.1:$port/$db"
}

cmd_drop() {
  local url=$1 db=${1##*/}
  local base=${url%/*}
  psql -X -q "$base/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null || log "could not drop $db"
}

cmd_stop() {
  if [[ -f $DIR/started-by-us ]]; then
    local bin; bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    as_pg "$bin/pg_ctl" -D "$DIR/pgdata" -m fast -w -t 30 stop >/dev/null && log "private server stopped"
    rm -f "$DIR/started-by-us"
  fi
}

case "${1:-}" in
  url) cmd_url ;;
  drop) cmd_drop "$2" ;;
  stop) cmd_stop ;;
  *) echo "usage: $0 url | drop URL | stop" >&2; exit 2 ;;
esac
