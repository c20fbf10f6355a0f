#!/usr/bin/env bash
# Every endpoint of the public listener as an operator and Twilio see it, with curl.
. "$(dirname "$0")/lib.sh"

# --- not configured: OPENAI_API_KEY and PUBLIC_WS_URL missing ---
va_start
http GET /health
assert_eq 200 "$CODE" "/health status"
assert_contains "$BODY" '"ok":true,"version":"0.1.0","uptime":' "/health body"
assert_contains "$HEADERS" "Content-Type: application/json" "/health type"
http GET /ready
assert_eq 503 "$CODE" "/ready unconfigured"
assert_contains "$BODY" '"ready":false' "/ready body"
assert_contains "$BODY" '"OPENAI_API_KEY missing"' "/ready names the key"
assert_contains "$BODY" '"PUBLIC_WS_URL missing"' "/ready names the URL"
http POST /twilio/answer -d "From=+1234567890&To=+0987654321&CallSid=CA123"
assert_eq 200 "$CODE" "apology status"
assert_contains "$HEADERS" "Content-Type: text/xml" "apology type"
assert_contains "$BODY" "<Say>Sorry, the assistant cannot take your call right now. Please try again later.</Say><Hangup/>" "apology TwiML"
assert_not_contains "$BODY" "<Stream" "no stream when unconfigured"
http GET /nope
assert_eq 404 "$CODE" "unknown route"
assert_contains "$BODY" '"error":"not_found"' "404 is JSON"
http POST /health
assert_eq 405 "$CODE" "POST /health"
assert_contains "$HEADERS" "Allow: GET" "405 names the method"
http GET /twilio/answer
assert_eq 405 "$CODE" "GET /twilio/answer"
assert_contains "$HEADERS" "Allow: POST" "405 Allow POST"
va_stop

# --- configured, no TWILIO_AUTH_TOKEN: the Stream TwiML ---
va_start OPENAI_API_KEY=sk-test PUBLIC_WS_URL=wss://voice.example.com/ws/twilio
http GET /ready
assert_eq 200 "$CODE" "/ready configured"
assert_contains "$BODY" '"ready":true' "/ready true"
assert_contains "$BODY" '"degraded":[' "degraded listed"
assert_contains "$BODY" 'TWILIO_AUTH_TOKEN missing' "unsigned mode shows as degraded"
http POST /twilio/answer -d "From=+1234567890&To=+0987654321&CallSid=CA123"
assert_eq 200 "$CODE" "answer status"
assert_contains "$HEADERS" "Content-Type: text/xml" "answer type"
case "$BODY" in '<?xml version="1.0" encoding="UTF-8"?>'*) ok ;; *) fail "TwiML must start with the XML declaration: $BODY" ;; esac
assert_contains "$BODY" '<Connect><Stream url="wss://voice.example.com/ws/twilio">' "Stream url"
# curl -d sends '+' unencoded, which form decoding reads as a space (Twilio sends %2B)
assert_contains "$BODY" '<Parameter name="From" value=" 1234567890"/>' "From parameter"
assert_contains "$BODY" '<Parameter name="To" value=" 0987654321"/>' "To parameter"
assert_contains "$BODY" '<Parameter name="CallSid" value="CA123"/>' "CallSid parameter"
assert_contains "$BODY" '</Stream></Connect><Say>' "apology after the stream"
assert_not_contains "$BODY" '<Hangup/>' "no hangup in the stream answer"
# values are XML-escaped
http POST /twilio/answer --data-urlencode 'From=<a&"b">' -d "To=%2B1&CallSid=CA1"
assert_contains "$BODY" 'value="&lt;a&amp;&quot;b&quot;&gt;"' "attribute escaping"
assert_contains "$BODY" '<Parameter name="To" value="+1"/>' "%2B decodes to +"
# a body that is not a form
http POST /twilio/answer -H 'Content-Type: application/json' -d '{"a":1}'
assert_eq 415 "$CODE" "JSON body refused"
va_stop

# --- VOICE_AGENT_ENABLED=false ---
va_start OPENAI_API_KEY=sk-test PUBLIC_WS_URL=wss://voice.example.com/ws/twilio VOICE_AGENT_ENABLED=false \
    VOICE_AGENT_MCP_ENABLED=false VOICE_AGENT_STORAGE_ENABLED=false
http GET /ready
assert_eq 503 "$CODE" "/ready disabled"
assert_contains "$BODY" '"reasons":["disabled"]' "disabled reason"
assert_contains "$BODY" '"mcp disabled"' "mcp off listed as degraded"
assert_contains "$BODY" '"storage disabled"' "storage off listed as degraded"
http POST /twilio/answer -d "From=+1&To=+2&CallSid=CA9"
assert_eq 200 "$CODE" "disabled answer status"
assert_contains "$BODY" "<Hangup/>" "disabled -> apology"
assert_eq 1 "$(log_has '"msg":"call refused".*"reason":"disabled"')" "refusal logged with reason"
va_stop

finish
