#!/usr/bin/env bash
# gatehouse benchmark: /users/me, /auth/refresh, /auth/login throughput and latency, the argon2
# ceiling, idle and peak RSS — on SQLite, then PostgreSQL. See bench/README.md.
#
#   bench/run.sh                      # everything, ~3 min plus the build
#   BENCH_DBS=sqlite bench/run.sh     # one backend only
#
# Knobs (environment): BENCH_DBS ("sqlite pg"), BENCH_ME_CONNS (64), BENCH_ME_SECS (10),
# BENCH_REFRESH_CONNS (32), BENCH_REFRESH_SECS (10), BENCH_LOGIN_CONNS (8), BENCH_LOGIN_SECS (15),
# BENCH_PEAK_LOGINS (100), BENCH_WARMUP_SECS (1), BENCH_LOADGEN_THREADS (0 = current-thread),
# BENCH_PG_PORT (5432), BENCH_SKIP_BUILD (0), BENCH_ARGON2_ITERATIONS (7),
# BENCH_QUIET_WAIT (180: seconds to wait, before each measurement, for the machine to be idle),
# BENCH_BIG_LOGINS (100), BENCH_BIG_PASSWORD_BYTES (1000000), BENCH_ONLY ("" = every step;
# "biglogins" = only the big-login-body step; "ratelimit" = only the rate-limiter runs;
# "verify" = only the forward-auth runs), BENCH_VERIFY_CONNS (64), BENCH_VERIFY_SECS (10),
# BENCH_RL_LOW (200: RATE_LIMITER_POINTS per second of the low-limit run), BENCH_SERVER_ENV (extra NAME=value pairs for the
# server, e.g. "GATEHOUSE_AUTH_MAX_PAYLOAD_SIZE=1mb" to compare with the old limit).
#
# Only 127.0.0.1 is ever targeted. Everything started here (server, RSS sampler, a private
# PostgreSQL if one was needed, the temporary database) is stopped by PID / dropped on exit.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

DBS=${BENCH_DBS:-"sqlite pg"}
ME_CONNS=${BENCH_ME_CONNS:-64};           ME_SECS=${BENCH_ME_SECS:-10}
REFRESH_CONNS=${BENCH_REFRESH_CONNS:-32}; REFRESH_SECS=${BENCH_REFRESH_SECS:-10}
LOGIN_CONNS=${BENCH_LOGIN_CONNS:-8};      LOGIN_SECS=${BENCH_LOGIN_SECS:-15}
PEAK_LOGINS=${BENCH_PEAK_LOGINS:-100}
WARMUP_SECS=${BENCH_WARMUP_SECS:-1}
LOADGEN_THREADS=${BENCH_LOADGEN_THREADS:-0}
PG_PORT=${BENCH_PG_PORT:-5432}
SKIP_BUILD=${BENCH_SKIP_BUILD:-0}
ARGON2_ITERATIONS=${BENCH_ARGON2_ITERATIONS:-7}
QUIET_WAIT=${BENCH_QUIET_WAIT:-180}
BIG_LOGINS=${BENCH_BIG_LOGINS:-100}
BIG_PASSWORD_BYTES=${BENCH_BIG_PASSWORD_BYTES:-1000000}
ONLY=${BENCH_ONLY:-}
read -r -a SERVER_ENV <<<"${BENCH_SERVER_ENV:-}"
RL_LOW=${BENCH_RL_LOW:-200}
VERIFY_CONNS=${BENCH_VERIFY_CONNS:-64}; VERIFY_SECS=${BENCH_VERIFY_SECS:-10}
case $ONLY in ""|biglogins|ratelimit|verify) ;; *) echo "bench: BENCH_ONLY must be empty, biglogins, ratelimit or verify" >&2; exit 2 ;; esac

# Targets (printed beside the figures).
T_ME_RPS=15000; T_ME_P99=10; T_REFRESH_SQLITE=3000; T_REFRESH_PG=2000
T_LOGIN_RATIO=85; T_PEAK_MIB=200; T_IDLE_MIB=20; T_VERIFY_RPS=50000

HOST=127.0.0.1
ADMIN_EMAIL=bench@example.com
ADMIN_PASSWORD=bench-password-$RANDOM$RANDOM
SECRET=bench-secret-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
BIN=$ROOT/target/release/gatehouse
LOADGEN=$ROOT/target/release/examples/loadgen
CEILING=$ROOT/target/release/examples/argon2_ceiling
BIGLOGINS=$ROOT/target/release/examples/big_logins

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS_DIR=$ROOT/bench/results
RESULT_FILE=$RESULTS_DIR/$STAMP.txt
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-bench.XXXXXX")
DETAILS=$WORK/details.txt
mkdir -p "$RESULTS_DIR"
: >"$DETAILS"

SERVER_PID=""
SAMPLER_PID=""
REDIS_PID=""
EXTRA_ENV=()
PG_DB=""
PG_DB_PORT=""
PRIVATE_PG_DATA=""
PGBIN=""

log() { printf '%s\n' "$*" | tee -a "$DETAILS" >&2; }
die() { log "bench: ERROR: $*"; exit 1; }

