#!/usr/bin/env bash
# The MCP server of the daemon on MCP_PORT with the real data path: PostgreSQL (throwaway
# cluster, migrations applied) behind a PostgREST-compatible endpoint. The seed's legacy
# tool.call examples over a plain WebSocket, and the official SDK over both transports.
. "$(dirname "$0")/lib.sh"
SKEY=test-service-role-key-0123456789

pg_start
q "insert into members (id, balance, currency) values
  ('member_123', 1500, 'RWF'), ('member_456', 0, 'RWF');
  insert into vouchers (code, value, currency) values ('SAVE50', 5000, 'RWF'), ('WELCOME10', 1000, 'RWF');" >/dev/null
pr_start "$SKEY"

va_start MCP_PORT=0 SUPABASE_URL=$PR_URL SUPABASE_SERVICE_ROLE_KEY=$SKEY VOICE_AGENT_STORAGE_ENABLED=false
MCP_PORT=$(sed -n 's/.*"msg":"mcp listening".*"port":\([0-9]*\).*/\1/p' "$VA_LOG" | head -n 1)
[ -n "$MCP_PORT" ] && ok || fail "mcp did not report its port"

# the seed's two examples, any WebSocket client, the seed's shapes exactly.
# legacy MSG...: one connection, the messages in turn, one reply line each
legacy() {
    node -e '
const WebSocket = require(process.argv[1] + "/tests/node/node_modules/ws");
const msgs = process.argv.slice(3);
const ws = new WebSocket("ws://127.0.0.1:" + process.argv[2]);
ws.on("open", () => ws.send(msgs.shift()));
ws.on("message", (m) => {
    console.log(String(m));
    if (msgs.length) ws.send(msgs.shift()); else ws.close();
});
ws.on("close", () => process.exit(0));
setTimeout(() => process.exit(1), 10000);' "$VA_ROOT" "$MCP_PORT" "$@"
}
out=$(legacy '{"id":"req_123","method":"tool.call","params":{"name":"get_member_balance","args":{"memberId":"member_123"}}}')
assert_eq '{"id":"req_123","result":{"success":true,"memberId":"member_123","balance":1500,"currency":"RWF"}}' "$out" "seed get_member_balance"
out=$(legacy '{"id":"req_124","method":"tool.call","params":{"name":"redeem_voucher","args":{"code":"SAVE50","memberId":"member_123"}}}')
assert_eq '{"id":"req_124","result":{"success":true,"code":"SAVE50","value":5000,"currency":"RWF"}}' "$out" "seed redeem_voucher"
# without _meta.idempotencyKey the key is the connection, the request id, the tool and
# its arguments: the same id again on that connection is a retry, anything else is new
m125='{"id":"req_125","method":"tool.call","params":{"name":"redeem_voucher","args":{"code":"WELCOME10","memberId":"member_123"}}}'
out=$(legacy "$m125" "$m125" '{"id":"req_126","method":"tool.call","params":{"name":"redeem_voucher","args":{"code":"WELCOME10","memberId":"member_123"}}}')
assert_eq 3 "$(printf '%s\n' "$out" | wc -l)" "three replies on one connection"
assert_eq "$(printf '%s\n' "$out" | sed -n 1p)" "$(printf '%s\n' "$out" | sed -n 2p)" "the same request retried returns the first result"
assert_contains "$(printf '%s\n' "$out" | sed -n 1p)" '"success":true' "first redemption succeeds"
assert_contains "$(printf '%s\n' "$out" | sed -n 3p)" 'already redeemed' "another request id for a used code: already redeemed"
out=$(legacy "$m125")
assert_contains "$out" 'already redeemed' "the same id on another connection is another request"
assert_eq 7500 "$(q "select balance from members where id = 'member_123'")" "credited once"
out=$(legacy '{"id":"req_126","method":"tool.call","params":{"name":"redeem_voucher","args":{"code":"SAVE50","memberId":"member_456"}}}')
assert_contains "$out" '"success":false' "another member: a failure result, not an error"
assert_contains "$out" 'already redeemed' "with the reason"
out=$(legacy '{"id":"req_127","method":"tool.call","params":{"name":"get_member_balance","args":{"memberId":7}}}')
assert_contains "$out" '"success":false' "wrongly typed argument is a failure result"
assert_contains "$out" 'memberId' "naming the field"
out=$(legacy '{"id":"req_128","method":"tool.call","params":{"name":"no_such_tool","args":{}}}')
assert_contains "$out" '"error":{"code":' "unknown tool is an error"

