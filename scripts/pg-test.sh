#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster (Debian's postgresql-15) for the tests.
#   eval "$(scripts/pg-test.sh)"        start: temp dir, free loopback port, unix socket in
#                                        the temp dir, database voice_agent, every
#                                        supabase/migrations/*.sql applied in order; prints
#                                        PG_TEST_DIR= PGPORT= PGHOST= PGUSER= PGDATABASE=
#                                        PGDATA= DATABASE_URL= lines (progress goes to stderr)
#   scripts/pg-test.sh stop DIR          stop that cluster (DIR = PG_TEST_DIR or its PGDATA)
#                                        and remove DIR
#   scripts/pg-test.sh down DIR          stop its server, keep the cluster (an outage)
#   scripts/pg-test.sh up DIR            start that server again on the same port
# As root the cluster is owned by and runs as the `postgres` user (runuser). Auth is
# trust on 127.0.0.1 and the socket only: never point this at anything but tests.
set -euo pipefail

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
root=$(cd "$(dirname "$0")/.." && pwd)

die() { echo "pg-test: $*" >&2; exit 1; }

need_pg() {
    [ -x "$PGBIN/initdb" ] && [ -x "$PGBIN/pg_ctl" ] && [ -x "$PGBIN/postgres" ] ||
        die "PostgreSQL 15 not found in $PGBIN: install the Debian package postgresql-15 (apt-get install postgresql, or scripts/install-deps.sh test)"
    command -v psql >/dev/null 2>&1 ||
        die "psql not found: install the Debian package postgresql-client-15"
}

# as_owner CMD...: run CMD as the cluster owner (postgres when we are root).
as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# cluster_dir CMD DIR: DIR (PG_TEST_DIR, or its PGDATA) once it is known to be ours.
cluster_dir() {
    local dir=${2:?usage: pg-test.sh $1 DIR}
    [ -f "$dir/PG_VERSION" ] && dir=$(dirname "$dir") # PGDATA given
    [ -d "$dir/data" ] || die "$1: $dir is not a pg-test cluster directory"
    [ -f "$dir/.pg-test" ] || die "$1: $dir was not made by pg-test.sh; not touching it"
    echo "$dir"
}

# server_start DIR PORT: the cluster's server on 127.0.0.1:PORT, its socket in DIR,
# durability off (a test cluster).
server_start() {
    as_owner "$PGBIN/pg_ctl" start -D "$1/data" -w -t 30 -l "$1/postgres.log" \
        -o "-p $2 -k $1 -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        >/dev/null 2>&1
}

stop_cluster() {
    local dir
    dir=$(cluster_dir stop "${1:-}")
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_owner "$PGBIN/pg_ctl" stop -D "$dir/data" -m immediate -w -t 20 >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
}

down_cluster() {
    local dir
    dir=$(cluster_dir down "${1:-}")
    as_owner "$PGBIN/pg_ctl" stop -D "$dir/data" -m fast -w -t 20 >/dev/null 2>&1 || die "down: pg_ctl stop failed"
}

up_cluster() {
    local dir
    dir=$(cluster_dir up "${1:-}")
    server_start "$dir" "$(cat "$dir/port")" || { tail -n 20 "$dir/postgres.log" >&2; die "up: pg_ctl start failed"; }
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_cluster() {
    need_pg
    local base=${TMPDIR:-/tmp}
    local dir
    dir=$(mktemp -d "$base/va-pg.XXXXXX")
    touch "$dir/.pg-test"
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || { rm -rf "$dir"; die "running as root but there is no postgres user (Debian's postgresql-15 creates it)"; }
        chown postgres: "$dir"
        runuser -u postgres -- test -w "$dir" || { rm -rf "$dir"; die "the postgres user cannot write $dir (set TMPDIR to a world-traversable directory)"; }
    fi
    trap 'stop_cluster "$dir" 2>/dev/null || rm -rf "$dir"' ERR

    as_owner "$PGBIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale -N \
        >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }

    local port="" try
    for try in 1 2 3 4 5 6 7 8; do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        port_free "$port" || continue
        server_start "$dir" "$port" && break
        port=""
        echo "pg-test: start on a port failed (try $try), retrying" >&2
    done
    [ -n "$port" ] || { tail -n 20 "$dir/postgres.log" >&2 || true; die "could not start postgres"; }
    echo "$port" >"$dir/port"

    export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres
    psql -X -q -v ON_ERROR_STOP=1 -d postgres -c 'create database voice_agent' >&2
    local f n=0
    for f in "$root"/supabase/migrations/*.sql; do
        [ -e "$f" ] || continue
        psql -X -q -v ON_ERROR_STOP=1 -1 -d voice_agent -f "$f" >&2 ||
            die "migration $(basename "$f") failed"
        n=$((n + 1))
    done
    echo "pg-test: postgres on 127.0.0.1:$port, $n migration(s) applied, dir $dir" >&2
    trap - ERR

    printf 'PG_TEST_DIR=%q\n' "$dir"
    printf 'PGHOST=127.0.0.1\nPGPORT=%s\nPGUSER=postgres\nPGDATABASE=voice_agent\n' "$port"
    printf 'PGDATA=%q\n' "$dir/data"
    printf 'DATABASE_URL=%q\n' "postgres://postgres@127.0.0.1:$port/voice_agent"
}

case "${1:-start}" in
start) start_cluster ;;
stop) stop_cluster "${2:-}" ;;
down) down_cluster "${2:-}" ;;
up) up_cluster "${2:-}" ;;
*) echo "usage: $0 [start] | $0 stop|down|up DIR" >&2; exit 2 ;;
esac
