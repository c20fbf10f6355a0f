#!/usr/bin/env bash
# make bench: N concurrent simulated calls through the daemon (release build) and the fake
# OpenAI Realtime over TLS (a throwaway CA), real-time paced, each caller speaking, waiting
# for the reply and talking over it (barge-in). Prints the daemon's CPU per call-second, RSS
# per call, added latency per direction, barge-in reaction, late frames, what the load
# generators used, and what went wrong.
#   BENCH_CALLS (200)  BENCH_SECONDS (30)  BENCH_BATCH_MS (20: INBOUND_BATCH_MS)
#   BENCH_TWILIO_PROCS, BENCH_RT_WORKERS (1 per 300 calls, at most 8): load generator
#   processes, so that node's one thread per process is not the limit
#   VA_BIN (build/release/voice-agent)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
N=${BENCH_CALLS:-200}
SECS=${BENCH_SECONDS:-30}
auto=$(((N + 299) / 300))
[ "$auto" -gt 8 ] && auto=8
TWP=${BENCH_TWILIO_PROCS:-$auto}
RTW=${BENCH_RT_WORKERS:-$auto}
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
    --reply-ms 3000 --burst-factor 5 --stamp "$T/st-rt" --workers "$RTW" >"$T/rt.out" 2>"$T/rt.err" &
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
# utime + stime in clock ticks of the given processes and their children (--workers)
cpu() {
    local p t=0
    for p in "$@" $(pgrep -P "$(echo "$@" | tr ' ' ,)" || true); do
        t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo "$t"
}
mono() { node -e 'process.stdout.write(String(process.hrtime.bigint()))'; } # CLOCK_MONOTONIC ns
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
hz=$(getconf CLK_TCK)
rss_idle=$(rss "$d")

tws=()
for p in $(seq 0 $((TWP - 1))); do
    n=$(((N * (p + 1)) / TWP - (N * p) / TWP))
    node "$root/tests/fakes/twilio.js" --port "$port" --concurrency "$n" --audio "$T/script.ulaw" \
        --timeout-ms $(((SECS + 60) * 1000)) --stamp "$T/st-tw$p" --stamp-proc "$p" \
        >"$T/twilio$p.out" 2>"$T/twilio$p.err" &
    tws+=($!)
    pids+=($!)
done
# steady window: from 5 s after the start to 3 s before the end
warm=5
sleep "$warm"
c0=$(cpu "$d"); r0=$(cpu "$rt"); w0=$(cpu "${tws[@]}"); t0=$(date +%s%N); m0=$(mono)
curl -s "http://127.0.0.1:$port/metrics" >"$T/metrics0" || true
active=$(grep -c '"msg":"session ready"' "$T/daemon.log" || true)
sleep $((SECS - warm - 3))
m1=$(mono); c1=$(cpu "$d"); r1=$(cpu "$rt"); w1=$(cpu "${tws[@]}"); t1=$(date +%s%N)
curl -s "http://127.0.0.1:$port/metrics" >"$T/metrics1" || true
rss_busy=$(rss "$d")
for p in "${tws[@]}"; do wait "$p" || true; done
kill -TERM "$rt" # it writes its stamps as it exits
wait "$rt" || true

node - "$T" "$N" "$SECS" "$hz" "$c0" "$c1" "$r0" "$r1" "$w0" "$w1" \
    "$t0" "$t1" "$rss_idle" "$rss_busy" "$active" "$m0" "$m1" "$TWP" "$RTW" <<'JS'
const fs = require('fs');
const [dir, N, secs, hz, c0, c1, r0, r1, w0, w1, t0, t1, rssIdle, rssBusy, active, m0, m1, twp, rtw] =
  process.argv.slice(2);
