#!/usr/bin/env bash
# Installs what the `saml` cargo feature builds against, when missing (Debian/Ubuntu, as root):
# libxml2 and xmlsec1 (headers and the xmlsec1 command the SAML tests sign with), libclang
# (samael generates its xmlsec1 bindings with bindgen at build time) and pkg-config.
#
#   scripts/saml-deps.sh          # installs what is missing; no-op when all is there
#   scripts/saml-deps.sh check    # exits non-zero when something is missing
set -euo pipefail

missing=()
pkg-config --exists libxml-2.0 2>/dev/null || missing+=(libxml2-dev)
pkg-config --exists xmlsec1 2>/dev/null || missing+=(libxmlsec1-dev)
command -v xmlsec1 >/dev/null || missing+=(xmlsec1)
command -v pkg-config >/dev/null || missing+=(pkg-config)
compgen -G '/usr/lib/llvm-*/lib/libclang.so*' >/dev/null \
  || compgen -G '/usr/lib/*/libclang-[0-9]*.so*' >/dev/null \
  || missing+=(libclang-dev)

if (( ${#missing[@]} == 0 )); then exit 0; fi
if [[ ${1:-} == check ]]; then echo "saml-deps: missing ${missing[*]}" >&2; exit 1; fi
echo "saml-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
