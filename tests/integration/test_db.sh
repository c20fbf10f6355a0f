#!/usr/bin/env bash
# The data layer against a real PostgreSQL 15: a throwaway cluster (scripts/pg-test.sh),
# the migration applied twice (also once with the Supabase roles present), and the RPC
# contract through the fake PostgREST (tests/fakes/postgrest.js): exact result shapes,
# every failure, idempotency (same key -> first result, never credited twice; same key
# with other arguments -> refused), 50 parallel redemptions of one single-use code and
# 50 parallel retries of one key, auth and PostgREST error shapes, RLS/privileges.
# Starts no daemon, but lib.sh wants VA_BIN: alone, VA_BIN=build/test/voice-agent
# tests/integration/test_db.sh.
. "$(dirname "$0")/lib.sh"
KEY=test-service-role-key-0123456789
MIG="$VA_ROOT/supabase/migrations/20261125000000_voice_agent.sql"

# rpc FN JSON [--noauth] [curl args...]: http() POST of JSON to the fake PostgREST's FN,
# with the key unless --noauth; sets CODE, BODY, HEADERS.
rpc() {
    local fn=$1 data=$2
    shift 2
    local auth=(-H "apikey: $KEY" -H "Authorization: Bearer $KEY")
    [ "${1:-}" = --noauth ] && { auth=(); shift; }
    http POST "/rest/v1/rpc/$fn" -H 'Content-Type: application/json' "${auth[@]}" "$@" --data-binary "$data"
}
redeem() { rpc redeem_voucher "{\"p_code\":\"$1\",\"p_member_id\":\"$2\",\"p_idempotency_key\":\"$3\"}"; }
balance() { q "select balance from members where id = '$1'"; }

# --- the cluster, the migration (applied by pg-test.sh), then applied again ---
pg_start
[ -n "$PG_TEST_DIR" ] && [ -n "$DATABASE_URL" ] && ok || fail "pg-test.sh printed no cluster"
psql -X -q -v ON_ERROR_STOP=1 -1 -f "$MIG" >"$T/mig2.log" 2>&1 && ok || fail "second apply: $(cat "$T/mig2.log")"
# Once more with Supabase's roles present: the guarded revokes/grants run.
q "create role anon nologin; create role authenticated nologin; create role service_role nologin bypassrls;" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -1 -f "$MIG" >"$T/mig3.log" 2>&1 && ok || fail "third apply (roles): $(cat "$T/mig3.log")"
assert_eq 4 "$(q "select count(*) from pg_indexes where tablename = 'calls' and indexname in
  ('idx_calls_from_number','idx_calls_to_number','idx_calls_call_sid','idx_calls_created_at')")" "calls indexes"
assert_eq "CREATE INDEX idx_calls_created_at ON public.calls USING btree (created_at DESC)" \
    "$(q "select indexdef from pg_indexes where indexname = 'idx_calls_created_at'")" "created_at index"
assert_eq 4 "$(q "select count(*) from pg_class where relname in ('calls','members','vouchers','voucher_redemptions') and relrowsecurity")" "RLS on"
assert_eq 0 "$(q "select count(*) from pg_policies where schemaname = 'public'")" "no policies"
assert_eq "f|f|f|f" "$(q "select has_table_privilege('anon','members','select'), has_table_privilege('authenticated','vouchers','select'),
  has_function_privilege('anon','redeem_voucher(text,text,text)','execute'), has_function_privilege('authenticated','get_member_balance(text)','execute')")" "anon/authenticated privileges"
assert_eq "t|t" "$(q "select has_function_privilege('service_role','redeem_voucher(text,text,text)','execute'), has_function_privilege('service_role','get_member_balance(text)','execute')")" "service_role execute"
q "insert into calls (from_number, to_number) values ('+250788000001', '+250788000002')" >/dev/null && ok || fail "insert into calls"

# --- seed ---
q "insert into members (id, balance, currency) values ('member_123', 1500, 'RWF'), ('member_race', 0, 'RWF'),
     ('member_retry', 0, 'RWF'), ('member_usd', 0, 'USD');
   insert into vouchers (code, value, currency, single_use, expires_at) values
     ('SAVE50', 5000, 'RWF', true, null), ('OLD10', 1000, 'RWF', true, now() - interval '1 day'),
     ('FUTURE', 700, 'RWF', true, now() + interval '1 day'), ('MULTI', 100, 'RWF', false, null),
     ('RACE', 2500, 'RWF', true, null), ('RETRY', 3000, 'RWF', true, null);" >/dev/null || fail "seed"

