#!/usr/bin/env bash
# The call bridge end to end: simulated Twilio -> daemon -> fake OpenAI Realtime (both
# written from ../shared/reference/): greeting, caller audio bit-exact (pcmu) and within
# the resampler's error (pcm24), barge-in truncation against what Twilio played,
# fragmented messages, faults, the circuit breaker, session rotation, 50 calls.
. "$(dirname "$0")/lib.sh"
FAKE="node $VA_ROOT/tests/fakes/twilio.js"
# tone_db FILE HZ: the tone's share of the energy of a raw mu-law file, in dB
tone_db() {
    node -e '
const b = require("fs").readFileSync(process.argv[1]); const f = Number(process.argv[2]);
const U = require(process.argv[3] + "/tests/fakes/g711.js").ULAW_DEC; const d = (u) => U[u];
let c = 0, s = 0, e = 0;
for (let i = 0; i < b.length; i++) { const x = d(b[i]); const w = 2*Math.PI*f*i/8000; c += x*Math.cos(w); s += x*Math.sin(w); e += x*x; }
const tone = 2*(c*c+s*s)/b.length;
console.log(e > 0 ? (10*Math.log10(tone/e)).toFixed(1) : "-999");' "$1" "$2" "$VA_ROOT"
}

espeak-ng -s 160 -w "$T/speech.wav" "Hello, I would like to check the balance of my member account, please." 2>/dev/null
sox "$T/speech.wav" -r 8000 -c 1 -e mu-law -t raw "$T/speech.ulaw"

# --- 1. greeting reaches the caller; caller audio reaches the model bit-exact (pcmu) ---
rt_start --reply-hz 1000 --reply-ms 800
va_start_rt PUBLIC_WS_URL=wss://example.com/ws/twilio OPENAI_GREETING="Greet the caller."
out=$($FAKE --port "$VA_PORT" --seconds 3 --wait-playback --out "$T/greet.ulaw")
assert_contains "$out" '"ok":true' "greeting call ($out)"
db=$(tone_db "$T/greet.ulaw" 1000)
awk -v d="$db" 'BEGIN { exit !(d > -1.0) }' && ok || fail "greeting tone share $db dB"
played=$(printf '%s' "$out" | sed -n 's/.*"playedBytes":\([0-9]*\).*/\1/p')
[ "$played" -ge 6400 ] && ok || fail "caller heard only $played bytes of an 800 ms greeting"
out=$($FAKE --port "$VA_PORT" --audio "$T/speech.ulaw" --linger-ms 300)
assert_contains "$out" '"ok":true' "speech call"
sleep 0.5
rt_stop
sid=$(rt_last_session)
size=$(stat -c %s "$T/speech.ulaw")
cmp -n "$size" "$T/speech.ulaw" "$T/rtrec/$sid.in.raw" && ok || fail "caller audio not bit-exact at the model"
assert_eq 0 "$(grep -c '"appendsBeforeUpdate":[1-9]' "$T/rt.out")" "no audio before session.updated"
va_stop

