#!/usr/bin/env bash
# /ws/twilio as Twilio uses it: a simulated Twilio (tests/fakes/twilio.js, built from the
# reference) streams real speech at real-time pace; the daemon's recording must hold
# exactly what was sent; gaps are filled; bad peers are cut off alone.
. "$(dirname "$0")/lib.sh"
FAKE="node $VA_ROOT/tests/fakes/twilio.js"
CHECK="node $VA_ROOT/tests/fakes/wavcheck.js"
TOKEN=tok-media-12345
REC="$T/rec"
mkdir -p "$REC"

# a real speech clip: espeak-ng at 22.05 kHz, made 8 kHz mu-law by sox
espeak-ng -s 160 -w "$T/speech.wav" "Hello, I would like to check the balance of my member account, please." 2>/dev/null
sox "$T/speech.wav" -r 8000 -c 1 -e mu-law -t raw "$T/speech.ulaw"
size=$(stat -c %s "$T/speech.ulaw")
[ "$size" -gt 16000 ] && ok || fail "speech clip too short: $size bytes"

rt_start
va_start_rt PUBLIC_WS_URL=wss://example.com/ws/twilio TWILIO_AUTH_TOKEN=$TOKEN \
    TWILIO_ACCOUNT_SID=AC00000000000000000000000000000000 RECORDINGS_DIR="$REC"
common=(--port "$VA_PORT" --token "$TOKEN" --public-base https://example.com
    --account-sid AC00000000000000000000000000000000)

# 1. the speech clip, answered and streamed at real-time pace, shuffled keys, a dtmf
out=$($FAKE "${common[@]}" --answer --audio "$T/speech.ulaw" --shuffle --dtmf 5@500 \
    --call-sid CA11111111111111111111111111111111)
assert_contains "$out" '"ok":true' "speech call ok ($out)"
assert_contains "$out" '"upgradeStatus":101' "upgrade 101"
sleep 0.3
summary=$(grep '"msg":"call ended".*CA11111111111111111111111111111111' "$VA_LOG")
assert_contains "$summary" '"reason":"stop"' "summary line after stop"
frames=$(( (size + 159) / 160 ))
assert_contains "$summary" "\"framesIn\":$frames," "frames counted"
assert_contains "$summary" '"seqGaps":0,"seqDups":0' "no sequence gaps"
assert_contains "$summary" '"dtmf":1' "dtmf counted"
assert_eq 1 "$(log_has '"msg":"dtmf","callSid":"CA11111111111111111111111111111111","digit":"5"')" "dtmf logged"
res=$($CHECK "$REC/CA11111111111111111111111111111111.wav" "$T/speech.ulaw")
assert_contains "$res" '"ok":true' "recording equals the speech sent ($res)"

# 2. a timestamp gap: 300 ms lost at 1 s is filled with silence, once
out=$($FAKE "${common[@]}" --audio "$T/speech.ulaw" --gap-at-ms 1000 --gap-ms 300 \
    --call-sid CA22222222222222222222222222222222)
assert_contains "$out" '"ok":true' "gap call ok"
sleep 0.3
summary=$(grep '"msg":"call ended".*CA22222222222222222222222222222222' "$VA_LOG")
assert_contains "$summary" '"gapsFilled":1,"silenceMs":300' "gap filled once"
res=$($CHECK "$REC/CA22222222222222222222222222222222.wav" "$T/speech.ulaw" --gap-at-ms 1000 --gap-ms 300)
assert_contains "$res" '"ok":true' "recording carries silence in the gap ($res)"

# 3. signatures on the upgrade: none, wrong, signed as https -> 403, no call; slash variant ok
for mode in none wrong https; do
    out=$($FAKE "${common[@]}" --ws-sig $mode --expect-upgrade-status 403 --seconds 1)
    assert_contains "$out" '"ok":true' "upgrade with signature '$mode' refused with 403"
