#!/usr/bin/env bash
# make bench in small, so that the benchmark and its C load generator (bench/loadgen) keep
# working: 12 calls for 12 s through the daemon under test, callers and Realtime peer both
# va-loadgen of the same build (ASan in make test), over TLS. Checks what must hold at any
# speed: every call completes, every barge-in is truncated, no frame is lost either way,
# nothing is dropped, no protocol error on either side. Timing figures are printed, not
# asserted (a loaded CI machine is not a benchmark). The calls run in step
# (BENCH_INSTEP=1), so that each says its script from the start and barges in once; the
# floor (a plain relay, bench/loadgen/floor.c) runs for 2 s per phase.
. "$(dirname "$0")/lib.sh"
N=12
out=$(VA_LOADGEN="$(dirname "$VA_BIN")/va-loadgen" BENCH_CALLS=$N BENCH_SECONDS=12 \
    BENCH_INSTEP=1 BENCH_FLOOR_SECONDS=2 \
    "$VA_ROOT/bench/bench.sh" 2>"$T/bench.err")
printf '%s\n' "$out" >"$T/bench.json"
FINISH_LOGS+=("$T/bench.err")
get() { node -e 'const o = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const v = process.argv[2].split(".").reduce((a, k) => (a == null ? a : a[k]), o);
  console.log(v === undefined ? "undefined" : JSON.stringify(v));' "$T/bench.json" "$1" 2>/dev/null; }
assert_eq "$N" "$(get okCalls)" "calls completed ($(get callerErrors))"
assert_eq 0 "$(get errors)" "calls that did not end with stop"
assert_eq "$N" "$(get sessionsReadyAtWindowStart)" "sessions ready in the window"
assert_eq "$N" "$(get bargeIns)" "one barge-in per call (script: speech over the reply)"
assert_eq "$(get bargeIns)" "$(get realtimePeer.truncates)" "a truncate per barge-in"
assert_eq 0 "$(get realtimePeer.protocolErrors)" "protocol errors the peer saw"
assert_eq 0 "$(get realtimePeer.errorsSent)" "errors the peer sent"
assert_eq 0 "$(get inboundLatencyUs.missing)" "caller frames with sound lost"
assert_eq 0 "$(get inboundQuietLatencyUs.missing)" "quiet caller frames lost"
assert_eq 0 "$(get outboundFirstFrameLatencyUs.missing)" "reply first frames lost"
assert_eq 0 "$(get inboundBytesDropped)" "caller bytes dropped"
assert_eq 0 "$(get outboundBytesDropped)" "agent bytes dropped"
n=$(get inboundLatencyUs.frames)
[ "$n" -gt 0 ] && ok || fail "no stamped caller frame found ($n)"
n=$(get outboundFirstFrameLatencyUs.frames)
[ "$n" -gt 0 ] && ok || fail "no stamped reply frame found ($n)"
assert_eq true "$(get callsInStep)" "calls in step"
for k in daemonCpuMsPerCallSecond daemonKernelMsPerCallSecond rssPerCallKiB \
    loadgenTwilioCoreShare loadgenRealtimeCoreShare floorRelayMsPerCallSecond.total \
    floorReadOnlyMsPerCallSecond.total; do
    v=$(get $k)
    case "$v" in '' | null | undefined) fail "$k not printed" ;; *) ok ;; esac
done
echo "bench figures (ASan build, not a measurement): cpu $(get daemonCpuMsPerCallSecond) ms/call-s, late $(get lateOutboundEvents), floor $(get floorRelayMsPerCallSecond.total) ms/stream-s"
finish
