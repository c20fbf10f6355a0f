#!/usr/bin/env bash
# Call events end to end with real parts: the daemon, the fake Twilio and fake Realtime,
# the call-webhook Edge Function on real Deno and a real PostgreSQL. A call's events
# become one `calls` row (transcript, intent from the model, duration, status, Twilio's
# status callback); with the function down nothing is lost and all arrives once it is
# back; a daemon killed with SIGKILL replays its spool at the next start; a refused call
# is a "rejected" row; a stream whose start comes after the Realtime breaker opened is a
# "failed" row. At the end every call is in `calls` exactly once.
. "$(dirname "$0")/lib.sh"
KEY=test-service-role-key-events-0123456789
field() { q "select $2 from calls where call_sid = '$1'"; }
spooled() { find "$T/spool" -name '*.json' 2>/dev/null | wc -l; }
# wait_for CMD EXPECTED [seconds]: polls until CMD prints EXPECTED
wait_for() {
    local i
    for i in $(seq 1 $((${3:-15} * 10))); do
        [ "$(eval "$1")" = "$2" ] && return 0
        sleep 0.1
    done
    return 1
}
# call SID [twilio.js options]: one simulated call with the caller's speech
call() {
    local sid=$1
    shift
    node "$VA_ROOT/tests/fakes/twilio.js" --port "$VA_PORT" --call-sid "$sid" \
        --from +250788000001 --to +15005550006 --audio "$T/speech.ulaw" --linger-ms 2500 "$@"
}
daemon() { # the daemon with events to the function, fast retries
    va_start_rt PUBLIC_WS_URL=wss://example.com/ws/twilio SUPABASE_URL=http://127.0.0.1:9 \
        SUPABASE_SERVICE_ROLE_KEY=$KEY CALL_EVENTS_URL="$FN_URL" CALL_EVENTS_RETRY_BASE_MS=100 \
        CALL_EVENTS_RETRY_CAP_MS=500 DRAIN_TIMEOUT_S=5 "$@"
}

espeak-ng -s 160 -w "$T/speech.wav" "Hello, I would like to know my balance please." 2>/dev/null
sox "$T/speech.wav" -r 8000 -c 1 -e mu-law -t raw "$T/speech.ulaw"
pg_start
fn_start "$KEY"

# 1. a call with the function up: one row with the transcript, the model's intent, the
#    duration and status; then Twilio's status callback adds its view
rt_start --tool-call 'set_call_intent:{"intent":"balance_inquiry"}' --transcript "what is my balance"
daemon
out=$(call CA00000000000000000000000000000001)
assert_contains "$out" '"ok":true' "call 1"
wait_for "spooled" 0 && ok || fail "call 1: spool not emptied ($(spooled) left)"
assert_eq completed "$(field CA00000000000000000000000000000001 status)" "call 1: status"
assert_eq balance_inquiry "$(field CA00000000000000000000000000000001 intent)" "call 1: intent from the model"
assert_eq model "$(field CA00000000000000000000000000000001 "meta->>'intent_source'")" "call 1: intent source"
transcript=$(field CA00000000000000000000000000000001 transcript)
assert_contains "$transcript" "Caller: what is my balance" "call 1: caller turn"
assert_contains "$transcript" "Agent: This is the assistant speaking." "call 1: agent turn"
dur=$(field CA00000000000000000000000000000001 duration)
[ "${dur:-0}" -ge 3 ] && [ "${dur:-0}" -le 20 ] && ok || fail "call 1: duration $dur s"
assert_eq "+250788000001|+15005550006" "$(field CA00000000000000000000000000000001 "from_number || '|' || to_number")" "call 1: numbers"
assert_eq success "$(field CA00000000000000000000000000000001 "meta->'tool_calls'->0->>'outcome'")" "call 1: the tool call is on record"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST \
    --data 'CallSid=CA00000000000000000000000000000001&CallStatus=completed&CallDuration=9&From=%2B250788000001&To=%2B15005550006' \
    "http://127.0.0.1:$VA_PORT/twilio/status")
assert_eq 204 "$code" "status callback accepted"
wait_for "field CA00000000000000000000000000000001 \"meta->'twilio'->>'call_status'\"" completed && ok ||
    fail "status callback not recorded"
