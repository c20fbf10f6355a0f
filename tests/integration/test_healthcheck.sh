#!/usr/bin/env bash
# voice-agent --healthcheck: 0 and one line on a 200 from the daemon its configuration
# describes; 1 when nothing listens, the peer is silent (within the 2 s bound), the answer
# is not 200, or the configuration is invalid (2 is reserved by Docker's HEALTHCHECK).
. "$(dirname "$0")/lib.sh"

# hc VAR=value ...: runs the probe with only these variables; sets HC_OUT, HC_RC, HC_MS.
hc() {
    local t0 t1
    t0=$(date +%s%N)
    HC_OUT=$(env -i PATH="$PATH" ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}" \
        "$@" "$VA_BIN" --healthcheck --env-file "$T/no.env" 2>&1)
    HC_RC=$?
    t1=$(date +%s%N)
    HC_MS=$(((t1 - t0) / 1000000))
}

# fake_server MODE: a loopback listener that never answers (silent) or answers 503;
# sets FAKE_PID and FAKE_PORT.
fake_server() {
    node -e '
const net = require("net");
const mode = process.argv[1];
const srv = net.createServer((s) => {
  s.on("error", () => {});
  if (mode === "503")
    s.once("data", () => s.end("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"));
});
srv.listen(0, "127.0.0.1", () => console.log(srv.address().port));
setTimeout(() => process.exit(0), 30000).unref();
process.on("SIGTERM", () => process.exit(0));' "$1" >"$T/fake.port" &
    FAKE_PID=$!
    FAKE_PORT=""
    for _ in $(seq 1 100); do
        FAKE_PORT=$(head -n 1 "$T/fake.port")
        [ -n "$FAKE_PORT" ] && return
        sleep 0.05
    done
    echo "fake server did not start" >&2
    exit 1
}

va_start
# the daemon that answers
hc HOST=127.0.0.1 PORT="$VA_PORT"
assert_eq 0 "$HC_RC" "healthy daemon: exit code"
assert_eq "healthcheck: http://127.0.0.1:$VA_PORT/health: 200" "$HC_OUT" "healthy daemon: the one line"
# HOST=0.0.0.0 (the container's default) is probed on loopback
hc HOST=0.0.0.0 PORT="$VA_PORT"
assert_eq 0 "$HC_RC" "wildcard HOST probed on 127.0.0.1"
# the same configuration from a .env file
printf 'PORT=%s\nHOST=0.0.0.0\n' "$VA_PORT" >"$T/hc.env"
out=$(env -i PATH="$PATH" "$VA_BIN" --healthcheck --env-file "$T/hc.env")
assert_eq 0 "$?" "configuration from the .env file"
assert_contains "$out" ": 200" "200 reported"
assert_eq 3 "$(log_has '"route":"/health","status":200')" "each probe is one GET /health"
va_stop
port=$VA_PORT

# nothing listening any more
hc HOST=127.0.0.1 PORT="$port"
assert_eq 1 "$HC_RC" "nothing listening: exit code"
assert_eq "healthcheck: http://127.0.0.1:$port/health: connection refused" "$HC_OUT" \
    "nothing listening: the one line"
[ "$HC_MS" -lt 1500 ] && ok || fail "refused connection took ${HC_MS} ms"

# a peer that accepts and never answers: bounded by the 2 s timeout
fake_server silent
hc HOST=127.0.0.1 PORT="$FAKE_PORT"
assert_eq 1 "$HC_RC" "silent peer: exit code"
assert_contains "$HC_OUT" "timed out" "silent peer: timeout named"
# at least the 2 s bound; the ceiling is loose: a loaded machine stretches wall time
[ "$HC_MS" -ge 1900 ] && [ "$HC_MS" -lt 15000 ] && ok || fail "silent peer: ${HC_MS} ms, expected ~2000"
kill "$FAKE_PID"
wait "$FAKE_PID" 2>/dev/null

# an answer that is not 200
fake_server 503
hc HOST=127.0.0.1 PORT="$FAKE_PORT"
assert_eq 1 "$HC_RC" "503: exit code"
assert_eq "healthcheck: http://127.0.0.1:$FAKE_PORT/health: 503" "$HC_OUT" "503: the one line"
kill "$FAKE_PID"
wait "$FAKE_PID" 2>/dev/null

# an invalid configuration is unhealthy (1), never Docker's reserved 2
hc PORT=notaport
assert_eq 1 "$HC_RC" "invalid configuration: exit code"
assert_contains "$HC_OUT" "PORT" "invalid configuration: the variable named"
assert_eq 1 "$(printf '%s\n' "$HC_OUT" | wc -l)" "invalid configuration: one line"
hc PORT=0
assert_eq 1 "$HC_RC" "PORT=0: exit code"

finish