# A child that was killed stays a zombie until reaped: treat Z as gone.
alive() { local s; s=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $s != Z* ]]; }

stop_pid() {  # stop_pid PID NAME: SIGTERM, wait ≤ 10 s, then SIGKILL
  local pid=$1 name=$2 i
  [[ -n $pid ]] || return 0
  alive "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do alive "$pid" || break; sleep 0.1; done
  if alive "$pid"; then log "bench: $name (pid $pid) ignored SIGTERM for 10 s; killing it"; kill -KILL "$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
}

as_pg() { if [[ $(id -u) = 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }

psql_admin() {  # psql_admin PORT SQL
  timeout 30 psql -h "$HOST" -p "$1" -U postgres -d postgres -XAtq -v ON_ERROR_STOP=1 -c "$2"
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_pid "$SAMPLER_PID" "RSS sampler"; SAMPLER_PID=""
  stop_pid "$SERVER_PID" "gatehouse"; SERVER_PID=""
  stop_pid "$REDIS_PID" "redis-server"; REDIS_PID=""
  if [[ -n $PG_DB ]]; then
    psql_admin "$PG_DB_PORT" "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 \
      || echo "bench: could not drop database $PG_DB on $HOST:$PG_DB_PORT" >&2
    PG_DB=""
  fi
  if [[ -n $PRIVATE_PG_DATA ]]; then
    as_pg timeout 40 "$PGBIN/pg_ctl" -D "$PRIVATE_PG_DATA" -m fast -w -t 30 stop >/dev/null 2>&1 \
      || echo "bench: pg_ctl stop failed for $PRIVATE_PG_DATA" >&2
    PRIVATE_PG_DATA=""
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# field NAME "RESULT a=1 b=2" -> value of NAME
field() { tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p" | head -1; }
# fmt NUMBER DECIMALS ("-" when empty or NaN)
fmt() { awk -v v="$1" -v d="$2" 'BEGIN { if (v == "" || v == "-" || v != v+0) print "-"; else printf "%.*f", d, v }'; }
# check VALUE OP TARGET -> "ok" / "MISS" / "-"
check() { awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
  if (v == "" || v == "-" || v != v+0) { print "-"; exit }
  ok = (op == ">=") ? (v+0 >= t+0) : (v+0 <= t+0); print ok ? "ok" : "MISS" }'; }

# Idle share of all cores over one second, in percent (from /proc/stat).
idle_pct() {
  local a b
  a=$(head -1 /proc/stat); sleep 1; b=$(head -1 /proc/stat)
  awk -v a="$a" -v b="$b" 'BEGIN { split(a, x); split(b, y); t = 0
    for (i = 2; i <= 11; i++) t += y[i] - x[i]
    idle = (y[5] - x[5]) + (y[6] - x[6]); pct = 0; if (t > 0) pct = 100 * idle / t; printf "%.0f", pct }'
}

# Before a measurement: wait (≤ QUIET_WAIT s) until the machine is ≥ 90 % idle, so that other
# processes (builds of other work trees...) do not skew the figure; say so when it never is.
wait_quiet() {
  local what=$1 deadline=$(( $(date +%s) + QUIET_WAIT )) idle
  while :; do
    idle=$(idle_pct)
    [[ $idle -ge 90 ]] && return 0
    if [[ $(date +%s) -ge $deadline ]]; then
      log "bench: WARNING: machine only ${idle}% idle before $what after waiting ${QUIET_WAIT}s; figures are skewed"
      NOISY+=("$what (${idle}% idle)")
      return 0
    fi
    sleep 2
  done
}
NOISY=()

free_port() {
  local p i
  for i in $(seq 1 50); do
    p=$(( 20000 + RANDOM % 20000 ))
    if ! (exec 3<>"/dev/tcp/$HOST/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  return 1
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo ""; }
hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo ""; }
mib() { awk -v k="$1" 'BEGIN { if (k == "") print "-"; else printf "%.1f", k / 1024 }'; }

# ------------------------------------------------------------------------------------------
# Build

if [[ $SKIP_BUILD != 1 ]]; then
  log "bench: building the release server and examples (a wait for the cargo lock is normal)"
  timeout 3600 cargo build --release --bin gatehouse >&2 || die "cargo build --release failed"
  timeout 3600 cargo build --release --example loadgen --example argon2_ceiling --example big_logins >&2 || die "building the examples failed"
fi
for b in "$BIN" "$LOADGEN" "$CEILING" "$BIGLOGINS"; do [[ -x $b ]] || die "$b is missing (build first or unset BENCH_SKIP_BUILD)"; done

CORES=$(nproc)
log "bench: $STAMP, $CORES cores, load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
log "bench: other CPU-heavy processes skew every figure; check 'uptime' before trusting a run"

# ------------------------------------------------------------------------------------------
# The argon2 ceiling: cores ÷ one verification, measured right before each login run (the
# server idle), because a shared VM's CPU speed drifts over minutes.

declare -A R  # R[kind.metric] = value

measure_ceiling() {  # measure_ceiling KIND
  local out res
  out=$(timeout 300 "$CEILING" --iterations "$ARGON2_ITERATIONS" --parallel) || die "argon2_ceiling failed"
  printf '%s\n' "$out" | sed 's/^/    /' | tee -a "$DETAILS" >&2
  res=$(grep '^RESULT' <<<"$out")
  R[$1.verify_ms]=$(field verify_ms "$res")
  R[$1.verify_median_ms]=$(field verify_median_ms "$res")
  R[$1.ceiling]=$(field ceiling_rps "$res")
  R[$1.parallel]=$(field parallel_rps "$res")
}

# ------------------------------------------------------------------------------------------
# Server lifecycle

start_server() {  # start_server DB_KIND [pg-url]
  local kind=$1 url=${2:-} i
  PORT=$(free_port) || die "no free port found on $HOST"
  SERVER_LOG=$WORK/server-$kind.log
  local -a env=(
    HOST="$HOST" PORT="$PORT" SECRET="$SECRET" LOG_LEVEL=warn LOGIN_STALL_TIME=0
    ADMIN_EMAIL="$ADMIN_EMAIL" ADMIN_PASSWORD="$ADMIN_PASSWORD" CONFIG_PATH=/dev/null
    "${SERVER_ENV[@]}" "${EXTRA_ENV[@]}"
  )
  if [[ $kind == sqlite ]]; then
    env+=(DB_CLIENT=sqlite3 DB_FILENAME="$WORK/gatehouse.db")
  else
    env+=(DB_CLIENT=pg DB_CONNECTION_STRING="$url")
  fi
  # No HASH_* variables: Directus's default argon2 parameters.
  (cd "$WORK" && exec env -u RUST_LOG $(env | sed -n 's/^\(HASH_[A-Z_]*\)=.*/-u \1/p') "${env[@]}" "$BIN") >"$SERVER_LOG" 2>&1 &
  SERVER_PID=$!
  for i in $(seq 1 300); do  # ≤ 30 s
    if ! alive "$SERVER_PID"; then cat "$SERVER_LOG" >&2; die "gatehouse exited during start-up ($kind)"; fi
    if curl -fsS -m 1 "http://$HOST:$PORT/server/ping" >/dev/null 2>&1; then
      log "bench: gatehouse ($kind) up on $HOST:$PORT, pid $SERVER_PID"
      return 0
    fi
    sleep 0.1
  done
  cat "$SERVER_LOG" >&2
  die "gatehouse ($kind) did not answer /server/ping within 30 s"
}

loadgen() {  # loadgen ARGS... -> prints the RESULT line; full output goes to the details
  local out rc=0
  out=$(LOADGEN_EMAIL=$ADMIN_EMAIL LOADGEN_PASSWORD=$ADMIN_PASSWORD timeout 700 "$LOADGEN" \
        --url "http://$HOST:$PORT" --threads "$LOADGEN_THREADS" --server-pid "$SERVER_PID" "$@" 2>&1) || rc=$?
  printf '%s\n' "$out" | sed 's/^/    /' | tee -a "$DETAILS" >&2
  if [[ $rc -ne 0 ]]; then
    log "bench: loadgen $* failed (exit $rc)"
    echo "RESULT failed=1"
    return 0
  fi
  grep '^RESULT' <<<"$out" | tail -1
}

admin_token() {
  curl -fsS -m 60 -H 'Content-Type: application/json' \
    -d "{\"email\":\"$ADMIN_EMAIL\",\"password\":\"$ADMIN_PASSWORD\",\"mode\":\"json\"}" \
    "http://$HOST:$PORT/auth/login" | jq -r .data.access_token
}

set_login_attempts() {  # set_login_attempts N
  local tok; tok=$(admin_token) || die "admin login failed"
  curl -fsS -m 30 -X PATCH -H "Authorization: Bearer $tok" -H 'Content-Type: application/json' \
    -d "{\"auth_login_attempts\": $1}" "http://$HOST:$PORT/settings" >/dev/null || die "PATCH /settings failed"
}

# Peak RSS during PEAK_LOGINS concurrent logins: VmHWM reset through clear_refs (root or owner),
# plus VmRSS sampled every 20 ms as a cross-check.
peak_run() {
  local samples=$WORK/rss-samples.txt hwm_reset=no
  : >"$samples"
  if echo 5 >"/proc/$SERVER_PID/clear_refs" 2>/dev/null; then hwm_reset=yes; fi
  (
    end=$(( $(date +%s) + 200 ))
    while [[ $(date +%s) -lt $end ]] && [[ -r /proc/$SERVER_PID/status ]]; do
      awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER_PID/status" 2>/dev/null || true
      sleep 0.02
    done
  ) >"$samples" &
  SAMPLER_PID=$!
  PEAK_RESULT=$(loadgen --scenario login -c "$PEAK_LOGINS" --requests "$PEAK_LOGINS" --timeout 120s --setup-concurrency "$PEAK_LOGINS")
  PEAK_HWM_KIB=$(hwm_kib "$SERVER_PID")
  stop_pid "$SAMPLER_PID" "RSS sampler"; SAMPLER_PID=""
  PEAK_SAMPLED_KIB=$(sort -n "$samples" | tail -1)
  [[ $hwm_reset == yes ]] || { log "bench: could not reset VmHWM; using the sampled peak"; PEAK_HWM_KIB=$PEAK_SAMPLED_KIB; }
}

# BIG_LOGINS concurrent logins, each with a BIG_PASSWORD_BYTES-long password (unknown email, so
# nothing is locked): the server's peak RSS (VmHWM) and its RSS 3 s after the last answer.
big_logins_run() {  # big_logins_run KIND
  local out rc=0 res
  wait_quiet "$1 big login bodies"
  log "-- $BIG_LOGINS concurrent logins with ${BIG_PASSWORD_BYTES}-byte passwords"
  out=$(timeout 300 "$BIGLOGINS" --url "http://$HOST:$PORT" --server-pid "$SERVER_PID" \
        -c "$BIG_LOGINS" --password-bytes "$BIG_PASSWORD_BYTES" --settle 3s 2>&1) || rc=$?
  printf '%s\n' "$out" | sed 's/^/    /' | tee -a "$DETAILS" >&2
  [[ $rc -eq 0 ]] || { log "bench: big_logins failed (exit $rc)"; return 0; }
  res=$(grep '^RESULT' <<<"$out" | tail -1)
  R[$1.big_peak]=$(field peak_kib "$res")
  R[$1.big_after]=$(field after_kib "$res")
  R[$1.big_status]=$(field by_status "$res")
}

# Forward-auth (GET /auth/verify) with an access JWT, a static token and a session cookie.
verify_runs() {  # verify_runs KIND
  local kind=$1 tok login cookie res
  tok=$(admin_token) || die "admin login failed"
  local id; id=$(curl -fsS -m 30 -H "Authorization: Bearer $tok" "http://$HOST:$PORT/users/me" | jq -r .data.id)
  local static=bench-static-token-$RANDOM$RANDOM$RANDOM
  curl -fsS -m 30 -X PATCH -H "Authorization: Bearer $tok" -H 'Content-Type: application/json' \
    -d "{\"token\": \"$static\"}" "http://$HOST:$PORT/users/$id" >/dev/null || die "setting the static token failed"
  cookie=$(curl -fsS -m 60 -D - -o /dev/null -H 'Content-Type: application/json' \
    -d "{\"email\":\"$ADMIN_EMAIL\",\"password\":\"$ADMIN_PASSWORD\",\"mode\":\"session\"}" \
    "http://$HOST:$PORT/auth/login" | sed -n 's/^[Ss]et-[Cc]ookie: \(directus_session_token=[^;]*\).*/\1/p' | head -1)
  [[ -n $cookie ]] || die "no session cookie from a session login"
  loadgen --scenario verify -c 8 --duration 2s --token "$tok" >/dev/null
  wait_quiet "$kind /auth/verify (JWT)"
  log "-- /auth/verify with an access JWT, $VERIFY_CONNS connections, ${VERIFY_SECS}s"
  R[$kind.verify_jwt]=$(loadgen --scenario verify -c "$VERIFY_CONNS" --duration "${VERIFY_SECS}s" --warmup "${WARMUP_SECS}s" --token "$tok")
  wait_quiet "$kind /auth/verify (static token)"
  log "-- /auth/verify with a static token"
  R[$kind.verify_static]=$(loadgen --scenario verify -c "$VERIFY_CONNS" --duration "${VERIFY_SECS}s" --warmup "${WARMUP_SECS}s" --token "$static")
  wait_quiet "$kind /auth/verify (session cookie)"
  log "-- /auth/verify with a session cookie"
  R[$kind.verify_cookie]=$(loadgen --scenario verify -c "$VERIFY_CONNS" --duration "${VERIFY_SECS}s" --warmup "${WARMUP_SECS}s" --cookie "$cookie")
}

bench_db() {  # bench_db KIND [pg-url]
  local kind=$1 url=${2:-} res
  log ""
  log "== $kind"
  start_server "$kind" "$url"
  if [[ $ONLY == biglogins ]]; then
    sleep 3
    R[$kind.idle]=$(rss_kib "$SERVER_PID")
    log "bench: idle RSS after start-up: $(mib "${R[$kind.idle]}") MiB"
    big_logins_run "$kind"
    stop_pid "$SERVER_PID" "gatehouse"; SERVER_PID=""
    R[$kind.done]=1
    return 0
  fi
  if [[ $ONLY == verify ]]; then
    verify_runs "$kind"
    stop_pid "$SERVER_PID" "gatehouse"; SERVER_PID=""
    R[$kind.done]=1
    return 0
  fi

  # Warm-up: a short /users/me run and one login, then idle.
  loadgen --scenario me -c 8 --duration 2s >/dev/null
  sleep 3
  R[$kind.idle]=$(rss_kib "$SERVER_PID")
  log "bench: idle RSS after start-up and warm-up: $(mib "${R[$kind.idle]}") MiB"

  wait_quiet "$kind /users/me"
  log "-- /users/me, $ME_CONNS connections, ${ME_SECS}s"
  res=$(loadgen --scenario me -c "$ME_CONNS" --duration "${ME_SECS}s" --warmup "${WARMUP_SECS}s")
  R[$kind.me]=$res
  verify_runs "$kind"

  wait_quiet "$kind /auth/refresh"
  log "-- /auth/refresh, $REFRESH_CONNS connections, ${REFRESH_SECS}s (each request a real rotation)"
  res=$(loadgen --scenario refresh -c "$REFRESH_CONNS" --duration "${REFRESH_SECS}s" --warmup "${WARMUP_SECS}s" --setup-concurrency 4)
  R[$kind.refresh]=$res

  wait_quiet "$kind argon2 ceiling"
  log "-- argon2 ceiling (server idle)"
  measure_ceiling "$kind"
  wait_quiet "$kind /auth/login"
  log "-- /auth/login, $LOGIN_CONNS connections, ${LOGIN_SECS}s"
  res=$(loadgen --scenario login -c "$LOGIN_CONNS" --duration "${LOGIN_SECS}s" --warmup 2s)
  R[$kind.login]=$res

  log "-- peak RSS: $PEAK_LOGINS concurrent logins (auth_login_attempts raised to 100000 for this run)"
  set_login_attempts 100000
  wait_quiet "$kind login burst"
  peak_run
  R[$kind.peak]=$PEAK_HWM_KIB
  R[$kind.peak_sampled]=$PEAK_SAMPLED_KIB
  R[$kind.peakrun]=$PEAK_RESULT
  log "bench: peak RSS (VmHWM) $(mib "$PEAK_HWM_KIB") MiB, highest sampled VmRSS $(mib "$PEAK_SAMPLED_KIB") MiB"
  sleep 3
  R[$kind.idle_after]=$(rss_kib "$SERVER_PID")
  log "bench: idle RSS after all runs: $(mib "${R[$kind.idle_after]}") MiB"
  big_logins_run "$kind"
  stop_pid "$SERVER_PID" "gatehouse"; SERVER_PID=""
  R[$kind.done]=1
}

pg_answers() { timeout 5 psql -h "$HOST" -p "$1" -U postgres -d postgres -XAtqc 'select 1' >/dev/null 2>&1; }

start_private_pg() {
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [[ -n $PGBIN && -x $PGBIN/initdb ]] || return 1
  local port dir=$WORK/pg
  port=$(free_port) || return 1
  mkdir -p "$dir/sock"
  if [[ $(id -u) = 0 ]]; then chmod 711 "$WORK"; chown -R postgres:postgres "$dir"; fi
  as_pg timeout 60 "$PGBIN/initdb" -D "$dir/data" -U postgres --auth=trust --no-sync -E UTF8 --locale=C.UTF-8 >"$WORK/initdb.log" 2>&1 || return 1
  PRIVATE_PG_DATA=$dir/data
  as_pg timeout 40 "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 30 \
    -o "-p $port -k $dir/sock -c listen_addresses=$HOST" start >/dev/null || return 1
  PG_PORT=$port
  log "bench: started a private PostgreSQL on $HOST:$port (data in $dir, removed on exit)"
}

# ------------------------------------------------------------------------------------------
# Rate limiting (SQLite): /users/me with no limiter, the memory limiter and the Redis limiter
# with points so high that nothing is refused, then a low per-IP limit (BENCH_RL_LOW per
# second): loadgen's connections all come from 127.0.0.1, so the 2xx rate is the limit and the
# rest are 429s. Redis is a private redis-server on a free port, stopped on exit.

start_private_redis() {
  command -v redis-server >/dev/null || return 1
  local port i
  port=$(free_port) || return 1
  redis-server --port "$port" --bind "$HOST" --save '' --appendonly no >"$WORK/redis.log" 2>&1 &
  REDIS_PID=$!
  for i in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/$HOST/$port") 2>/dev/null; then REDIS_PORT=$port; return 0; fi
    alive "$REDIS_PID" || return 1
    sleep 0.1
  done
  return 1
}

ratelimit_runs() {
  local mode res
  log ""
  log "== rate limiting (SQLite, /users/me, $ME_CONNS connections, ${ME_SECS}s each)"
  REDIS_PORT=""
  start_private_redis || log "bench: no redis-server could be started; the Redis run is skipped"
  local high=(RATE_LIMITER_ENABLED=true RATE_LIMITER_POINTS=1000000000 RATE_LIMITER_DURATION=1)
  for mode in off memory redis low; do
    case $mode in
      off) EXTRA_ENV=(RATE_LIMITER_ENABLED=false RATE_LIMITER_REGISTRATION_ENABLED=false) ;;
      memory) EXTRA_ENV=("${high[@]}") ;;
      redis)
        [[ -n $REDIS_PORT ]] || continue
        EXTRA_ENV=("${high[@]}" RATE_LIMITER_STORE=redis REDIS="redis://$HOST:$REDIS_PORT") ;;
      low) EXTRA_ENV=(RATE_LIMITER_ENABLED=true RATE_LIMITER_POINTS="$RL_LOW" RATE_LIMITER_DURATION=1) ;;
    esac
    log "-- limiter: $mode (${EXTRA_ENV[*]})"
    start_server sqlite
    [[ $mode == low ]] || loadgen --scenario me -c 8 --duration 2s >/dev/null
    wait_quiet "rate limiter $mode"
    res=$(loadgen --scenario me -c "$ME_CONNS" --duration "${ME_SECS}s" --warmup "${WARMUP_SECS}s")
    R[rl.$mode]=$res
    stop_pid "$SERVER_PID" "gatehouse"; SERVER_PID=""
  done
  EXTRA_ENV=()
  stop_pid "$REDIS_PID" "redis-server"; REDIS_PID=""
  R[rl.done]=1
}

