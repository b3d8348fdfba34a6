#!/usr/bin/env bash
# End-to-end interop suite: gatehouse next to a real Directus 12.4.0 on one database and one
# SECRET, on SQLite and on PostgreSQL; the official @directus/sdk as a client; the Directus
# Data Studio logging in through gatehouse behind nginx, in headless Chromium; and a page on
# another origin calling gatehouse with CORS on and off (e2e/cors.mjs), in the same browser;
# the account flows (reset, invite, registration) mailing an SMTP sink (e2e/accounts.mjs); LDAP
# logins against a private OpenLDAP over ldap://, StartTLS and ldaps:// (e2e/ldap.mjs); and,
# on PostgreSQL, two gatehouses sharing one rate limit through a private Redis that is
# stopped and started again mid-run (e2e/ratelimit.mjs); SAML logins through a real IdP in
# Chromium, and hostile responses to the ACS (e2e/saml.mjs); and, on SQLite, single sign-on
# through a real OpenID Provider (e2e/oidc-provider.mjs, npm oidc-provider) with the openid
# and oauth2 drivers, signed in at the provider's own pages in Chromium, plus attacks on the
# callback (e2e/sso.mjs). Operations: a private nginx running
# config/nginx-forward-auth.conf (auth_request against GET /auth/verify) in front of an echo
# application (e2e/forward-auth.mjs, e2e/echo-upstream.mjs; SQLite phase); on PostgreSQL,
# three gatehouses on one database: a session across nodes, 30 concurrent refreshes, a role
# change within GATEHOUSE_USER_CACHE_TTL (e2e/nodes.mjs); then their /metrics, parsed by the
# Python prometheus_client parser (e2e/metrics.mjs, e2e/promparse.py).
#
#   scripts/e2e.sh            # everything; exits non-zero on any failure
#
# Installs what it needs and reuses it between runs:
#   - Debian packages nginx, chromium, redis-server, slapd and ldap-utils, when missing (apt-get);
#   - npm packages pinned in e2e/package.json (+ lock) into $GATEHOUSE_E2E_CACHE
#     (default /var/cache/gatehouse-e2e), reinstalled only when the pins change;
#   - a Python venv with prometheus_client (pinned below) in $GATEHOUSE_E2E_CACHE/venv;
#   - the release build of gatehouse in $GATEHOUSE_E2E_CACHE/target (or $GATEHOUSE_BIN).
# Every server listens on 127.0.0.1 with its own port and temp folder, is started with setsid,
# and is stopped by its PID on exit. Artifacts (screenshot, logs) go to target/e2e/.
#
# Environment: GATEHOUSE_E2E_CACHE, GATEHOUSE_BIN, E2E_PORT_BASE (default 28400),
# E2E_PHASES (default "sqlite pg"), E2E_SKIP_BROWSER=1, E2E_KEEP=1 (keep the temp folder),
# E2E_SKIP_ROOTFS=1 (skip the last step: the Dockerfile's runtime stage run in a debootstrap root
# filesystem, scripts/rootfs-check.sh, and config/compose.yaml checked, scripts/compose-check.sh).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${GATEHOUSE_E2E_CACHE:-/var/cache/gatehouse-e2e}
ART=$ROOT/target/e2e
BASE=${E2E_PORT_BASE:-28400}
D_PORT=$((BASE + 5)) G_PORT=$((BASE + 6)) N_PORT=$((BASE + 30))
SECRET="e2e-shared-secret-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
KEY="e2e-key-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
ADMIN_EMAIL=admin@example.com
ADMIN_PASSWORD=E2e-admin-passw0rd
METRICS_TOKEN="e2e-metrics-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
PROM_CLIENT=prometheus_client==0.26.0
T_START=$(date +%s)

log() { echo "e2e: $*"; }
die() { echo "e2e: ERROR: $*" >&2; exit 1; }
secs() { echo $(( $(date +%s) - $1 )); }

RUN=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-e2e.XXXXXX")
chmod 755 "$RUN"   # PostgreSQL's and nginx's users must be able to enter it
mkdir -p "$ART"
SUITES=$RUN/suites
PIDS=()        # process-group leaders we started (setsid), stopped in reverse order
NGINX_PIDFILES=()   # every nginx we started (each deletes its pid file on exit)
PG_URL=
PG_STOP=

# A killed child lingers as a zombie until PID 1 reaps it: kill -0 still succeeds then.
alive_pid() { local s; s=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $s != Z* ]]; }

stop_pid() {
  local pid=$1 i
  alive_pid "$pid" || return 0
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do alive_pid "$pid" || return 0; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
}

stop_nginx() {
  local f pid i
  for f in "${NGINX_PIDFILES[@]}"; do
    [[ -f $f ]] || continue
    pid=$(cat "$f")   # read first: nginx deletes its pid file on exit
    kill -QUIT "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do alive_pid "$pid" || break; sleep 0.1; done
    alive_pid "$pid" && kill -KILL "$pid" 2>/dev/null || true
  done
  NGINX_PIDFILES=()
}

stop_all() {
  stop_nginx
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[$i]}"; done
  PIDS=()
}

