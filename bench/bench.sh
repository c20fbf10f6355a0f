#!/usr/bin/env bash
# make bench: N concurrent simulated calls through the daemon (release build) and a fake
# OpenAI Realtime over TLS (a throwaway CA), real-time paced, each caller speaking, waiting
# for the reply and talking over it (barge-in). Both sides are the C load generator
# (bench/loadgen, one process per side). Prints the daemon's CPU per call-second, RSS per
# call, added latency per direction, barge-in reaction, late frames, what the load
# generators used, and what went wrong.
#   BENCH_CALLS (200)  BENCH_SECONDS (30)  BENCH_BATCH_MS (20: INBOUND_BATCH_MS)
#   BENCH_HOLD_MS (100: INBOUND_SILENCE_HOLD_MS)
#   BENCH_RAMP_MS (1000 + 2 per call): calls start at random times within it, so their
#   20 ms frames fall at random phases, as real calls do
#   BENCH_INSTEP=1: every caller starts its script at the beginning, so all calls speak,
#   are answered and barge in together (the worst case for memory: every reply's burst
#   queued at once); by default each starts at a random point of the script's cycle
#   BENCH_PIN=1: the daemon on CPU 0, both load generators on CPU 1 (taskset), so that
#   the daemon never waits for a core its load generators hold
#   VA_BIN (build/release/voice-agent), VA_LOADGEN (build/release/va-loadgen)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
N=${BENCH_CALLS:-200}
SECS=${BENCH_SECONDS:-30}
RAMP=${BENCH_RAMP_MS:-$((1000 + 2 * N))}
BIN=${VA_BIN:-$root/build/release/voice-agent}
LG=${VA_LOADGEN:-$root/build/release/va-loadgen}
pin_d=() pin_lg=()
if [ -n "${BENCH_PIN:-}" ]; then
    pin_d=(taskset -c 0)
    pin_lg=(taskset -c 1)
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/va-bench.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -n "${BENCH_KEEP:-}" ] && echo "kept $T" >&2 || rm -rf "$T"
}
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# throwaway CA and a certificate for localhost
# (P-256: a handshake costs the peer a fraction of RSA-2048's 1.5 ms, 1,000 at the start)
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1)
openssl req -x509 "${ec[@]}" -nodes -days 1 -subj /CN=bench-ca -keyout "$T/ca.key" \
    -out "$T/ca.pem" 2>/dev/null
openssl req "${ec[@]}" -nodes -subj /CN=localhost -keyout "$T/srv.key" -out "$T/srv.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$T/ext"
openssl x509 -req -in "$T/srv.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -CAcreateserial \
    -days 1 -extfile "$T/ext" -out "$T/srv.pem" 2>/dev/null

# the caller's script: silence, speech, silence while the reply plays, speech over the reply
espeak-ng -s 170 -w "$T/speech.wav" "I would like to know the balance of my account please." 2>/dev/null
sox "$T/speech.wav" -r 8000 -c 1 -e mu-law -t raw "$T/speech.ulaw"
sil() { head -c $(($1 * 8)) /dev/zero | tr '\0' '\377'; }
cycle_ms=$(((6500 * 8 + 2 * $(stat -c %s "$T/speech.ulaw")) / 8))
# each call starts at a random point of the first cycle and speaks for SECS from there, so
# the calls are at independent points of their conversations, as real calls are;
# BENCH_INSTEP=1: every call from the start, all in step (their replies burst together)
offset_ms=$cycle_ms
[ -n "${BENCH_INSTEP:-}" ] && offset_ms=0
{
    while :; do
        sil 1000; cat "$T/speech.ulaw"; sil 1500; cat "$T/speech.ulaw"; sil 3000
    done
} | head -c $(((SECS * 1000 + offset_ms) * 8)) >"$T/script.ulaw"

"${pin_lg[@]}" "$LG" realtime --port 0 --key sk-bench --tls "$T/srv.pem" "$T/srv.key" \
    --reply-ms 3000 --burst-factor 5 --stamp "$T/st-rt" --proc 0 >"$T/rt.out" 2>"$T/rt.err" &
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
    INBOUND_BATCH_MS="${BENCH_BATCH_MS:-20}" INBOUND_SILENCE_HOLD_MS="${BENCH_HOLD_MS:-100}" \
    "${pin_d[@]}" "$BIN" --env-file "$T/none" >"$T/daemon.log" 2>&1 &
