# tests/integration/lib.sh: start the real daemon on an ephemeral loopback port, assert.
# Sourced by test_*.sh; ctest sets VA_BIN (the daemon) and VA_ROOT (the source tree). One
# script alone, after make build-test: VA_BIN=build/test/voice-agent tests/integration/test_x.sh
# (every script needs VA_BIN, even one that starts no daemon).
set -u

: "${VA_BIN:?VA_BIN must point at the voice-agent binary}"
: "${VA_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
T=$(mktemp -d "${TMPDIR:-/tmp}/va-it.XXXXXX")
VA_PID=""
VA_PORT=""
RT_PID=""
RT_PORT=""
RT_KEY=sk-test-realtime-0123456789
VA_LOG="$T/daemon.log"
FAILS=0
CHECKS=0

FN_PID=""
FN_LOG="$T/fn.log"
PR_PID=""
PR_LOG="$T/pr.err"
PG_TEST_DIR=""
# When a check failed, finish() prints the tail of each of these that is not empty; a test
# adds its own with FINISH_LOGS+=(FILE).
FINISH_LOGS=("$VA_LOG" "$FN_LOG" "$PR_LOG")

cleanup() {
    if [ -n "$VA_PID" ] && kill -0 "$VA_PID" 2>/dev/null; then
        kill -KILL "$VA_PID" 2>/dev/null
    fi
    if [ -n "$RT_PID" ]; then
        kill "$RT_PID" 2>/dev/null
    fi
    fn_stop
    pr_stop
    if [ -n "$PG_TEST_DIR" ]; then
        "$VA_ROOT/scripts/pg-test.sh" stop "$PG_TEST_DIR" || true
    fi
    rm -rf "$T"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    FAILS=$((FAILS + 1))
}
ok() {
    CHECKS=$((CHECKS + 1))
}
assert_eq() { # expected actual what
    if [ "$1" = "$2" ]; then ok; else fail "$3: expected [$1] got [$2]"; fi
}
assert_contains() { # haystack needle what
    case "$1" in *"$2"*) ok ;; *) fail "$3: [$2] not in [$1]" ;; esac
}
assert_not_contains() {
    case "$1" in *"$2"*) fail "$3: [$2] unexpectedly in [$1]" ;; *) ok ;; esac
}
# json_eq EXPECTED ACTUAL WHAT: the same JSON value (same keys, types and values; key order
# is free, as jsonb does not keep it).
json_eq() {
    if node -e '
const canon = (v) => Array.isArray(v) ? v.map(canon) : v && typeof v === "object"
  ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, canon(v[k])])) : v;
try { process.exit(JSON.stringify(canon(JSON.parse(process.argv[1]))) ===
                  JSON.stringify(canon(JSON.parse(process.argv[2]))) ? 0 : 1); }
catch (e) { process.exit(1); }' -- "$1" "$2"; then ok; else fail "$3: expected $1 got [$2]"; fi
}
finish() {
    local f
    if [ -n "$VA_PID" ]; then va_stop; fi
    if [ "$FAILS" -ne 0 ]; then
        echo "$(basename "$0"): $FAILS of $((CHECKS + FAILS)) checks failed" >&2
        for f in "${FINISH_LOGS[@]}"; do
            [ -s "$f" ] || continue
            echo "--- ${f#"$T"/} tail ---" >&2
            tail -n 40 "$f" >&2
        done
        exit 1
    fi
    echo "$(basename "$0"): $CHECKS checks passed (${SECONDS}s)"
    exit 0
}

# await_port FILE PID: waits (15 s at most, while PID lives) for the first "listening" line
# in FILE, the daemon's and the function's {"msg":"listening",...,"port":N} or the fakes'
# {"listening":N}, and prints N; fails if none came.
await_port() {
    local port
    for _ in $(seq 1 300); do
        port=$(sed -n -e 's/.*"msg":"listening".*"port":\([0-9]*\).*/\1/p' \
            -e 's/^{"listening":\([0-9]*\)}$/\1/p' "$1" | head -n 1)
        [ -n "$port" ] && { echo "$port"; return 0; }
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# va_start [VAR=value ...]: a clean environment (only what the test passes), PORT=0,
# HOST=127.0.0.1, no .env; waits for the "listening" line and sets VA_PORT.
va_start() {
    : >"$VA_LOG"
    env -i PATH="$PATH" HOME="$T" \
        ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}" \
        UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
        HOST=127.0.0.1 PORT=0 CALL_EVENTS_SPOOL_DIR="$T/spool" "$@" \
        "$VA_BIN" --env-file "$T/no.env" >>"$VA_LOG" 2>&1 &
    VA_PID=$!
    VA_PORT=$(await_port "$VA_LOG" "$VA_PID") ||
        { echo "the daemon did not start:" >&2; cat "$VA_LOG" >&2; exit 1; }
    BASE="http://127.0.0.1:$VA_PORT"
}

