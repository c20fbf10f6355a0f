#!/usr/bin/env bash
# tests/soak/soak.sh: the daemon under varying load and faults for a bounded time.
#
# Real parts as in tests/integration/test_call_events.sh: the daemon (VA_BIN), the fake
# Twilio and fake Realtime, the call-webhook Edge Function on real Deno and a throwaway
# PostgreSQL. For SOAK_SECONDS:
#   - waves of simulated calls (tests/fakes/twilio.js, --concurrency varying with a load
#     level that cycles low/medium/high, real-time media; short, long, dropped, bare
#     closes, stalled readers, through /twilio/answer, gaps and DTMF, bursts);
#   - hostile clients in a loop (tests/soak/hostile.js: garbage, slowloris, bad and
#     truncated WebSocket frames, oversize messages, streams cut mid-frame);
#   - the fake Realtime down every SOAK_RT_FAULT_S..+5 s for 1-3.5 s: killed (SIGKILL,
#     SIGTERM) and restarted on its port, or hung (SIGSTOP, then SIGCONT), in turn: calls
#     on it fail, the breaker may open and refuse upgrades;
#   - the Edge Function down every SOAK_FN_FAULT_S..+5 s for 2-6 s: hung (SIGSTOP, then
#     SIGCONT), killed (SIGKILL) or stopped (SIGTERM) in turn, restarted on its port:
#     events wait in the spool and catch up (fast retries);
#   - every SOAK_SAMPLE_S: the daemon's RSS and open fds (/proc), active calls and spool
#     depth (/metrics), into samples.tsv.
# Then: load stopped, both services up, the spool drained (bounded), and the checks: the
# daemon never died and exits 0 on SIGTERM (no sanitizer report); every call whose stream
# started (the daemon's "call started" lines, and every stream a client sent a start on) is
# in `calls` exactly once with a terminal status; every event delivered is stored once;
# nothing dead-lettered; RSS and fds back.
#
# Environment (defaults are the full soak; test_soak.sh sets a light one):
#   VA_BIN            the daemon (make soak: build/release/voice-agent)
#   SOAK_SECONDS      the daemon's time under load, warm-up included (600); setup before
#                     it and the wind-down after it come on top
#   SOAK_OUT          where samples.tsv, summary.txt and the logs go ($PWD/soak-out)
#   SOAK_SAMPLE_S     sampling period (3)
#   SOAK_WAVE_MAX     most calls in one wave at the highest load level (9)
#   SOAK_WAVES        waves running at once, at most (6)
#   SOAK_WAVE_GAP_S   a new wave every 1..SOAK_WAVE_GAP_S seconds (4)
#   SOAK_LEVEL_S      seconds per load level; levels cycle low, medium, high (60)
#   SOAK_LONG_S       length of a long call (25)
#   SOAK_RT_FAULT_S   the Realtime fake goes down every SOAK_RT_FAULT_S..+5 s (15)
#   SOAK_FN_FAULT_S   the function goes down every SOAK_FN_FAULT_S..+5 s (20)
#   SOAK_HOSTILE      hostile connections at once (3; 0: none)
#   SOAK_DRAIN_S      bound on the final wait for calls and the spool (120)
#   SOAK_RSS_SLACK_KB RSS allowed above the baseline: max(this, 25% of it) (8192)
#   SOAK_MIN_CALLS    fewer started calls than this fails the run (20)
. "$(dirname "$0")/../integration/lib.sh"

SOAK_SECONDS=${SOAK_SECONDS:-600}
SOAK_OUT=${SOAK_OUT:-$PWD/soak-out}
SOAK_SAMPLE_S=${SOAK_SAMPLE_S:-3}
SOAK_WAVE_MAX=${SOAK_WAVE_MAX:-9}
SOAK_WAVES=${SOAK_WAVES:-6}
SOAK_WAVE_GAP_S=${SOAK_WAVE_GAP_S:-4}
SOAK_LEVEL_S=${SOAK_LEVEL_S:-60}
SOAK_LONG_S=${SOAK_LONG_S:-25}
SOAK_RT_FAULT_S=${SOAK_RT_FAULT_S:-15}
SOAK_FN_FAULT_S=${SOAK_FN_FAULT_S:-20}
SOAK_HOSTILE=${SOAK_HOSTILE:-3}
SOAK_DRAIN_S=${SOAK_DRAIN_S:-120}
SOAK_RSS_SLACK_KB=${SOAK_RSS_SLACK_KB:-8192}
SOAK_MIN_CALLS=${SOAK_MIN_CALLS:-20}
KEY=soak-service-role-key-0123456789abcdef
TWILIO="$VA_ROOT/tests/fakes/twilio.js"
mkdir -p "$SOAK_OUT" "$T/waves"
SAMPLES="$SOAK_OUT/samples.tsv"
SUMMARY="$SOAK_OUT/summary.txt"
: >"$SUMMARY"