if [[ $ONLY == ratelimit ]]; then DBS=""; fi
for kind in $DBS; do
  case $kind in
    sqlite) bench_db sqlite ;;
    pg)
      if ! pg_answers "$PG_PORT"; then
        log ""
        log "bench: no PostgreSQL answers on $HOST:$PG_PORT; trying a private one"
        if ! start_private_pg || ! pg_answers "$PG_PORT"; then
          log "bench: SKIPPING PostgreSQL: none answers on $HOST:$PG_PORT and a private one could not be started (apt-get install postgresql)"
          R[pg.skipped]=1
          continue
        fi
      fi
      PG_DB=gatehouse_bench_$$
      PG_DB_PORT=$PG_PORT
      psql_admin "$PG_PORT" "CREATE DATABASE $PG_DB" >/dev/null || die "cannot create database $PG_DB"
      log "bench: PostgreSQL $(psql_admin "$PG_PORT" 'show server_version') on $HOST:$PG_PORT, fresh database $PG_DB" \
          "(fsync=$(psql_admin "$PG_PORT" 'show fsync'), synchronous_commit=$(psql_admin "$PG_PORT" 'show synchronous_commit'))"
      bench_db pg "postgres://postgres@$HOST:$PG_PORT/$PG_DB"
      psql_admin "$PG_PORT" "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null || log "bench: could not drop $PG_DB"
      PG_DB=""
      ;;
    *) die "unknown backend $kind in BENCH_DBS (use sqlite and/or pg)" ;;
  esac
