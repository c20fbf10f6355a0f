#!/usr/bin/env bash
# The front door under bad, big, slow and many requests.
. "$(dirname "$0")/lib.sh"

va_start HTTP_REQUEST_TIMEOUT_MS=800 HTTP_MAX_CONNECTIONS=4 OPENAI_API_KEY=sk-test \
    PUBLIC_WS_URL=wss://voice.example.com/ws/twilio

# malformed request lines
raw $'GARBAGE\r\n\r\n'
assert_contains "$RAW" "HTTP/1.1 400 Bad Request" "garbage request line"
assert_contains "$RAW" '"error":"bad_request"' "400 is JSON"
raw $'GET /health HTTP/1.1\r\nBad Header Without Colon\r\n\r\n'
assert_contains "$RAW" "HTTP/1.1 400" "header without colon"
raw $'GET /health HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello'
assert_contains "$RAW" "HTTP/1.1 400" "duplicate Content-Length (smuggling)"
raw $'GET /health HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'
assert_contains "$RAW" "HTTP/1.1 400" "Content-Length with chunked (smuggling)"
raw $'\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03'
assert_contains "$RAW" "HTTP/1.1 400" "TLS hello on the plain port"

# request line + headers over 8 KiB -> 431
big=$(head -c 9000 /dev/zero | tr '\0' a)
http GET /health -H "X-Big: $big"
assert_eq 431 "$CODE" "9000-byte header"
long_target="/health?$(head -c 8300 /dev/zero | tr '\0' q)"
http GET "$long_target"
assert_eq 431 "$CODE" "8300-byte request target"
hdrs=()
for i in $(seq 1 120); do hdrs+=(-H "X-H$i: v"); done
http GET /health "${hdrs[@]}"
assert_eq 431 "$CODE" "120 headers"
ok_hdr=$(head -c 7000 /dev/zero | tr '\0' a)
http GET /health -H "X-Big: $ok_hdr"
assert_eq 200 "$CODE" "7000-byte header is within the limit"

# body over 64 KiB -> 413, announced or chunked
head -c 70000 /dev/zero | tr '\0' a >"$T/big.form"
http POST /twilio/answer --data-binary @"$T/big.form"
assert_eq 413 "$CODE" "70000-byte body"
assert_contains "$BODY" '"error":"body_too_large"' "413 is JSON"
http POST /twilio/answer -H 'Transfer-Encoding: chunked' --data-binary @"$T/big.form"
assert_eq 413 "$CODE" "70000-byte chunked body"
printf 'From=%%2B1&To=%%2B2&CallSid=CA1&Pad=' >"$T/ok.form"
head -c 60000 /dev/zero | tr '\0' b >>"$T/ok.form"
http POST /twilio/answer --data-binary @"$T/ok.form"
assert_eq 200 "$CODE" "60000-byte form body is within the limit"
assert_contains "$BODY" "<Stream" "large valid form answered"

# a slow client: headers never finish -> 408 and the connection closes after the timeout
t0=$(date +%s%N)
raw $'GET /health HTTP/1.1\r\nHost: x\r\n' 5
t1=$(date +%s%N)
assert_contains "$RAW" "HTTP/1.1 408 Request Timeout" "slow headers"
ms=$(( (t1 - t0) / 1000000 ))
[ "$ms" -ge 700 ] && [ "$ms" -lt 4000 ] && ok || fail "slow client closed after ${ms} ms, expected ~800"
# a slow body
raw $'POST /twilio/answer HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nFrom=1' 5
assert_contains "$RAW" "HTTP/1.1 408" "slow body"
# a connection that never sends a byte is closed too
t0=$(date +%s%N)
raw "" 5
t1=$(date +%s%N)
ms=$(( (t1 - t0) / 1000000 ))
[ "$ms" -lt 4000 ] && ok || fail "silent connection kept ${ms} ms"

# 1,000 keep-alive requests on one connection
for i in $(seq 1 1000); do echo "url = \"$BASE/health\""; echo "output = /dev/null"; done >"$T/urls"
curl -s -K "$T/urls" -w '%{http_code} %{num_connects}\n' >"$T/ka"
assert_eq 1000 "$(grep -c '^200 ' "$T/ka")" "1000 keep-alive answers"
assert_eq 1 "$(awk '{s += $2} END {print s}' "$T/ka")" "connections opened for 1000 requests"

# pipelined requests, one write, answered in order
raw $'GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\nPOST /twilio/answer HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 10\r\n\r\nCallSid=CAGET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
order=$(printf '%s\n' "$RAW" | grep -o 'HTTP/1.1 [0-9]*' | cut -d' ' -f2 | tr '\n' ' ')
assert_eq "200 404 200 200 " "$order" "pipelined answers in order"
assert_contains "$RAW" '<Parameter name="CallSid" value="CA"/>' "pipelined POST body kept apart"

# HTTP/1.0 without keep-alive closes after one answer
raw $'GET /health HTTP/1.0\r\n\r\n'
assert_contains "$RAW" "Connection: close" "HTTP/1.0 closes"

# too many connections: refused with 503, the others unaffected
exec 4<>"/dev/tcp/127.0.0.1/$VA_PORT"
exec 5<>"/dev/tcp/127.0.0.1/$VA_PORT"
exec 6<>"/dev/tcp/127.0.0.1/$VA_PORT"
exec 7<>"/dev/tcp/127.0.0.1/$VA_PORT"
sleep 0.2
http GET /health
assert_eq 503 "$CODE" "fifth connection over HTTP_MAX_CONNECTIONS=4"
assert_contains "$HEADERS" "Retry-After: 1" "503 says when to retry"
printf 'GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&4
held=$(timeout 3 cat <&4 | tr -d '\r')
assert_contains "$held" "HTTP/1.1 200 OK" "held connection still served"
exec 4<&- 5<&- 6<&- 7<&-
sleep 0.3
http GET /health
assert_eq 200 "$CODE" "served again once connections closed"
assert_contains "$(cat "$VA_LOG")" '"msg":"connection refused: limit reached"' "refusal logged"

finish