HOSTILE_PID=""
WAVE_PIDS=()
# Everything this script started, by pid; lib.sh's cleanup does the daemon, the fake
# Realtime, the function and PostgreSQL.
soak_cleanup() {
    local p
    [ -n "$HOSTILE_PID" ] && kill -KILL "$HOSTILE_PID" 2>/dev/null
    [ "${FN_HUNG:-0}" = 1 ] && kill -CONT "$FN_PID" 2>/dev/null # else its SIGTERM would wait
    [ "${RT_HUNG:-0}" = 1 ] && kill -CONT "$RT_PID" 2>/dev/null
    for p in "${WAVE_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
    cp "$VA_LOG" "$SOAK_OUT/daemon.log" 2>/dev/null
    cat "$T/fn-all.log" "$T/fn.log" >"$SOAK_OUT/fn.log" 2>/dev/null
    cleanup
}
trap soak_cleanup EXIT

now_ms() { date +%s%3N; }
say() { printf '[soak %5ss] %s\n' "$(( ($(now_ms) - T0) / 1000 ))" "$*"; }
q() { psql -X -q -t -A -v ON_ERROR_STOP=1 -c "$1"; }
metric() { # NAME: its value in $M (the last /metrics body), NA when absent (no answer)
    printf '%s\n' "$M" | awk -v n="$1" '$1 == n { v = $2 } END { print (v == "" ? "NA" : v + 0) }'
}
scrape() { M=$(curl -s --max-time 5 "$BASE/metrics"); }
alive() { [ -n "$VA_PID" ] && kill -0 "$VA_PID" 2>/dev/null; }

# --- the fake Realtime and the function, on fixed ports once started ---
RT_UP=0
FN_UP=0
RT_FAULTS=0
FN_FAULTS=0
RT_OPTS=(--tool-call 'set_call_intent:{"intent":"balance_inquiry"}' --transcript "what is my balance"
    --log '' --record-dir '') # the fake's options are last-wins: no event log, no recordings
RT_HUNG=0
rt_up() {
    if [ "$RT_HUNG" = 1 ]; then
        kill -CONT "$RT_PID"
        RT_HUNG=0
        RT_UP=1
        return
    fi
    if [ "$RT_UP" = 1 ]; then return; fi
    rt_start "${RT_OPTS[@]}" ${RT_PORT:+--port "$RT_PORT"}
    RT_UP=1
}
rt_down() { # in turn: SIGKILL and SIGTERM (every session's TCP gone mid-call), SIGSTOP
    # (sessions stall, upgrades wait unanswered: connects time out if it lasts)
    case $((RT_FAULTS % 3)) in
    0 | 1)
        local sig=KILL
        [ $((RT_FAULTS % 3)) = 1 ] && sig=TERM
        kill -$sig "$RT_PID" 2>/dev/null
        wait "$RT_PID" 2>/dev/null
        RT_PID=""
        say "fault: fake Realtime killed (SIG$sig)"
        ;;
    2)
        kill -STOP "$RT_PID"
        RT_HUNG=1
        say "fault: fake Realtime hung (SIGSTOP)"
        ;;
    esac
    RT_UP=0
    RT_FAULTS=$((RT_FAULTS + 1))
}
FN_HUNG=0
fn_up() {
    if [ "$FN_HUNG" = 1 ]; then # it answers again what it accepted meanwhile
        kill -CONT "$FN_PID"
        FN_HUNG=0
        FN_UP=1
        return
    fi
    if [ "$FN_UP" = 1 ]; then return; fi
    cat "$T/fn.log" >>"$T/fn-all.log" 2>/dev/null # fn_start starts its log afresh
    fn_start "$KEY"
    FN_UP=1
}
fn_down() { # in turn: SIGSTOP (it hangs: connections are accepted by the kernel and never
    # answered, so attempts time out, and what it had read it commits once continued: the
    # daemon retries those, stored once all the same), SIGKILL, SIGTERM (fn_stop)
    case $((FN_FAULTS % 3)) in
    0)
        kill -STOP "$FN_PID"
        FN_HUNG=1
        say "fault: Edge Function hung (SIGSTOP)"
        ;;
    1)
        kill -KILL "$FN_PID" 2>/dev/null
        wait "$FN_PID" 2>/dev/null
        FN_PID=""
        say "fault: Edge Function killed (SIGKILL)"
        ;;
    2)
        fn_stop
        say "fault: Edge Function stopped (SIGTERM)"
        ;;
    esac
    FN_UP=0
    FN_FAULTS=$((FN_FAULTS + 1))
}

