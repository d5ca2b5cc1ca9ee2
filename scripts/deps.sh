#!/usr/bin/env bash
# Installs the Debian packages the build, the service and the tests need. Idempotent and
# quiet when everything is present.
set -euo pipefail

pkgs=(
  build-essential cmake pkg-config clang clang-format libclang-rt-14-dev
  libmicrohttpd-dev libjansson-dev libsqlite3-dev libidn2-dev libssl-dev libcmocka-dev
  librabbitmq-dev libpq-dev libpsl-dev publicsuffix libcurl4-openssl-dev libhiredis-dev
  sqlite3 knot knot-dnsutils dnsperf python3-pytest python3-dnspython python3-cryptography python3-aiosmtpd openssl curl
  rabbitmq-server
  postgresql redis-server wrk nginx-light
  chromium nodejs
)
# The browser tests run `npm ci`: Debian's npm, unless a Node.js that brings its own npm
# (NodeSource's) is installed already, which Debian's npm package would conflict with.
command -v npm >/dev/null 2>&1 || pkgs+=(npm)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
