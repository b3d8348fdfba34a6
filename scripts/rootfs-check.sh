#!/usr/bin/env bash
# The Dockerfile's runtime stage without a Docker engine: a Debian root filesystem of the
# release the Dockerfile runs on (debootstrap --variant=minbase) plus exactly the packages its
# runtime stage installs, the stage's other RUN steps (the user, /app/data), the release binary
# at the stage's COPY destination; then gatehouse runs there as the stage's USER in its own PID
# namespace (unshare + chroot), with the stage's ENV and WORKDIR.
#
# Checks: every shared library of the binary resolves inside the rootfs (ldd there), gatehouse
# starts as that user, migrates a fresh SQLite file in the data folder, the Dockerfile's own
# HEALTHCHECK command (run inside the rootfs) passes, only the VOLUMEs are writable, /server/health says ok, POST /auth/login
# with ADMIN_EMAIL/ADMIN_PASSWORD answers 200 with an access_token, and SIGTERM to gatehouse as
# PID 1 stops it. Prints the binary's and the root filesystem's sizes.
#
#   scripts/rootfs-check.sh [BINARY]   # default $GATEHOUSE_BIN, else target/release/gatehouse
#
# Everything comes from the Dockerfile (base image tag, apt-get install list, RUN, USER, ENV,
# WORKDIR, VOLUME, COPY destination, HEALTHCHECK), so the two cannot drift. The debootstrap result is
# cached as a tarball in $GATEHOUSE_ROOTFS_CACHE (default /var/cache/gatehouse-e2e/rootfs), keyed
# by the release, architecture and package list; the mirror is the one apt is configured with.
# Needs root (debootstrap, chroot, unshare); installs debootstrap with apt-get when missing.
# Environment: GATEHOUSE_ROOTFS_CACHE, ROOTFS_PORT (default 28446), ROOTFS_KEEP=1 (keep the
# temp folder), ROOTFS_BUILD_ONLY=1 (only build and cache the root filesystem), DEBIAN_MIRROR
# (overrides the mirror read from /etc/apt/sources.list*).
# Last line: "rootfs: N passed, M failed" (the e2e runner counts it).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DOCKERFILE=$ROOT/Dockerfile
BIN=${1:-${GATEHOUSE_BIN:-$ROOT/target/release/gatehouse}}
CACHE=${GATEHOUSE_ROOTFS_CACHE:-/var/cache/gatehouse-e2e/rootfs}
PORT=${ROOTFS_PORT:-28446}
ADMIN_EMAIL=admin@example.com
ADMIN_PASSWORD=Rootfs-admin-passw0rd
PASS=0 FAIL=0

log() { echo "rootfs: $*"; }
die() { echo "rootfs: ERROR: $*" >&2; echo "rootfs: $PASS passed, $((FAIL + 1)) failed"; exit 1; }
ok() { PASS=$((PASS + 1)); echo "  ok   $*"; }
bad() { FAIL=$((FAIL + 1)); echo "  FAIL $*"; }

[[ $(id -u) == 0 ]] || die "needs root (debootstrap, chroot, unshare); skip it with E2E_SKIP_ROOTFS=1"
[[ -x $BIN ]] || die "no gatehouse binary at $BIN (cargo build --release)"
[[ -f $DOCKERFILE ]] || die "no Dockerfile at $DOCKERFILE"

# ------------------------------------------------------------------ the Dockerfile
# Continuation lines joined, comments dropped; the runtime stage is what follows the last FROM.
mapfile -t STAGE < <(sed -e '/^[[:space:]]*#/d' -e ':a' -e '/\\$/N; s/\\\n//; ta' "$DOCKERFILE" \
  | awk '/^FROM[[:space:]]/ { n = 0; delete l } { l[n++] = $0 } END { for (i = 0; i < n; i++) print l[i] }')