# --- sampling ---
printf 't_s\tphase\trss_kb\tfds\tfn_conns\tcalls_active\tspool_depth\tdelivered\trt\tfn\n' >"$SAMPLES"
# fn_conns: the daemon's TCP sockets to the function's port (/proc/net/tcp by inode): curl's
# keep-alive cache, which holds 0 to a few idle connections depending on the last burst of
# deliveries; counted apart so that the fd check compares the rest
fn_conns() {
    local port_hex
    port_hex=$(printf '%04X' "$FN_PORT")
    find "/proc/$VA_PID/fd" -mindepth 1 -maxdepth 1 -lname 'socket:*' -printf '%l\n' 2>/dev/null |
        sed 's/^socket:\[\([0-9]*\)\]$/\1/' |
        awk -v p=":$port_hex" 'NR == FNR { want[$1]; next }
            FNR > 1 && substr($3, length($3) - 4) == p && ($10 in want) { n++ }
            END { print n + 0 }' - /proc/net/tcp
}
PHASE=setup
sample() {
    local t rss fds
    alive || return 1
    t=$(( ($(now_ms) - T0) / 1000 ))
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$VA_PID/status")
    fds=$(find "/proc/$VA_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
    LAST_FNC=$(fn_conns)
    scrape
    LAST_RSS=$rss
    LAST_FDS=$fds
    LAST_ACTIVE=$(metric voice_agent_calls_active)
    LAST_DEPTH=$(metric voice_agent_event_spool_depth)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$PHASE" "$rss" "$fds" "$LAST_FNC" "$LAST_ACTIVE" \
        "$LAST_DEPTH" "$(metric voice_agent_events_delivered_total)" "$RT_UP" "$FN_UP" >>"$SAMPLES"
}
# wait_idle SECONDS: until no call is active and the spool is empty, sampling meanwhile
wait_idle() {
    local end=$(($(now_ms) + $1 * 1000))
    while [ "$(now_ms)" -lt "$end" ]; do
        sample || return 1
        [ "$LAST_ACTIVE" = 0 ] && [ "$LAST_DEPTH" = 0 ] && return 0
        sleep 1
    done
    return 1
}

# --- load ---
espeak-ng -s 160 -w "$T/speech.wav" "Hello, I would like to know my balance please." 2>/dev/null
sox "$T/speech.wav" -r 8000 -c 1 -e mu-law -t raw "$T/speech.ulaw"
# a long call: the sentence every few seconds, silence between (the model answers each)
sox -n -r 8000 -c 1 -e mu-law -t raw "$T/pause.ulaw" trim 0 2.5
for _ in $(seq 1 $(( (SOAK_LONG_S + 4) / 5 ))); do
    cat "$T/speech.ulaw" "$T/pause.ulaw"
done >"$T/long.ulaw"
WAVES=0
WAVE_CALLS=0
WAVE_KINDS=""
KIND_NAMES=(short long silence drop bare-close no-read answer dtmf-gap burst shuffle)
# wave [N]: one twilio.js run of N calls (default: random up to the current level's
# maximum), of a random kind, in the background
wave() {
    local level max n kind args
    level=$(( ( ($(now_ms) - T0) / 1000 / SOAK_LEVEL_S ) % 3 + 1 ))
    max=$(( (SOAK_WAVE_MAX * level + 2) / 3 ))
    n=${1:-$((1 + RANDOM % max))}
    kind=${2:-$((RANDOM % 10))}
    # near the end only short calls, so that the wind-down does not wait for long ones
    if [ $((END - $(now_ms))) -lt $((SOAK_LONG_S * 1000)) ]; then
        case $kind in 1 | 5) kind=0 ;; esac
    fi
    case $kind in
    0) args=(--audio "$T/speech.ulaw" --linger-ms 1500) ;;               # a short call
    1) args=(--audio "$T/long.ulaw") ;;                                  # a long one
    2) args=(--seconds 1) ;;                                             # hang up at once
    3) args=(--audio "$T/speech.ulaw" --drop) ;;                         # TCP gone, no Close
    4) args=(--audio "$T/speech.ulaw" --bare-close) ;;                   # Close, no stop
    5) args=(--audio "$T/long.ulaw" --no-read-after-ms 500) ;;           # stops reading
    6) args=(--answer --audio "$T/speech.ulaw" --linger-ms 500) ;;       # the webhook first
    7) args=(--audio "$T/speech.ulaw" --dtmf 5@300,7@900 --gap-at-ms 800 --gap-ms 300) ;;
    8) args=(--seconds 8 --fast) ;;                                      # a burst
    9) args=(--audio "$T/speech.ulaw" --shuffle --linger-ms 800) ;;
    esac
    WAVES=$((WAVES + 1))
    WAVE_CALLS=$((WAVE_CALLS + n))
    WAVE_KINDS="$WAVE_KINDS ${KIND_NAMES[$kind]}"
    node "$TWILIO" --port "$VA_PORT" --concurrency "$n" --from +250788000001 --to +15005550006 \
        "${args[@]}" >"$T/waves/$WAVES.out" 2>"$T/waves/$WAVES.err" &
    WAVE_PIDS+=($!)
}
waves_running() {
    local p live=()
    for p in "${WAVE_PIDS[@]}"; do kill -0 "$p" 2>/dev/null && live+=("$p"); done
    WAVE_PIDS=("${live[@]}")
    echo "${#WAVE_PIDS[@]}"
}

