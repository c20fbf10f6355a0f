#!/usr/bin/env bash
# Known secrets in the configuration and in requests must never appear in the output.
. "$(dirname "$0")/lib.sh"
K_OPENAI=sk-proj-TESTKEYabcdefghijklmnopqrstuv0123456789
K_TWILIO=twilio-token-5f4dcc3b5aa765d61d8327deb882cf99
K_SUPA=eyJhbGciOiJIUzI1NiJ9.supabase-service-role-secret
K_MCP=mcp-token-0a1b2c3d4e5f
va_start OPENAI_API_KEY=$K_OPENAI TWILIO_AUTH_TOKEN=$K_TWILIO SUPABASE_SERVICE_ROLE_KEY=$K_SUPA \
    SUPABASE_URL=https://proj.supabase.co MCP_AUTH_TOKEN=$K_MCP LOG_LEVEL=debug \
    PUBLIC_WS_URL=wss://example.com/ws/twilio HTTP_REQUEST_TIMEOUT_MS=500
# secrets sent back at us in every place a request can carry them
http GET "/ready?key=$K_OPENAI" -H "Authorization: Bearer $K_MCP"
http POST /twilio/answer -H "X-Twilio-Signature: $K_TWILIO" -H "Authorization: Basic $K_SUPA" \
    -d "From=$K_OPENAI&To=%2B1&CallSid=$K_TWILIO"
http GET "/$K_SUPA"
raw "GET /$K_MCP HTTP/1.1"$'\r\n'"Authorization: Bearer $K_OPENAI"$'\r\n'
raw "BOGUS $K_TWILIO"$'\r\n\r\n'
va_stop
[ -s "$VA_LOG" ] && ok || fail "empty log"
for k in "$K_OPENAI" "$K_TWILIO" "$K_SUPA" "$K_MCP"; do
    assert_eq 0 "$(grep -c -F -- "$k" "$VA_LOG")" "secret ${k:0:8}... in the log"
done
# a config error must not echo a secret either
env -i PATH="$PATH" OPENAI_API_KEY=$K_OPENAI PORT=notaport "$VA_BIN" --env-file "$T/none" >"$T/cfg.log" 2>&1
assert_eq 2 "$?" "invalid PORT exits 2"
assert_contains "$(cat "$T/cfg.log")" "PORT" "error names the variable"
assert_eq 0 "$(grep -c -F -- "$K_OPENAI" "$T/cfg.log")" "no secret in the config error"
finish
