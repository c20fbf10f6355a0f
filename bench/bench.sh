#!/usr/bin/env bash
# make bench: N concurrent simulated calls through the daemon (release build) and the fake
# OpenAI Realtime over TLS (a throwaway CA), real-time paced, each caller speaking, waiting
# for the reply and talking over it (barge-in). Prints the daemon's CPU per call-second, RSS
# per call, barge-in reaction, what the load generators used, and what went wrong.
#   BENCH_CALLS (200)  BENCH_SECONDS (30)  BENCH_BATCH_MS (20: INBOUND_BATCH_MS)
#   VA_BIN (build/release/voice-agent)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
N=${BENCH_CALLS:-200}
SECS=${BENCH_SECONDS:-30}
BIN=${VA_BIN:-$root/build/release/voice-agent}
T=$(mktemp -d "${TMPDIR:-/tmp}/va-bench.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$T"
}
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# throwaway CA and a certificate for localhost
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=bench-ca -keyout "$T/ca.key" \
    -out "$T/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout "$T/srv.key" -out "$T/srv.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$T/ext"
openssl x509 -req -in "$T/srv.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -CAcreateserial \
    -days 1 -extfile "$T/ext" -out "$T/srv.pem" 2>/dev/null

# the caller's script: silence, speech, silence while the reply plays, speech over the reply
espeak-ng -s 170 -w "$T/speech.wav" "I would like to know the balance of my account please." 2>/dev/null
sox "$T/speech.wav" -r 8000 -c 1 -e mu-law -t raw "$T/speech.ulaw"
sil() { head -c $(($1 * 8)) /dev/zero | tr '\0' '\377'; }
{
    while :; do
        sil 1000; cat "$T/speech.ulaw"; sil 1500; cat "$T/speech.ulaw"; sil 3000
    done
} | head -c $((SECS * 8000)) >"$T/script.ulaw"

node "$root/tests/fakes/realtime.js" --port 0 --key sk-bench --tls "$T/srv.pem" "$T/srv.key" \
    --reply-ms 3000 --burst-factor 5 >"$T/rt.out" 2>"$T/rt.err" &
rt=$!
pids+=("$rt")
for _ in $(seq 1 100); do
    rt_port=$(sed -n 's/^{"listening":\([0-9]*\)}$/\1/p' "$T/rt.out" | head -n 1)
    [ -n "${rt_port:-}" ] && break
    sleep 0.1
done

env -i PATH="$PATH" HOST=127.0.0.1 PORT=0 OPENAI_API_KEY=sk-bench \
    OPENAI_REALTIME_URL="wss://localhost:$rt_port/v1/realtime" REALTIME_CA_FILE="$T/ca.pem" \
    PUBLIC_WS_URL=wss://example.com/ws/twilio MAX_CALLS=$((N + 10)) \
    HTTP_MAX_CONNECTIONS=$((N * 2 + 100)) OPENAI_TRANSCRIPTION_MODEL= \
    INBOUND_BATCH_MS="${BENCH_BATCH_MS:-20}" \
    "$BIN" --env-file "$T/none" >"$T/daemon.log" 2>&1 &
d=$!
pids+=("$d")
for _ in $(seq 1 100); do
    port=$(sed -n 's/.*"msg":"listening".*"port":\([0-9]*\).*/\1/p' "$T/daemon.log" | head -n 1)
    [ -n "${port:-}" ] && break
    sleep 0.1
done
sleep 1
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime + stime, clock ticks
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
hz=$(getconf CLK_TCK)
rss_idle=$(rss "$d")

node "$root/tests/fakes/twilio.js" --port "$port" --concurrency "$N" --audio "$T/script.ulaw" \
    --timeout-ms $(((SECS + 60) * 1000)) >"$T/twilio.out" 2>"$T/twilio.err" &
tw=$!
pids+=("$tw")
# steady window: from 5 s after the start to 3 s before the end
warm=5
sleep "$warm"
c0=$(cpu "$d"); r0=$(cpu "$rt"); w0=$(cpu "$tw"); t0=$(date +%s%N)
active=$(grep -c '"msg":"session ready"' "$T/daemon.log" || true)
sleep $((SECS - warm - 3))
c1=$(cpu "$d"); r1=$(cpu "$rt"); w1=$(cpu "$tw"); t1=$(date +%s%N)
rss_busy=$(rss "$d")
wait "$tw" || true

node - "$T/daemon.log" "$T/twilio.out" "$N" "$SECS" "$hz" "$c0" "$c1" "$r0" "$r1" "$w0" "$w1" \
    "$t0" "$t1" "$rss_idle" "$rss_busy" "$active" <<'JS'
const fs = require('fs');
const [logf, twf, N, secs, hz, c0, c1, r0, r1, w0, w1, t0, t1, rssIdle, rssBusy, active] =
  process.argv.slice(2);
const n = Number(N), wall = (Number(t1) - Number(t0)) / 1e9;
const ms = (a, b) => (Number(b) - Number(a)) * 1000 / Number(hz);
const lines = fs.readFileSync(logf, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const react = lines.filter((l) => l.msg === 'barge-in').map((l) => l.reactUs).sort((a, b) => a - b);
const pct = (a, p) => (a.length ? a[Math.min(a.length - 1, Math.floor(a.length * p))] : NaN);
const ended = lines.filter((l) => l.msg === 'call ended');
const sum = (k) => ended.reduce((s, l) => s + (l[k] || 0), 0);
const tw = fs.readFileSync(twf, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const agg = tw[tw.length - 1];
const callSec = n * wall;
const out = {
  calls: n, okCalls: agg.okCalls ?? (agg.ok ? 1 : 0), steadyWindowS: +wall.toFixed(1),
  sessionsReadyAtWindowStart: Number(active),
  daemonCpuMsPerCallSecond: +(ms(c0, c1) / callSec).toFixed(4),
  daemonCpuCoreShare: +(ms(c0, c1) / 1000 / wall).toFixed(3),
  rssIdleKiB: Number(rssIdle), rssBusyKiB: Number(rssBusy),
  rssPerCallKiB: +((Number(rssBusy) - Number(rssIdle)) / n).toFixed(1),
  bargeIns: react.length, bargeInReactUsP50: pct(react, 0.5), bargeInReactUsP99: pct(react, 0.99),
  outboundBytesDropped: sum('outDropped'), inboundBytesDropped: sum('inDropped'),
  fakeRealtimeCoreShare: +(ms(r0, r1) / 1000 / wall).toFixed(3),
  fakeTwilioCoreShare: +(ms(w0, w1) / 1000 / wall).toFixed(3),
  errors: ended.filter((l) => !/^stop$/.test(l.reason)).length,
};
console.log(JSON.stringify(out, null, 1));
JS