# --- start ---
T0=$(now_ms)
T_SCRIPT=$T0
pg_start
T_PG=$(now_ms)
fn_up
T_FN=$(now_ms)
rt_up
T0=$(now_ms) # the clock starts with the daemon: PostgreSQL's start is not soak time
END=$((T0 + SOAK_SECONDS * 1000))
va_start_rt PUBLIC_WS_URL=wss://example.com/ws/twilio OPENAI_GREETING="Greet the caller." \
    SUPABASE_URL=http://127.0.0.1:9 SUPABASE_SERVICE_ROLE_KEY=$KEY CALL_EVENTS_URL="$FN_URL" \
    CALL_EVENTS_RETRY_BASE_MS=100 CALL_EVENTS_RETRY_CAP_MS=1000 CALL_EVENTS_TIMEOUT_MS=2000 \
    BREAKER_THRESHOLD=5 BREAKER_COOLDOWN_MS=1000 REALTIME_CONNECT_TIMEOUT_MS=5000 \
    RATE_LIMIT_PER_MIN=1000000 RATE_LIMIT_BURST=100000 DRAIN_TIMEOUT_S=10 MCP_PORT=0
say "daemon pid $VA_PID on port $VA_PORT; Realtime fake on $RT_PORT, function on $FN_PORT (setup: PostgreSQL $(((T_PG - T_SCRIPT) / 1000)) s, the function $(((T_FN - T_PG) / 1000)) s)"

# Warm-up: one wave at the highest level and a few hostile clients, so that what a first
# call allocates once (lws context buffers, curl's connection cache, the threadpool,
# malloc arenas at peak size) is in the baseline; then idle.
PHASE=warmup
wave "$SOAK_WAVE_MAX" 0
if [ "$SOAK_HOSTILE" -gt 0 ]; then
    node "$VA_ROOT/tests/soak/hostile.js" --port "$VA_PORT" --concurrency "$SOAK_HOSTILE" \
        --sid-file "$T/hostile.sids" >"$T/hostile-warmup.out" 2>&1 &
    HOSTILE_PID=$!
fi
wait "${WAVE_PIDS[@]}" 2>/dev/null
if [ -n "$HOSTILE_PID" ]; then
    kill -TERM "$HOSTILE_PID" 2>/dev/null
    wait "$HOSTILE_PID" 2>/dev/null
    HOSTILE_PID=""
fi
wait_idle 60 || fail "warm-up: calls or events did not settle"
PHASE=baseline
sleep 1
sample
BASE_RSS=$LAST_RSS
BASE_FDS=$LAST_FDS
BASE_FNC=$LAST_FNC
say "baseline after warm-up: RSS $BASE_RSS KiB, $BASE_FDS fds ($BASE_FNC to the function)"

# --- the soak ---
PHASE=load
if [ "$SOAK_HOSTILE" -gt 0 ]; then
    node "$VA_ROOT/tests/soak/hostile.js" --port "$VA_PORT" --concurrency "$SOAK_HOSTILE" \
        --sid-file "$T/hostile.sids" >"$T/hostile.out" 2>"$T/hostile.err" &
    HOSTILE_PID=$!
