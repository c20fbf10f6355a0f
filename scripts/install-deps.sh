#!/bin/sh
# Installs the Debian packages voice-agent needs, and only those.
#   scripts/install-deps.sh [all|build|runtime|test|image] [--list]   (default: all)
# --list: print the mode's Debian packages, one a line, and install nothing
# build   : compilers, headers and sources to build the daemon
# runtime : shared libraries the daemon loads (the lws libuv plugin too: lws dlopens it,
#           so ldd does not show it), CA certificates; the container image installs this
# test    : build + what the test suite runs (curl, Node.js, the npm test deps)
# image   : what `make image` needs to build and run the image without a Docker engine
# Idempotent: asks dpkg first and runs apt-get only for what is missing.
set -eu

mode=${1:-all}
list=${2:-}
here=$(cd "$(dirname "$0")/.." && pwd)

build_pkgs="build-essential cmake pkg-config node-llhttp libuv1-dev libcjson-dev libssl-dev
  libwebsockets-dev libwslay-dev libspeexdsp-dev libcurl4-openssl-dev"
runtime_pkgs="libuv1 libcjson1 libssl3 libwebsockets17 libwebsockets-evlib-uv libwslay1
  libspeexdsp1 libcurl4 ca-certificates"
test_pkgs="libcmocka-dev curl procps espeak-ng sox postgresql python3-prometheus-client"
test_pkgs="$test_pkgs clang-14 libclang-rt-14-dev" # libFuzzer: tests/fuzz, make fuzz
image_pkgs="podman runc debootstrap curl"

case "$mode" in
build) want="$build_pkgs" ;;
runtime) want="$runtime_pkgs" ;;
test) want="$build_pkgs $test_pkgs" ;;
all) want="$build_pkgs $runtime_pkgs $test_pkgs" ;;
image) want="$image_pkgs" ;;
*) echo "usage: $0 [all|build|runtime|test|image] [--list]" >&2; exit 2 ;;
esac
if [ "$list" = --list ]; then
    # shellcheck disable=SC2086
    printf '%s\n' $want
    exit 0
fi

missing=""
for p in $want; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $p"
    fi
done
# Node.js runs the test helpers; a machine may already carry its own build of it.
if [ "$mode" = test ] || [ "$mode" = all ]; then
    command -v node >/dev/null 2>&1 || missing="$missing nodejs"
    command -v npm >/dev/null 2>&1 || missing="$missing npm"
fi

if [ -n "$missing" ]; then
    sudo=""
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null 2>&1 || { echo "install-deps: need root or sudo for:$missing" >&2; exit 1; }
        sudo=sudo
    fi
    echo "install-deps: installing$missing"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # shellcheck disable=SC2086
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
fi

if [ "$mode" = test ] || [ "$mode" = all ]; then
    nm="$here/tests/node"
    if [ ! -d "$nm/node_modules" ] || [ "$nm/package-lock.json" -nt "$nm/node_modules/.package-lock.json" ]; then
        echo "install-deps: npm ci in tests/node"
        (cd "$nm" && npm ci --no-audit --no-fund --loglevel=error)
    fi
    # The call-webhook Edge Function's npm imports, cached for Deno (npm package deno) in
    # tests/node/.deno, so that its test runs deno --cached-only and never downloads.
    # The stamp (imports + deno version) makes a re-run a no-op.
    fn="$here/supabase/functions/call-webhook/index.ts"
    dd="$nm/.deno"
    imports=$(grep -o '"npm:[^"]*"' "$fn" | sort; "$nm/node_modules/.bin/deno" --version | head -n 1)
    if [ "$(cat "$dd/.cached-imports" 2>/dev/null)" != "$imports" ]; then
        echo "install-deps: deno cache for supabase/functions/call-webhook"
        (cd "${TMPDIR:-/tmp}" && DENO_DIR="$dd" DENO_NO_UPDATE_CHECK=1 NO_COLOR=1 \
            "$nm/node_modules/.bin/deno" cache --no-lock --quiet "$fn")
        printf '%s\n' "$imports" >"$dd/.cached-imports"
    fi
fi