# va_stop: SIGTERM, expect exit 0 and no sanitizer report.
va_stop() {
    kill -TERM "$VA_PID" 2>/dev/null
    va_reap
}

# va_reap: after a SIGTERM sent by the test itself: exit code 0, no sanitizer report, a
# clean stop, JSON logs.
va_reap() {
    wait "$VA_PID"
    local rc=$?
    VA_PID=""
    assert_eq 0 "$rc" "daemon exit code after SIGTERM"
    if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$VA_LOG"; then
        fail "sanitizer report in daemon output"
        grep -E -A20 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$VA_LOG" | head -40 >&2
    else
        ok
    fi
    if ! grep -q '"msg":"stopped"' "$VA_LOG"; then fail "no clean stop (loop not empty?)"; else ok; fi
    check_log_json
}

# check_log_json [FILE]: every line the daemon (or FILE's writer) printed is one JSON object
# with ts (UTC, ms), level and msg.
check_log_json() {
    local bad
    bad=$(node -e '
const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean);
let bad = [];
for (const l of lines) {
  try { const o = JSON.parse(l);
        if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(o.ts) || !o.level || !o.msg) bad.push(l); }
  catch (e) { bad.push(l); }
}
console.log(bad.slice(0, 3).join("\n"));' "${1:-$VA_LOG}")
    if [ -n "$bad" ]; then fail "log lines that are not JSON with ts/level/msg: $bad"; else ok; fi
}

# http METHOD PATH [curl args...]: sets CODE, BODY (and HEADERS in $T/h).
http() {
    local method=$1 path=$2
    shift 2
    CODE=$(curl -s -o "$T/body" -D "$T/h" -w '%{http_code}' -X "$method" "$@" "$BASE$path")
    BODY=$(cat "$T/body")
    HEADERS=$(tr -d '\r' <"$T/h")
}

# raw DATA [wait_s]: writes DATA (printf format already applied by caller) on a fresh
# connection, reads until the server closes or wait_s passes; sets RAW.
raw() {
    local data=$1 wait_s=${2:-3}
    RAW=$(exec 3<>"/dev/tcp/127.0.0.1/$VA_PORT"
        printf '%s' "$data" >&3
        timeout "$wait_s" cat <&3 | tr -d '\r'
        exec 3<&-)
}

log_has() { grep -c -- "$1" "$VA_LOG"; }

# rt_start [options]: the fake OpenAI Realtime (tests/fakes/realtime.js) on an ephemeral
# port, logging to $T/rt.log, recording input audio under $T/rtrec; sets RT_PORT.
rt_start() {
    mkdir -p "$T/rtrec"
    : >"$T/rt.out"
    node "$VA_ROOT/tests/fakes/realtime.js" --port 0 --key "$RT_KEY" --log "$T/rt.log" \
        --record-dir "$T/rtrec" "$@" >>"$T/rt.out" 2>"$T/rt.err" &
    RT_PID=$!
    RT_PORT=$(await_port "$T/rt.out" "$RT_PID") ||
        { echo "fake realtime did not start:" >&2; cat "$T/rt.err" >&2; exit 1; }
}

# rt_stop: SIGTERM (the fake prints the summaries of open sessions and exits 0).
rt_stop() {
    kill "$RT_PID" 2>/dev/null
    wait "$RT_PID" 2>/dev/null
    RT_PID=""
}

# rt_last_session: the id of the last session the fake summarised.
rt_last_session() {
    node -e 'const l=require("fs").readFileSync(process.argv[1],"utf8").trim().split("\n").filter(x=>x.startsWith("{\"session")); console.log(JSON.parse(l[l.length-1]).session)' "$T/rt.out"
}

# va_start_rt [VAR=value ...]: the daemon pointed at the fake Realtime.
va_start_rt() {
    va_start OPENAI_API_KEY=$RT_KEY OPENAI_REALTIME_URL=ws://127.0.0.1:$RT_PORT/v1/realtime "$@"
}

# pg_start: a throwaway PostgreSQL 15 on a loopback port with every migration applied
# (scripts/pg-test.sh); exports PG_TEST_DIR, PGHOST, PGPORT, PGUSER, PGDATABASE, PGDATA,
# DATABASE_URL. Stopped by cleanup (scripts/pg-test.sh down/up "$PG_TEST_DIR" make an
# outage in between).
pg_start() {
    local out
    out=$("$VA_ROOT/scripts/pg-test.sh" 2>"$T/pg.err") || { cat "$T/pg.err" >&2; exit 1; }
    set -a
    eval "$out"
    set +a
}