fi
NEXT_SAMPLE=0
NEXT_WAVE=0
NEXT_RT=$(($(now_ms) + (SOAK_RT_FAULT_S + RANDOM % 6) * 1000))
NEXT_FN=$(($(now_ms) + (SOAK_FN_FAULT_S / 2 + RANDOM % 6) * 1000))
RT_BACK=0
FN_BACK=0
DIED=0
while :; do
    t=$(now_ms)
    [ "$t" -ge "$END" ] && break
    if ! alive; then
        DIED=1
        fail "the daemon died during the load"
        break
    fi
    if [ "$t" -ge "$NEXT_SAMPLE" ]; then
        sample
        NEXT_SAMPLE=$((t + SOAK_SAMPLE_S * 1000))
    fi
    # no new wave in the last 5 s: a short call lasts about that, the wind-down would wait
    if [ "$t" -ge "$NEXT_WAVE" ] && [ $((END - t)) -gt 5000 ] &&
        [ "$(waves_running)" -lt "$SOAK_WAVES" ]; then
        wave
        NEXT_WAVE=$((t + (1 + RANDOM % SOAK_WAVE_GAP_S) * 1000))
    fi
    if [ "$RT_UP" = 1 ] && [ "$t" -ge "$NEXT_RT" ]; then
        rt_down
        RT_BACK=$((t + 1000 + RANDOM % 2500)) # down 1-3.5 s: the breaker may open
    elif [ "$RT_UP" = 0 ] && [ "$t" -ge "$RT_BACK" ]; then
        rt_up
        say "fake Realtime back on $RT_PORT"
        NEXT_RT=$(($(now_ms) + (SOAK_RT_FAULT_S + RANDOM % 6) * 1000))
    fi
    if [ "$FN_UP" = 1 ] && [ "$t" -ge "$NEXT_FN" ]; then
        fn_down
        FN_BACK=$((t + 2000 + RANDOM % 4000)) # down 2-6 s
    elif [ "$FN_UP" = 0 ] && [ "$t" -ge "$FN_BACK" ]; then
        fn_up
        say "Edge Function back on $FN_PORT"
        NEXT_FN=$(($(now_ms) + (SOAK_FN_FAULT_S + RANDOM % 6) * 1000))
    fi
    sleep 0.5
done

# --- wind down: no more load, everything up, calls over, spool drained ---
PHASE=drain
LOAD_MS=$(($(now_ms) - T0))
say "load over after $((LOAD_MS / 1000)) s: stopping the hostile clients, waiting for the calls"
if [ -n "$HOSTILE_PID" ]; then
    kill -TERM "$HOSTILE_PID" 2>/dev/null
    wait "$HOSTILE_PID" 2>/dev/null
    HOSTILE_PID=""
fi
rt_up
fn_up
# each twilio.js call has its own watchdog (its audio + 20 s); past that, cut them off
deadline=$(($(now_ms) + (SOAK_LONG_S + 30) * 1000))
while [ "$(waves_running)" -gt 0 ] && [ "$(now_ms)" -lt "$deadline" ] && alive; do
    sample
    sleep 1
done
for p in "${WAVE_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
WAVE_PIDS=()
if alive; then
    wait_idle "$SOAK_DRAIN_S" && ok ||
        fail "after $SOAK_DRAIN_S s: $LAST_ACTIVE calls still active, $LAST_DEPTH events spooled"
    PHASE=end
    sleep 1
    sample
fi
END_RSS=${LAST_RSS:-0}
END_FDS=${LAST_FDS:-0}
END_FNC=${LAST_FNC:-0}
scrape
DELIVERED=$(metric voice_agent_events_delivered_total)
DEAD=$(metric voice_agent_events_dead_lettered_total)
DROPPED=$(metric voice_agent_events_dropped_total)
FAILURES=$(metric voice_agent_event_delivery_failures_total)
RT_FAILS=$(metric voice_agent_realtime_connect_failures_total)
M_COMPLETED=$(metric 'voice_agent_calls_total{outcome="completed"}')
M_FAILED=$(metric 'voice_agent_calls_total{outcome="failed"}')
M_REJECTED=$(metric 'voice_agent_calls_total{outcome="rejected"}')
DAEMON_MS=$(($(now_ms) - T0))

# --- the daemon: alive all along, a clean exit ---
if alive; then
    va_stop # exit 0 on SIGTERM, no sanitizer report, "stopped", every line JSON