cleanup() {
  local rc=$?
  stop_all
  if [[ -n $LDAP_DIR ]]; then GH_LDAP_DIR=$LDAP_DIR "$ROOT/scripts/ldap.sh" stop || true; fi
  if [[ -n $PG_URL ]]; then "$ROOT/scripts/postgres.sh" drop "$PG_URL" || true; fi
  if [[ -n $PG_STOP ]]; then "$ROOT/scripts/postgres.sh" stop || true; fi
  if [[ $rc != 0 ]]; then
    # Keep the servers' logs for the artifact folder.
    find "$RUN" -name '*.log' -size -5M -exec cp --parents {} "$ART/" \; 2>/dev/null || true
    log "logs of this run copied to $ART$RUN"
  fi
  [[ -n ${E2E_KEEP:-} ]] || rm -rf "$RUN"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start NAME LOGFILE CMD...: runs CMD in its own session; its PID joins PIDS.
start() {
  local name=$1 logf=$2; shift 2
  setsid "$@" >"$logf" 2>&1 </dev/null &
  PIDS+=($!)
  log "$name started (pid $!)"
}

# wait_http NAME URL SECONDS LOGFILE [PID]: polls until the URL answers 2xx; gives up early
# when PID has exited.
wait_http() {
  local name=$1 url=$2 limit=$3 logf=$4 pid=${5:-} t0; t0=$(date +%s)
  while (( $(date +%s) - t0 < limit )); do
    if curl -sf -o /dev/null --max-time 2 "$url"; then log "$name answers ($(secs "$t0") s)"; return 0; fi
    if [[ -n $pid ]] && ! alive_pid "$pid"; then tail -n 40 "$logf" >&2 || true; die "$name exited"; fi
    sleep 0.3
  done
  tail -n 40 "$logf" >&2 || true
  die "$name did not answer $url within $limit s"
}

# ------------------------------------------------------------------ tools
install_tools() {
  local t0; t0=$(date +%s)
  local missing=()
  [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
  [[ -x /usr/bin/chromium ]] || missing+=(chromium)
  command -v curl >/dev/null || missing+=(curl)
  command -v redis-server >/dev/null || missing+=(redis-server)
  [[ -x /usr/sbin/slapd ]] || missing+=(slapd)
  command -v ldapmodify >/dev/null || missing+=(ldap-utils)
  python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
  if (( ${#missing[@]} )); then
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
  fi
  command -v node >/dev/null || die "node (>= 20) is needed"
  local major; major=$(node -p 'process.versions.node.split(".")[0]')
  (( major >= 20 )) || die "node $(node -v) is too old: Directus 12 needs 20 or newer"

  # npm packages: reinstalled only when e2e/package.json or its lock file change.
  mkdir -p "$CACHE"
  local stamp; stamp=$(cat "$ROOT/e2e/package.json" "$ROOT/e2e/package-lock.json" 2>/dev/null | sha256sum | cut -c1-16)
  if [[ ! -f $CACHE/.stamp || $(cat "$CACHE/.stamp") != "$stamp" || ! -d $CACHE/node_modules/directus ]]; then
    log "installing npm packages into $CACHE (first run: several minutes, native modules build from source)"
    cp "$ROOT/e2e/package.json" "$CACHE/package.json"
    if [[ -f $ROOT/e2e/package-lock.json ]]; then
      cp "$ROOT/e2e/package-lock.json" "$CACHE/package-lock.json"
      (cd "$CACHE" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed"
    else
      (cd "$CACHE" && npm install --no-audit --no-fund --loglevel=error) || die "npm install failed"
    fi
    echo "$stamp" >"$CACHE/.stamp"
  fi
  # ESM resolves packages from the importing file's folder (NODE_PATH is ignored): the suites
  # run from a copy in the temp folder, next to a link to the cache's node_modules.
  mkdir -p "$SUITES"
  cp "$ROOT"/e2e/*.mjs "$ROOT"/e2e/*.py "$SUITES/"
  ln -sfn "$CACHE/node_modules" "$RUN/node_modules"

  if [[ -z ${GATEHOUSE_BIN:-} ]]; then
    log "building gatehouse (release, feature saml) in $CACHE/target"
    "$ROOT/scripts/saml-deps.sh" || die "cannot install the SAML build dependencies"
    (cd "$ROOT" && CARGO_TARGET_DIR=$CACHE/target cargo build --release --locked --quiet --features saml) || die "cargo build failed"
    GATEHOUSE_BIN=$CACHE/target/release/gatehouse
  fi
  [[ -x $GATEHOUSE_BIN ]] || die "no gatehouse binary at $GATEHOUSE_BIN"

  # The Prometheus text-format parser for e2e/metrics.mjs: reinstalled only when the pin changes.
  VENV=$CACHE/venv
  if [[ ! -x $VENV/bin/python || $(cat "$VENV/.pin" 2>/dev/null) != "$PROM_CLIENT" ]]; then
    log "installing $PROM_CLIENT into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV" || die "python3 -m venv failed"
    "$VENV/bin/pip" install -q --disable-pip-version-check "$PROM_CLIENT" || die "pip install $PROM_CLIENT failed"
    echo "$PROM_CLIENT" >"$VENV/.pin"
  fi
  log "tools ready ($(secs "$t0") s)"
}

# ------------------------------------------------------------------ servers
DIRECTUS_CLI=
# Environment of a Directus process (plus the DB settings of the phase); env -i keeps the
# caller's variables (CI's, cargo's) out.
directus_env() {
  D_ENV=(PATH="$PATH" HOME="$RUN" NODE_ENV=production
    HOST=127.0.0.1 PORT="$D_PORT" PUBLIC_URL="http://127.0.0.1:$N_PORT"
    KEY="$KEY" SECRET="$SECRET" ADMIN_EMAIL="$ADMIN_EMAIL" ADMIN_PASSWORD="$ADMIN_PASSWORD"
    LOGIN_STALL_TIME=20 ACCESS_TOKEN_TTL=35s LOG_LEVEL=warn LOG_STYLE=raw
    TELEMETRY=false PROJECT_OWNER_ENABLED=false CACHE_ENABLED=false RATE_LIMITER_ENABLED=false
    STORAGE_LOCATIONS=local STORAGE_LOCAL_ROOT="$RUN/uploads" EXTENSIONS_PATH="$RUN/extensions")
}

# Environment of gatehouse: the same SECRET, PUBLIC_URL and token lifetime as Directus.
gatehouse_env() {
  G_ENV=(PATH="$PATH" HOME="$RUN" HOST=127.0.0.1 PORT="$G_PORT" PUBLIC_URL="http://127.0.0.1:$N_PORT"
    SECRET="$SECRET" LOGIN_STALL_TIME=20 ACCESS_TOKEN_TTL=35s LOG_LEVEL=info LOG_STYLE=raw)
}

start_nginx() {   # $1 = Directus port, $2 = gatehouse port
  local dir=$RUN/nginx
  mkdir -p "$dir/logs" "$dir/tmp"; chmod 0777 "$dir/tmp"
  cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 256; }
http {
  access_log $dir/logs/access.log;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path       $dir/tmp/proxy;
  fastcgi_temp_path     $dir/tmp/fastcgi;
  uwsgi_temp_path       $dir/tmp/uwsgi;
  scgi_temp_path        $dir/tmp/scgi;
  client_max_body_size 10m;
  upstream directus  { server 127.0.0.1:$1; }
  upstream gatehouse { server 127.0.0.1:$2; }
  server {
    listen 127.0.0.1:$N_PORT;
    proxy_http_version 1.1;
    proxy_set_header Host \$http_host;
    proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto \$scheme;
    # Authentication: gatehouse.
    location = /auth  { proxy_pass http://gatehouse; }
    location /auth/   { proxy_pass http://gatehouse; }
    # Everything else, the Data Studio included: Directus.
    location / { proxy_pass http://directus; }
  }
}
EOF
  /usr/sbin/nginx -e "$dir/logs/error.log" -p "$dir" -c "$dir/nginx.conf" -t -q || die "nginx config test failed"
  /usr/sbin/nginx -e "$dir/logs/error.log" -p "$dir" -c "$dir/nginx.conf" || die "nginx did not start"
  NGINX_PIDFILES+=("$dir/nginx.pid")
  wait_http nginx "http://127.0.0.1:$N_PORT/server/ping" 10 "$dir/logs/error.log"
}

TOTAL_PASS=0 TOTAL_FAIL=0 FAILED_SUITES=()
# run_suite NAME LOGFILE CMD...: runs one node suite, echoes its output, adds up its counts.
run_suite() {
  local name=$1 out=$2; shift 2
  local rc=0 t0; t0=$(date +%s)
  log "suite $name"
  if (cd "$SUITES" && timeout 600 "$@") 2>&1 | tee "$out"; then rc=0; else rc=$?; fi
  local line; line=$(grep -E '^[a-z0-9-]+: [0-9]+ passed, [0-9]+ failed$' "$out" | tail -1 || true)
  if [[ -z $line ]]; then
    TOTAL_FAIL=$((TOTAL_FAIL + 1)); FAILED_SUITES+=("$name (no result line)")
  else
    local p f; p=$(sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed/\1/' <<<"$line"); f=$(sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed/\2/' <<<"$line")
    TOTAL_PASS=$((TOTAL_PASS + p)); TOTAL_FAIL=$((TOTAL_FAIL + f))
    (( f == 0 && rc == 0 )) || FAILED_SUITES+=("$name")
  fi
  log "suite $name done in $(secs "$t0") s"
}

# cors_suite NAME DIR: two more gatehouses, each on its own SQLite file, CORS on (for a page on
# 127.0.0.1:PAGE) and off; e2e/cors.mjs serves that page and drives Chromium against both.
cors_suite() {
  local name=$1 dir=$2 on=$((BASE + 21)) off=$((BASE + 22)) page=$((BASE + 23)) port
  for port in $on $off $page; do
    port_free "$port" || die "port $port on 127.0.0.1 is taken (set E2E_PORT_BASE)"
  done
  gatehouse_env
  local own=(ADMIN_EMAIL="$ADMIN_EMAIL" ADMIN_PASSWORD="$ADMIN_PASSWORD" DB_CLIENT=sqlite3)
  start gatehouse-cors "$dir/gatehouse-cors.log" env -i "${G_ENV[@]}" "${own[@]}" PORT="$on" \
    DB_FILENAME="$dir/cors-on/gatehouse.db" CORS_ENABLED=true CORS_ORIGIN="http://127.0.0.1:$page" \
    CORS_CREDENTIALS=true "$GATEHOUSE_BIN"
  wait_http gatehouse-cors "http://127.0.0.1:$on/server/ping" 30 "$dir/gatehouse-cors.log" "${PIDS[-1]}"
  start gatehouse-nocors "$dir/gatehouse-nocors.log" env -i "${G_ENV[@]}" "${own[@]}" PORT="$off" \
    DB_FILENAME="$dir/cors-off/gatehouse.db" CORS_ENABLED=false "$GATEHOUSE_BIN"
  wait_http gatehouse-nocors "http://127.0.0.1:$off/server/ping" 30 "$dir/gatehouse-nocors.log" "${PIDS[-1]}"
  run_suite "cors-$name" "$dir/cors.out" env G_CORS_URL="http://127.0.0.1:$on" \
    G_NOCORS_URL="http://127.0.0.1:$off" PAGE_PORT="$page" ADMIN_EMAIL="$ADMIN_EMAIL" \
    ADMIN_PASSWORD="$ADMIN_PASSWORD" LABEL="$name" node cors.mjs
}

# accounts_suite NAME DIR: one more gatehouse (own SQLite file, the same SECRET) that mails an
# SMTP sink which e2e/accounts.mjs starts on SMTP; APP stands for the site at PUBLIC_URL (the
# suite serves it). The suite also sends the same failing requests to this phase's Directus.
accounts_suite() {
  local name=$1 dir=$2 ga=$((BASE + 27)) smtp=$((BASE + 28)) app=$((BASE + 29)) port
  for port in $ga $smtp $app; do
    port_free "$port" || die "port $port on 127.0.0.1 is taken (set E2E_PORT_BASE)"
  done
  gatehouse_env
  start gatehouse-accounts "$dir/gatehouse-accounts.log" env -i "${G_ENV[@]}" PORT="$ga" \
    ADMIN_EMAIL="$ADMIN_EMAIL" ADMIN_PASSWORD="$ADMIN_PASSWORD" DB_CLIENT=sqlite3 \
    DB_FILENAME="$dir/accounts/gatehouse.db" PUBLIC_URL="http://127.0.0.1:$app/cms/" \
    EMAIL_TRANSPORT=smtp EMAIL_SMTP_HOST=127.0.0.1 EMAIL_SMTP_PORT="$smtp" EMAIL_SMTP_IGNORE_TLS=true \
    PASSWORD_RESET_URL_ALLOW_LIST="http://127.0.0.1:$app/reset" \
    USER_INVITE_URL_ALLOW_LIST="http://127.0.0.1:$app/accept" \
    USER_REGISTER_URL_ALLOW_LIST="http://127.0.0.1:$app/verify" \
    RATE_LIMITER_REGISTRATION_ENABLED=false "$GATEHOUSE_BIN"
  wait_http gatehouse-accounts "http://127.0.0.1:$ga/server/ping" 30 "$dir/gatehouse-accounts.log" "${PIDS[-1]}"
  run_suite "accounts-$name" "$dir/accounts.out" env GA_URL="http://127.0.0.1:$ga" \
    D_URL="http://127.0.0.1:$D_PORT" SMTP_PORT="$smtp" APP_PORT="$app" SECRET="$SECRET" \
    ADMIN_EMAIL="$ADMIN_EMAIL" ADMIN_PASSWORD="$ADMIN_PASSWORD" LABEL="$name" node accounts.mjs
}

# ldap_suite NAME DIR: a private slapd (scripts/ldap.sh, in DIR/ldap, its own ports) and one
# more gatehouse (own SQLite file) with three ldap providers on it: plain ldap://, StartTLS and
# ldaps:// (both checked against the directory's test CA). e2e/ldap.mjs changes the directory
# with ldapmodify, and stops, restarts, pauses and resumes slapd through scripts/ldap.sh.
LDAP_DIR=
ldap_suite() {
  local name=$1 dir=$2 gl=$((BASE + 40)) lp=$((BASE + 41)) lsp=$((BASE + 42)) port
  for port in $gl $lp $lsp; do
    port_free "$port" || die "port $port on 127.0.0.1 is taken (set E2E_PORT_BASE)"
  done
  LDAP_DIR=$dir/ldap
  export GH_LDAP_DIR=$LDAP_DIR GH_LDAP_PORT=$lp GH_LDAPS_PORT=$lsp
  "$ROOT/scripts/ldap.sh" start || die "slapd did not start"
  local ca; ca=$("$ROOT/scripts/ldap.sh" ca)
  local role; role=$(cat /proc/sys/kernel/random/uuid)
  local p common_ldap=()
  for p in CORP CORPTLS CORPSSL; do
    common_ldap+=(AUTH_${p}_DRIVER=ldap AUTH_${p}_BIND_DN="cn=service,dc=example,dc=org"
      AUTH_${p}_BIND_PASSWORD=servicepw AUTH_${p}_USER_DN="ou=people,dc=example,dc=org"
      AUTH_${p}_USER_ATTRIBUTE=uid AUTH_${p}_CLIENT__TIMEOUT=2000 AUTH_${p}_CLIENT__CONNECT_TIMEOUT=2000)
  done
  gatehouse_env
  start gatehouse-ldap "$dir/gatehouse-ldap.log" env -i "${G_ENV[@]}" PORT="$gl" \
    ADMIN_EMAIL="$ADMIN_EMAIL" ADMIN_PASSWORD="$ADMIN_PASSWORD" DB_CLIENT=sqlite3 \
    DB_FILENAME="$dir/ldap-gatehouse/gatehouse.db" AUTH_PROVIDERS=corp,corptls,corpssl "${common_ldap[@]}" \
    AUTH_CORP_CLIENT_URL="ldap://127.0.0.1:$lp" AUTH_CORP_GROUP_DN="ou=groups,dc=example,dc=org" \
    AUTH_CORP_DEFAULT_ROLE_ID="$role" AUTH_CORP_SYNC_USER_INFO=true \
    AUTH_CORPTLS_CLIENT_URL="ldap://127.0.0.1:$lp" AUTH_CORPTLS_CLIENT__START_TLS=true \
    AUTH_CORPTLS_CLIENT__TLS_OPTIONS__CA_FILE="$ca" \
    AUTH_CORPSSL_CLIENT_URL="ldaps://127.0.0.1:$lsp" AUTH_CORPSSL_CLIENT__TLS_OPTIONS__CA_FILE="$ca" \
    "$GATEHOUSE_BIN"
  wait_http gatehouse-ldap "http://127.0.0.1:$gl/server/ping" 30 "$dir/gatehouse-ldap.log" "${PIDS[-1]}"
  run_suite "ldap-$name" "$dir/ldap.out" env G_URL="http://127.0.0.1:$gl" LDAP_URL="ldap://127.0.0.1:$lp" \
    LDAP_SH="$ROOT/scripts/ldap.sh" LDAP_LOG="$LDAP_DIR/slapd.log" DEFAULT_ROLE="$role" \
    ADMIN_EMAIL="$ADMIN_EMAIL" ADMIN_PASSWORD="$ADMIN_PASSWORD" LABEL="$name" node ldap.mjs
  "$ROOT/scripts/ldap.sh" stop || true
  LDAP_DIR=
}

# rootfs_suite: the Dockerfile's runtime stage in a debootstrap root filesystem (scripts/
# rootfs-check.sh; built once, outside the suite timeout, then cached), and config/compose.yaml
# against the variables gatehouse reads (scripts/compose-check.sh).
rootfs_suite() {
  local port=$((BASE + 46))
  port_free "$port" || die "port $port on 127.0.0.1 is taken (set E2E_PORT_BASE)"
  if ROOTFS_BUILD_ONLY=1 "$ROOT/scripts/rootfs-check.sh" "$GATEHOUSE_BIN"; then
    run_suite rootfs "$RUN/rootfs.out" env ROOTFS_PORT="$port" "$ROOT/scripts/rootfs-check.sh" "$GATEHOUSE_BIN"
  else
    TOTAL_FAIL=$((TOTAL_FAIL + 1)); FAILED_SUITES+=("rootfs (root filesystem build)")
  fi
  run_suite compose "$RUN/compose.out" "$ROOT/scripts/compose-check.sh"
}

# ratelimit_suite NAME DIR DB-SETTINGS...: two more gatehouses on the phase's database, sharing
# the per-IP limit through a private redis-server started here; e2e/ratelimit.mjs stops that
# Redis mid-run and starts a new one on the same port.
ratelimit_suite() {
  local name=$1 dir=$2; shift 2
  local a=$((BASE + 24)) b=$((BASE + 25)) r=$((BASE + 26)) port i points=10
  for port in $a $b $r; do
    port_free "$port" || die "port $port on 127.0.0.1 is taken (set E2E_PORT_BASE)"
  done
  start redis "$dir/redis.log" redis-server --port "$r" --bind 127.0.0.1 --save '' --appendonly no
  for i in $(seq 1 100); do redis-cli -p "$r" ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis-cli -p "$r" ping >/dev/null 2>&1 || die "redis-server did not start on $r"
  gatehouse_env
  local rl=(RATE_LIMITER_ENABLED=true RATE_LIMITER_POINTS=$points RATE_LIMITER_DURATION=60
    RATE_LIMITER_STORE=redis REDIS="redis://127.0.0.1:$r" IP_TRUST_PROXY=true)
  start gatehouse-rl-a "$dir/gatehouse-rl-a.log" env -i "${G_ENV[@]}" "$@" "${rl[@]}" PORT="$a" "$GATEHOUSE_BIN"
  wait_http gatehouse-rl-a "http://127.0.0.1:$a/server/ping" 30 "$dir/gatehouse-rl-a.log" "${PIDS[-1]}"
  start gatehouse-rl-b "$dir/gatehouse-rl-b.log" env -i "${G_ENV[@]}" "$@" "${rl[@]}" PORT="$b" "$GATEHOUSE_BIN"
  wait_http gatehouse-rl-b "http://127.0.0.1:$b/server/ping" 30 "$dir/gatehouse-rl-b.log" "${PIDS[-1]}"
  run_suite "ratelimit-$name" "$dir/ratelimit.out" env G_A_URL="http://127.0.0.1:$a" \
    G_B_URL="http://127.0.0.1:$b" REDIS_PORT="$r" RL_POINTS="$points" ADMIN_EMAIL="$ADMIN_EMAIL" \
    ADMIN_PASSWORD="$ADMIN_PASSWORD" LABEL="$name" node ratelimit.mjs
}

# What every gatehouse of the operations suites serves besides: /metrics for METRICS_TOKEN.
METRICS_ENV=(METRICS_ENABLED=true METRICS_TOKENS="$METRICS_TOKEN")

# forward_auth_suite NAME DIR: one more gatehouse (own SQLite file, FORWARD_AUTH_PUBLIC_PATHS)
# behind a private nginx that runs config/nginx-forward-auth.conf with only its addresses
# changed, in front of e2e/echo-upstream.mjs; e2e/forward-auth.mjs drives it.
forward_auth_suite() {
  local name=$1 dir=$2 n=$((BASE + 50)) g=$((BASE + 51)) u=$((BASE + 52)) port
  for port in $n $g $u; do
    port_free "$port" || die "port $port on 127.0.0.1 is taken (set E2E_PORT_BASE)"
  done
  gatehouse_env
  start gatehouse-fa "$dir/gatehouse-fa.log" env -i "${G_ENV[@]}" "${METRICS_ENV[@]}" PORT="$g" \
    ADMIN_EMAIL="$ADMIN_EMAIL" ADMIN_PASSWORD="$ADMIN_PASSWORD" DB_CLIENT=sqlite3 \
    DB_FILENAME="$dir/fa/gatehouse.db" PUBLIC_URL="http://127.0.0.1:$n" \
    FORWARD_AUTH_PUBLIC_PATHS=/public "$GATEHOUSE_BIN"
  wait_http gatehouse-fa "http://127.0.0.1:$g/server/ping" 30 "$dir/gatehouse-fa.log" "${PIDS[-1]}"
  start echo-upstream "$dir/echo-upstream.log" node "$SUITES/echo-upstream.mjs" "$u"
  wait_http echo-upstream "http://127.0.0.1:$u/" 10 "$dir/echo-upstream.log" "${PIDS[-1]}"

  # The shipped example, its upstream addresses and listener pointed at this run's ports.
  local nd=$dir/nginx-fa conf=$ROOT/config/nginx-forward-auth.conf want
  mkdir -p "$nd/logs" "$nd/tmp"; chmod 0777 "$nd/tmp"
  sed -e "s/127\.0\.0\.1:8055;/127.0.0.1:$g;/" -e "s/127\.0\.0\.1:3000;/127.0.0.1:$u;/" \
    -e "s/listen 443 ssl;/listen 127.0.0.1:$n;/" "$conf" >"$nd/site.conf"
  for want in "server 127.0.0.1:$g;" "server 127.0.0.1:$u;" "listen 127.0.0.1:$n;"; do
    grep -qF "$want" "$nd/site.conf" || die "$conf changed shape: no place for '$want'"
  done
  cat >"$nd/nginx.conf" <<NGINX
worker_processes 1;
pid $nd/nginx.pid;
error_log $nd/logs/error.log warn;
events { worker_connections 256; }
http {
  access_log $nd/logs/access.log;
  client_body_temp_path $nd/tmp/body;
  proxy_temp_path       $nd/tmp/proxy;
  fastcgi_temp_path     $nd/tmp/fastcgi;
  uwsgi_temp_path       $nd/tmp/uwsgi;
  scgi_temp_path        $nd/tmp/scgi;
  include $nd/site.conf;
}
NGINX
  /usr/sbin/nginx -e "$nd/logs/error.log" -p "$nd" -c "$nd/nginx.conf" -t -q || die "nginx (forward-auth) config test failed"
  /usr/sbin/nginx -e "$nd/logs/error.log" -p "$nd" -c "$nd/nginx.conf" || die "nginx (forward-auth) did not start"
  NGINX_PIDFILES+=("$nd/nginx.pid")
  # Without a token the answer is 401: nginx, gatehouse and the subrequest are all up.
  local i code=
  for i in $(seq 1 100); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$n/" || true)
    [[ $code = 401 ]] && break
    sleep 0.1
  done
  [[ $code = 401 ]] || { tail -n 20 "$nd/logs/error.log" >&2; die "nginx (forward-auth) answers $code, not 401"; }
  run_suite "forward-auth-$name" "$dir/forward-auth.out" env N_URL="http://127.0.0.1:$n" \
    G_URL="http://127.0.0.1:$g" SECRET="$SECRET" PUBLIC_PREFIX=/public ADMIN_EMAIL="$ADMIN_EMAIL" \
    ADMIN_PASSWORD="$ADMIN_PASSWORD" LABEL="$name" node forward-auth.mjs
}

# nodes_suite NAME DIR DB-SETTINGS...: three more gatehouses on the phase's database (nothing
# else shared), each with GATEHOUSE_USER_CACHE_TTL=1s; e2e/nodes.mjs, then e2e/metrics.mjs
# scraping the same three.
nodes_suite() {
  local name=$1 dir=$2; shift 2
  local ports=($((BASE + 53)) $((BASE + 54)) $((BASE + 55))) port i urls=() pool=10 db_url=
  for port in "${ports[@]}"; do
    port_free "$port" || die "port $port on 127.0.0.1 is taken (set E2E_PORT_BASE)"
  done
  for i in "$@"; do [[ $i = DB_CONNECTION_STRING=* ]] && db_url=${i#DB_CONNECTION_STRING=}; done
  [[ -n $db_url ]] || die "nodes_suite needs DB_CONNECTION_STRING"
  gatehouse_env
  for i in 0 1 2; do
    start "gatehouse-node$((i + 1))" "$dir/gatehouse-node$((i + 1)).log" env -i "${G_ENV[@]}" "$@" \
      "${METRICS_ENV[@]}" PORT="${ports[$i]}" GATEHOUSE_USER_CACHE_TTL=1s DB_POOL__MAX=$pool "$GATEHOUSE_BIN"
    wait_http "gatehouse-node$((i + 1))" "http://127.0.0.1:${ports[$i]}/server/ping" 30 \
      "$dir/gatehouse-node$((i + 1)).log" "${PIDS[-1]}"
    urls+=("http://127.0.0.1:${ports[$i]}")
  done
  local list; list=$(IFS=,; echo "${urls[*]}")
  run_suite "nodes-$name" "$dir/nodes.out" env NODE_URLS="$list" CACHE_TTL_MS=1000 DB_URL="$db_url" \
    ADMIN_EMAIL="$ADMIN_EMAIL" ADMIN_PASSWORD="$ADMIN_PASSWORD" LABEL="$name" node nodes.mjs
  run_suite "metrics-$name" "$dir/metrics.out" env NODE_URLS="$list" METRICS_TOKEN="$METRICS_TOKEN" \
    PYTHON="$VENV/bin/python" PARSER="$SUITES/promparse.py" POOL_MAX=$pool \
    ADMIN_EMAIL="$ADMIN_EMAIL" ADMIN_PASSWORD="$ADMIN_PASSWORD" LABEL="$name" node metrics.mjs
}

# saml_suite NAME DIR: a SAML IdP (e2e/saml-idp.mjs, samlify with a password form, a fresh key)
# and one more gatehouse (own SQLite file) with a saml provider `corp` trusting it;
# e2e/saml.mjs logs in through it in Chromium and posts hostile responses to the ACS.
saml_suite() {
  local name=$1 dir=$2 idp=$((BASE + 43)) gs=$((BASE + 44)) port
  for port in $idp $gs; do
    port_free "$port" || die "port $port on 127.0.0.1 is taken (set E2E_PORT_BASE)"
  done
  local sd=$dir/saml g="http://127.0.0.1:$gs"
  mkdir -p "$sd"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=gatehouse e2e IdP" \
    -keyout "$sd/idp-key.pem" -out "$sd/idp-cert.pem" 2>/dev/null || die "openssl could not make the IdP key"
  start saml-idp "$dir/saml-idp.log" env IDP_PORT="$idp" IDP_KEY="$sd/idp-key.pem" IDP_CERT="$sd/idp-cert.pem" \
    SP_ENTITY_ID="$g/auth/login/corp" SP_ACS_URL="$g/auth/login/corp/acs" node "$SUITES/saml-idp.mjs"
  wait_http saml-idp "http://127.0.0.1:$idp/metadata" 20 "$dir/saml-idp.log" "${PIDS[-1]}"
  local idp_md sp_md
  idp_md=$(curl -sf --max-time 5 "http://127.0.0.1:$idp/metadata") || die "no IdP metadata"
  sp_md="<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" entityID=\"$g/auth/login/corp\"><md:SPSSODescriptor AuthnRequestsSigned=\"false\" WantAssertionsSigned=\"true\" protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\"><md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</md:NameIDFormat><md:AssertionConsumerService index=\"0\" Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST\" Location=\"$g/auth/login/corp/acs\"/></md:SPSSODescriptor></md:EntityDescriptor>"
  gatehouse_env
  start gatehouse-saml "$dir/gatehouse-saml.log" env -i "${G_ENV[@]}" PORT="$gs" PUBLIC_URL="$g" \
    ADMIN_EMAIL="$ADMIN_EMAIL" ADMIN_PASSWORD="$ADMIN_PASSWORD" DB_CLIENT=sqlite3 DB_FILENAME="$sd/gatehouse.db" \
    AUTH_PROVIDERS=corp AUTH_CORP_DRIVER=saml AUTH_CORP_SP_metadata="$sp_md" AUTH_CORP_IDP_metadata="$idp_md" \
    AUTH_CORP_ALLOW_PUBLIC_REGISTRATION=true "$GATEHOUSE_BIN"
  wait_http gatehouse-saml "$g/server/ping" 30 "$dir/gatehouse-saml.log" "${PIDS[-1]}"
  run_suite "saml-$name" "$dir/saml.out" env G_URL="$g" IDP_URL="http://127.0.0.1:$idp" \
    IDP_KEY="$sd/idp-key.pem" IDP_CERT="$sd/idp-cert.pem" LABEL="$name" node saml.mjs
}

# sso_suite NAME DIR DB-SETTINGS...: single sign-on with a real OpenID Provider. Starts
# e2e/oidc-provider.mjs (panva's oidc-provider: an issuer, plus a rogue one whose JWKS lacks its
# signing key), makes roles through Directus (sso.mjs fixtures), then one more gatehouse on the
# phase's database configured with Directus's AUTH_* variables for six providers; e2e/sso.mjs
# drives Chromium through the provider's login and consent pages and attacks the callback.
sso_suite() {
  local name=$1 dir=$2; shift 2
  local gs=$((BASE + 32)) op=$((BASE + 33)) rogue=$((BASE + 34)) app=$((BASE + 35)) closed=$((BASE + 36)) hang=$((BASE + 37)) port
  for port in $gs $op $rogue $app $closed $hang; do
    port_free "$port" || die "port $port on 127.0.0.1 is taken (set E2E_PORT_BASE)"
  done
  local issuer="http://127.0.0.1:$op" public="http://127.0.0.1:$gs" after="http://127.0.0.1:$app/after-login"
  local client=gatehouse-e2e secret p uris=
  secret="sso-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
  for p in openid oauth closed rogue; do uris+="$public/auth/login/$p/callback "; done
  start oidc-provider "$dir/oidc-provider.log" env OIDC_PORT="$op" OIDC_ROGUE_PORT="$rogue" \
    OIDC_CLIENT_ID="$client" OIDC_CLIENT_SECRET="$secret" OIDC_REDIRECT_URIS="$uris" node "$SUITES/oidc-provider.mjs"
  wait_http oidc-provider "$issuer/.well-known/openid-configuration" 20 "$dir/oidc-provider.log" "${PIDS[-1]}"
  wait_http oidc-provider-rogue "http://127.0.0.1:$rogue/.well-known/openid-configuration" 5 "$dir/oidc-provider.log" "${PIDS[-1]}"
  local roles=(ROLE_EDITOR="$(cat /proc/sys/kernel/random/uuid)" ROLE_STAFF="$(cat /proc/sys/kernel/random/uuid)"
    ROLE_TFA="$(cat /proc/sys/kernel/random/uuid)" ROLE_DEFAULT="$(cat /proc/sys/kernel/random/uuid)")
  local -A r; local kv; for kv in "${roles[@]}"; do r[${kv%%=*}]=${kv#*=}; done
  (cd "$SUITES" && env D_URL="http://127.0.0.1:$D_PORT" ADMIN_EMAIL="$ADMIN_EMAIL" ADMIN_PASSWORD="$ADMIN_PASSWORD" \
    "${roles[@]}" node sso.mjs fixtures) >"$dir/sso-fixtures.log" 2>&1 || { cat "$dir/sso-fixtures.log" >&2; die "sso fixtures failed"; }
  local mapping="json:{\"e2e-tfa\":\"${r[ROLE_TFA]}\",\"e2e-editors\":\"${r[ROLE_EDITOR]}\",\"e2e-staff\":\"${r[ROLE_STAFF]}\"}"
  # Common to every provider (REDIRECT_ALLOW_LIST is a comma list, as in Directus).
  local common=(CLIENT_ID="$client" CLIENT_SECRET="$secret" DEFAULT_ROLE_ID="${r[ROLE_DEFAULT]}"
    REDIRECT_ALLOW_LIST="$after,http://127.0.0.1:$app/other")
  local sso=(AUTH_PROVIDERS="openid,oauth,closed,rogue,down,hang")
  for kv in "${common[@]}"; do
    for p in OPENID OAUTH CLOSED ROGUE DOWN HANG; do sso+=("AUTH_${p}_$kv"); done
  done
  for p in OPENID OAUTH ROGUE; do sso+=("AUTH_${p}_ALLOW_PUBLIC_REGISTRATION=true"); done
  sso+=(AUTH_OPENID_DRIVER=openid AUTH_OPENID_ISSUER_URL="$issuer" AUTH_OPENID_LABEL="E2E OpenID"
    AUTH_OPENID_ROLE_MAPPING="$mapping" AUTH_OPENID_GROUP_CLAIM_NAME=groups AUTH_OPENID_SYNC_USER_INFO=true
    AUTH_OPENID_MODE=session
    AUTH_OAUTH_DRIVER=oauth2 AUTH_OAUTH_AUTHORIZE_URL="$issuer/auth" AUTH_OAUTH_ACCESS_URL="$issuer/token"
    AUTH_OAUTH_PROFILE_URL="$issuer/profile" AUTH_OAUTH_SCOPE="email profile" AUTH_OAUTH_IDENTIFIER_KEY=sub
    AUTH_OAUTH_EMAIL_KEY=email AUTH_OAUTH_FIRST_NAME_KEY=name.given AUTH_OAUTH_LAST_NAME_KEY=name.family
    AUTH_OAUTH_ROLE_MAPPING="json:{\"e2e-editors\":\"${r[ROLE_EDITOR]}\"}" AUTH_OAUTH_GROUP_CLAIM_NAME=groups
    AUTH_CLOSED_DRIVER=openid AUTH_CLOSED_ISSUER_URL="$issuer" AUTH_CLOSED_ALLOW_PUBLIC_REGISTRATION=false
    AUTH_ROGUE_DRIVER=openid AUTH_ROGUE_ISSUER_URL="http://127.0.0.1:$rogue"
    AUTH_DOWN_DRIVER=openid AUTH_DOWN_ISSUER_URL="http://127.0.0.1:$closed" AUTH_DOWN_ISSUER_DISCOVERY_MUST_SUCCEED=false
    AUTH_HANG_DRIVER=openid AUTH_HANG_ISSUER_URL="http://127.0.0.1:$hang" AUTH_HANG_ISSUER_DISCOVERY_MUST_SUCCEED=false)
  gatehouse_env
  start gatehouse-sso "$dir/gatehouse-sso.log" env -i "${G_ENV[@]}" "$@" "${sso[@]}" PORT="$gs" PUBLIC_URL="$public" "$GATEHOUSE_BIN"
  wait_http gatehouse-sso "$public/server/ping" 30 "$dir/gatehouse-sso.log" "${PIDS[-1]}"
  run_suite "sso-$name" "$dir/sso.out" env GS_URL="$public" D_URL="http://127.0.0.1:$D_PORT" ISSUER="$issuer" \
    APP_PORT="$app" HANG_PORT="$hang" CLIENT_ID="$client" "${roles[@]}" ADMIN_EMAIL="$ADMIN_EMAIL" \
    ADMIN_PASSWORD="$ADMIN_PASSWORD" SHOT_DIR="$ART" LABEL="$name" node sso.mjs
}

# phase NAME DB-SETTINGS...: bootstrap Directus, snapshot, start gatehouse, snapshot, start
# Directus (+ nginx), run the suites, stop everything.
phase() {
  local name=$1; shift
  local dir=$RUN/$name t0; t0=$(date +%s)
  mkdir -p "$dir" "$RUN/uploads" "$RUN/extensions"
  # Directus looks for package extensions in its working directory's package.json.
  echo '{"name": "gatehouse-e2e-directus", "private": true}' >"$dir/package.json"
  local db=("$@")
  log "== phase $name"
  local port
  for port in $D_PORT $G_PORT $N_PORT; do
    port_free "$port" || die "port $port on 127.0.0.1 is taken (set E2E_PORT_BASE)"
  done

  directus_env; gatehouse_env
  env -i -C "$dir" "${D_ENV[@]}" "${db[@]}" node "$DIRECTUS_CLI" bootstrap >"$dir/directus-bootstrap.log" 2>&1 \
    || { tail -n 40 "$dir/directus-bootstrap.log" >&2; die "directus bootstrap failed"; }
  log "Directus bootstrapped ($(secs "$t0") s)"
  env "${db[@]}" node "$SUITES/schema.mjs" >"$dir/snap-before.json"

  start gatehouse "$dir/gatehouse.log" env -i "${G_ENV[@]}" "${db[@]}" "$GATEHOUSE_BIN"
  wait_http gatehouse "http://127.0.0.1:$G_PORT/server/ping" 30 "$dir/gatehouse.log" "${PIDS[-1]}"
  env "${db[@]}" node "$SUITES/schema.mjs" >"$dir/snap-after.json"

  start directus "$dir/directus.log" env -i -C "$dir" "${D_ENV[@]}" "${db[@]}" node "$DIRECTUS_CLI" start
  wait_http directus "http://127.0.0.1:$D_PORT/server/ping" 90 "$dir/directus.log" "${PIDS[-1]}"

  local common=(D_URL="http://127.0.0.1:$D_PORT" G_URL="http://127.0.0.1:$G_PORT"
    ADMIN_EMAIL="$ADMIN_EMAIL" ADMIN_PASSWORD="$ADMIN_PASSWORD" LABEL="$name")
  run_suite "interop-$name" "$dir/interop.out" env "${common[@]}" \
    SNAP_BEFORE="$dir/snap-before.json" SNAP_AFTER="$dir/snap-after.json" node interop.mjs
  run_suite "permissions-$name" "$dir/permissions.out" env "${common[@]}" node permissions.mjs
  run_suite "tfa-$name" "$dir/tfa.out" env "${common[@]}" node tfa.mjs
  if [[ $name = pg ]]; then
    ratelimit_suite "$name" "$dir" "${db[@]}"
    nodes_suite "$name" "$dir" "${db[@]}"
  fi
  if [[ $name = sqlite ]]; then
    run_suite "sdk-$name" "$dir/sdk.out" env "${common[@]}" node sdk.mjs
    accounts_suite "$name" "$dir"
    forward_auth_suite "$name" "$dir"
    ldap_suite "$name" "$dir"
    if [[ -z ${E2E_SKIP_BROWSER:-} ]]; then
      start_nginx "$D_PORT" "$G_PORT"
      run_suite "browser-$name" "$dir/browser.out" env "${common[@]}" N_URL="http://127.0.0.1:$N_PORT" \
        SHOT_DIR="$ART" node browser.mjs
      cors_suite "$name" "$dir"
      saml_suite "$name" "$dir"
      sso_suite "$name" "$dir" "${db[@]}"
    fi
  fi
  stop_all
  log "phase $name done in $(secs "$t0") s"
}

# ------------------------------------------------------------------ main
install_tools
DIRECTUS_CLI=$CACHE/node_modules/@directus/api/dist/cli/run.js
[[ -f $DIRECTUS_CLI ]] || die "Directus CLI not found at $DIRECTUS_CLI"

for ph in ${E2E_PHASES:-sqlite pg}; do
  case $ph in
    sqlite) phase sqlite DB_CLIENT=sqlite3 DB_FILENAME="$RUN/sqlite/directus.db" ;;
    pg)
      # scripts/postgres.sh starts a private server when none answers on 5432; stop it at the
      # end only if this run started it (.ci/run may have started it before us).
      [[ -f ${GH_PG_DIR:-/tmp/gatehouse-pg}/started-by-us ]] || PG_STOP=1
      PG_URL=$("$ROOT/scripts/postgres.sh" url)
      [[ -f ${GH_PG_DIR:-/tmp/gatehouse-pg}/started-by-us ]] || PG_STOP=
      phase pg DB_CLIENT=pg DB_CONNECTION_STRING="$PG_URL"
      "$ROOT/scripts/postgres.sh" drop "$PG_URL" || true
      PG_URL= ;;
    *) die "unknown phase $ph (use sqlite and/or pg)" ;;
  esac
done

if [[ -z ${E2E_SKIP_ROOTFS:-} ]]; then rootfs_suite; fi

log "finished in $(secs "$T_START") s"
if (( ${#FAILED_SUITES[@]} )); then log "failed suites: ${FAILED_SUITES[*]}"; fi
echo "e2e: $TOTAL_PASS passed, $TOTAL_FAIL failed"
(( TOTAL_FAIL == 0 && ${#FAILED_SUITES[@]} == 0 ))