# the stateless revision over HTTP: errors that are HTTP statuses too (reference §8.3)
modern() { # version method -> HTTP status
    curl -s -o "$T/modern" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
        -H 'Accept: application/json, text/event-stream' -H "MCP-Protocol-Version: $1" \
        -H "Mcp-Method: $2" \
        --data "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"$2\",\"params\":{\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"$1\",\"io.modelcontextprotocol/clientCapabilities\":{}}}}" \
        "http://127.0.0.1:$MCP_PORT/mcp"
}
assert_eq 404 "$(modern 2026-07-28 no/such_method)" "2026-07-28: unknown method is a 404"
assert_contains "$(cat "$T/modern")" '-32601' "with -32601"
assert_eq 400 "$(modern 2099-01-01 tools/list)" "unsupported version is a 400"
assert_contains "$(cat "$T/modern")" '-32022' "with -32022"
assert_eq 200 "$(modern 2026-07-28 tools/list)" "2026-07-28 tools/list answers"
assert_contains "$(cat "$T/modern")" 'get_member_balance' "with the tools"

# the official SDK client over Streamable HTTP and WebSocket
for url in "http://127.0.0.1:$MCP_PORT/mcp" "ws://127.0.0.1:$MCP_PORT/mcp"; do
    out=$(node "$VA_ROOT/tests/fakes/mcp_client.mjs" --url "$url" --call get_member_balance \
        --args '{"memberId":"member_456"}' 2>&1)
    assert_contains "$out" '"get_member_balance"' "SDK lists the tools over $url"
    assert_contains "$out" '"redeem_voucher"' "both tools over $url"
    assert_contains "$out" '"balance":0' "SDK tools/call over $url"
done
va_stop

# the model asks for a tool in a call: the registry runs it against the database, the output
# goes back as function_call_output, then one response.create
espeak-ng -s 160 -w "$T/speech.wav" "What is my balance? My member number is one two three." 2>/dev/null
sox "$T/speech.wav" -r 8000 -c 1 -e mu-law -t raw "$T/speech.ulaw"
rt_start --tool-call 'get_member_balance:{"memberId":"member_123"}'
va_start_rt PUBLIC_WS_URL=wss://example.com/ws/twilio MCP_PORT=0 \
    SUPABASE_URL=$PR_URL SUPABASE_SERVICE_ROLE_KEY=$SKEY VOICE_AGENT_STORAGE_ENABLED=false
out=$(node "$VA_ROOT/tests/fakes/twilio.js" --port "$VA_PORT" --audio "$T/speech.ulaw" --linger-ms 2500)
assert_contains "$out" '"ok":true' "call with a tool call"
rt_stop
summary=$(grep '^{"session' "$T/rt.out" | tail -n 1)
assert_contains "$summary" '"toolCalls":1' "the fake asked for one tool"
output=$(grep '"function_call_output"' "$T/rt.log" | head -n 1)
assert_contains "$output" '\"balance\":7500' "the model got the balance stored in the database"
assert_contains "$output" '"call_id":"call_1"' "for its call_id"
assert_contains "$summary" '"responseCreates":1' "then exactly one response.create"
assert_eq 1 "$(log_has '"msg":"tool done".*"tool":"get_member_balance"')" "tool call logged"
va_stop

# drain: a tool call in flight at SIGTERM completes and its POST is answered; one still held
# at the drain deadline gets 503 (never a dropped connection)
q "insert into vouchers (code, value, currency) values
  ('HOLD1', 100, 'RWF'), ('HOLD2', 100, 'RWF');" >/dev/null