else
    [ "$DIED" = 1 ] || fail "the daemon died"
    wait "$VA_PID"
    say "daemon exit status $?"
    VA_PID=""
fi
rt_stop

# --- what the clients saw: the calls they sent a start for (simulated and hostile) ---
node -e '
const fs = require("fs");
const dir = process.argv[1];
let calls = 0, ok = 0, upgraded = 0, refusedUpgrade = 0, refusedTwiml = 0, closedByDaemon = 0;
const sids = [];
for (const f of fs.readdirSync(dir).filter((f) => f.endsWith(".out"))) {
  for (const l of fs.readFileSync(`${dir}/${f}`, "utf8").split("\n")) {
    if (!l.startsWith("{")) continue;
    let r; try { r = JSON.parse(l); } catch (e) { continue; }
    if (r.callSid === undefined) continue;            /* the aggregate line */
    calls++;
    if (r.ok) ok++;
    if (r.upgradeStatus === 101) {
      upgraded++;
      sids.push(r.callSid); /* its start follows the 101 at once */
    } else if (r.upgradeStatus) {
      refusedUpgrade++;
    }
    if (r.errors.some((e) => e.includes("call refused"))) refusedTwiml++;
    if (r.closedBy === "daemon" || r.closedBy === "tcp") closedByDaemon++;
  }
}
fs.writeFileSync(process.argv[2], sids.map((s) => s + "\n").join(""));
console.log(`${calls} ${ok} ${upgraded} ${refusedUpgrade} ${refusedTwiml} ${closedByDaemon}`);
' "$T/waves" "$T/client.sids" >"$T/clients"
read -r C_CALLS C_OK C_UPGRADED C_REFUSED_UP C_REFUSED_TWIML C_CLOSED_BY_DAEMON <"$T/clients"
# --- every started call in `calls` exactly once, terminal; every event stored once ---
sed -n 's/.*"msg":"call started".*"callSid":"\([^"]*\)".*/\1/p' "$VA_LOG" | sort >"$T/started"
STARTED=$(wc -l <"$T/started")
STARTED_UNIQ=$(sort -u "$T/started" | wc -l)
assert_eq "$STARTED" "$STARTED_UNIQ" "each call started once in the daemon's log"
q "create table soak_started (call_sid text)"
psql -X -q -v ON_ERROR_STOP=1 -c "\\copy soak_started from '$T/started'"
# The clients' view, independent of the daemon's log: a stream that sent its start is a
# call Twilio would have, whatever the daemon made of it.
cat "$T/client.sids" "$T/hostile.sids" 2>/dev/null | sort -u >"$T/client-started"
q "create table soak_client_started (call_sid text)"
psql -X -q -v ON_ERROR_STOP=1 -c "\\copy soak_client_started from '$T/client-started'"
CLIENT_STARTED=$(wc -l <"$T/client-started")
CLIENT_MISSING=$(q "select count(*) from soak_client_started s where not exists (select 1 from calls c where c.call_sid = s.call_sid and c.status in ('completed', 'failed'))")
NOT_LOGGED=$(comm -23 "$T/client-started" "$T/started" | wc -l)
MISSING=$(q "select count(*) from soak_started s where not exists (select 1 from calls c where c.call_sid = s.call_sid)")
DUPS=$(q "select count(*) from (select call_sid from calls group by call_sid having count(*) > 1) d")
NONTERMINAL=$(q "select count(*) from calls c join soak_started s using (call_sid) where c.status is null or c.status not in ('completed', 'failed')")
COMPLETED=$(q "select count(*) from calls c join soak_started s using (call_sid) where c.status = 'completed'")
FAILED=$(q "select count(*) from calls c join soak_started s using (call_sid) where c.status = 'failed'")
REJECTED=$(q "select count(*) from calls where status = 'rejected'")
OTHER_ROWS=$(q "select count(*) from calls c where not exists (select 1 from soak_started s where s.call_sid = c.call_sid) and c.status is distinct from 'rejected'")
STORED=$(q "select count(*) from call_events")
ENDED=$(grep -c '"msg":"call ended"' "$VA_LOG")
assert_eq "$STARTED" "$ENDED" "calls started = calls ended in the daemon's log"
assert_eq "$COMPLETED $FAILED $REJECTED" "$M_COMPLETED $M_FAILED $M_REJECTED" \
    "completed, failed, rejected: the rows against voice_agent_calls_total"