done

if [[ $ONLY == ratelimit || ( -z $ONLY && " ${BENCH_DBS:-sqlite pg} " == *" sqlite "* ) ]]; then ratelimit_runs; fi

# ------------------------------------------------------------------------------------------
# Summary

cell() {  # cell KIND WHICH FIELD DECIMALS
  local r=${R[$1.$2]:-}
  [[ -n $r ]] || { echo "-"; return; }
  fmt "$(field "$3" "$r")" "$4"
}
verdicts() {  # verdicts WHICH FIELD OP TARGET_SQLITE [TARGET_PG] -> "ok/MISS" per backend
  local out="" kind t v
  for kind in sqlite pg; do
    t=$4; [[ $kind == pg && -n ${5:-} ]] && t=$5
    if [[ -n ${R[$kind.$1]:-} ]]; then
      if [[ $2 == _raw ]]; then v=${R[$kind.$1]}; else v=$(field "$2" "${R[$kind.$1]}"); fi
      out+="$(check "$v" "$3" "$t") "
    else out+="- "; fi
  done
  echo "$out"
}
ratio() {  # ratio KIND -> login rps / ceiling in %
  local r=${R[$1.login]:-}
  [[ -n $r ]] || { echo "-"; return; }
  awk -v a="$(field ok_rps "$r")" -v c="${R[$1.ceiling]:-}" 'BEGIN { if (a == "" || c+0 == 0) print "-"; else printf "%.0f", 100 * a / c }'
}
errs() {  # errs KIND WHICH
  local r=${R[$1.$2]:-}
  [[ -n $r ]] || { echo "-"; return; }
  if [[ $(field failed "$r") == 1 ]]; then echo "FAILED"; return; fi
  local e; e=$(field errors "$r"); local s; s=$(field by_status "$r")
  if [[ $e == 0 ]]; then echo 0; else echo "$e ($s; io $(field io_errors "$r"), timeouts $(field timeouts "$r"))"; fi
}