done
out=$($FAKE "${common[@]}" --ws-sig slash --seconds 1 --fast)
assert_contains "$out" '"ok":true' "trailing-slash signature accepted"
assert_eq 3 "$(log_has '"msg":"upgrade rejected"')" "each rejected upgrade logged"

# 4. a bare close (no stop) and a dropped TCP connection still end the call with a summary
$FAKE "${common[@]}" --seconds 1 --fast --bare-close --call-sid CA33333333333333333333333333333333 >/dev/null
$FAKE "${common[@]}" --seconds 1 --fast --drop --call-sid CA44444444444444444444444444444444 >/dev/null
sleep 0.5
assert_contains "$(grep 'CA33333333333333333333333333333333' "$VA_LOG" | grep 'call ended')" '"reason":"socket closed (1000' "bare close summary"
assert_contains "$(grep 'CA44444444444444444444444444444444' "$VA_LOG" | grep 'call ended')" '"reason":"socket closed (1006' "dropped TCP summary"

# 5. 50 concurrent calls at real-time pace
out=$($FAKE "${common[@]}" --concurrency 50 --seconds 3 | tail -n 1)
assert_contains "$out" '"okCalls":50' "50 concurrent calls ($out)"
http GET /health
assert_eq 200 "$CODE" "health during and after 50 calls"
sleep 0.5
assert_eq 0 "$(grep -c '"activeCalls":[1-9]' <(tail -n 1 "$VA_LOG"))" "no call left active"
va_stop

# 6. malformed messages end that stream only; a silent reader is cut off while others go on
va_start OPENAI_API_KEY=sk-test PUBLIC_WS_URL=ws://127.0.0.1/ws/twilio AUDIO_ECHO=true \
    WS_MAX_SEND_QUEUE_BYTES=32768 MAX_CALLS=3
$FAKE --port "$VA_PORT" --seconds 4 --call-sid CA55555555555555555555555555555555 >"$T/good.json" &
good=$!
node -e '
const WebSocket = require(process.argv[1] + "/tests/node/node_modules/ws");
const ws = new WebSocket("ws://127.0.0.1:" + process.argv[2] + "/ws/twilio");
ws.on("open", () => ws.send("{\"event\":\"start\",\"sequenceNumber\":\"1\",\"start\":{"));
ws.on("close", (code, reason) => { console.log(JSON.stringify({code, reason: String(reason)})); process.exit(0); });
setTimeout(() => { console.log("{\"code\":0}"); process.exit(1); }, 5000);
' "$VA_ROOT" "$VA_PORT" >"$T/bad.json"
assert_contains "$(cat "$T/bad.json")" '"code":1007' "malformed JSON closes that stream with 1007"
assert_eq 1 "$(log_has '"msg":"stream closed: protocol error"')" "protocol error logged with its reason"
# (it never reads, so it cannot see our Close: the daemon's log is the witness)
$FAKE --port "$VA_PORT" --seconds 120 --fast --no-read --call-sid CA66666666666666666666666666666666 \
    --timeout-ms 20000 >/dev/null
assert_eq 1 "$(log_has '"msg":"send queue full".*"code":1008')" "slow reader closed with 1008"
assert_contains "$(grep 'CA66666666666666666666666666666666' "$VA_LOG" | grep 'call ended')" 'socket closed' "slow reader's call ended"
wait $good
assert_contains "$(cat "$T/good.json")" '"ok":true' "the other call went on undisturbed"
assert_contains "$(cat "$T/good.json")" '"receivedBytes":' "echo reached the good caller"
# MAX_CALLS at the upgrade: three held, the fourth refused
held=()
for i in 1 2 3; do
    $FAKE --port "$VA_PORT" --seconds 2 >/dev/null &
    held+=($!)
done
sleep 0.7
out=$($FAKE --port "$VA_PORT" --seconds 1 --expect-upgrade-status 503)
assert_contains "$out" '"ok":true' "upgrade past MAX_CALLS refused with 503"
wait "${held[@]}"
va_stop
finish