assert_eq 0 "$MISSING" "started calls missing from calls"
assert_eq 0 "$CLIENT_MISSING" "streams the clients started without a completed or failed row"
[ "$CLIENT_MISSING" = 0 ] || q "select call_sid from soak_client_started s where not exists (select 1 from calls c where c.call_sid = s.call_sid) limit 5" >&2
assert_eq 0 "$NOT_LOGGED" "streams the clients started that the daemon never logged as started"
[ "$MISSING" = 0 ] || q "select call_sid from soak_started s where not exists (select 1 from calls c where c.call_sid = s.call_sid) limit 5" >&2
assert_eq 0 "$DUPS" "call_sids with more than one row"
assert_eq 0 "$NONTERMINAL" "started calls without a terminal status"
assert_eq 0 "$OTHER_ROWS" "rows for calls that neither started nor were refused"
assert_eq "$DELIVERED" "$STORED" "events acknowledged = events stored (each once)"
assert_eq 0 "$DEAD" "events dead-lettered (metric)"
assert_eq 0 "$DROPPED" "events dropped (metric)"
assert_eq 0 "$(cat "$T/spool/dead-letter.jsonl" 2>/dev/null | wc -c)" "dead-letter file size"
assert_eq 0 "$(find "$T/spool" -name '*.json' | wc -l)" "events left in the spool"
[ "$STARTED" -ge "$SOAK_MIN_CALLS" ] && ok || fail "only $STARTED calls started (want >= $SOAK_MIN_CALLS)"
[ "$RT_FAULTS" -ge 1 ] && [ "$FN_FAULTS" -ge 1 ] && ok || fail "faults: $RT_FAULTS Realtime outages, $FN_FAULTS function outages"

# --- memory and descriptors back to where they were ---
RSS_MIN=$(awk -F'\t' 'NR > 1 { if (m == "" || $3 < m) m = $3 } END { print m }' "$SAMPLES")
RSS_MAX=$(awk -F'\t' 'NR > 1 { if ($3 > m) m = $3 } END { print m }' "$SAMPLES")
FDS_MIN=$(awk -F'\t' 'NR > 1 { if (m == "" || $4 < m) m = $4 } END { print m }' "$SAMPLES")
FDS_MAX=$(awk -F'\t' 'NR > 1 { if ($4 > m) m = $4 } END { print m }' "$SAMPLES")
FNC_MAX=$(awk -F'\t' 'NR > 1 { if ($5 > m) m = $5 } END { print m + 0 }' "$SAMPLES")
# The bound. The warm-up ran a wave of the largest size, so the allocator already holds
# the peak working set of calls at the baseline, and a daemon that frees what it
# allocates comes back close to it (a 10-minute run: under +1 MiB). The slack, max(8 MiB,
# 25% of the baseline), is for what glibc keeps of freed memory (it trims only the top of
# the heap) and for fragmentation after bursts of 30-50 calls at once; it still catches a
# leak of 8 MiB / calls started per call (about 10 KiB per call over a full run), and
# LeakSanitizer catches anything unreachable at exit in the test build.
SLACK=$((BASE_RSS / 4 > SOAK_RSS_SLACK_KB ? BASE_RSS / 4 : SOAK_RSS_SLACK_KB))
[ "$END_RSS" -le $((BASE_RSS + SLACK)) ] && ok ||
    fail "RSS grew: $BASE_RSS KiB after warm-up, $END_RSS KiB at the end (allowed +$SLACK KiB)"
FD_DIFF=$(((END_FDS - END_FNC) - (BASE_FDS - BASE_FNC)))
[ "$FD_DIFF" -ge -2 ] && [ "$FD_DIFF" -le 2 ] && ok ||
    fail "fds not back: $BASE_FDS after warm-up ($BASE_FNC to the function), $END_FDS at the end ($END_FNC)"
# curl's cache holds 4 connections per transfer added, and the call events' client has at
# most 4 transfers in flight: more than 16 would be connections nobody closes
[ "$FNC_MAX" -le 16 ] && ok || fail "up to $FNC_MAX connections to the function (16 at most)"

H_STARTS=$(wc -l <"$T/hostile.sids" 2>/dev/null || echo 0)
HOSTILE_SUMMARY=$(cat "$T/hostile.out" 2>/dev/null)
# the function's answers over all its lives: "duplicate" is a retry of an event that had
# been committed (its answer lost to a timeout, a kill or a hang)
FN_ANSWERS=$(cat "$T/fn-all.log" "$T/fn.log" 2>/dev/null | sed -n 's/.*"outcome":"\([a-z_]*\)".*/\1/p' |
    sort | uniq -c | awk '{ printf "%s %s, ", $1, $2 }')

