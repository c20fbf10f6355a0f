#!/usr/bin/env bash
# Configuration as an operator meets it: .env files, precedence, bad values, the docs.
. "$(dirname "$0")/lib.sh"

run_cfg() { # env assignments... -> RC, OUT (a bad value must stop startup by itself)
    OUT=$(timeout -s TERM 20 env -i PATH="$PATH" HOST=127.0.0.1 PORT=0 "$@" "$VA_BIN" \
        --env-file "$T/none.env" 2>&1)
    RC=$?
}
for bad in PORT=70000 PORT=abc MAX_CALLS=0 LOG_LEVEL=loud VOICE_AGENT_ENABLED=maybe \
    PUBLIC_WS_URL=https://x/ws OPENAI_REALTIME_URL=http://x DRAIN_TIMEOUT_S=-1 \
    TRUST_PROXY=10.0.0.0/33 HOST=not-an-ip RATE_LIMIT_BURST=0; do
    run_cfg "$bad"
    assert_eq 2 "$RC" "exit code for $bad"
    assert_contains "$OUT" "\"${bad%%=*}: " "error names ${bad%%=*}"
    assert_contains "$OUT" '"level":"error"' "error is a JSON log line"
done

# .env: comments, quotes, export; the real environment wins
cat >"$T/test.env" <<'ENV'
# a comment
export OPENAI_API_KEY="sk-from-file"
PUBLIC_WS_URL='wss://file.example.com/ws/twilio'
APOLOGY_TEXT="We are busy" # trailing comment
LOG_LEVEL = debug
ENV
env -i PATH="$PATH" HOST=127.0.0.1 PORT=0 PUBLIC_WS_URL=wss://env.example.com/ws/twilio \
    "$VA_BIN" --env-file "$T/test.env" >"$VA_LOG" 2>&1 &
VA_PID=$!
for _ in $(seq 1 100); do
    VA_PORT=$(sed -n 's/.*"msg":"listening".*"port":\([0-9]*\).*/\1/p' "$VA_LOG" | head -n 1)
    [ -n "$VA_PORT" ] && break
    sleep 0.05
done
BASE="http://127.0.0.1:$VA_PORT"
http GET /ready
assert_eq 200 "$CODE" "key from .env makes us ready"
http POST /twilio/answer -d "CallSid=CA1"
assert_contains "$BODY" 'url="wss://env.example.com/ws/twilio"' "environment wins over .env"
assert_contains "$BODY" '<Say>We are busy</Say>' "quoted value with trailing comment"
assert_contains "$(cat "$VA_LOG")" '"level":"debug"' "LOG_LEVEL from .env with spaces around ="
va_stop

# a malformed .env stops startup with its line number
printf 'GOOD=1\nthis is not an assignment\n' >"$T/bad.env"
OUT=$(env -i PATH="$PATH" "$VA_BIN" --env-file "$T/bad.env" 2>&1)
assert_eq 2 "$?" "malformed .env exits 2"
assert_contains "$OUT" "2" "malformed .env names the line"

# the docs: README.md's table and .env.example are checked against the binary's
# table by tests/unit/test_core_config.c; here the two flags that print them work
"$VA_BIN" --print-config-table | grep -q '^| `PORT` | int | 0..65535 | `8787` |' && ok || fail "--print-config-table"
"$VA_BIN" --print-env-example | grep -q '^PORT=8787$' && ok || fail "--print-env-example"
finish
