#!/usr/bin/env bash
# /twilio/answer with TWILIO_AUTH_TOKEN set: signatures computed by Twilio's own npm
# package and the documented vector; the rate limit for unsigned and signed callers.
. "$(dirname "$0")/lib.sh"
SIGN="node $VA_ROOT/tests/node/sign.js"
TOKEN=12345
FORM="AccountSid=AC00000000000000000000000000000000&CallSid=CA00000000000000000000000000000000&CallStatus=ringing&Direction=inbound&From=%2B15551230000&To=%2B15559870000"

va_start OPENAI_API_KEY=sk-test PUBLIC_WS_URL=wss://example.com/ws/twilio TWILIO_AUTH_TOKEN=$TOKEN \
    RATE_LIMIT_BURST=1000
# the reference's vector (checked with plain HMAC-SHA1)
http POST /twilio/answer -H 'X-Twilio-Signature: E2vOnMygTu/XdMvfhRfg6tUX4zo=' -d "$FORM"
assert_eq 200 "$CODE" "documented signature accepted"
assert_contains "$BODY" '<Parameter name="CallSid" value="CA00000000000000000000000000000000"/>' "stream TwiML"
# the twilio npm package agrees, for a form with spaces, unicode and a query string
form2='From=%2B15551230000&To=%2B15559870000&CallSid=CA77&CallerName=Zo%C3%AB+O%27Neil&Digits=1+2'
sig=$($SIGN "$TOKEN" "https://example.com/twilio/answer" "$form2")
assert_eq 28 "${#sig}" "npm signature length"
http POST /twilio/answer -H "X-Twilio-Signature: $sig" -d "$form2"
assert_eq 200 "$CODE" "npm-signed request accepted"
sigq=$($SIGN "$TOKEN" "https://example.com/twilio/answer?tenant=a%20b&x=1" "$form2")
http POST '/twilio/answer?tenant=a%20b&x=1' -H "X-Twilio-Signature: $sigq" -d "$form2"
assert_eq 200 "$CODE" "query string is part of the signed URL"
# the port variant Twilio may use
sigp=$($SIGN "$TOKEN" "https://example.com:443/twilio/answer" "$form2")
http POST /twilio/answer -H "X-Twilio-Signature: $sigp" -d "$form2"
assert_eq 200 "$CODE" "default port variant accepted"
# wrong, missing, signed for another URL or with a changed parameter
http POST /twilio/answer -d "$FORM"
assert_eq 403 "$CODE" "missing signature"
http POST /twilio/answer -H 'X-Twilio-Signature: E2vOnMygTu/XdMvfhRfg6tUX4zp=' -d "$FORM"
assert_eq 403 "$CODE" "one character off"
http POST /twilio/answer -H "X-Twilio-Signature: $sig" -d "${form2/CA77/CA78}"
assert_eq 403 "$CODE" "tampered parameter"
sigh=$($SIGN "$TOKEN" "http://127.0.0.1:$VA_PORT/twilio/answer" "$form2")
http POST /twilio/answer -H "X-Twilio-Signature: $sigh" -d "$form2"
assert_eq 403 "$CODE" "signed over the internal URL instead of the public one"
http POST /twilio/answer -H "X-Twilio-Signature: $sig" -H "Host: evil.example" -H "X-Forwarded-Proto: http" -d "$form2"
assert_eq 200 "$CODE" "Host and forwarding headers do not change the signed URL"
assert_eq 4 "$(log_has '"msg":"webhook rejected".*"route":"answer"')" "each rejection logged"
assert_eq 0 "$(grep -c 'E2vOnMygTu/XdMvfhRfg6tUX4zp=' "$VA_LOG")" "a signature never reaches the log"
va_stop

# --- account check: a valid signature for another account is refused ---
va_start OPENAI_API_KEY=sk-test PUBLIC_WS_URL=wss://example.com/ws/twilio TWILIO_AUTH_TOKEN=$TOKEN \
    TWILIO_ACCOUNT_SID=AC11111111111111111111111111111111
http POST /twilio/answer -H 'X-Twilio-Signature: E2vOnMygTu/XdMvfhRfg6tUX4zo=' -d "$FORM"
assert_eq 403 "$CODE" "AccountSid mismatch"
va_stop

# --- rate limit: 3 tokens, then unsigned requests get 429 and signed ones the apology ---
va_start OPENAI_API_KEY=sk-test PUBLIC_WS_URL=wss://example.com/ws/twilio TWILIO_AUTH_TOKEN=$TOKEN \
    RATE_LIMIT_BURST=3 RATE_LIMIT_PER_MIN=6 TRUST_PROXY=127.0.0.1/32
for i in 1 2 3; do
    http POST /twilio/answer -H 'CF-Connecting-IP: 203.0.113.5' -d "$FORM"
    assert_eq 403 "$CODE" "unsigned request $i within burst"
done
http POST /twilio/answer -H 'CF-Connecting-IP: 203.0.113.5' -d "$FORM"
assert_eq 429 "$CODE" "unsigned over the limit"
retry=$(printf '%s\n' "$HEADERS" | sed -n 's/^Retry-After: //p')
[ -n "$retry" ] && [ "$retry" -ge 1 ] && [ "$retry" -le 10 ] && ok || fail "Retry-After [$retry] should be 1..10 s at 6/min"
http POST /twilio/answer -H 'CF-Connecting-IP: 203.0.113.5' -H 'X-Twilio-Signature: E2vOnMygTu/XdMvfhRfg6tUX4zo=' -d "$FORM"
assert_eq 200 "$CODE" "signed over the limit still 200"
assert_contains "$BODY" "<Hangup/>" "signed over the limit gets the apology"
http POST /twilio/answer -H 'CF-Connecting-IP: 203.0.113.6' -d "$FORM"
assert_eq 403 "$CODE" "another client (via trusted proxy) has its own bucket"
http POST /twilio/answer -H 'X-Forwarded-For: 198.51.100.7' -d "$FORM"
assert_eq 403 "$CODE" "X-Forwarded-For from a trusted peer names the client"
va_stop

# --- without TRUST_PROXY the forwarding headers are ignored: one bucket for the peer ---
va_start OPENAI_API_KEY=sk-test PUBLIC_WS_URL=wss://example.com/ws/twilio RATE_LIMIT_BURST=2
http POST /twilio/answer -H 'CF-Connecting-IP: 203.0.113.1' -d "$FORM"
assert_eq 200 "$CODE" "no token: unsigned answered (1)"
http POST /twilio/answer -H 'CF-Connecting-IP: 203.0.113.2' -d "$FORM"
assert_eq 200 "$CODE" "no token: unsigned answered (2)"
http POST /twilio/answer -H 'CF-Connecting-IP: 203.0.113.3' -d "$FORM"
assert_eq 429 "$CODE" "spoofed CF-Connecting-IP from an untrusted peer does not get a new bucket"
va_stop
finish
