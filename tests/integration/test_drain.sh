#!/usr/bin/env bash
# SIGTERM: stop taking calls, /ready 503, let work in flight finish, exit 0 with every
# handle closed; the drain deadline; a second signal exits at once.
. "$(dirname "$0")/lib.sh"

va_start OPENAI_API_KEY=sk-test PUBLIC_WS_URL=wss://example.com/ws/twilio DRAIN_TIMEOUT_S=20 \
    HTTP_REQUEST_TIMEOUT_MS=15000
# a request in flight: headers sent, body not yet
exec 3<>"/dev/tcp/127.0.0.1/$VA_PORT"
printf 'POST /twilio/answer HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 9\r\n\r\n' >&3
sleep 0.2
kill -TERM "$VA_PID"
sleep 0.3
kill -0 "$VA_PID" 2>/dev/null && ok || fail "daemon left before the request in flight finished"
http GET /ready
assert_eq 503 "$CODE" "/ready while draining"
assert_contains "$BODY" '"draining"' "draining named"
http GET /health
assert_eq 200 "$CODE" "/health still answers while draining"
assert_contains "$HEADERS" "Connection: close" "no keep-alive while draining"
http POST /twilio/answer -d "From=%2B1&To=%2B2&CallSid=CA2"
assert_contains "$BODY" "<Hangup/>" "new call while draining gets the apology"
printf 'CallSid=X' >&3
answer=$(timeout 5 cat <&3 | tr -d '\r')
exec 3<&-
assert_contains "$answer" "HTTP/1.1 200 OK" "request in flight answered"
assert_contains "$answer" "Connection: close" "and its connection closed"
for _ in $(seq 1 100); do kill -0 "$VA_PID" 2>/dev/null || break; sleep 0.05; done
wait "$VA_PID"
assert_eq 0 "$?" "exit code after drain"
VA_PID=""
assert_eq 1 "$(log_has '"msg":"draining"')" "drain logged"
assert_eq 1 "$(log_has '"msg":"stopped"')" "clean stop (uv_loop_close == 0)"
check_log_json

# the deadline: a request that never completes does not hold the daemon past DRAIN_TIMEOUT_S
va_start OPENAI_API_KEY=sk-test PUBLIC_WS_URL=wss://example.com/ws/twilio DRAIN_TIMEOUT_S=1 \
    HTTP_REQUEST_TIMEOUT_MS=30000
exec 3<>"/dev/tcp/127.0.0.1/$VA_PORT"
printf 'GET /health HTTP/1.1\r\n' >&3
sleep 0.2
t0=$(date +%s%N)
kill -TERM "$VA_PID"
wait "$VA_PID"
rc=$?
t1=$(date +%s%N)
VA_PID=""
exec 3<&-
assert_eq 0 "$rc" "exit code at the drain deadline"
ms=$(( (t1 - t0) / 1000000 ))
[ "$ms" -ge 900 ] && [ "$ms" -lt 5000 ] && ok || fail "deadline exit after ${ms} ms, expected ~1000"
assert_eq 1 "$(log_has '"msg":"drain deadline reached"')" "deadline logged"
assert_eq 1 "$(log_has '"msg":"stopped"')" "clean stop at the deadline"

# idle: SIGTERM with nothing in flight exits at once, keep-alive connections included
va_start OPENAI_API_KEY=sk-test PUBLIC_WS_URL=wss://example.com/ws/twilio
exec 3<>"/dev/tcp/127.0.0.1/$VA_PORT"
printf 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n' >&3
sleep 0.2
t0=$(date +%s%N)
kill -INT "$VA_PID"
wait "$VA_PID"
rc=$?
t1=$(date +%s%N)
VA_PID=""
exec 3<&-
assert_eq 0 "$rc" "SIGINT exit code"
[ $(( (t1 - t0) / 1000000 )) -lt 2000 ] && ok || fail "idle drain took too long"

# a second signal exits at once
va_start OPENAI_API_KEY=sk-test PUBLIC_WS_URL=wss://example.com/ws/twilio DRAIN_TIMEOUT_S=60 \
    HTTP_REQUEST_TIMEOUT_MS=60000
exec 3<>"/dev/tcp/127.0.0.1/$VA_PORT"
printf 'GET /health HTTP/1.1\r\n' >&3
sleep 0.2
kill -TERM "$VA_PID"
sleep 0.3
kill -TERM "$VA_PID"
wait "$VA_PID"
rc=$?
VA_PID=""
exec 3<&-
assert_eq 1 "$rc" "second signal: immediate exit"
assert_eq 1 "$(log_has '"msg":"second signal: exiting now"')" "second signal logged"
finish
