#!/usr/bin/env bash
# A Redis for the test suite (the rate limiter's shared store).
#
#   scripts/redis.sh url    # print a redis:// URL: the machine's server on 127.0.0.1:6379 when
#                           # it answers, else a private one started here
#   scripts/redis.sh stop   # stop the private server if this script started one
#
# The private server: port 56379, loopback only, nothing kept on disk, in $GH_REDIS_DIR
# (default /tmp/gatehouse-redis). redis-server comes from Debian's packages when missing.
set -euo pipefail

DIR=${GH_REDIS_DIR:-/tmp/gatehouse-redis}
PRIVATE_PORT=${GH_REDIS_PORT:-56379}
log() { echo "redis.sh: $*" >&2; }

# PING over bash's /dev/tcp, so no client is needed to find out.
answers() {
  local reply
  reply=$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1; printf 'PING\r\n' >&3; head -c 7 <&3" 2>/dev/null) || return 1
  [[ $reply == +PONG* ]]
}

case ${1:-} in
  url)
    if answers 6379; then echo "redis://127.0.0.1:6379"; exit 0; fi
    if ! answers "$PRIVATE_PORT"; then
      if ! command -v redis-server >/dev/null; then
        log "installing redis-server from Debian's packages"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q >/dev/null && apt-get install -y -q redis-server >/dev/null
      fi
      mkdir -p "$DIR"
      redis-server --port "$PRIVATE_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize yes --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log" --dir "$DIR"
      for _ in $(seq 1 100); do answers "$PRIVATE_PORT" && break; sleep 0.1; done
      answers "$PRIVATE_PORT" || { cat "$DIR/redis.log" >&2; exit 1; }
      touch "$DIR/started-by-us"
      log "started a private redis-server on $PRIVATE_PORT"
    fi
    echo "redis://127.0.0.1:$PRIVATE_PORT"
    ;;
  stop)
    if [[ -f $DIR/started-by-us && -f $DIR/redis.pid ]]; then
      kill "$(cat "$DIR/redis.pid")" 2>/dev/null || true
      rm -rf "$DIR"
    fi
    ;;
  *) echo "usage: $0 url|stop" >&2; exit 2 ;;
esac
