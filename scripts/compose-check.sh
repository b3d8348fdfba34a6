#!/usr/bin/env bash
# Checks config/compose.yaml without Docker: it parses as YAML; every environment name of the
# gatehouse service (a <NAME>_FILE counted as NAME) is one gatehouse reads, i.e. listed in a
# VARIABLES table of src/config.rs or src/config/*.rs; every /run/secrets/<name> it names is a
# secret the service mounts and the file declares; every service has a health check (gatehouse's
# comes from the image; the stand-in `app` is skipped) and a restart policy; and config/nginx.conf passes `nginx -t` (with the
# compose host names pointed at loopback and a throwaway certificate), when nginx is installed.
#
#   scripts/compose-check.sh
#
# Last line: "compose: N passed, M failed" (the e2e runner counts it).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PASS=0 FAIL=0
ok() { PASS=$((PASS + 1)); echo "  ok   $*"; }
bad() { FAIL=$((FAIL + 1)); echo "  FAIL $*"; }

# The names gatehouse reads: the first string of each `("NAME", ...)` row of a VARIABLES table.
KNOWN=$(awk '/const VARIABLES/ { t = 1 } t && /^\];/ { t = 0 }
  t { while (match($0, /\("[A-Z0-9_]+"/)) { print substr($0, RSTART + 2, RLENGTH - 3); $0 = substr($0, RSTART + RLENGTH) } }' \
  "$ROOT"/src/config.rs "$ROOT"/src/config/*.rs | sort -u)
(( $(wc -l <<<"$KNOWN") > 50 )) || { echo "compose: cannot read the VARIABLES tables"; echo "compose: 0 passed, 1 failed"; exit 1; }

out=$(KNOWN="$KNOWN" python3 - "$ROOT/config/compose.yaml" <<'EOF'
import os, re, sys
import yaml

known = set(os.environ["KNOWN"].split())
path = sys.argv[1]
try:
    doc = yaml.safe_load(open(path))
except Exception as e:  # noqa: BLE001
    print(f"FAIL {path} does not parse: {e}")
    sys.exit(0)
print(f"ok {os.path.basename(path)} parses as YAML")
services = doc.get("services") or {}
declared = set((doc.get("secrets") or {}).keys())
g = services.get("gatehouse")
if not g:
    print("FAIL no gatehouse service")
    sys.exit(0)
build = g.get("build") or {}
ctx = os.path.normpath(os.path.join(os.path.dirname(path), build.get("context", ".")))
df = os.path.join(ctx, build.get("dockerfile", "Dockerfile"))
print(("ok" if os.path.isfile(df) else "FAIL") + f" gatehouse is built from {os.path.relpath(df, os.path.dirname(path))}")
env = g.get("environment") or {}
if isinstance(env, list):
    env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
unknown = []
for name in env:
    base = name[:-5] if name.endswith("_FILE") else name
    if base not in known:
        unknown.append(name)
if unknown:
    print("FAIL env names gatehouse does not read: " + " ".join(unknown))
else:
    print(f"ok all {len(env)} gatehouse env names are read by gatehouse (src/config*.rs VARIABLES)")
files = [k for k in env if k.endswith("_FILE")]
mounted = set(s if isinstance(s, str) else s.get("source") for s in g.get("secrets") or [])
missing = []
for k in files:
    m = re.fullmatch(r"/run/secrets/([A-Za-z0-9_.-]+)", str(env[k]))
    if not m or m.group(1) not in mounted or m.group(1) not in declared:
        missing.append(f"{k}={env[k]}")
if missing:
    print("FAIL _FILE values that are not a mounted, declared secret: " + " ".join(missing))
elif files:
    print(f"ok {len(files)} secrets read from _FILE ({', '.join(files)}), each mounted and declared")
else:
    print("FAIL no secret is read from a _FILE")
for name, s in services.items():
    if name == "app":
        continue  # the stand-in application (an image without a shell) is yours to replace
    hc = s.get("healthcheck")
    if name == "gatehouse" and hc is not None and "test" not in hc:
        hc_ok = True  # the image's HEALTHCHECK command, with the timings given here
    else:
        hc_ok = bool(hc and hc.get("test"))
    rs = s.get("restart")
    print(("ok" if hc_ok and rs else "FAIL") + f" {name}: health check {'yes' if hc_ok else 'no'}, restart {rs}")
EOF
)
while read -r status rest; do
  case $status in ok) ok "$rest" ;; *) bad "$rest" ;; esac
done <<<"$out"

if [[ -x /usr/sbin/nginx ]] && command -v openssl >/dev/null; then
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-compose.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/certs" "$tmp/logs"
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=app.example.com" \
    -keyout "$tmp/certs/privkey.pem" -out "$tmp/certs/fullchain.pem" 2>/dev/null
  # The compose names resolve only on the compose network; certificates live under /etc/nginx.
  sed -e 's/server gatehouse:/server 127.0.0.1:/; s/server app:/server 127.0.0.1:/' \
    -e "s#/etc/nginx/certs#$tmp/certs#g" "$ROOT/config/nginx.conf" >"$tmp/nginx.conf"
  sed -i "1i pid $tmp/nginx.pid; error_log $tmp/logs/error.log;" "$tmp/nginx.conf"
  if msg=$(/usr/sbin/nginx -p "$tmp" -e "$tmp/logs/error.log" -c "$tmp/nginx.conf" -t 2>&1); then
    ok "config/nginx.conf passes nginx -t ($(/usr/sbin/nginx -v 2>&1 | sed 's/.*\///'))"
  else
    bad "config/nginx.conf fails nginx -t: $msg"
  fi
else
  echo "  skip nginx -t (no nginx or openssl here)"
fi

echo "compose: $PASS passed, $FAIL failed"
(( FAIL == 0 ))