assert_eq completed "$(field CA00000000000000000000000000000001 status)" "call 1: the daemon's status still wins"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST --data 'CallSid=CA9&CallStatus=bogus' \
    "http://127.0.0.1:$VA_PORT/twilio/status")
assert_eq 400 "$code" "unknown CallStatus: 400"
# /metrics, parsed by the Prometheus client library's own parser
http GET /metrics
assert_eq 200 "$CODE" "/metrics"
printf '%s' "$BODY" | /usr/bin/python3 "$VA_ROOT/tests/support/promcheck.py" voice_agent_calls_active \
    voice_agent_calls voice_agent_call_duration_seconds voice_agent_frames voice_agent_late_frames \
    voice_agent_dropped_audio_bytes voice_agent_added_latency_seconds \
    voice_agent_barge_in_reaction_seconds voice_agent_realtime_connect_seconds \
    voice_agent_realtime_errors voice_agent_tool_calls voice_agent_tool_latency_seconds \
    voice_agent_event_spool_depth voice_agent_event_delivery_failures voice_agent_breaker_open \
    process_cpu_seconds process_resident_memory_bytes process_open_fds >"$T/prom" 2>"$T/prom.err" &&
    ok || fail "metrics do not parse: $(cat "$T/prom.err")"
prom=$(cat "$T/prom")
assert_contains "$prom" 'voice_agent_calls_total{outcome=completed} 1.0' "metrics: one call completed"
assert_contains "$prom" 'voice_agent_call_duration_seconds_count{} 1.0' "metrics: its duration observed"
assert_contains "$prom" 'voice_agent_tool_calls_total{outcome=success,tool=set_call_intent} 1.0' "metrics: the tool call"
assert_contains "$prom" 'voice_agent_events_delivered_total{} 4.0' "metrics: 4 events delivered"
assert_contains "$prom" 'voice_agent_realtime_connect_seconds_count{} 1.0' "metrics: one Realtime connect"
assert_contains "$prom" 'voice_agent_breaker_open{breaker=realtime} 0.0' "metrics: breaker closed"
assert_not_contains "$prom" 'voice_agent_added_latency_seconds_count{direction=in} 0.0' "metrics: inbound latency observed"
assert_not_contains "$prom" 'voice_agent_added_latency_seconds_count{direction=out} 0.0' "metrics: outbound latency observed"
assert_not_contains "$prom" 'voice_agent_frames_total{direction=in} 0.0' "metrics: frames in counted"
va_stop

# 2. the function down for a while: the events wait in the spool (fsync'd files), /ready
#    says delivery is failing; once it is back everything arrives, once
fn_stop
daemon
out=$(call CA00000000000000000000000000000002)
assert_contains "$out" '"ok":true' "call 2"
sleep 1
[ "$(spooled)" -ge 2 ] && ok || fail "call 2: events not spooled while the function is down ($(spooled))"
http GET /ready
assert_contains "$BODY" "call events: delivery failing" "/ready lists the failing delivery"
assert_eq 0 "$(q "select count(*) from calls where call_sid = 'CA00000000000000000000000000000002'")" "nothing written while down"
fn_start "$KEY"
wait_for "spooled" 0 && ok || fail "call 2: spool not emptied after the function returned"
assert_eq completed "$(field CA00000000000000000000000000000002 status)" "call 2: delivered after the outage"
va_stop

# 3. SIGKILL with events undelivered: the next start replays the spool
fn_stop
daemon
out=$(call CA00000000000000000000000000000003)
assert_contains "$out" '"ok":true' "call 3"
sleep 0.5
[ "$(spooled)" -ge 2 ] && ok || fail "call 3: events not spooled"
kill -KILL "$VA_PID"
wait "$VA_PID" 2>/dev/null
VA_PID=""
fn_start "$KEY"
daemon
assert_eq 1 "$(log_has '"msg":"spool replayed"')" "spool replayed at start"
wait_for "spooled" 0 && ok || fail "call 3: replayed spool not emptied"
assert_eq completed "$(field CA00000000000000000000000000000003 status)" "call 3: on record after SIGKILL"
va_stop
rt_stop