{
    # at most ~60 rows on screen (every k-th load sample); the file has them all
    n=$(($(wc -l <"$SAMPLES") - 1))
    k=$(((n + 59) / 60))
    echo "== samples (every ${SOAK_SAMPLE_S} s$([ "$k" -gt 1 ] && echo ", every ${k}th load sample shown; all in $SAMPLES")) =="
    awk -F'\t' -v k="$k" 'NR == 1 || $2 != "load" || (NR - 2) % k == 0 {
        printf "%6s  %-8s %9s %5s %8s %12s %11s %9s %3s %3s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 }' "$SAMPLES"
    echo
    echo "== soak summary =="
    printf 'binary              %s\n' "$VA_BIN"
    printf 'duration            %d s of load (warm-up included), %d s from the daemon'"'"'s start to the end of the drain, %d s in all\n' \
        $((LOAD_MS / 1000)) $((DAEMON_MS / 1000)) $((($(now_ms) - T_SCRIPT) / 1000))
    printf 'waves               %d twilio.js runs (kinds:%s)\n' "$WAVES" "$(echo $WAVE_KINDS | tr ' ' '\n' | sort | uniq -c | awk '{printf " %s:%s", $2, $1}')"
    printf 'calls attempted     %d simulated + %d hostile streams with a start\n' "$C_CALLS" "$H_STARTS"
    printf '  upgraded (101)    %d; refused at the upgrade %d; apology TwiML %d\n' "$C_UPGRADED" "$C_REFUSED_UP" "$C_REFUSED_TWIML"
    printf '  ok for the fake   %d; closed by the daemon first %d\n' "$C_OK" "$C_CLOSED_BY_DAEMON"
    printf 'calls started       %d (daemon log "call started"); %d by the clients (a start sent), %d of them not logged, %d without a row\n' \
        "$STARTED" "$CLIENT_STARTED" "$NOT_LOGGED" "$CLIENT_MISSING"
    printf '  completed         %d\n' "$COMPLETED"
    printf '  failed            %d\n' "$FAILED"
    printf '  missing / dup / non-terminal rows  %d / %d / %d\n' "$MISSING" "$DUPS" "$NONTERMINAL"
    printf 'refused calls       %d rows with status rejected\n' "$REJECTED"
    printf 'events delivered    %s (stored in call_events: %s); delivery failures retried %s; dead-lettered %s; dropped %s\n' \
        "$DELIVERED" "$STORED" "$FAILURES" "$DEAD" "$DROPPED"
    printf 'function answers    %s(its log, all restarts)\n' "$FN_ANSWERS"
    printf 'realtime connects failed  %s\n' "$RT_FAILS"
    printf 'faults injected     %d Realtime fake outages (SIGKILL, SIGTERM, SIGSTOP in turn), %d Edge Function outages (SIGSTOP, SIGKILL, SIGTERM in turn)\n' "$RT_FAULTS" "$FN_FAULTS"
    printf 'hostile clients     %s\n' "${HOSTILE_SUMMARY:-none}"
    printf 'RSS (KiB)           baseline %d, min %d, max %d, end %d (allowed end <= %d: a leak of %d bytes per started call would fail)\n' \
        "$BASE_RSS" "$RSS_MIN" "$RSS_MAX" "$END_RSS" $((BASE_RSS + SLACK)) $((SLACK * 1024 / (STARTED > 0 ? STARTED : 1)))
    printf 'fds                 baseline %d, min %d, max %d, end %d; idle keep-alive connections to the function %d at the baseline, %d at the end, %d at most (the rest must be back within 2)\n' \
        "$BASE_FDS" "$FDS_MIN" "$FDS_MAX" "$END_FDS" "$BASE_FNC" "$END_FNC" "$FNC_MAX"
    printf 'daemon              %s\n' "$([ "$DIED" = 0 ] && echo "never died; exit 0 on SIGTERM checked" || echo DIED)"
    printf 'log lines by level  %s\n' "$(sed -n 's/.*"level":"\([a-z]*\)".*/\1/p' "$VA_LOG" | sort | uniq -c | awk '{printf "%s:%s ", $2, $1}')"
    echo "warnings and errors, by message:"
    grep -E '"level":"(warn|error)"' "$VA_LOG" | sed -n 's/.*"msg":"\([^"]*\)".*/\1/p' | sort | uniq -c | sort -rn | head -20
    printf 'checks              %d passed, %d failed\n' "$CHECKS" "$FAILS"
} | tee "$SUMMARY"
finish