FROM_LINE=${STAGE[0]:-}
IMAGE=$(awk '{ print $2 }' <<<"$FROM_LINE")
[[ $IMAGE == debian:* ]] || die "the runtime stage is not a Debian image ($FROM_LINE)"
SUITE=${IMAGE#debian:}; SUITE=${SUITE%%-*}   # debian:bookworm-slim -> bookworm

PKGS=() RUNS=() ENVS=() VOLUMES=() USERSPEC= WORKDIR=/ DEST= HEALTH=
for line in "${STAGE[@]:1}"; do
  read -r instr rest <<<"$line"
  case ${instr^^} in
    RUN)
      if [[ $rest == *apt-get* ]]; then
        # Every package named after `apt-get install`, options dropped, up to the next && ; |.
        while read -r seg; do
          for w in $seg; do [[ $w == -* || $w == install ]] || PKGS+=("$w"); done
        done < <(grep -oE 'apt-get install[^&;|]*' <<<"$rest" | sed 's/^apt-get install//')
      else
        RUNS+=("$rest")
      fi ;;
    USER) USERSPEC=$rest ;;
    WORKDIR) WORKDIR=$rest ;;
    VOLUME) for w in $rest; do VOLUMES+=("$w"); done ;;
    ENV) for w in $rest; do [[ $w == *=* ]] && ENVS+=("$w"); done ;;
    COPY) DEST=$(awk '{ print $NF }' <<<"$rest") ;;
    HEALTHCHECK) HEALTH=${rest#*CMD } ;;
  esac
done
(( ${#PKGS[@]} )) || die "no apt-get install in the Dockerfile's runtime stage"
[[ $USERSPEC == *:* ]] || USERSPEC=$USERSPEC:$USERSPEC
[[ $USERSPEC =~ ^[0-9]+:[0-9]+$ ]] || die "the runtime stage's USER is not numeric uid:gid ($USERSPEC)"
[[ -n $DEST ]] || die "no COPY of the binary in the runtime stage"
(( ${#VOLUMES[@]} )) || die "no VOLUME (shell form) in the runtime stage"
[[ $HEALTH == \[* ]] || die "no exec-form HEALTHCHECK CMD in the runtime stage"
# The exec form is a JSON array: one argument per line (node is there for the e2e suites).
mapfile -t HEALTH_ARGV < <(node -e 'for (const a of JSON.parse(process.argv[1])) console.log(a)' "$HEALTH")
mapfile -t SORTED < <(printf '%s\n' "${PKGS[@]}" | sort -u)
ARCH=$(dpkg --print-architecture)
log "Dockerfile runtime stage: $IMAGE (Debian $SUITE, $ARCH), packages: ${SORTED[*]}, user $USERSPEC"

# ------------------------------------------------------------------ the root filesystem
mirror() {
  if [[ -n ${DEBIAN_MIRROR:-} ]]; then echo "$DEBIAN_MIRROR"; return; fi
  local f uri
  # deb822 (.sources): the URIs of a stanza whose Suites name the release itself.
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    uri=$(awk -v s="$SUITE" 'BEGIN { RS = ""; FS = "\n" }
      { u = ""; ok = 0
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/) { u = $i; sub(/^URIs:[ \t]*/, "", u); sub(/[ \t].*/, "", u) }
          if ($i ~ /^Suites:/ && (" " $i " ") ~ (" " s " ")) ok = 1
        }
        if (ok && u != "") { print u; exit } }' "$f")
    [[ -n $uri ]] && { echo "$uri"; return; }
  done
  # One-line format: deb [options] URI SUITE COMPONENTS...
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    uri=$(sed -E 's/\[[^]]*\]//' "$f" | awk -v s="$SUITE" '$1 == "deb" && $3 == s { print $2; exit }')
    [[ -n $uri ]] && { echo "$uri"; return; }
  done
  echo http://deb.debian.org/debian
}

KEY=$(printf '%s\n' "$SUITE" "$ARCH" minbase "${SORTED[@]}" | sha256sum | cut -c1-16)
TARBALL=$CACHE/$SUITE-$ARCH-minbase-$KEY.tar.gz
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9   # two runners sharing the cache build it once
if [[ -f $TARBALL ]]; then
  log "cached root filesystem $TARBALL"
else
  command -v debootstrap >/dev/null || {
    log "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null; } \
      || die "apt-get install debootstrap failed"
  }
  MIRROR=$(mirror)
  BUILD=$(mktemp -d "$CACHE/build.XXXXXX")
  log "debootstrap --variant=minbase $SUITE from $MIRROR (first run: a few minutes)"
  t0=$(date +%s)
  if ! debootstrap --variant=minbase --arch="$ARCH" --include="$(IFS=,; echo "${SORTED[*]}")" \
      "$SUITE" "$BUILD/root" "$MIRROR" >"$BUILD/debootstrap.log" 2>&1; then
    tail -n 30 "$BUILD/debootstrap.log" >&2
    rm -rf "$BUILD"; die "debootstrap failed"
  fi
  # As the Dockerfile's RUN ends: no package lists or downloaded .debs in the image.
  rm -rf "$BUILD/root/var/lib/apt/lists/"* "$BUILD/root/var/cache/apt/archives/"*.deb "$BUILD/root/debootstrap"
  printf '%s\n' "${SORTED[@]}" >"${TARBALL%.tar.gz}.packages"
  tar --numeric-owner -C "$BUILD/root" -czf "$BUILD/rootfs.tar.gz" .
  mv "$BUILD/rootfs.tar.gz" "$TARBALL"
  rm -rf "$BUILD"
  log "root filesystem built in $(( $(date +%s) - t0 )) s, cached as $TARBALL"
fi
flock -u 9
if [[ -n ${ROOTFS_BUILD_ONLY:-} ]]; then exit 0; fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-rootfs.XXXXXX")
R=$TMP/root
GPID=
cleanup() {
  local rc=$?
  if [[ -n $GPID ]] && kill -0 "$GPID" 2>/dev/null; then
    kill -TERM "$GPID" 2>/dev/null || true; sleep 1; kill -KILL "$GPID" 2>/dev/null || true
  fi
  [[ -n ${ROOTFS_KEEP:-} ]] && log "kept $TMP" || rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$R"
tar --numeric-owner -C "$R" -xzf "$TARBALL" \
  || die "cannot unpack $TARBALL into $TMP (disk full? point TMPDIR elsewhere, e.g. /dev/shm)"
for p in "${SORTED[@]}"; do
  chroot "$R" dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
    || die "package $p is not installed in the root filesystem"
done
# The stage's other RUN steps, as `docker build` runs them: /bin/sh -c, as root.
for cmd in "${RUNS[@]}"; do
  chroot "$R" /bin/sh -c "$cmd" || die "RUN $cmd failed in the root filesystem"
done
install -m 0755 "$BIN" "$R$DEST"

# ------------------------------------------------------------------ checks
log "checks (binary $DEST, port $PORT)"
LDD=$(chroot "$R" ldd "$DEST" 2>&1) || true
if grep -q 'not found' <<<"$LDD"; then
  bad "ldd in the rootfs: missing $(grep 'not found' <<<"$LDD" | awk '{ print $1 }' | tr '\n' ' ')"
elif grep -q '=>' <<<"$LDD"; then
  ok "ldd in the rootfs resolves every library: $(awk '/=>/ { print $1 }' <<<"$LDD" | tr '\n' ' ')"
else
  bad "ldd in the rootfs: $LDD"
fi

(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && die "port $PORT on 127.0.0.1 is taken (set ROOTFS_PORT)"
DATA=$(awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^DB_FILENAME=/) { sub(/^DB_FILENAME=/, "", $i); print $i } }' <<<"${ENVS[*]}")
[[ -n $DATA ]] || DATA=$WORKDIR/data/gatehouse.db
SECRET="rootfs-secret-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
# The image's ENV, then what `docker run -e` would add; HOST is loopback here.
RUN_ENV=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "${ENVS[@]}"
  HOST=127.0.0.1 PORT="$PORT" SECRET="$SECRET" PUBLIC_URL="http://127.0.0.1:$PORT"
  ADMIN_EMAIL="$ADMIN_EMAIL" ADMIN_PASSWORD="$ADMIN_PASSWORD" LOG_STYLE=raw)
# unshare: own PID namespace (gatehouse is its PID 1, as in a container) and mount namespace,
# where the root filesystem is read-only but for the VOLUMEs (compose.yaml's read_only: true)
# and /proc is its own (both go away with it); the host's network, so the checks below reach
# it on loopback.
setsid unshare --fork --pid --mount --propagation private --kill-child=SIGKILL /bin/sh -ec '
  r=$1; shift
  mount --bind "$r" "$r"; mount -o remount,bind,ro "$r"
  while [ "$1" != -- ]; do mount --bind "$r$1" "$r$1"; mount -o remount,bind,rw "$r$1"; shift; done; shift
  mount -t proc proc "$r/proc"
  exec "$@"' sh "$R" "${VOLUMES[@]}" -- \
  chroot --userspec="$USERSPEC" "$R" /usr/bin/env -i -C "$WORKDIR" "${RUN_ENV[@]}" "$DEST" \
  >"$TMP/gatehouse.log" 2>&1 </dev/null &
UPID=$!
for _ in $(seq 1 100); do
  GPID=$(ps -o pid= --ppid "$UPID" 2>/dev/null | tr -d ' ' | head -n 1)
  [[ -n $GPID ]] && break; sleep 0.1
done
[[ -n $GPID ]] || { cat "$TMP/gatehouse.log" >&2; die "gatehouse did not start"; }

up=
for _ in $(seq 1 150); do
  if curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/server/ping"; then up=1; break; fi
  kill -0 "$GPID" 2>/dev/null || break
  sleep 0.2
done
if [[ -n $up ]]; then ok "gatehouse started in the rootfs and answers /server/ping"; else
  tail -n 30 "$TMP/gatehouse.log" >&2; bad "gatehouse did not answer on $PORT"; fi

uid=$(awk '/^Uid:/ { print $2 ":" $3 ":" $4 ":" $5 }' "/proc/$GPID/status" 2>/dev/null || true)
want=${USERSPEC%%:*}
if [[ $uid == "$want:$want:$want:$want" ]]; then ok "runs as uid $want (real, effective, saved, fs)"; else
  bad "runs as uid $uid, not $want"; fi
nspid=$(awk '/^NSpid:/ { print $NF }' "/proc/$GPID/status" 2>/dev/null || true)
[[ $nspid == 1 ]] && ok "is PID 1 of its PID namespace" || bad "PID in its namespace is $nspid, not 1"

if [[ -n $up ]]; then
  owner=$(stat -c %u:%g "$R$DATA" 2>/dev/null || true)
  if [[ $owner == "$USERSPEC" ]] && grep -qa 'directus_users' "$R$DATA"*; then
    ok "migrated a fresh SQLite database $DATA, owned by $owner"
  else
    bad "no migrated database at $DATA owned by $USERSPEC (owner: ${owner:-none})"
  fi

  # Only the VOLUMEs take writes (as the user, in gatehouse's mount namespace).
  in_ns() { nsenter --mount --target "$GPID" chroot --userspec="$USERSPEC" "$R" "$@"; }
  if ! in_ns touch "$WORKDIR/.rw-probe" 2>/dev/null && in_ns touch "${VOLUMES[0]}/.rw-probe"; then
    in_ns rm -f "${VOLUMES[0]}/.rw-probe"
    ok "the root filesystem is read-only to it; ${VOLUMES[*]} writable"
  else
    bad "read-only root filesystem with writable ${VOLUMES[*]}: not as expected"
  fi

  # The Dockerfile's HEALTHCHECK, run inside the rootfs as the container runs it.
  if chroot --userspec="$USERSPEC" "$R" /usr/bin/env -i -C "$WORKDIR" "${RUN_ENV[@]}" "${HEALTH_ARGV[@]}"; then
    ok "the Dockerfile's HEALTHCHECK command passes inside the rootfs"
  else
    bad "the Dockerfile's HEALTHCHECK command failed inside the rootfs"
  fi
  # And the same command fails when nothing listens (a health check that cannot fail is none).
  if chroot --userspec="$USERSPEC" "$R" /usr/bin/env -i "${RUN_ENV[@]}" PORT=1 "${HEALTH_ARGV[@]}" 2>/dev/null; then
    bad "the HEALTHCHECK command passes with nothing listening"
  else
    ok "the HEALTHCHECK command fails when nothing listens"
  fi

  health=$(curl -s --max-time 5 -w '\n%{http_code}' "http://127.0.0.1:$PORT/server/health" || true)
  if [[ ${health##*$'\n'} == 200 && ( $health == *'"status":"ok"'* || $health == *'"status":"warn"'* ) ]]; then
    ok "/server/health: ${health%$'\n'*}"
  else
    bad "/server/health: $health"
  fi

  login=$(curl -s --max-time 10 -w '\n%{http_code}' -H 'content-type: application/json' \
    -d "{\"email\":\"$ADMIN_EMAIL\",\"password\":\"$ADMIN_PASSWORD\"}" "http://127.0.0.1:$PORT/auth/login" || true)
  if [[ ${login##*$'\n'} == 200 && $login =~ \"access_token\":\"[A-Za-z0-9_.-]{20,}\" ]]; then
    ok "POST /auth/login as ADMIN_EMAIL: 200 with an access_token"
  else
    bad "POST /auth/login: ${login##*$'\n'} ${login%$'\n'*}"
  fi
fi

# docker stop: SIGTERM to PID 1, which must handle it (PID 1 ignores signals it has no handler for).
kill -TERM "$GPID" 2>/dev/null || true
stopped=
for _ in $(seq 1 100); do kill -0 "$GPID" 2>/dev/null || { stopped=1; break; }; sleep 0.1; done
if [[ -n $stopped ]]; then ok "SIGTERM to PID 1 stops gatehouse"; GPID=; else bad "gatehouse ignored SIGTERM as PID 1"; fi
wait "$UPID" 2>/dev/null || true
if grep -qF "$ADMIN_PASSWORD" "$TMP/gatehouse.log"; then bad "the log holds the admin password"; fi
if grep -q 'panicked' "$TMP/gatehouse.log"; then bad "gatehouse panicked: $(grep -m1 panicked "$TMP/gatehouse.log")"; fi

# ------------------------------------------------------------------ sizes
bin_bytes=$(stat -c %s "$BIN")
rootfs_kib=$(du -sxk "$R" | cut -f1)
tar_bytes=$(stat -c %s "$TARBALL")
log "sizes: binary $(numfmt --to=iec --suffix=B "$bin_bytes") ($bin_bytes bytes);" \
  "root filesystem $(numfmt --to=iec --suffix=B $((rootfs_kib * 1024))) (du, binary included);" \
  "cached tarball $(numfmt --to=iec --suffix=B "$tar_bytes")"
echo "rootfs: $PASS passed, $FAIL failed"
(( FAIL == 0 ))