# --- 2. pcm24: within the resampler's error ---
rt_start
va_start_rt PUBLIC_WS_URL=wss://example.com/ws/twilio OPENAI_AUDIO_FORMAT=pcm24
out=$($FAKE --port "$VA_PORT" --audio "$T/speech.ulaw" --linger-ms 300)
assert_contains "$out" '"ok":true' "pcm24 call"
sleep 0.5
rt_stop
sid=$(rt_last_session)
snr=$(node -e '
const fs = require("fs");
const u = fs.readFileSync(process.argv[1]), p = fs.readFileSync(process.argv[2]);
const { ULAW_DEC } = require(process.argv[3] + "/tests/fakes/g711.js"); const d = (v) => ULAW_DEC[v];
const n = u.length, x = Array.from(u, d), y = [];
for (let i = 0; i + 1 < p.length; i += 2) y.push(p.readInt16LE(i));
let best = -1e9;
for (let lag = 0; lag < 400; lag++) {            /* the filter delay, in 24 kHz samples */
  let sig = 0, err = 0;
  for (let i = 0; i < n && 3 * i + lag < y.length; i++) { const e = y[3*i+lag] - x[i]; sig += x[i]*x[i]; err += e*e; }
  best = Math.max(best, 10 * Math.log10(sig / Math.max(err, 1)));
}
console.log(best.toFixed(1));' "$T/speech.ulaw" "$T/rtrec/$sid.in.raw" "$VA_ROOT")
awk -v s="$snr" 'BEGIN { exit !(s >= 20) }' && ok || fail "pcm24 input SNR $snr dB (want >= 20)"
va_stop

# --- 3. barge-in: the caller talks over a long greeting ---
rt_start --reply-ms 4000 --fragment
va_start_rt PUBLIC_WS_URL=wss://example.com/ws/twilio OPENAI_GREETING="Greet the caller."
# 1 s of silence first so that the greeting is playing, then speech
head -c 8000 /dev/zero | tr '\0' '\377' >"$T/barge.ulaw"
cat "$T/speech.ulaw" >>"$T/barge.ulaw"
out=$($FAKE --port "$VA_PORT" --audio "$T/barge.ulaw" --linger-ms 1500)
assert_contains "$out" '"ok":true' "barge-in call (fragmented server messages)"
assert_contains "$out" '"clears":1' "one clear"
sleep 0.3
rt_stop
heard=$(printf '%s' "$out" | sed -n 's/.*"playedAtClear":\[\([0-9]*\).*/\1/p')
end_ms=$(node -e 'const l=require("fs").readFileSync(process.argv[1],"utf8").trim().split("\n").filter(x=>x.startsWith("{\"session")); const s=JSON.parse(l[l.length-1]); console.log(s.truncates.length ? s.truncates[0].audio_end_ms : -1)' "$T/rt.out")
heard_ms=$((heard / 8))
[ "$end_ms" -ge 0 ] && [ "$end_ms" -le "$heard_ms" ] && [ $((heard_ms - end_ms)) -le 40 ] && ok ||
    fail "truncate audio_end_ms $end_ms vs $heard_ms ms played by Twilio at the clear"
assert_contains "$(cat "$T/rt.out")" '"result":"truncated"' "the fake accepted the truncate"
assert_eq 1 "$(log_has '"msg":"barge-in","callSid".*"action":"truncate"')" "barge-in logged with its reaction time"
va_stop

# --- 4. the model closes mid-call: the call ends cleanly, the stream is closed ---
rt_start --close-after-ms 500
va_start_rt PUBLIC_WS_URL=wss://example.com/ws/twilio
out=$($FAKE --port "$VA_PORT" --seconds 3 --expect-daemon-close)
assert_contains "$out" '"closeCode":1011' "stream closed with 1011 after the model left"
assert_eq 1 "$(log_has '"msg":"call failed".*realtime closed (1011')" "reason logged"
rt_stop
va_stop

# --- 4b. a stalled model: its socket stops reading; the daemon's queue stays bounded ---
rt_start --stall-after-ms 300
va_start_rt PUBLIC_WS_URL=wss://example.com/ws/twilio
rss0=$(awk '/VmRSS/ {print $2}' /proc/$VA_PID/status)
out=$($FAKE --port "$VA_PORT" --seconds 30 --fast)
rss1=$(awk '/VmRSS/ {print $2}' /proc/$VA_PID/status)
sleep 0.3
summary=$(grep '"msg":"call ended"' "$VA_LOG" | tail -n 1)
assert_contains "$summary" '"reason":"stop"' "a stalled model does not end the call by itself"
dropped=$(printf '%s' "$summary" | sed -n 's/.*"inDropped":\([0-9]*\).*/\1/p')
[ "${dropped:-0}" -gt 0 ] && ok || fail "audio the stalled model could not take is counted as dropped"
[ $((rss1 - rss0)) -lt 20000 ] && ok || fail "RSS grew by $((rss1 - rss0)) KiB with a stalled model"
rt_stop
va_stop

# --- 5. circuit breaker: refused connects open it, a probe closes it ---
rt_start --refuse-first 3
# the cooldown is the window for the two checks while open: 300 ms was too short for a
# loaded machine, where the probe closed the circuit between /ready and /twilio/answer
va_start_rt PUBLIC_WS_URL=wss://example.com/ws/twilio BREAKER_THRESHOLD=3 BREAKER_COOLDOWN_MS=2000
for i in 1 2 3; do $FAKE --port "$VA_PORT" --seconds 1 --expect-daemon-close >/dev/null; done
http GET /ready
assert_eq 503 "$CODE" "/ready while the circuit is open"
assert_contains "$BODY" "realtime circuit open" "/ready names the breaker"
http POST /twilio/answer -d "CallSid=CA1"
assert_contains "$BODY" "<Hangup/>" "new calls get the apology while open"
for _ in $(seq 1 100); do
    http GET /ready
    [ "$CODE" = 200 ] && break
    sleep 0.1
done
assert_eq 200 "$CODE" "/ready again after a successful probe"
out=$($FAKE --port "$VA_PORT" --seconds 1)
assert_contains "$out" '"ok":true' "calls go through after recovery"
rt_stop
va_stop

# --- 6. session rotation: the fake would expire sessions; we rotate first ---
rt_start --expire-ms 6000
va_start_rt PUBLIC_WS_URL=wss://example.com/ws/twilio REALTIME_SESSION_MAX_S=5
out=$($FAKE --port "$VA_PORT" --seconds 8)
assert_contains "$out" '"ok":true' "call outlives its first session"
assert_eq 1 "$(log_has '"msg":"session rotated"')" "rotated once"
rt_stop
va_stop

# --- 7. 50 concurrent calls ---
rt_start
va_start_rt PUBLIC_WS_URL=wss://example.com/ws/twilio
out=$($FAKE --port "$VA_PORT" --concurrency 50 --seconds 3 | tail -n 1)
assert_contains "$out" '"okCalls":50' "50 concurrent bridged calls"
rt_stop
va_stop
finish
