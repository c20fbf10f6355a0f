#!/usr/bin/env bash
# The call-webhook Edge Function (supabase/functions/call-webhook) on real Deno against a
# real PostgreSQL 15: a throwaway cluster (scripts/pg-test.sh) with every migration applied
# twice (and once more with the Supabase roles present), the function on a free loopback
# port (deno run --cached-only: its npm imports were cached by scripts/install-deps.sh
# test), driven with curl: a call's events in order and out of order, repeats, a rejected
# call, Twilio status callbacks, 20 concurrent events, malformed, invalid and hostile
# bodies (nothing written), auth, methods, and the database going away and coming back.
# Starts no daemon, but lib.sh wants VA_BIN: alone, VA_BIN=build/test/voice-agent
# tests/integration/test_edge_function.sh.
. "$(dirname "$0")/lib.sh"
KEY=test-service-role-key-edge-0123456789

counts() { q "select (select count(*) from calls) || '/' || (select count(*) from call_events)"; }
row() { q "select row_to_json(c)::text from calls c where call_sid = '$1'"; }

# post FILE [--noauth] [curl args...]: http() POST of the file to the function, with the
# key unless --noauth; sets CODE, BODY, HEADERS.
post() {
    local file=$1
    shift
    local auth=(-H "Authorization: Bearer $KEY")
    [ "${1:-}" = --noauth ] && { auth=(); shift; }
    http POST /call-webhook "${auth[@]}" -H 'Content-Type: application/json' "$@" --data-binary "@$file"
}
# accept FILE CALL_SID DUPLICATE WHAT: POST, expect 200 and the exact answer.
accept() {
    post "$T/ev/$1.json"
    assert_eq 200 "$CODE" "$4: status"
    assert_eq "{\"ok\":true,\"duplicate\":$3,\"call_sid\":\"$2\"}" "$BODY" "$4: answer"
}
# reject FILE STATUS WHAT [NEEDLE]: POST, expect STATUS and NEEDLE in the body.
reject() {
    post "$T/ev/$1.json"
    assert_eq "$2" "$CODE" "$3: status"
    [ -n "${4:-}" ] && assert_contains "$BODY" "$4" "$3: body"
}