# q SQL: one psql command on $PGDATABASE, rows unaligned without headers, stopping at the
# first error.
q() { psql -X -q -t -A -v ON_ERROR_STOP=1 -c "$1"; }

# hold_voucher CODE SECONDS: a background session (application_name "va_hold CODE") locks
# voucher CODE's row for SECONDS, so redeeming CODE waits in the database; returns once the
# lock is held (or fails a check). Sets HOLD_PID; pg_terminate_backend ends it early.
hold_voucher() {
    PGAPPNAME="va_hold $1" psql -X -q -c "begin; select 1 from vouchers where code = '$1' for update;
        select pg_sleep($2); commit;" >/dev/null 2>&1 &
    HOLD_PID=$!
    for _ in $(seq 1 200); do
        [ "$(q "select count(*) from pg_stat_activity where application_name = 'va_hold $1' and wait_event = 'PgSleep'")" = 1 ] &&
            return 0
        sleep 0.05
    done
    fail "the lock holder of voucher $1 did not start"
}

# pg_lock_waiters N: waits (10 s at most) until N sessions of the database wait on a lock;
# prints how many do.
pg_lock_waiters() {
    local waiting=0
    for _ in $(seq 1 200); do
        waiting=$(q "select count(*) from pg_stat_activity where wait_event_type = 'Lock' and datname = current_database()")
        [ "$waiting" -ge "$1" ] && break
        sleep 0.05
    done
    echo "$waiting"
}

# pr_start KEY [options]: the fake PostgREST (tests/fakes/postgrest.js) on $DATABASE_URL
# with service key KEY, on an ephemeral port, stderr in $PR_LOG; sets PR_PORT and PR_URL.
pr_start() {
    local key=$1
    shift
    : >"$PR_LOG"
    node "$VA_ROOT/tests/fakes/postgrest.js" --port 0 --database-url "$DATABASE_URL" --key "$key" \
        "$@" >"$T/pr.out" 2>"$PR_LOG" &
    PR_PID=$!
    PR_PORT=$(await_port "$T/pr.out" "$PR_PID") ||
        { echo "fake postgrest did not start:" >&2; cat "$PR_LOG" >&2; exit 1; }
    PR_URL="http://127.0.0.1:$PR_PORT"
}

# pr_stop: SIGTERM; returns the fake's exit status (0: it closed cleanly).
pr_stop() {
    local rc
    [ -n "$PR_PID" ] || return 0
    kill "$PR_PID" 2>/dev/null
    wait "$PR_PID" 2>/dev/null
    rc=$?
    PR_PID=""
    return "$rc"
}

# fn_deno [VAR=value ...] ARGS...: execs Deno (npm package deno) in $T with a clean
# environment plus VARs and the cache scripts/install-deps.sh test filled with the
# function's npm imports (so --cached-only downloads nothing). It replaces the shell: call
# it in ( ) or with &, whose $! is then Deno's pid.
FN_SRC="$VA_ROOT/supabase/functions/call-webhook/index.ts"
fn_deno() {
    local deno="$VA_ROOT/tests/node/node_modules/.bin/deno" vars=()
    [ -x "$deno" ] || { echo "no deno at $deno: run scripts/install-deps.sh test" >&2; exit 1; }
    while [ $# -gt 0 ] && [[ $1 == [A-Z]*=* ]]; do
        vars+=("$1")
        shift
    done
    cd "$T" || exit 1
    exec env -i PATH="$PATH" HOME="$T" DENO_DIR="$VA_ROOT/tests/node/.deno" DENO_NO_UPDATE_CHECK=1 \
        NO_COLOR=1 "${vars[@]}" "$deno" "$@"
}

# fn_start KEY: the call-webhook Edge Function on real Deno (fn_deno) against $DATABASE_URL
# with service key KEY, on a free loopback port, logging to $FN_LOG; sets FN_PORT and FN_URL.
# FN_PORT=N before the call (as after an fn_stop) reuses port N.
fn_start() {
    : >"$FN_LOG"
    fn_deno SUPABASE_DB_URL="$DATABASE_URL" SUPABASE_SERVICE_ROLE_KEY="$1" CALL_WEBHOOK_PORT="${FN_PORT:-0}" \
        run --cached-only --no-lock --allow-net=127.0.0.1 --allow-env --allow-read "$FN_SRC" >>"$FN_LOG" 2>&1 &
    FN_PID=$!
    FN_PORT=$(await_port "$FN_LOG" "$FN_PID") ||
        { echo "the function did not start:" >&2; cat "$FN_LOG" >&2; exit 1; }
    FN_URL="http://127.0.0.1:$FN_PORT/call-webhook"
}

fn_stop() {
    if [ -n "$FN_PID" ]; then
        kill "$FN_PID" 2>/dev/null
        wait "$FN_PID" 2>/dev/null
        FN_PID=""
    fi
}