# --- the fake PostgREST ---
pr_start "$KEY" --pool 60
BASE=$PR_URL # for http()

# --- get_member_balance ---
rpc get_member_balance '{"p_member_id":"member_123"}'
assert_eq 200 "$CODE" "balance status"
assert_contains "$HEADERS" "Content-Type: application/json; charset=utf-8" "balance content type"
json_eq '{"success":true,"memberId":"member_123","balance":1500,"currency":"RWF"}' "$BODY" "balance of member_123"
rpc get_member_balance '{"p_member_id":"nobody"}'
assert_eq 200 "$CODE" "unknown member status"
json_eq '{"success":false,"error":"unknown member","memberId":"nobody"}' "$BODY" "unknown member"

# --- redeem_voucher ---
redeem SAVE50 member_123 k-save-1
assert_eq 200 "$CODE" "redeem status"
json_eq '{"success":true,"code":"SAVE50","value":5000,"currency":"RWF"}' "$BODY" "redeem SAVE50"
first=$BODY
rpc get_member_balance '{"p_member_id":"member_123"}'
json_eq '{"success":true,"memberId":"member_123","balance":6500,"currency":"RWF"}' "$BODY" "balance credited"
redeem SAVE50 member_123 k-save-1
assert_eq "$first" "$BODY" "same key retried: identical body"
assert_eq 6500 "$(balance member_123)" "retry did not credit again"
redeem SAVE50 member_race k-save-1
json_eq '{"success":false,"error":"idempotency key reused with other arguments","code":"SAVE50"}' "$BODY" "same key, other member"
redeem MULTI member_123 k-save-1
json_eq '{"success":false,"error":"idempotency key reused with other arguments","code":"MULTI"}' "$BODY" "same key, other code"
redeem SAVE50 member_123 k-save-2
json_eq '{"success":false,"error":"already redeemed","code":"SAVE50"}' "$BODY" "other key, used single-use code"
redeem NOPE member_123 k-nope
json_eq '{"success":false,"error":"unknown code","code":"NOPE"}' "$BODY" "unknown code"
redeem OLD10 member_123 k-old
json_eq '{"success":false,"error":"expired","code":"OLD10"}' "$BODY" "expired"
redeem FUTURE nobody k-fut-0
json_eq '{"success":false,"error":"unknown member","code":"FUTURE","memberId":"nobody"}' "$BODY" "redeem for unknown member"
redeem FUTURE member_usd k-fut-usd
json_eq '{"success":false,"error":"currency mismatch","code":"FUTURE"}' "$BODY" "currency mismatch"
redeem FUTURE member_123 k-fut-1
json_eq '{"success":true,"code":"FUTURE","value":700,"currency":"RWF"}' "$BODY" "not yet expired"
redeem MULTI member_123 k-multi-1
json_eq '{"success":true,"code":"MULTI","value":100,"currency":"RWF"}' "$BODY" "multi-use 1"
redeem MULTI member_123 k-multi-2
json_eq '{"success":true,"code":"MULTI","value":100,"currency":"RWF"}' "$BODY" "multi-use 2"
assert_eq 7400 "$(balance member_123)" "balance after all (1500 + 5000 + 700 + 100 + 100)"
assert_eq 0 "$(balance member_usd)" "failures credit nothing"

# --- PostgREST surface: auth, unknown function, bad bodies, database errors ---
rpc get_member_balance '{"p_member_id":"member_123"}' --noauth
assert_eq 401 "$CODE" "no key"
assert_contains "$BODY" '"code":"PGRST30' "401 body code"
assert_contains "$BODY" '"message"' "401 body message"
rpc get_member_balance '{"p_member_id":"member_123"}' --noauth -H "apikey: $KEY"
assert_eq 401 "$CODE" "apikey without bearer"
rpc get_member_balance '{"p_member_id":"member_123"}' --noauth -H "apikey: wrong" -H "Authorization: Bearer wrong"
assert_eq 401 "$CODE" "wrong key"
rpc drop_everything '{}'
assert_eq 404 "$CODE" "unknown function"
assert_contains "$BODY" '"code":"PGRST202"' "unknown function code"
node -e 'const o=JSON.parse(process.argv[1]); process.exit(["code","details","hint","message"].every(k=>k in o)?0:1)' "$BODY" \
    && ok || fail "PostgREST error shape: $BODY"