const logf = `${dir}/daemon.log`;
const n = Number(N), wall = (Number(t1) - Number(t0)) / 1e9;
const ms = (a, b) => (Number(b) - Number(a)) * 1000 / Number(hz);
const lines = fs.readFileSync(logf, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const react = lines.filter((l) => l.msg === 'barge-in').map((l) => l.reactUs).sort((a, b) => a - b);
const pct = (a, p) => (a.length ? a[Math.min(a.length - 1, Math.floor(a.length * p))] : NaN);
const ended = lines.filter((l) => l.msg === 'call ended');
const sum = (k) => ended.reduce((s, l) => s + (l[k] || 0), 0);
// the last line of each fake Twilio: its aggregate (or its one call)
const aggs = [];
for (let p = 0; p < Number(twp); p++) {
  const tw = fs.readFileSync(`${dir}/twilio${p}.out`, 'utf8').trim().split('\n');
  aggs.push(JSON.parse(tw[tw.length - 1]));
}
const twSum = (f) => aggs.reduce((s, a) => s + f(a), 0);
const callSec = n * wall;

// Added latency: a frame stamped by its sender (stamp.js) and found again by its receiver.
// Frames sent in the steady window count; a sent frame never found is "missing".
const f64 = (file) => {
  if (!fs.existsSync(file)) return new Float64Array(0);
  return new Float64Array(new Uint8Array(fs.readFileSync(file)).buffer);
};
function latency(senders, receivers) {
  const lo = Number(m0), hi = Number(m1);
  const sent = senders.map(f64);
  const found = sent.map((a) => new Uint8Array(a.length));
  const us = [];
  for (const r of receivers.map(f64)) {
    for (let i = 0; i + 1 < r.length; i += 2) {
      const id = r[i], proc = Math.floor(id / 2 ** 27), k = id - proc * 2 ** 27;
      const ts = sent[proc] && sent[proc][k];
      if (!(ts >= lo && ts <= hi) || found[proc][k]) continue;
      found[proc][k] = 1;
      us.push((r[i + 1] - ts) / 1000);
    }
  }
  let inWindow = 0;
  sent.forEach((a) => a.forEach((ts) => { if (ts >= lo && ts <= hi) inWindow++; }));
  us.sort((a, b) => a - b);
  const q = (p) => (us.length ? +pct(us, p).toFixed(1) : null);
  return { frames: us.length, missing: inWindow - us.length, p50: q(0.5), p99: q(0.99),
    max: us.length ? +us[us.length - 1].toFixed(1) : null };
}
const range = (k, f) => Array.from({ length: Number(k) }, (_, i) => f(i));
// The daemon's own histograms over the window (/metrics at its two ends): from a message
// in hand to its audio handed on. A percentile is the upper bound of its bucket.
function daemonHist(name, labels) {
  const read = (f) => {
    const b = new Map();
    if (!fs.existsSync(f)) return b;
    for (const l of fs.readFileSync(f, 'utf8').split('\n')) {
      const m = l.match(/^(\w+)_bucket\{(.*)le="([^"]+)"\} (\S+)$/);
      if (m && m[1] === name && m[2] === labels) b.set(m[3], Number(m[4]));
    }
    return b;
  };
  const a = read(`${dir}/metrics0`), b = read(`${dir}/metrics1`);
  const les = [...b.keys()];
  const n = (b.get('+Inf') || 0) - (a.get('+Inf') || 0);
  const q = (p) => {
    for (const le of les)
      if ((b.get(le) || 0) - (a.get(le) || 0) >= p * n) return le === '+Inf' ? null : Number(le) * 1e6;
    return null;
  };
  return { count: n, p50AtMostUs: n ? q(0.5) : null, p99AtMostUs: n ? q(0.99) : null };
}
const lag = (files) => files.filter(fs.existsSync).map((f) => JSON.parse(fs.readFileSync(f, 'utf8')));
const inbound = latency(range(twp, (p) => `${dir}/st-tw${p}.sent`), range(rtw, (w) => `${dir}/st-rt.${w}.recv`));
const outbound = latency(range(rtw, (w) => `${dir}/st-rt.${w}.sent`), range(twp, (p) => `${dir}/st-tw${p}.recv`));
const out = {
  calls: n, okCalls: twSum((a) => a.okCalls ?? (a.ok ? 1 : 0)), steadyWindowS: +wall.toFixed(1),
  sessionsReadyAtWindowStart: Number(active),
  daemonCpuMsPerCallSecond: +(ms(c0, c1) / callSec).toFixed(4),
  daemonCpuCoreShare: +(ms(c0, c1) / 1000 / wall).toFixed(3),
  rssIdleKiB: Number(rssIdle), rssBusyKiB: Number(rssBusy),
  rssPerCallKiB: +((Number(rssBusy) - Number(rssIdle)) / n).toFixed(1),
  inboundLatencyUs: inbound, outboundFirstFrameLatencyUs: outbound,
  daemonAddedInUs: daemonHist('voice_agent_added_latency_seconds', 'direction="in",'),
  daemonAddedOutUs: daemonHist('voice_agent_added_latency_seconds', 'direction="out",'),
  daemonLoopTurnUs: daemonHist('voice_agent_loop_turn_seconds', ''),
  fakeTwilioLoopDelayMs: lag(range(twp, (p) => `${dir}/st-tw${p}.lag`)),
  fakeRealtimeLoopDelayMs: lag(range(rtw, (w) => `${dir}/st-rt.${w}.lag`)),
  bargeIns: react.length, bargeInReactUsP50: pct(react, 0.5), bargeInReactUsP99: pct(react, 0.99),
  lateOutboundBytes: twSum((a) => a.lateBytes || 0), lateOutboundEvents: twSum((a) => a.lateEvents || 0),
  outboundBytesDropped: sum('outDropped'), inboundBytesDropped: sum('inDropped'),
  fakeRealtimeCoreShare: +(ms(r0, r1) / 1000 / wall).toFixed(3),
  fakeTwilioCoreShare: +(ms(w0, w1) / 1000 / wall).toFixed(3),
  fakeTwilioProcs: Number(twp), fakeRealtimeWorkers: Number(rtw),
  errors: ended.filter((l) => !/^stop$/.test(l.reason)).length,
};
console.log(JSON.stringify(out, null, 1));
JS
