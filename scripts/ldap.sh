#!/usr/bin/env bash
# A private OpenLDAP directory (Debian's slapd) on loopback for the LDAP tests and e2e suite.
#
#   scripts/ldap.sh start   # ldap://127.0.0.1:$GH_LDAP_PORT (StartTLS too) and ldaps://...:$GH_LDAPS_PORT
#   scripts/ldap.sh url     # start if needed, print the ldap:// URL
#   scripts/ldap.sh ca      # print the path of the test CA's certificate (it signed the server's)
#   scripts/ldap.sh stop    # stop it (by its PID)
#   scripts/ldap.sh pause | resume   # SIGSTOP / SIGCONT: a directory that accepts and never answers
#
# Everything lives in $GH_LDAP_DIR (default /tmp/gatehouse-ldap); ports default to 53389 / 56636.
# slapd and ldap-utils come from Debian's packages when missing. The system instance
# (/etc/ldap/slapd.d) is never used or started.
#
# Contents (test-only passwords):
#   base           dc=example,dc=org; admin (rootdn) cn=admin,dc=example,dc=org / adminpw
#   service bind   cn=service,dc=example,dc=org / servicepw (reads the whole tree)
#   users (inetOrgPerson, ou=people)
#     uid=alice        alicepw   alice@example.org        groups: admins
#     uid=bob          bobpw     bob@example.org          groups: editors, staff (posixGroup, memberUid)
#     cn=Smith\, John  smithpw   john.smith@example.org   uid jsmith; groups: editors
#     uid=carol        carolpw   carol@example.org        no group
#     uid=twin1, uid=twin2 (twinpw) share cn "Twin" (an ambiguous identifier)
#   groups  ou=groups: cn=admins, cn=editors (groupOfNames); ou=posix: cn=staff (posixGroup)
set -euo pipefail

DIR=${GH_LDAP_DIR:-/tmp/gatehouse-ldap}
PORT=${GH_LDAP_PORT:-53389}
LDAPS_PORT=${GH_LDAPS_PORT:-56636}
PIDFILE=$DIR/slapd.pid
URI=ldap://127.0.0.1:$PORT
SUFFIX=dc=example,dc=org
log() { echo "ldap.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# A killed child lingers as a zombie until PID 1 reaps it: kill -0 still succeeds then.
alive_pid() { local s; s=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $s != Z* ]]; }
running() { [[ -f $PIDFILE ]] && alive_pid "$(cat "$PIDFILE")"; }
answers() { ldapsearch -x -o nettimeout=2 -H "$URI" -s base -b "" namingContexts >/dev/null 2>&1; }

install() {
  if [[ -x /usr/sbin/slapd ]] && command -v ldapsearch >/dev/null && command -v slappasswd >/dev/null; then return; fi
  log "installing slapd and ldap-utils from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q slapd ldap-utils >/dev/null || die "apt-get install slapd ldap-utils failed"
}