rpc redeem_voucher '{"p_code":"SAVE50","p_member_id":"member_123"}'
assert_eq 404 "$CODE" "missing argument (PostgREST: no function with those names)"
assert_contains "$BODY" '"code":"PGRST202"' "missing argument code"
rpc get_member_balance '{"p_member_id":'
assert_eq 400 "$CODE" "bad JSON"
assert_contains "$BODY" '"code":"PGRST102"' "bad JSON code"
rpc get_member_balance '[1,2]'
assert_eq 400 "$CODE" "array body"
rpc redeem_voucher '{"p_code":"SAVE50","p_member_id":"member_123","p_idempotency_key":null}'
assert_eq 400 "$CODE" "null idempotency key"
assert_contains "$BODY" '"code":"22004"' "null key SQLSTATE"

# --- 50 parallel redemptions of one single-use code (50 keys), 50 parallel retries of ONE
# key. To make them truly concurrent in the database, a psql session holds the voucher
# row locked until all 50 requests are inside the function waiting, then lets go. ---
# release N: once N requests wait on the lock, end the holder's session (hold_voucher).
release() {
    assert_eq "$1" "$(pg_lock_waiters "$1")" "requests waiting in the database at once"
    q "select pg_terminate_backend(pid) from pg_stat_activity where application_name like 'va\_hold %'" >/dev/null
    wait "$HOLD_PID" 2>/dev/null
}
# fire DIR CODE MEMBER KEYPREFIX|-KEY: 50 curls in the background.
fire() {
    local i key
    mkdir -p "$1"
    for i in $(seq 1 50); do
        case "$4" in -*) key=${4#-} ;; *) key="$4$i" ;; esac
        curl -s -o "$1/$i" -w '%{http_code}' -X POST -H "apikey: $KEY" -H "Authorization: Bearer $KEY" \
            -H 'Content-Type: application/json' \
            --data-binary "{\"p_code\":\"$2\",\"p_member_id\":\"$3\",\"p_idempotency_key\":\"$key\"}" \
            "$PR_URL/rest/v1/rpc/redeem_voucher" >"$1/$i.code" &
        CURLS="$CURLS $!"
    done
}
CURLS=""
hold_voucher RACE 60
fire "$T/race" RACE member_race race-
release 50
hold_voucher RETRY 60
fire "$T/retry" RETRY member_retry -retry-one
release 50
for p in $CURLS; do wait "$p"; done
# tally DIR: "<status>:<outcome>=<count>" over the 50 responses in DIR.
tally() {
    node -e '
const fs = require("fs"), d = process.argv[1];
const t = {};
for (let i = 1; i <= 50; i++) {
  const c = fs.readFileSync(`${d}/${i}.code`, "utf8"); let k;
  try { const o = JSON.parse(fs.readFileSync(`${d}/${i}`, "utf8"));
        k = c + ":" + (o.success ? "ok:" + o.code + ":" + o.value + ":" + o.currency : o.error); }
  catch (e) { k = c + ":unparsable"; }
  t[k] = (t[k] || 0) + 1;
}
console.log(Object.keys(t).sort().map((k) => `${k}=${t[k]}`).join(" "));' "$1"
}
assert_eq "200:already redeemed=49 200:ok:RACE:2500:RWF=1" "$(tally "$T/race")" "50 parallel redemptions"
assert_eq 2500 "$(balance member_race)" "race: credited once"
assert_eq 1 "$(q "select redeemed_count from vouchers where code = 'RACE'")" "race: redeemed_count"
assert_eq "200:ok:RETRY:3000:RWF=50" "$(tally "$T/retry")" "50 parallel retries of one key"
assert_eq 1 "$(for i in $(seq 1 50); do cat "$T/retry/$i"; echo; done | sort -u | wc -l)" "retries: byte-identical bodies"
assert_eq 3000 "$(balance member_retry)" "retries: credited once"
assert_eq 1 "$(q "select count(*) from voucher_redemptions where idempotency_key = 'retry-one'")" "retries: one stored result"
assert_eq 51 "$(q "select count(*) from voucher_redemptions where code in ('RACE','RETRY')")" "stored results"

# --- the fake stops cleanly; pg-test.sh stop leaves nothing ---
pr_stop
assert_eq 0 "$?" "fake postgrest exit code"
dir=$PG_TEST_DIR
PG_TEST_DIR=""
"$VA_ROOT/scripts/pg-test.sh" stop "$dir" && ok || fail "pg-test.sh stop"
[ ! -e "$dir" ] && ok || fail "cluster dir left behind"
pg_isready -q -h 127.0.0.1 -p "$PGPORT" && fail "postgres still answering" || ok
finish