# --- the cluster: migrations applied by pg-test.sh, then again, then with the roles ---
pg_start
[ -n "$PG_TEST_DIR" ] && [ -n "$DATABASE_URL" ] && ok || fail "pg-test.sh printed no cluster"
apply_all() {
    local f
    for f in "$VA_ROOT"/supabase/migrations/*.sql; do
        psql -X -q -v ON_ERROR_STOP=1 -1 -f "$f" >"$T/mig.log" 2>&1 || { cat "$T/mig.log"; return 1; }
    done
}
apply_all && ok || fail "migrations applied twice"
q "create role anon nologin; create role authenticated nologin; create role service_role nologin bypassrls;" >/dev/null
apply_all && ok || fail "migrations applied again with the Supabase roles"
assert_eq "id uuid,from_number text,to_number text,call_sid text,transcript text,intent text,duration integer,status text,meta jsonb,created_at timestamp with time zone" \
    "$(q "select string_agg(column_name || ' ' || data_type, ',' order by ordinal_position) from information_schema.columns where table_name = 'calls'")" \
    "calls columns untouched"
assert_eq "idx_calls_call_sid idx_calls_created_at idx_calls_from_number idx_calls_to_number calls_pkey" \
    "$(q "select string_agg(indexname, ' ' order by indexname like '%pkey', indexname) from pg_indexes where tablename = 'calls'")" \
    "calls indexes untouched"
assert_eq "t|0" "$(q "select relrowsecurity, (select count(*) from pg_policies where tablename = 'call_events') from pg_class where relname = 'call_events'")" "call_events: RLS on, no policies"
assert_eq "f|f|f|f|t" "$(q "select has_function_privilege('anon','record_call_event(jsonb)','execute'),
  has_function_privilege('authenticated','record_call_event(jsonb)','execute'), has_function_privilege('public','record_call_event(jsonb)','execute'),
  has_table_privilege('anon','call_events','select'), has_function_privilege('service_role','record_call_event(jsonb)','execute')")" \
    "record_call_event privileges"
assert_eq 't|{"search_path=\"\""}' "$(q "select prosecdef, proconfig from pg_proc where proname = 'record_call_event'")" \
    "security definer, search_path pinned"

# --- the function: type check, then real Deno on a free loopback port ---
(fn_deno check --cached-only --no-lock "$FN_SRC") >"$T/check.log" 2>&1 && ok ||
    { fail "deno check: $(cat "$T/check.log")"; echo "(run scripts/install-deps.sh test to cache the function's npm imports)" >&2; }
fn_start "$KEY"
BASE="http://127.0.0.1:$FN_PORT" # for http()

# --- the events, written as files by one node run ---
mkdir -p "$T/ev"
cat >"$T/gen.js" <<'JS'
const fs = require("fs"), dir = process.argv[2];
let n = 0;
const id = () => `00000000-0000-4000-8000-${(++n).toString(16).padStart(12, "0")}`;
const at = (s) => new Date(Date.UTC(2026, 10, 25, 10, 0, 0) + s * 1000).toISOString();
const ev = (name, type, seq, s, call, extra = {}) => {
  const e = { id: id(), type, version: 1, seq, occurred_at: at(s), call, ...extra };
  fs.writeFileSync(`${dir}/${name}.json`, JSON.stringify(e));
  fs.writeFileSync(`${dir}/${name}.id`, e.id);
  return e;
};
const raw = (name, text) => fs.writeFileSync(`${dir}/${name}.json`, text);
const base = (sid, status, more = {}) => ({ call_sid: sid, stream_sid: "MZ" + sid, account_sid: "AC0001",
  from: "+250788000001", to: "+250788000002", status, ...more });
const tool = { name: "get_member_balance", call_id: "call_1", outcome: "success", latency_ms: 12,
  at_ms: 3000, result: { success: true, memberId: "member_123", balance: 1500, currency: "RWF" } };
const turns = [
  { role: "agent", text: "Hello, how can I help?", at_ms: 0 },
  { role: "caller", text: "What is my balance?", at_ms: 2100 },
  { role: "agent", text: "Your balance is 1,500 francs. Is there", at_ms: 3500, interrupted: true },
  { role: "caller", text: "That's all, thanks.", at_ms: 6000 },
  { role: "dtmf", text: "5", at_ms: 7000 },
];
const audio = { frames_in: 2100, frames_out: 1500, gaps_filled: 2, silence_ms: 40, in_dropped: 0,
  out_dropped: 0, barge_ins: 1, dtmf: 1 };

// A: a whole call, in order.
ev("a_started", "call.started", 0, 0, base("CA_A", "in-progress", { started_at: at(0), transcript: [] }));
ev("a_updated", "call.updated", 1, 5, base("CA_A", "in-progress", { started_at: at(0), intent: "check_balance",
  intent_source: "tools", transcript: turns.slice(0, 2), tool_calls: [tool] }));
ev("a_ended", "call.ended", 2, 42, base("CA_A", "completed", { reason: "twilio stop", started_at: at(0),
  ended_at: at(42), duration: 42, intent: "check_balance", intent_source: "tools", transcript: turns,
  transcript_dropped: 0, tool_calls: [tool], audio }));
// B: out of order; "updated" with the same seq as "ended" loses the tie.
ev("b_started", "call.started", 0, 0, base("CA_B", "in-progress"));
ev("b_updated", "call.updated", 1, 4, base("CA_B", "in-progress", { intent: "redeem_voucher", intent_source: "model" }));
ev("b_ended", "call.ended", 2, 15, base("CA_B", "completed", { duration: 15, intent: "redeem_voucher",
  intent_source: "model", transcript: [{ role: "caller", text: "Redeem SAVE50", at_ms: 1000 },
    { role: "agent", text: "Done.", at_ms: 2000 }] }));
ev("b_updated_tie", "call.updated", 2, 16, base("CA_B", "in-progress", { intent: "stale" }));
// C: one event posted three times (and ten times at once).
ev("c_started", "call.started", 0, 0, base("CA_C", "in-progress"));
ev("c2_started", "call.started", 0, 0, base("CA_C2", "in-progress"));
// D: rejected at the door: only call.ended.
ev("d_ended", "call.ended", 0, 0, base("CA_D", "rejected", { stream_sid: null, reason: "max_calls", duration: null }));
// E: Twilio status callbacks around the daemon's events; the daemon's status stands.
ev("e_status_ringing", "call.status", 0, -1, base("CA_E", "in-progress", { twilio: { call_status: "ringing", duration: null, timestamp: "Wed, 25 Nov 2026 09:59:59 +0000" } }));
ev("e_started", "call.started", 0, 0, base("CA_E", "in-progress"));
ev("e_ended", "call.ended", 1, 30, base("CA_E", "failed", { reason: "realtime closed", duration: 30 }));
ev("e_status_completed", "call.status", 0, 32, base("CA_E", "completed", { twilio: { call_status: "completed", duration: 31, timestamp: "Wed, 25 Nov 2026 10:00:32 +0000" } }));
ev("e_status_stale", "call.status", 0, -2, base("CA_E", "in-progress", { twilio: { call_status: "queued" } }));
// F: the daemon gave no duration: Twilio's fills it. G: known only from Twilio.
ev("f_ended", "call.ended", 0, 20, base("CA_F", "completed", { duration: null }));
ev("f_status", "call.status", 0, 21, base("CA_F", "completed", { twilio: { call_status: "completed", duration: 17 } }));
ev("g_status", "call.status", 0, 5, { call_sid: "CA_G", from: "+250788000009", to: "+250788000002", status: "failed",
  twilio: { call_status: "no-answer", duration: 0 } });
// H: hostile but valid strings are stored verbatim (parameters, never SQL text).
const hsid = "CA'; DROP TABLE calls;--";
const htext = "Robert'); DELETE FROM call_events; -- $$ \\ % _ \"quoted\" \u00e9\u{1F600}";
ev("h_ended", "call.ended", 0, 9, base(hsid, "completed", { transcript: [{ role: "caller", text: htext, at_ms: 0 }],
  tool_calls: [{ name: "x", outcome: "failure", result: JSON.parse('{"__proto__":{"polluted":true},"constructor":{"prototype":{"x":1}}}') }] }));
fs.writeFileSync(`${dir}/h.sid`, hsid);
fs.writeFileSync(`${dir}/h.text`, htext);
// P: 5 calls x 4 events, posted all at once.
for (let c = 1; c <= 5; c++) {
  ev(`p${c}_0`, "call.started", 0, 0, base(`CA_P${c}`, "in-progress"));
  ev(`p${c}_1`, "call.updated", 1, 1, base(`CA_P${c}`, "in-progress", { intent: "check_balance" }));
  ev(`p${c}_2`, "call.updated", 2, 2, base(`CA_P${c}`, "in-progress", { intent: "check_balance" }));
  ev(`p${c}_3`, "call.ended", 3, 3, base(`CA_P${c}`, "completed", { duration: 3, intent: "check_balance" }));
}
// Z: posted while the database is down, then again.
ev("z_started", "call.started", 0, 0, base("CA_Z", "in-progress"));

// Bad: nothing of these may be written.
const good = () => ({ id: id(), type: "call.started", version: 1, seq: 0, occurred_at: at(0), call: base("CA_BAD", "in-progress") });
const bad = (name, f) => { const e = good(); f(e); raw(name, JSON.stringify(e)); };
raw("bad_json", '{"id":"00000000-0000-4000-8000-00000000ffff","type":');
raw("bad_empty", "");
raw("bad_array", "[]");
raw("bad_trailing", JSON.stringify(good()) + "}");
bad("bad_missing_status", (e) => delete e.call.status);
bad("bad_missing_id", (e) => delete e.id);
bad("bad_seq_type", (e) => e.seq = "1");
bad("bad_seq_float", (e) => e.seq = 1.5);
bad("bad_duration_neg", (e) => e.call.duration = -1);
bad("bad_extra", (e) => e.foo = 1);
bad("bad_extra_call", (e) => e.call.secret = "x");
bad("bad_type_enum", (e) => e.type = "call.deleted");
bad("bad_status_enum", (e) => e.call.status = "done");
bad("bad_version", (e) => e.version = 2);
bad("bad_long_text", (e) => e.call.transcript = [{ role: "caller", text: "x".repeat(32769), at_ms: 0 }]);
bad("bad_long_sid", (e) => e.call.call_sid = "C".repeat(65));
bad("bad_id_sql", (e) => e.id = "'); drop table calls; --xxxxxxxxxxxx");
bad("bad_occurred_at", (e) => e.occurred_at = "2026-02-30T10:00:00.000Z");
bad("bad_nul_text", (e) => e.call.transcript = [{ role: "caller", text: "a\u0000b", at_ms: 0 }]);
bad("bad_nul_key", (e) => e.call.tool_calls = [{ name: "x", outcome: "error", result: { "k\u0000": 1 } }]);
bad("bad_surrogate", (e) => e.call.reason = "\ud800");
raw("bad_proto", JSON.stringify(good()).replace(/^\{/, '{"__proto__":{"admin":true},'));
raw("bad_proto_call", JSON.stringify(good()).replace('"call":{', '"call":{"__proto__":{"status":"completed"},'));
bad("bad_deep", (e) => e.call.tool_calls = [{ name: "x", outcome: "error", result: JSON.parse('{"a":'.repeat(100) + "1" + "}".repeat(100)) }]);
raw("bad_deeper", "[".repeat(200000) + "]".repeat(200000));
fs.writeFileSync(`${dir}/bad_utf8.json`, Buffer.concat([Buffer.from('{"id":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]));
bad("bad_2mib", (e) => e.call.transcript = [{ role: "caller", text: "y".repeat(2 << 20), at_ms: 0 }]);
JS
node "$T/gen.js" "$T/ev" || { echo "event generator failed" >&2; exit 1; }

# --- A: a call in order -> one row with everything ---
accept a_started CA_A false "A started"
assert_contains "$HEADERS" "Content-Type: application/json; charset=utf-8" "answer content type"
assert_eq "in-progress|+250788000001|+250788000002|" "$(q "select status, from_number, to_number, transcript from calls where call_sid = 'CA_A'")" "A after started"
accept a_updated CA_A false "A updated"
assert_eq "in-progress|check_balance|Agent: Hello, how can I help?
Caller: What is my balance?" "$(q "select status, intent, transcript from calls where call_sid = 'CA_A'")" "A after updated"
accept a_ended CA_A false "A ended"
assert_eq 1 "$(q "select count(*) from calls where call_sid = 'CA_A'")" "A: one row"
assert_eq "completed|42|check_balance|+250788000001|+250788000002" \
    "$(q "select status, duration, intent, from_number, to_number from calls where call_sid = 'CA_A'")" "A: columns"
assert_eq "Agent: Hello, how can I help?
Caller: What is my balance?
Agent: Your balance is 1,500 francs. Is there [interrupted]
Caller: That's all, thanks.
DTMF: 5" "$(q "select transcript from calls where call_sid = 'CA_A'")" "A: transcript text"
json_eq "{\"stream_sid\":\"MZCA_A\",\"account_sid\":\"AC0001\",\"reason\":\"twilio stop\",
  \"started_at\":\"2026-11-25T10:00:00.000Z\",\"ended_at\":\"2026-11-25T10:00:42.000Z\",\"intent_source\":\"tools\",
  \"transcript_dropped\":0,\"twilio\":null,\"last_event_id\":\"$(cat "$T/ev/a_ended.id")\",\"last_seq\":2,\"event_count\":3,
  \"audio\":{\"frames_in\":2100,\"frames_out\":1500,\"gaps_filled\":2,\"silence_ms\":40,\"in_dropped\":0,\"out_dropped\":0,\"barge_ins\":1,\"dtmf\":1}}" \
    "$(q "select (meta - 'transcript' - 'tool_calls')::text from calls where call_sid = 'CA_A'")" "A: meta"
assert_eq "5|agent|true|get_member_balance|1500" "$(q "select jsonb_array_length(meta->'transcript'), meta->'transcript'->2->>'role',
  meta->'transcript'->2->>'interrupted', meta->'tool_calls'->0->>'name', meta->'tool_calls'->0->'result'->>'balance' from calls where call_sid = 'CA_A'")" "A: meta turns and tools"
assert_eq "3|call.ended:2,call.started:0,call.updated:1" "$(q "select count(*), string_agg(type || ':' || seq, ',' order by type) from call_events where call_sid = 'CA_A'")" "A: three events stored"
json_eq "$(cat "$T/ev/a_ended.json")" "$(q "select payload::text from call_events where id = '$(cat "$T/ev/a_ended.id")'")" "A: payload stored whole"

# --- B: out of order (ended first, updated last) -> the final state ---
accept b_ended CA_B false "B ended first"
b_final=$(q "select status, duration, intent, transcript from calls where call_sid = 'CA_B'")
assert_eq "completed|15|redeem_voucher|Caller: Redeem SAVE50
Agent: Done." "$b_final" "B: final state at once"
accept b_started CA_B false "B started late"
accept b_updated_tie CA_B false "B updated (seq tie with ended)"
accept b_updated CA_B false "B updated last"
assert_eq "$b_final" "$(q "select status, duration, intent, transcript from calls where call_sid = 'CA_B'")" "B: final state kept"
assert_eq "1|$(cat "$T/ev/b_ended.id")|2|4" "$(q "select count(*), max(meta->>'last_event_id'), max(meta->>'last_seq'), max(meta->>'event_count') from calls where call_sid = 'CA_B'")" "B: one row, ended wins"

# --- C: the same event three times, then ten at once ---
accept c_started CA_C false "C first post"
c_row=$(row CA_C)
accept c_started CA_C true "C second post"
accept c_started CA_C true "C third post"
assert_eq 1 "$(q "select count(*) from call_events where call_sid = 'CA_C'")" "C: one stored event"
assert_eq "$c_row" "$(row CA_C)" "C: calls row unchanged"
PIDS=""
for i in $(seq 1 10); do
    curl -s -o "$T/c2.$i" -X POST -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
        --data-binary "@$T/ev/c2_started.json" "$FN_URL" &
    PIDS="$PIDS $!"
done
for p in $PIDS; do wait "$p"; done
assert_eq "1 false 9 true" "$(cat "$T"/c2.* | node -e 'const t={};for(const l of require("fs").readFileSync(0,"utf8").split("}").filter(Boolean)){const o=JSON.parse(l+"}");t[o.duplicate]=(t[o.duplicate]||0)+1;}console.log(`${t.false||0} false ${t.true||0} true`)')" "C2: ten at once, one stored"
assert_eq "1|1" "$(q "select (select count(*) from call_events where call_sid = 'CA_C2'), (select count(*) from calls where call_sid = 'CA_C2')")" "C2: one event, one row"

# --- D: a rejected call: only call.ended ---
accept d_ended CA_D false "D rejected"
assert_eq "rejected|||max_calls|0" "$(q "select status, duration, transcript, meta->>'reason', meta->>'last_seq' from calls where call_sid = 'CA_D'")" "D: row"

# --- E, F, G: Twilio status callbacks ---
accept e_status_ringing CA_E false "E status before"
assert_eq "ringing|+250788000001|ringing" "$(q "select status, from_number, meta->'twilio'->>'call_status' from calls where call_sid = 'CA_E'")" "E: known from Twilio only"
accept e_started CA_E false "E started"
assert_eq "in-progress|ringing" "$(q "select status, meta->'twilio'->>'call_status' from calls where call_sid = 'CA_E'")" "E: the daemon's status"
accept e_ended CA_E false "E ended"
accept e_status_completed CA_E false "E status after"
accept e_status_stale CA_E false "E stale status last"
assert_eq "1|failed|30|realtime closed" "$(q "select count(*), max(status), max(duration), max(meta->>'reason') from calls where call_sid = 'CA_E'")" "E: status unchanged from the daemon's"
json_eq '{"call_status":"completed","duration":31,"timestamp":"Wed, 25 Nov 2026 10:00:32 +0000"}' \
    "$(q "select meta->'twilio' from calls where call_sid = 'CA_E'")" "E: meta.twilio is the latest callback"
accept f_ended CA_F false "F ended without duration"
accept f_status CA_F false "F status"
assert_eq "completed|17" "$(q "select status, duration from calls where call_sid = 'CA_F'")" "F: Twilio's duration fills in"
accept g_status CA_G false "G status only"
assert_eq "no-answer|0|+250788000009" "$(q "select status, duration, from_number from calls where call_sid = 'CA_G'")" "G: row from Twilio"

# --- H: SQL metacharacters and __proto__ in free-form data: stored verbatim ---
post "$T/ev/h_ended.json"
assert_eq 200 "$CODE" "H: hostile but valid strings accepted"
hsid=$(cat "$T/ev/h.sid")
assert_eq "1|Caller: $(cat "$T/ev/h.text")|{\"polluted\": true}|{\"prototype\": {\"x\": 1}}" \
    "$(q "select count(*), max(transcript), max((meta->'tool_calls'->0->'result'->'__proto__')::text), max((meta->'tool_calls'->0->'result'->'constructor')::text)
          from calls where call_sid = '${hsid//\'/\'\'}'")" "H: stored verbatim"
assert_eq 4 "$(q "select count(*) from pg_tables where tablename in ('calls','call_events','members','vouchers')")" "H: tables intact"

# --- P: 20 events for 5 calls at once -> 5 rows, final states ---
before=$(q "select count(*) from calls")
PIDS=""
for c in 1 2 3 4 5; do
    for s in 3 1 0 2; do
        curl -s -o /dev/null -w '%{http_code}\n' -X POST -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
            --data-binary "@$T/ev/p${c}_$s.json" "$FN_URL" >"$T/p.$c.$s" &
        PIDS="$PIDS $!"
    done
done
for p in $PIDS; do wait "$p"; done
assert_eq "20" "$(cat "$T"/p.*.* | grep -c '^200$')" "P: 20 answers 200"
assert_eq "$((before + 5))" "$(q "select count(*) from calls")" "P: exactly 5 new rows"
assert_eq "5|5|20" "$(q "select count(distinct call_sid), count(*) filter (where status = 'completed' and duration = 3 and meta->>'last_seq' = '3' and meta->>'event_count' = '4'),
  (select count(*) from call_events where call_sid like 'CA\_P%') from calls where call_sid like 'CA\_P%'")" "P: one final row per call"

# --- rejected bodies: 4xx and nothing written ---
snap=$(counts)
reject bad_json 400 "malformed JSON" '"error":"malformed JSON"'
reject bad_empty 400 "empty body"
reject bad_array 400 "array body" '"path":"/"'
reject bad_trailing 400 "trailing garbage"
reject bad_missing_status 400 "missing call.status" '"path":"/call/status","message":"is required"'
reject bad_missing_id 400 "missing id" '"path":"/id"'
reject bad_seq_type 400 "seq as a string" '"path":"/seq"'
reject bad_seq_float 400 "seq not an integer" '"path":"/seq"'
reject bad_duration_neg 400 "negative duration" '"path":"/call/duration"'
reject bad_extra 400 "extra field" '"path":"/foo","message":"is not allowed"'
reject bad_extra_call 400 "extra field in call" '"path":"/call/secret"'
reject bad_type_enum 400 "bad type" '"path":"/type"'
reject bad_status_enum 400 "bad call.status" '"path":"/call/status"'
reject bad_version 400 "bad version" '"path":"/version"'
reject bad_long_text 400 "oversize turn text" '"path":"/call/transcript/0/text"'
reject bad_long_sid 400 "oversize call_sid" '"path":"/call/call_sid"'
reject bad_id_sql 400 "SQL in the id" '"path":"/id","message":"must be a UUID"'
reject bad_occurred_at 400 "impossible date" '"path":"/occurred_at"'
reject bad_nul_text 400 "NUL escape in text" 'U+0000'
reject bad_nul_key 400 "NUL escape in a key" 'U+0000'
reject bad_surrogate 400 "lone surrogate" '"path":"/call/reason"'
reject bad_proto 400 "__proto__ at the top" '"path":"/__proto__","message":"is not allowed"'
reject bad_proto_call 400 "__proto__ in call" '"path":"/call/__proto__"'
reject bad_deep 400 "deeply nested result" 'nested deeper'
reject bad_deeper 400 "200000 open brackets" 'nested deeper'
reject bad_utf8 400 "not UTF-8" 'UTF-8'
reject bad_2mib 413 "2 MiB body"
post "$T/ev/bad_2mib.json" -H 'Transfer-Encoding: chunked'
assert_eq 413 "$CODE" "2 MiB chunked body"
# Bounded while reading: 1.5 MiB of a body that never ends still gets its 413.
assert_eq 413 "$(node -e '
const s = require("net").connect(+process.argv[1], "127.0.0.1", () => {
  s.write(`POST /call-webhook HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${process.argv[2]}\r\n` +
          "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
  const chunk = "z".repeat(65536);
  for (let i = 0; i < 24; i++) s.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
});
let got = ""; s.on("data", (d) => { got += d; const m = /^HTTP\/1.1 (\d+)/.exec(got); if (m) { console.log(m[1]); process.exit(0); } });
s.on("error", () => {}); setTimeout(() => { console.log("timeout"); process.exit(0); }, 5000);' "$FN_PORT" "$KEY")" "413 before the body ends"
post "$T/ev/a_ended.json" -H 'Content-Type: text/plain'
assert_eq 415 "$CODE" "text/plain"
post "$T/ev/a_ended.json" -H 'Content-Type: application/json; charset=latin1'
assert_eq 415 "$CODE" "JSON in latin1"
post "$T/ev/z_started.json" --noauth
assert_eq 401 "$CODE" "no bearer"
assert_contains "$HEADERS" "WWW-Authenticate: Bearer" "401 challenge"
post "$T/ev/z_started.json" --noauth -H 'Authorization: Bearer wrong'
assert_eq 401 "$CODE" "wrong bearer"
post "$T/ev/z_started.json" --noauth -H "Authorization: Bearer ${KEY}x"
assert_eq 401 "$CODE" "key plus a byte"
post "$T/ev/z_started.json" --noauth -H "Authorization: Bearer ${KEY%?}"
assert_eq 401 "$CODE" "key less a byte"
post "$T/ev/z_started.json" --noauth -H "Authorization: Basic $KEY"
assert_eq 401 "$CODE" "Basic scheme"
assert_contains "$BODY" '"ok":false' "401 body"
http GET /call-webhook -H "Authorization: Bearer $KEY"
assert_eq 405 "$CODE" "GET"
assert_contains "$HEADERS" "Allow: POST" "405 Allow"
post "$T/ev/z_started.json" -X PUT
assert_eq 405 "$CODE" "PUT"
assert_eq "$snap" "$(counts)" "nothing written by any rejected request"
assert_eq 0 "$(q "select count(*) from calls where call_sid in ('CA_BAD', 'CA_Z')")" "no bad call rows"

# --- the database goes away: 5xx, never 2xx; back: the same event is stored ---
"$VA_ROOT/scripts/pg-test.sh" down "$PG_TEST_DIR" && ok || fail "stop postgres"
post "$T/ev/z_started.json"
case "$CODE" in 5??) ok ;; *) fail "database down: expected 5xx, got $CODE $BODY" ;; esac
assert_contains "$BODY" '"ok":false' "database down: body"
post "$T/ev/z_started.json"
case "$CODE" in 5??) ok ;; *) fail "database still down: expected 5xx, got $CODE" ;; esac
"$VA_ROOT/scripts/pg-test.sh" up "$PG_TEST_DIR" && ok || fail "restart postgres"
accept z_started CA_Z false "Z after the database is back"
accept z_started CA_Z true "Z retried"
assert_eq "1|1" "$(q "select (select count(*) from call_events where call_sid = 'CA_Z'), (select count(*) from calls where call_sid = 'CA_Z')")" "Z: stored once"

# --- logs: JSON lines with the event's fields, never the key ---
check_log_json "$FN_LOG"
assert_contains "$(grep -F "$(cat "$T/ev/a_ended.id")" "$FN_LOG")" '"type":"call.ended","call_sid":"CA_A","outcome":"stored","status":200' "log line of a stored event"
assert_contains "$(grep -F "$(cat "$T/ev/z_started.id")" "$FN_LOG" | head -n 1)" '"outcome":"db_error"' "log line of a database failure"
assert_eq 0 "$(grep -c -F -e "$KEY" -e "${KEY%?}" "$FN_LOG")" "the key is never logged"
fn_stop
finish