# 4. a refused call (VOICE_AGENT_ENABLED=false: the apology TwiML) is a row all the same
va_start SUPABASE_URL=http://127.0.0.1:9 SUPABASE_SERVICE_ROLE_KEY=$KEY CALL_EVENTS_URL="$FN_URL" \
    VOICE_AGENT_ENABLED=false PUBLIC_WS_URL=wss://example.com/ws/twilio METRICS_TOKEN=metrics-token-123
http POST /twilio/answer -d 'CallSid=CA00000000000000000000000000000004&From=%2B250788000004&To=%2B15005550006'
assert_contains "$BODY" "<Say" "refused call: apology TwiML"
wait_for "field CA00000000000000000000000000000004 status" rejected && ok || fail "refused call: no rejected row"
http GET /metrics
assert_eq 401 "$CODE" "METRICS_TOKEN set: no token, 401"
http GET /metrics -H "Authorization: Bearer metrics-token-123"
assert_eq 200 "$CODE" "METRICS_TOKEN: with the token"
assert_contains "$BODY" 'voice_agent_calls_total{outcome="rejected"} 1' "metrics: the rejected call"
va_stop

# 5. a stream upgraded while the Realtime breaker was closed whose start comes once it has
#    opened (the soak found these: 1011 and no trace): the call is on record, failed
rt_start --refuse-all
daemon BREAKER_THRESHOLD=1 BREAKER_COOLDOWN_MS=600000
node -e '
const [root, port, go, sid] = process.argv.slice(1);
const fs = require("fs");
const WebSocket = require(root + "/tests/node/node_modules/ws");
const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/twilio`);
const mz = "MZ00000000000000000000000000000005";
ws.on("open", () => {
  const t = setInterval(() => {
    if (!fs.existsSync(go)) return;
    clearInterval(t);
    ws.send(JSON.stringify({ event: "connected", protocol: "Call", version: "1.0.0" }));
    ws.send(JSON.stringify({ event: "start", sequenceNumber: "1", streamSid: mz, start: {
      accountSid: "AC00000000000000000000000000000005", streamSid: mz, callSid: sid,
      tracks: ["inbound"], customParameters: { From: "+250788000005", To: "+15005550006", CallSid: sid },
      mediaFormat: { encoding: "audio/x-mulaw", sampleRate: 8000, channels: 1 } } }));
  }, 20);
});
ws.on("close", (code) => { console.log(code); process.exit(0); });
setTimeout(() => { console.log("timeout"); process.exit(1); }, 20000);
' "$VA_ROOT" "$VA_PORT" "$T/go" CA00000000000000000000000000000005 >"$T/late.out" 2>&1 &
late=$!
wait_for "log_has '\"msg\":\"stream connected\"'" 1 && ok || fail "the late stream did not connect"
out=$(call CA00000000000000000000000000000006 --expect-daemon-close)
assert_contains "$out" '"closeCode":1011' "call 6: the model refused, the call failed"
http GET /ready
assert_contains "$BODY" "realtime circuit open" "the breaker is open"
touch "$T/go"
wait "$late"
assert_eq 1011 "$(cat "$T/late.out")" "the late stream is closed with 1011 (the apology)"
wait_for "field CA00000000000000000000000000000005 status" failed && ok ||
    fail "a start after the breaker opened: no failed row"
assert_eq "realtime connect failed: invalid state" \
    "$(field CA00000000000000000000000000000005 "meta->>'reason'")" "late stream: the reason"
assert_eq 1 "$(log_has '"msg":"call started","callSid":"CA00000000000000000000000000000005"')" \
    "late stream: logged as started"
va_stop
rt_stop

# every call exactly once, and nothing left behind
assert_eq 6 "$(q "select count(*) from calls")" "six calls, six rows"
assert_eq 0 "$(q "select count(*) from (select call_sid from calls group by call_sid having count(*) > 1) d")" "no call twice"
assert_eq 0 "$(spooled)" "spool empty"
assert_eq 0 "$(wc -c <"$T/spool/dead-letter.jsonl")" "nothing dead-lettered"
finish