post_redeem() { # code outfile: a legacy tool.call over HTTP, status then body; returns once
    # it waits in the database on the row hold_voucher locked
    curl -s -o "$2.body" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
        --data "{\"id\":\"d1\",\"method\":\"tool.call\",\"params\":{\"name\":\"redeem_voucher\",\"args\":{\"code\":\"$1\",\"memberId\":\"member_456\"}}}" \
        "http://127.0.0.1:$MCP_PORT/mcp" >"$2" 2>/dev/null &
    POST_PID=$!
    pg_lock_waiters 1 >/dev/null
}
va_start MCP_PORT=0 SUPABASE_URL=$PR_URL SUPABASE_SERVICE_ROLE_KEY=$SKEY VOICE_AGENT_STORAGE_ENABLED=false DRAIN_TIMEOUT_S=10
MCP_PORT=$(sed -n 's/.*"msg":"mcp listening".*"port":\([0-9]*\).*/\1/p' "$VA_LOG" | head -n 1)
hold_voucher HOLD1 2
post_redeem HOLD1 "$T/drain1"
kill -TERM "$VA_PID"
va_reap
wait "$POST_PID" "$HOLD_PID"
assert_eq 200 "$(cat "$T/drain1")" "drain: the POST in flight at SIGTERM is answered"
assert_contains "$(cat "$T/drain1.body")" '"success":true' "drain: its redemption went through"
va_start MCP_PORT=0 SUPABASE_URL=$PR_URL SUPABASE_SERVICE_ROLE_KEY=$SKEY VOICE_AGENT_STORAGE_ENABLED=false DRAIN_TIMEOUT_S=1
MCP_PORT=$(sed -n 's/.*"msg":"mcp listening".*"port":\([0-9]*\).*/\1/p' "$VA_LOG" | head -n 1)
hold_voucher HOLD2 4
post_redeem HOLD2 "$T/drain2"
kill -TERM "$VA_PID"
sleep 0.3
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    --data '{"id":"d3","method":"tool.call","params":{"name":"get_member_balance","args":{"memberId":"member_456"}}}' \
    "http://127.0.0.1:$MCP_PORT/mcp")
assert_eq 503 "$code" "draining: a new MCP request gets 503"
va_reap
wait "$POST_PID" "$HOLD_PID"
assert_eq 503 "$(cat "$T/drain2")" "drain deadline: the held POST gets 503, not a dropped connection"
assert_contains "$(cat "$T/drain2.body")" 'Server shutting down' "with a JSON-RPC error"
assert_eq 1 "$(log_has '"msg":"drain deadline reached"')" "deadline logged"

# with MCP_AUTH_TOKEN: no token, no service
va_start MCP_PORT=0 MCP_AUTH_TOKEN=mcp-token-abcdef123456 SUPABASE_URL=$PR_URL \
    SUPABASE_SERVICE_ROLE_KEY=$SKEY VOICE_AGENT_STORAGE_ENABLED=false MCP_ALLOWED_ORIGINS="http://localhost:6274, http://ok.example"
MCP_PORT=$(sed -n 's/.*"msg":"mcp listening".*"port":\([0-9]*\).*/\1/p' "$VA_LOG" | head -n 1)
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    -H 'Accept: application/json, text/event-stream' \
    --data '{"jsonrpc":"2.0","id":1,"method":"ping"}' "http://127.0.0.1:$MCP_PORT/mcp")
assert_eq 401 "$code" "no token: 401"
ping_origin() {
    curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
        -H 'Accept: application/json, text/event-stream' -H "Origin: $1" \
        -H 'Authorization: Bearer mcp-token-abcdef123456' \
        --data '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}' \
        "http://127.0.0.1:$MCP_PORT/mcp"
}
assert_eq 403 "$(ping_origin http://evil.example)" "an Origin not in MCP_ALLOWED_ORIGINS: 403"
assert_eq 200 "$(ping_origin http://ok.example)" "a listed Origin passes"
out=$(node "$VA_ROOT/tests/fakes/mcp_client.mjs" --url "http://127.0.0.1:$MCP_PORT/mcp" \
    --token mcp-token-abcdef123456 --call get_member_balance --args '{"memberId":"member_123"}' 2>&1)
assert_contains "$out" '"balance":7500' "with the token"
va_stop

# MCP bound beyond loopback without a token stays off; the daemon runs on, /ready degraded
va_start MCP_PORT=0 MCP_HOST=0.0.0.0
http GET /ready
assert_contains "$BODY" "mcp not listening" "/ready lists MCP as degraded"
va_stop
finish