start() {
  install
  if running; then answers && return 0; die "slapd (pid $(cat "$PIDFILE")) runs but does not answer on $URI"; fi
  rm -rf "$DIR"; mkdir -p "$DIR/data" "$DIR/tls"
  # A test CA and a server certificate it signs (for 127.0.0.1 and localhost). rustls, like
  # any WebPKI client, refuses a CA certificate presented as the server's own, which is what a
  # bare `openssl req -x509` makes.
  local t=$DIR/tls
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' > "$t/server.ext"
  { openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=gatehouse test CA" \
      -keyout "$t/ca.key" -out "$t/ca.pem" \
    && openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$t/key.pem" -out "$t/server.csr" \
    && openssl x509 -req -in "$t/server.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" -CAcreateserial \
      -days 30 -extfile "$t/server.ext" -out "$t/cert.pem"; } >/dev/null 2>&1 || die "openssl failed"
  local h; h() { slappasswd -h '{SSHA}' -s "$1"; }
  cat > "$DIR/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile $DIR/slapd.run.pid
argsfile $DIR/slapd.args
TLSCertificateFile $DIR/tls/cert.pem
TLSCertificateKeyFile $DIR/tls/key.pem

database mdb
maxsize 104857600
suffix "$SUFFIX"
rootdn "cn=admin,$SUFFIX"
rootpw $(h adminpw)
directory $DIR/data
index objectClass eq
index uid,mail,cn,member,memberUid eq

access to attrs=userPassword
  by self write
  by anonymous auth
  by * none
access to *
  by dn.exact="cn=service,$SUFFIX" read
  by self read
  by * none
CONF
  person() { # dn-rdn uid cn sn given mail password
    printf 'dn: %s,ou=people,%s\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: %s\ngivenName: %s\nmail: %s\nuserPassword: %s\n\n' \
      "$1" "$SUFFIX" "$2" "$3" "$4" "$5" "$6" "$(h "$7")"
  }
  {
    printf 'dn: %s\nobjectClass: top\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n' "$SUFFIX"
    printf 'dn: cn=service,%s\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: service\nuserPassword: %s\n\n' "$SUFFIX" "$(h servicepw)"
    for ou in people groups posix; do printf 'dn: ou=%s,%s\nobjectClass: organizationalUnit\nou: %s\n\n' "$ou" "$SUFFIX" "$ou"; done
    person uid=alice alice "Alice Liddell" Liddell Alice alice@example.org alicepw
    person uid=bob bob "Bob Builder" Builder Bob bob@example.org bobpw
    person 'cn=Smith\, John' jsmith "Smith, John" Smith John john.smith@example.org smithpw
    person uid=carol carol "Carol Danvers" Danvers Carol carol@example.org carolpw
    person uid=twin1 twin1 Twin One Twin twin1@example.org twinpw
    person uid=twin2 twin2 Twin Two Twin twin2@example.org twinpw
    # groupOfNames needs a member: cn=admin stays in each group, so tests can move people out.
    printf 'dn: cn=admins,ou=groups,%s\nobjectClass: groupOfNames\ncn: admins\nmember: cn=admin,%s\nmember: uid=alice,ou=people,%s\n\n' "$SUFFIX" "$SUFFIX" "$SUFFIX"
    printf 'dn: cn=editors,ou=groups,%s\nobjectClass: groupOfNames\ncn: editors\nmember: cn=admin,%s\nmember: uid=bob,ou=people,%s\nmember: cn=Smith\\, John,ou=people,%s\n\n' "$SUFFIX" "$SUFFIX" "$SUFFIX" "$SUFFIX"
    printf 'dn: cn=staff,ou=posix,%s\nobjectClass: posixGroup\ncn: staff\ngidNumber: 5000\nmemberUid: bob\n\n' "$SUFFIX"
  } > "$DIR/data.ldif"
  slapadd -f "$DIR/slapd.conf" -n 1 -l "$DIR/data.ldif" >"$DIR/slapadd.log" 2>&1 \
    || { cat "$DIR/slapadd.log" >&2; die "slapadd failed"; }
  serve
}

# Runs slapd on the existing database (start, and again after stop).
serve() {
  # -d 256 keeps it in the foreground, so $! is its PID; the log goes to slapd.log.
  setsid /usr/sbin/slapd -d 256 -f "$DIR/slapd.conf" -h "$URI/ ldaps://127.0.0.1:$LDAPS_PORT/" \
    >>"$DIR/slapd.log" 2>&1 </dev/null &
  echo $! > "$PIDFILE"
  local i
  for i in $(seq 1 100); do
    answers && { log "up on $URI and ldaps://127.0.0.1:$LDAPS_PORT (pid $(cat "$PIDFILE"))"; return 0; }
    alive_pid "$(cat "$PIDFILE")" || { tail -20 "$DIR/slapd.log" >&2; die "slapd exited"; }
    sleep 0.1
  done
  tail -20 "$DIR/slapd.log" >&2; die "slapd did not answer on $URI"
}

stop() {
  running || { rm -f "$PIDFILE"; return 0; }
  local pid i; pid=$(cat "$PIDFILE")
  kill -CONT "$pid" 2>/dev/null || true
  kill "$pid"
  for i in $(seq 1 50); do alive_pid "$pid" || break; sleep 0.1; done
  alive_pid "$pid" && kill -9 "$pid"
  rm -f "$PIDFILE"; log "stopped"
}

case ${1:-} in
  start) start ;;
  restart) running || serve ;;   # after stop: same data, same certificate
  url) start; echo "$URI" ;;
  ca) echo "$DIR/tls/ca.pem" ;;
  stop) stop ;;
  pause) running && kill -STOP "$(cat "$PIDFILE")" ;;
  resume) running && kill -CONT "$(cat "$PIDFILE")" ;;
  *) echo "usage: $0 start|restart|url|ca|stop|pause|resume" >&2; exit 2 ;;
esac