d=$!
pids+=("$d")
for _ in $(seq 1 100); do
    port=$(sed -n 's/.*"msg":"listening".*"port":\([0-9]*\).*/\1/p' "$T/daemon.log" | head -n 1)
    [ -n "${port:-}" ] && break
    sleep 0.1
done
sleep 1
# utime + stime of a process in clock ticks
cpu() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
stime() { awk '{print $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
mono() { node -e 'process.stdout.write(String(process.hrtime.bigint()))'; } # CLOCK_MONOTONIC ns
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
hz=$(getconf CLK_TCK)
rss_idle=$(rss "$d")

"${pin_lg[@]}" "$LG" twilio --port "$port" --calls "$N" --audio "$T/script.ulaw" --ramp-ms "$RAMP" \
    --offset-ms "$offset_ms" --stamp "$T/st-tw" --proc 0 >"$T/twilio.out" 2>"$T/twilio.err" &
tw=$!
pids+=("$tw")
# steady window: from the end of the ramp + 3 s to 3 s before the first call ends
warm=$(((RAMP + 999) / 1000 + 3))
sleep "$warm"
c0=$(cpu "$d"); s0=$(stime "$d"); r0=$(cpu "$rt"); w0=$(cpu "$tw"); t0=$(date +%s%N); m0=$(mono)
curl -s "http://127.0.0.1:$port/metrics" >"$T/metrics0" || true
active=$(grep -c '"msg":"session ready"' "$T/daemon.log" || true)
sleep $((SECS - warm - 3))
m1=$(mono); c1=$(cpu "$d"); s1=$(stime "$d"); r1=$(cpu "$rt"); w1=$(cpu "$tw"); t1=$(date +%s%N)
curl -s "http://127.0.0.1:$port/metrics" >"$T/metrics1" || true
rss_busy=$(rss "$d")
wait "$tw" || true
sleep 1
rss_after=$(rss "$d") # every call over: what the process keeps
kill -TERM "$rt" # it writes its stamps and its summary as it exits
wait "$rt" || true

# The floor: the least any bridge pays here per call-second, a read of each 20 ms frame and
# a write of it, over plain TCP (bench/loadgen/floor.c), with N streams at random phases;
# then reads alone. "user sys" in ms per stream-second.
floor() {
    local fsecs=${BENCH_FLOOR_SECONDS:-8} pin pout rl st a b
    "${pin_d[@]}" "$LG" relay --forward "$1" >"$T/relay.out" 2>&1 &
    rl=$!
    pids+=("$rl")
    for _ in $(seq 1 100); do
        read -r pin pout < <(sed -n 's/^{"listening":\[\([0-9]*\),\([0-9]*\)\]}$/\1 \2/p' \
            "$T/relay.out") || true
        [ -n "${pin:-}" ] && break
        sleep 0.1
    done
    "${pin_lg[@]}" "$LG" streams --in "$pin" --out "$pout" --calls "$N" --ramp-ms "$RAMP" \
        --seconds $((warm + fsecs + 1)) >"$T/streams.out" 2>&1 &
    st=$!
    sleep "$warm"
    a=$(awk '{print $14, $15}' "/proc/$rl/stat")
    sleep "$fsecs"
    b=$(awk '{print $14, $15}' "/proc/$rl/stat")
    wait "$st" || true
    kill -TERM "$rl" 2>/dev/null || true
    wait "$rl" || true
    echo "$a $b" | awk -v n="$N" -v s="$fsecs" -v hz="$hz" \
        '{k = 1000 / hz / (n * s); printf "%.4f %.4f\n", ($3 - $1) * k, ($4 - $2) * k}'
}
floor_fwd="null null" floor_read="null null"
if [ "${BENCH_FLOOR:-1}" != 0 ]; then
    floor_fwd=$(floor 1)
    floor_read=$(floor 0)
fi

node - "$T" "$N" "$SECS" "$hz" "$c0" "$c1" "$r0" "$r1" "$w0" "$w1" \
    "$t0" "$t1" "$rss_idle" "$rss_busy" "$active" "$m0" "$m1" "$rss_after" "$s0" "$s1" \
    "$offset_ms" $floor_fwd $floor_read <<'JS'
const fs = require('fs');
const [dir, N, secs, hz, c0, c1, r0, r1, w0, w1, t0, t1, rssIdle, rssBusy, active, m0, m1,
  rssAfter, s0, s1, offsetMs, fwdUser, fwdSys, readUser, readSys] = process.argv.slice(2);
const logf = `${dir}/daemon.log`;
const n = Number(N), wall = (Number(t1) - Number(t0)) / 1e9;
const ms = (a, b) => (Number(b) - Number(a)) * 1000 / Number(hz);
const lines = fs.readFileSync(logf, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const react = lines.filter((l) => l.msg === 'barge-in').map((l) => l.reactUs).sort((a, b) => a - b);
const pct = (a, p) => (a.length ? a[Math.min(a.length - 1, Math.floor(a.length * p))] : NaN);
const ended = lines.filter((l) => l.msg === 'call ended');
const sum = (k) => ended.reduce((s, l) => s + (l[k] || 0), 0);
// the callers' aggregate and the Realtime peer's summary: their last lines
const last = (f) => {
  const l = fs.existsSync(f) ? fs.readFileSync(f, 'utf8').trim().split('\n') : [];
  try { return JSON.parse(l[l.length - 1]); } catch (e) { return {}; }
};
const tw = last(`${dir}/twilio.out`), rt = last(`${dir}/rt.out`);
const callSec = n * wall;

// Added latency: a frame stamped by its sender (bench/loadgen/lg.h) and found again by its receiver.
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
// caller frames with sound, and quiet ones (the caller's id space 1), which the daemon may
// hold up to INBOUND_SILENCE_HOLD_MS while the caller is not speaking
const inbound = latency([`${dir}/st-tw.0.sent`], [`${dir}/st-rt.0.recv`]);
const inboundQuiet = latency([null, `${dir}/st-tw.1.sent`], [`${dir}/st-rt.0.recv`]);
const outbound = latency([`${dir}/st-rt.0.sent`], [`${dir}/st-tw.0.recv`]);
const out = {
  calls: n, okCalls: tw.okCalls ?? 0, steadyWindowS: +wall.toFixed(1),
  sessionsReadyAtWindowStart: Number(active),
  daemonCpuMsPerCallSecond: +(ms(c0, c1) / callSec).toFixed(4),
  daemonCpuCoreShare: +(ms(c0, c1) / 1000 / wall).toFixed(3),
  daemonKernelMsPerCallSecond: +(ms(s0, s1) / callSec).toFixed(4), // stime, in the figure above
  callsInStep: offsetMs === '0',
  rssIdleKiB: Number(rssIdle), rssBusyKiB: Number(rssBusy),
  rssPerCallKiB: +((Number(rssBusy) - Number(rssIdle)) / n).toFixed(1),
  rssAfterCallsKiB: Number(rssAfter), // all calls over: growth the process keeps
  inboundLatencyUs: inbound, inboundQuietLatencyUs: inboundQuiet,
  outboundFirstFrameLatencyUs: outbound,
  daemonAddedInUs: daemonHist('voice_agent_added_latency_seconds', 'direction="in",'),
  daemonAddedOutUs: daemonHist('voice_agent_added_latency_seconds', 'direction="out",'),
  daemonLoopTurnUs: daemonHist('voice_agent_loop_turn_seconds', ''),
  loadgenTwilioTimerLateMs: lag([`${dir}/st-tw.0.lag`])[0] ?? null,
  loadgenRealtimeTimerLateMs: lag([`${dir}/st-rt.0.lag`])[0] ?? null,
  bargeIns: react.length, bargeInReactUsP50: pct(react, 0.5), bargeInReactUsP99: pct(react, 0.99),
  lateOutboundBytes: tw.lateBytes ?? null, lateOutboundEvents: tw.lateEvents ?? null,
  outboundBytesDropped: sum('outDropped'), inboundBytesDropped: sum('inDropped'),
  loadgenRealtimeCoreShare: +(ms(r0, r1) / 1000 / wall).toFixed(3),
  loadgenTwilioCoreShare: +(ms(w0, w1) / 1000 / wall).toFixed(3),
  // the floor (bench/loadgen/floor.c): a plain relay's CPU per stream-second, same N
  floorRelayMsPerCallSecond: fwdUser === 'null' ? null
    : { user: Number(fwdUser), kernel: Number(fwdSys), total: +(Number(fwdUser) + Number(fwdSys)).toFixed(4) },
  floorReadOnlyMsPerCallSecond: readUser === 'null' ? null
    : { user: Number(readUser), kernel: Number(readSys), total: +(Number(readUser) + Number(readSys)).toFixed(4) },
  realtimePeer: rt,
  errors: ended.filter((l) => !/^stop$/.test(l.reason)).length,
  callerErrors: (tw.errors || []).slice(0, 10),
};
console.log(JSON.stringify(out, null, 1));
JS