SQL_RATIO=$(ratio sqlite); PG_RATIO=$(ratio pg)
{
  echo "gatehouse benchmark $STAMP ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo '+dirty'))"
  echo "machine: $CORES cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2/1048576 }' /proc/meminfo); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "loadgen: closed loop, keep-alive, one connection per worker, $( [[ $LOADGEN_THREADS == 0 ]] && echo current-thread || echo "$LOADGEN_THREADS-thread") runtime, sharing the cores with the server"
  echo "server: LOGIN_STALL_TIME=0 LOG_LEVEL=warn, default argon2 (m=65536 t=3 p=4), GATEHOUSE_HASH_CONCURRENCY=cores"
  echo "argon2 ceiling = $CORES cores / fastest of $ARGON2_ITERATIONS sequential verifications (argon2id m=65536 t=3 p=4), measured before each login run"
  if [[ ${#NOISY[@]} -gt 0 ]]; then echo "WARNING: the machine was busy before: ${NOISY[*]}"; else echo "machine idle (>= 90%) before every measurement"; fi
  [[ -n ${R[pg.skipped]:-} ]] && echo "PostgreSQL: SKIPPED (none reachable on $HOST and no private one could be started)"
  echo
  printf '%-40s %14s %14s   %-26s %s\n' "figure" "SQLite" "PostgreSQL" "target" "verdict (sqlite pg)"
  printf '%-40s %14s %14s   %-26s %s\n' "----------------------------------------" "--------------" "--------------" "--------------------------" "-------------------"
  printf '%-40s %14s %14s   %-26s %s\n' "/users/me req/s ($ME_CONNS conns, ${ME_SECS}s)" "$(cell sqlite me rps 0)" "$(cell pg me rps 0)" ">= $T_ME_RPS" "$(verdicts me rps '>=' $T_ME_RPS)"
  printf '%-40s %14s %14s   %-26s %s\n' "/users/me p50 ms" "$(cell sqlite me p50_ms 2)" "$(cell pg me p50_ms 2)" "" ""
  printf '%-40s %14s %14s   %-26s %s\n' "/users/me p99 ms" "$(cell sqlite me p99_ms 2)" "$(cell pg me p99_ms 2)" "<= $T_ME_P99" "$(verdicts me p99_ms '<=' $T_ME_P99)"
  for v in jwt static cookie; do
    printf '%-40s %14s %14s   %-26s %s\n' "/auth/verify req/s, $v ($VERIFY_CONNS conns)" "$(cell sqlite verify_$v rps 0)" "$(cell pg verify_$v rps 0)" \
      "$([[ $v == jwt ]] && echo ">= $T_VERIFY_RPS")" "$([[ $v == jwt ]] && verdicts verify_jwt rps '>=' $T_VERIFY_RPS)"
    printf '%-40s %14s %14s\n' "  p99 ms" "$(cell sqlite verify_$v p99_ms 2)" "$(cell pg verify_$v p99_ms 2)"
  done
  printf '%-40s %14s %14s   %-26s %s\n' "/auth/refresh req/s ($REFRESH_CONNS conns, ${REFRESH_SECS}s)" "$(cell sqlite refresh rps 0)" "$(cell pg refresh rps 0)" ">= $T_REFRESH_SQLITE sqlite, >= $T_REFRESH_PG pg" "$(verdicts refresh rps '>=' $T_REFRESH_SQLITE $T_REFRESH_PG)"
  printf '%-40s %14s %14s   %-26s %s\n' "/auth/refresh p50 ms" "$(cell sqlite refresh p50_ms 2)" "$(cell pg refresh p50_ms 2)" "" ""
  printf '%-40s %14s %14s   %-26s %s\n' "/auth/refresh p99 ms" "$(cell sqlite refresh p99_ms 2)" "$(cell pg refresh p99_ms 2)" "" ""
  printf '%-40s %14s %14s   %-26s %s\n' "/auth/login req/s ($LOGIN_CONNS conns, ${LOGIN_SECS}s)" "$(cell sqlite login ok_rps 2)" "$(cell pg login ok_rps 2)" "" ""
  printf '%-40s %14s %14s\n' "argon2 verify ms: fastest / median" \
    "$(fmt "${R[sqlite.verify_ms]:-}" 0) / $(fmt "${R[sqlite.verify_median_ms]:-}" 0)" "$(fmt "${R[pg.verify_ms]:-}" 0) / $(fmt "${R[pg.verify_median_ms]:-}" 0)"
  printf '%-40s %14s %14s   %-26s %s\n' "argon2 ceiling logins/s" "$(fmt "${R[sqlite.ceiling]:-}" 2)" "$(fmt "${R[pg.ceiling]:-}" 2)" "" ""
  printf '%-40s %14s %14s\n' "  ($CORES verifications at once, per s)" "$(fmt "${R[sqlite.parallel]:-}" 2)" "$(fmt "${R[pg.parallel]:-}" 2)"
  printf '%-40s %13s%% %13s%%   %-26s %s\n' "login / ceiling" "$SQL_RATIO" "$PG_RATIO" ">= $T_LOGIN_RATIO%" "$(check "$SQL_RATIO" '>=' $T_LOGIN_RATIO) $(check "$PG_RATIO" '>=' $T_LOGIN_RATIO)"
  printf '%-40s %14s %14s   %-26s %s\n' "/auth/login p50 / p99 ms" "$(cell sqlite login p50_ms 0) / $(cell sqlite login p99_ms 0)" "$(cell pg login p50_ms 0) / $(cell pg login p99_ms 0)" "" ""
  printf '%-40s %14s %14s   %-26s %s\n' "idle RSS MiB (after warm-up)" "$(mib "${R[sqlite.idle]:-}")" "$(mib "${R[pg.idle]:-}")" "<= $T_IDLE_MIB" \
    "$(check "$(mib "${R[sqlite.idle]:-}")" '<=' $T_IDLE_MIB) $(check "$(mib "${R[pg.idle]:-}")" '<=' $T_IDLE_MIB)"
  printf '%-40s %14s %14s   %-26s %s\n' "peak RSS MiB ($PEAK_LOGINS concurrent logins)" "$(mib "${R[sqlite.peak]:-}")" "$(mib "${R[pg.peak]:-}")" "<= $T_PEAK_MIB" \
    "$(check "$(mib "${R[sqlite.peak]:-}")" '<=' $T_PEAK_MIB) $(check "$(mib "${R[pg.peak]:-}")" '<=' $T_PEAK_MIB)"
  printf '%-40s %14s %14s\n' "  (highest sampled VmRSS MiB)" "$(mib "${R[sqlite.peak_sampled]:-}")" "$(mib "${R[pg.peak_sampled]:-}")"
  printf '%-40s %14s %14s\n' "idle RSS MiB after all runs" "$(mib "${R[sqlite.idle_after]:-}")" "$(mib "${R[pg.idle_after]:-}")"
  printf '%-40s %14s %14s   %-26s %s\n' "peak RSS MiB ($BIG_LOGINS logins, ${BIG_PASSWORD_BYTES} B pw)" "$(mib "${R[sqlite.big_peak]:-}")" "$(mib "${R[pg.big_peak]:-}")" "<= $T_PEAK_MIB" \
    "$(check "$(mib "${R[sqlite.big_peak]:-}")" '<=' $T_PEAK_MIB) $(check "$(mib "${R[pg.big_peak]:-}")" '<=' $T_PEAK_MIB)"
  printf '%-40s %14s %14s\n' "  RSS MiB 3 s after them" "$(mib "${R[sqlite.big_after]:-}")" "$(mib "${R[pg.big_after]:-}")"
  printf '%-40s %14s %14s\n' "  answers by status" "${R[sqlite.big_status]:--}" "${R[pg.big_status]:--}"
  printf '%-40s %14s %14s\n' "server CPU % of a core: me/refresh/login" \
    "$(cell sqlite me server_cpu_pct 0)/$(cell sqlite refresh server_cpu_pct 0)/$(cell sqlite login server_cpu_pct 0)" \
    "$(cell pg me server_cpu_pct 0)/$(cell pg refresh server_cpu_pct 0)/$(cell pg login server_cpu_pct 0)"
  printf '%-40s %14s %14s\n' "server CPU us per answer: me/refresh" \
    "$(cell sqlite me server_cpu_us_per_req 0)/$(cell sqlite refresh server_cpu_us_per_req 0)" \
    "$(cell pg me server_cpu_us_per_req 0)/$(cell pg refresh server_cpu_us_per_req 0)"
  printf '%-40s %14s %14s\n' "whole-machine CPU %: me/refresh/login" \
    "$(cell sqlite me machine_cpu_pct 0)/$(cell sqlite refresh machine_cpu_pct 0)/$(cell sqlite login machine_cpu_pct 0)" \
    "$(cell pg me machine_cpu_pct 0)/$(cell pg refresh machine_cpu_pct 0)/$(cell pg login machine_cpu_pct 0)"
  printf '%-40s %14s %14s\n' "loadgen CPU % of a core: me/refresh" \
    "$(cell sqlite me loadgen_cpu_pct 0)/$(cell sqlite refresh loadgen_cpu_pct 0)" \
    "$(cell pg me loadgen_cpu_pct 0)/$(cell pg refresh loadgen_cpu_pct 0)"
  if [[ -n ${R[rl.done]:-} ]]; then
    echo
    rl_delta() { awk -v a="$(field rps "${R[rl.off]:-}")" -v b="$(field rps "${R[rl.$1]:-}")" 'BEGIN { if (a+0 == 0 || b == "") print "-"; else printf "%+.1f%%", 100 * (b - a) / a }'; }
    printf '%-40s %14s %14s   %-26s\n' "rate limiter (SQLite, /users/me)" "req/s" "p99 ms" "vs off"
    printf '%-40s %14s %14s   %-26s\n' "  off (no limiter)" "$(cell rl off rps 0)" "$(cell rl off p99_ms 2)" ""
    printf '%-40s %14s %14s   %-26s\n' "  memory, nothing refused" "$(cell rl memory rps 0)" "$(cell rl memory p99_ms 2)" "$(rl_delta memory) (within -10% expected)"
    printf '%-40s %14s %14s   %-26s\n' "  redis, nothing refused" "$(cell rl redis rps 0)" "$(cell rl redis p99_ms 2)" "$(rl_delta redis) (within -30% expected)"
    printf '%-40s %14s %14s   %-26s\n' "  low limit $RL_LOW/s: 2xx per s" "$(cell rl low ok_rps 1)" "" "expected ~$RL_LOW"
    printf '%-40s %14s\n' "  low limit: answers by status" "$(field by_status "${R[rl.low]:-}")"
  fi
  echo
  echo "errors (any non-2xx, I/O error or timeout):"
  for kind in sqlite pg; do
    [[ -n ${R[$kind.done]:-} ]] || continue
    echo "  $kind: verify $(errs "$kind" verify_jwt)/$(errs "$kind" verify_static)/$(errs "$kind" verify_cookie) (jwt/static/cookie)"
    echo "  $kind: me $(errs "$kind" me); refresh $(errs "$kind" refresh); login $(errs "$kind" login); $PEAK_LOGINS-login burst $(errs "$kind" peakrun)"
  done
} >"$WORK/summary.txt"

{
  cat "$WORK/summary.txt"
  echo
  echo "==================== details ===================="
  cat "$DETAILS"
} >"$RESULT_FILE"

echo >&2
cat "$WORK/summary.txt"
echo
echo "written to ${RESULT_FILE#$ROOT/}"
