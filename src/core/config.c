/* src/core/config.c: the configuration table, its loader, and the docs rendered from it. */
#include "core/config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "core/buf.h"
#include "core/err.h"

#define CFG_STR_(x) #x
#define CFG_STR(x) CFG_STR_(x)

/* One row per variable. The integer macro stringifies its bounds and default so the
 * documented range is the enforced one. */
#define CFG_ROW(grp, nm, knd, typ, rng, dflt, eff, field, lo, hi, sec)                             \
    {                                                                                              \
        .name = nm, .type = typ, .range = rng, .def = dflt, .effect = eff, .secret = sec,          \
        .group = grp, .kind = knd, .offset = offsetof(struct va_cfg, field), .min = lo, .max = hi  \
    }
#define CFG_TEXT(grp, nm, knd, typ, rng, dflt, field, eff)                                         \
    CFG_ROW(grp, nm, knd, typ, rng, dflt, eff, field, 0, 0, false)
#define CFG_SECRET(grp, nm, field, eff)                                                            \
    CFG_ROW(grp, nm, VA_CFG_SECRET, "secret", "printable ASCII, no spaces", "", eff, field, 0, 0,  \
            true)
#define CFG_BOOL(grp, nm, field, dflt, eff)                                                        \
    CFG_ROW(grp, nm, VA_CFG_BOOL, "bool", "true, false, 1, 0, yes, no, on, off (any case)", dflt,  \
            eff, field, 0, 0, false)
#define CFG_CHOICE(grp, nm, field, list, rng, dflt, eff)                                           \
    {                                                                                              \
        .name = nm, .type = "enum", .range = rng, .def = dflt, .effect = eff, .group = grp,        \
        .kind = VA_CFG_CHOICE, .offset = offsetof(struct va_cfg, field), .choices = list           \
    }
#define CFG_INT(grp, nm, knd, field, lo, hi, dflt, eff)                                            \
    CFG_ROW(grp, nm, knd, "int", #lo ".." #hi, #dflt, eff, field, lo, hi, false)

static const char *const cfg_auth_choices[] = {"bearer", "api-key", NULL};
static const char *const cfg_format_choices[] = {"pcmu", "pcm24", NULL};
static const char *const cfg_vad_choices[] = {"server_vad", "semantic_vad", "none", NULL};
static const char *const cfg_eagerness_choices[] = {"low", "medium", "high", "auto", NULL};

static const struct va_cfg_var cfg_table[] = {
    CFG_SECRET("OpenAI", "OPENAI_API_KEY", openai_api_key,
               "API key for the OpenAI Realtime API; unset makes /ready answer 503."),
    CFG_TEXT("OpenAI", "OPENAI_REALTIME_MODEL", VA_CFG_STRING, "string", "model name",
             "gpt-realtime", openai_realtime_model, "Realtime model requested for each call."),
    CFG_TEXT("OpenAI", "OPENAI_REALTIME_VOICE", VA_CFG_STRING, "string", "voice name", "verse",
             openai_realtime_voice, "Voice the model speaks with."),
    CFG_TEXT("OpenAI", "OPENAI_REALTIME_URL", VA_CFG_WS_URL, "url", "ws:// or wss:// URL",
             "wss://api.openai.com/v1/realtime", openai_realtime_url,
             "WebSocket endpoint of the Realtime API."),

    CFG_CHOICE("OpenAI", "OPENAI_AUTH", openai_auth, cfg_auth_choices, "bearer, api-key", "bearer",
               "How the key is sent: Authorization: Bearer (OpenAI) or api-key (Azure OpenAI, with "
               "OPENAI_REALTIME_URL set to https://<resource>.openai.azure.com/openai/v1/realtime "
               "as wss:// and the deployment as OPENAI_REALTIME_MODEL)."),
    CFG_TEXT("OpenAI", "OPENAI_INSTRUCTIONS", VA_CFG_STRING, "string", "text",
             "You are a friendly member-services assistant answering the phone. Keep answers "
             "short and natural: this is a phone call.",
             openai_instructions, "System instructions of every call's session."),
    CFG_TEXT("OpenAI", "OPENAI_INSTRUCTIONS_FILE", VA_CFG_STRING, "string", "file path", "",
             openai_instructions_file,
             "When set, the instructions are read from this file at start (it wins over "
             "OPENAI_INSTRUCTIONS); an unreadable file stops startup."),
    CFG_TEXT("OpenAI", "OPENAI_GREETING", VA_CFG_STRING, "string", "text", "", openai_greeting,
             "When set, the agent speaks first, following these instructions (e.g. \"Greet the "
             "caller and ask how you can help.\"); empty: the caller speaks first."),
    CFG_CHOICE("OpenAI", "OPENAI_AUDIO_FORMAT", openai_audio_format, cfg_format_choices,
               "pcmu, pcm24", "pcmu",
               "pcmu: the caller's mu-law passes through untouched both ways; pcm24: PCM16 "
               "24 kHz through the daemon's resampler."),
    CFG_CHOICE("OpenAI", "OPENAI_VAD", openai_vad, cfg_vad_choices,
               "server_vad, semantic_vad, none", "server_vad",
               "Turn detection; none means the daemon commits turns itself and nothing "
               "interrupts the agent automatically."),
    CFG_ROW("OpenAI", "OPENAI_VAD_THRESHOLD", VA_CFG_DECIMAL, "decimal", "0.0..1.0", "0.5",
            "server_vad activation threshold; higher needs louder speech.", openai_vad_threshold, 0,
            1000, false),
    CFG_INT("OpenAI", "OPENAI_VAD_PREFIX_MS", VA_CFG_U32, openai_vad_prefix_ms, 0, 5000, 300,
            "server_vad: audio kept before detected speech."),
    CFG_INT("OpenAI", "OPENAI_VAD_SILENCE_MS", VA_CFG_U32, openai_vad_silence_ms, 100, 10000, 500,
            "server_vad: silence that ends the caller's turn."),
    CFG_CHOICE("OpenAI", "OPENAI_VAD_EAGERNESS", openai_vad_eagerness, cfg_eagerness_choices,
               "low, medium, high, auto", "auto", "semantic_vad: how soon the model answers."),
    CFG_TEXT("OpenAI", "OPENAI_TRANSCRIPTION_MODEL", VA_CFG_STRING, "string", "model name",
             "gpt-4o-mini-transcribe", openai_transcription_model,
             "Transcribes the caller's turns for the call record; empty turns it off."),
    CFG_TEXT("OpenAI", "OPENAI_TRANSCRIPTION_LANGUAGE", VA_CFG_STRING, "string", "ISO-639-1 code",
             "", openai_transcription_language,
             "Language hint for caller transcription; empty: detected."),
    CFG_INT("OpenAI", "REALTIME_CONNECT_TIMEOUT_MS", VA_CFG_U32, realtime_connect_timeout_ms, 100,
            120000, 10000,
            "DNS, TCP, TLS and upgrade to the Realtime API must finish within this."),
    CFG_TEXT("OpenAI", "REALTIME_CA_FILE", VA_CFG_STRING, "string", "PEM file path", "",
             realtime_ca_file,
             "CA certificates that replace the system store for wss:// to the Realtime API "
             "(private gateways, the benchmark's throwaway CA); empty: the system CAs."),
    CFG_INT("OpenAI", "REALTIME_MAX_MESSAGE_BYTES", VA_CFG_U32, realtime_max_message_bytes, 65536,
            67108864, 1048576,
            "Largest Realtime server message reassembled; larger ends the call."),
    CFG_INT("OpenAI", "REALTIME_SESSION_MAX_S", VA_CFG_U32, realtime_session_max_s, 5, 3540, 3300,
            "Sessions older than this are replaced between turns by a new one seeded with the "
            "conversation (the service ends sessions at 60 minutes)."),
    CFG_INT("OpenAI", "BREAKER_THRESHOLD", VA_CFG_U32, breaker_threshold, 1, 1000, 5,
            "Consecutive Realtime connect failures that open the circuit: new calls then get the "
            "apology TwiML and /ready answers 503 until a probe connects."),
    CFG_INT("OpenAI", "BREAKER_COOLDOWN_MS", VA_CFG_U32, breaker_cooldown_ms, 100, 600000, 10000,
            "While the circuit is open, a probe connection is tried this often."),

    CFG_TEXT("Twilio", "TWILIO_ACCOUNT_SID", VA_CFG_STRING, "string", "account SID", "",
             twilio_account_sid, "Twilio account the calls belong to."),
    CFG_SECRET("Twilio", "TWILIO_AUTH_TOKEN", twilio_auth_token,
               "When set, every request from Twilio must carry a valid X-Twilio-Signature."),
    CFG_TEXT("Twilio", "TWILIO_FROM_NUMBER", VA_CFG_PHONE, "string", "E.164: + then 2..15 digits",
             "", twilio_from_number, "Twilio number the agent places calls from."),
    CFG_TEXT("Twilio", "APOLOGY_TEXT", VA_CFG_STRING, "string", "text",
             "Sorry, the assistant cannot take your call right now. Please try again later.",
             apology_text, "Spoken to callers when the agent cannot take the call."),

    CFG_TEXT("Supabase", "SUPABASE_URL", VA_CFG_HTTP_URL, "url", "http:// or https:// URL", "",
             supabase_url, "Supabase project that call events are stored in."),
    CFG_SECRET("Supabase", "SUPABASE_SERVICE_ROLE_KEY", supabase_service_role_key,
               "Service role key that authenticates call events sent to Supabase."),
    CFG_TEXT("Supabase", "CALL_EVENTS_URL", VA_CFG_HTTP_URL, "url", "http:// or https:// URL", "",
             call_events_url,
             "Where call events are posted; unset means SUPABASE_URL/functions/v1/call-webhook."),
    CFG_TEXT("Supabase", "CALL_EVENTS_SPOOL_DIR", VA_CFG_STRING, "string", "directory path",
             "/var/lib/voice-agent/spool", call_events_spool_dir,
             "Every call event is written here (fsync'd) before it is sent and removed once "
             "delivered; what is left is sent at the next start. dead-letter.jsonl keeps refused "
             "events."),
    CFG_INT("Supabase", "CALL_EVENTS_SPOOL_MAX_MB", VA_CFG_U32, call_events_spool_max_mb, 1,
            102400, 64,
            "Spool bound; from 80% /ready lists it as degraded, past it new events are dropped "
            "(logged)."),
    CFG_INT("Supabase", "CALL_EVENTS_RETRY_BASE_MS", VA_CFG_U32, call_events_retry_base_ms, 10,
            600000, 1000,
            "First retry delay of an undelivered event; doubled per attempt, with jitter."),
    CFG_INT("Supabase", "CALL_EVENTS_RETRY_CAP_MS", VA_CFG_U32, call_events_retry_cap_ms, 10,
            3600000, 300000, "Longest delay between two attempts of one event."),
    CFG_INT("Supabase", "CALL_EVENTS_TIMEOUT_MS", VA_CFG_U32, call_events_timeout_ms, 100, 120000,
            10000, "One delivery attempt, connection included."),

    CFG_TEXT("Public URLs", "PUBLIC_WS_URL", VA_CFG_PUBLIC_WS_URL, "url",
             "ws:// or wss:// URL, no query string or fragment", "", public_ws_url,
             "WebSocket URL Twilio streams call audio to, as reached through the tunnel; "
             "unset makes /ready answer 503."),
    CFG_TEXT("Public URLs", "PUBLIC_BASE_URL", VA_CFG_PUBLIC_BASE_URL, "url",
             "http:// or https:// URL, no path, query string or fragment", "", public_base_url,
             "Base URL Twilio reaches the webhooks at, used to check signatures; unset means "
             "derived from PUBLIC_WS_URL (wss to https, ws to http, same host and port)."),

    CFG_BOOL("Features", "VOICE_AGENT_ENABLED", enabled, "true",
             "When false, every call gets the apology TwiML, WebSocket upgrades are refused and "
             "/ready answers 503 \"disabled\"."),
    CFG_BOOL("Features", "VOICE_AGENT_DUPLEX_ENABLED", duplex_enabled, "true",
             "Full duplex: the model's voice is played to the caller, who can interrupt it; false "
             "is the seed's one-way mode (caller audio to the model only, no barge-in)."),
    CFG_BOOL("Features", "VOICE_AGENT_MCP_ENABLED", mcp_enabled, "true",
             "Serve MCP on MCP_HOST:MCP_PORT and offer its tools to the model; false: no MCP "
             "listener and no tools."),
    CFG_BOOL("Features", "VOICE_AGENT_STORAGE_ENABLED", storage_enabled, "true",
             "Post call events to the Supabase Edge Function; false: no events are posted (tools "
             "still work)."),

    CFG_TEXT("Listeners", "HOST", VA_CFG_IP, "string", "IPv4 or IPv6 address", "0.0.0.0", host,
             "Address the HTTP and WebSocket listener binds to."),
    CFG_INT("Listeners", "PORT", VA_CFG_U16, port, 0, 65535, 8787,
            "Port of that listener; 0 picks a free port, which is logged."),
    CFG_TEXT("Listeners", "MCP_HOST", VA_CFG_IP, "string", "IPv4 or IPv6 address", "127.0.0.1",
             mcp_host, "Address the MCP listener binds to."),
    CFG_INT("Listeners", "MCP_PORT", VA_CFG_U16, mcp_port, 0, 65535, 9797,
            "Port of the MCP listener; 0 picks a free port, which is logged."),
    CFG_SECRET("Listeners", "MCP_AUTH_TOKEN", mcp_auth_token,
               "Bearer token MCP clients must present."),

    CFG_SECRET("Listeners", "METRICS_TOKEN", metrics_token,
               "When set, GET /metrics needs Authorization: Bearer <token>."),

    CFG_TEXT("Listeners", "MCP_ALLOWED_ORIGINS", VA_CFG_STRING, "string",
             "comma-separated origins, e.g. http://localhost:6274", "", mcp_allowed_origins,
             "Browser origins allowed to reach MCP (DNS rebinding defence); empty: any request "
             "carrying an Origin header gets 403, clients without one are unaffected."),

    CFG_INT("Capacity and lifecycle", "MAX_CALLS", VA_CFG_U32, max_calls, 1, 10000, 100,
            "Calls handled at once; past it callers hear APOLOGY_TEXT."),
    CFG_TEXT("Capacity and lifecycle", "LOG_LEVEL", VA_CFG_LOG_LEVEL, "enum",
             "debug, info, warn, error", "info", log_level, "Lowest level written to the log."),
    CFG_INT("Capacity and lifecycle", "DRAIN_TIMEOUT_S", VA_CFG_U32, drain_timeout_s, 0, 3600, 30,
            "After SIGTERM, seconds that calls and requests in progress may go on before the "
            "daemon closes them and exits."),

    CFG_INT("HTTP", "HTTP_MAX_CONNECTIONS", VA_CFG_U32, http_max_connections, 1, 100000, 1024,
            "Open HTTP connections; a connection past it gets 503 with Retry-After and is closed."),
    CFG_INT("HTTP", "HTTP_MAX_HEADER_BYTES", VA_CFG_U32, http_max_header_bytes, 1024, 1048576, 8192,
            "Request line plus headers; a larger request gets 431."),
    CFG_INT("HTTP", "HTTP_MAX_BODY_BYTES", VA_CFG_U32, http_max_body_bytes, 1024, 16777216, 65536,
            "Request body; a larger body gets 413."),
    CFG_INT("HTTP", "HTTP_REQUEST_TIMEOUT_MS", VA_CFG_U32, http_request_timeout_ms, 100, 600000,
            10000, "A started request must arrive in full within this many milliseconds."),
    CFG_INT("HTTP", "HTTP_IDLE_TIMEOUT_MS", VA_CFG_U32, http_idle_timeout_ms, 100, 3600000, 60000,
            "A keep-alive connection with no request in flight is closed after this."),

    CFG_INT("Media streams", "OUTBOUND_AHEAD_MS", VA_CFG_U32, outbound_ahead_ms, 40, 5000, 200,
            "Agent audio sent to Twilio ahead of what it has played (per mark echoes); the rest "
            "waits in the call's queue, so a barge-in clears little."),
    CFG_INT("Media streams", "OUTBOUND_QUEUE_BYTES", VA_CFG_U32, outbound_queue_bytes, 8000,
            4194304, 262144,
            "Agent audio (mu-law bytes) a call may hold; 262144 is 32 s, a whole reply."),
    CFG_INT("Media streams", "INBOUND_BATCH_MS", VA_CFG_U32, inbound_batch_ms, 20, 1000, 20,
            "Caller audio per input_audio_buffer.append (20 = every Twilio frame, no batching)."),
    CFG_INT("Media streams", "INBOUND_SILENCE_HOLD_MS", VA_CFG_U32, inbound_silence_hold_ms, 0,
            1000, 100,
            "While the caller is not speaking (server VAD), quiet caller frames (peak under -39 "
            "dBFS) wait up to this long and leave in one append; any louder frame sends them at "
            "once. Speech is never held. 0 = off."),
    CFG_INT("Media streams", "WS_MAX_MESSAGE_BYTES", VA_CFG_U32, ws_max_message_bytes, 1024,
            16777216, 65536,
            "Largest WebSocket message accepted on /ws/twilio; a larger one closes the stream "
            "with 1009."),
    CFG_INT("Media streams", "WS_MAX_SEND_QUEUE_BYTES", VA_CFG_U32, ws_max_send_queue_bytes, 4096,
            16777216, 262144,
            "Unsent bytes per WebSocket; a peer that stops reading past it is closed with 1008."),
    CFG_TEXT("Media streams", "RECORDINGS_DIR", VA_CFG_STRING, "string", "directory path", "",
             recordings_dir,
             "When set, each call is recorded to <dir>/<callSid>.wav (8 kHz stereo: caller left, "
             "agent right); empty records nothing."),
    CFG_BOOL("Media streams", "AUDIO_ECHO", audio_echo, "false",
             "Diagnostic line check: play each caller's own audio back to them instead of "
             "connecting the model."),

    CFG_INT("Rate limit", "RATE_LIMIT_PER_MIN", VA_CFG_U32, rate_limit_per_min, 1, 1000000, 60,
            "Token refill per client address on /twilio/answer; past it, unsigned requests get 429 "
            "with Retry-After and signed calls get the apology TwiML."),
    CFG_INT("Rate limit", "RATE_LIMIT_BURST", VA_CFG_U32, rate_limit_burst, 1, 100000, 20,
            "Bucket size: requests a client may make at once before RATE_LIMIT_PER_MIN applies."),
    CFG_TEXT(
        "Rate limit", "TRUST_PROXY", VA_CFG_CIDR_LIST, "cidr list",
        "comma- or space-separated addresses or CIDR ranges, at most " CFG_STR(VA_CFG_MAX_PROXIES),
        "", trust_proxy,
        "Peers whose CF-Connecting-IP or X-Forwarded-For names the client, e.g. "
        "127.0.0.1/32 for a local tunnel; empty trusts none."),
};

#define CFG_NVARS (sizeof(cfg_table) / sizeof(cfg_table[0]))

const struct va_cfg_var *va_cfg_vars(size_t *n)
{
    *n = CFG_NVARS;
    return cfg_table;
}

static void *cfg_field(struct va_cfg *cfg, const struct va_cfg_var *v)
{
    return (char *)cfg + v->offset;
}

static bool cfg_is_string_kind(enum va_cfg_kind kind)
{
    switch (kind) {
    case VA_CFG_STRING:
    case VA_CFG_SECRET:
    case VA_CFG_IP:
    case VA_CFG_PHONE:
    case VA_CFG_WS_URL:
    case VA_CFG_HTTP_URL:
    case VA_CFG_PUBLIC_WS_URL:
    case VA_CFG_PUBLIC_BASE_URL:
        return true;
    case VA_CFG_BOOL:
    case VA_CFG_U16:
    case VA_CFG_U32:
    case VA_CFG_LOG_LEVEL:
    case VA_CFG_CIDR_LIST:
    case VA_CFG_CHOICE:
    case VA_CFG_DECIMAL:
        break;
    }
    return false;
}

static bool cfg_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Control characters would end up in HTTP headers, URLs, TwiML and log lines. */
static bool cfg_has_ctl(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f)
            return true;
    }
    return false;
}

/* Secrets travel as header values and Bearer tokens: visible ASCII only. */
static bool cfg_is_token(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || c >= 0x7f)
            return false;
    }
    return true;
}

static int cfg_parse_uint(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
    uint64_t v = 0;

    if (!*s)
        return VA_EINVAL;
    for (; *s; s++) {
        if (!cfg_is_digit(*s))
            return VA_EINVAL;
        v = v * 10 + (uint64_t)(*s - '0');
        /* Stop before v * 10 can wrap: anything past hi is refused anyway. */
        if (v > hi)
            return VA_EINVAL;
    }
    if (v < lo)
        return VA_EINVAL;
    *out = (uint32_t)v;
    return 0;
}

static int cfg_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "1", "yes", "on"};
    static const char *const no[] = {"false", "0", "no", "off"};

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return VA_EINVAL;
}

static int cfg_parse_log_level(const char *s, enum va_log_level *out)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    static const enum va_log_level levels[] = {VA_LOG_DEBUG, VA_LOG_INFO, VA_LOG_WARN,
                                               VA_LOG_ERROR};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcasecmp(s, names[i]) == 0) {
            *out = levels[i];
            return 0;
        }
    }
    return VA_EINVAL;
}

static int cfg_parse_choice(const char *s, const char *const *choices, int *out)
{
    for (int i = 0; choices[i]; i++) {
        if (strcasecmp(s, choices[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    return VA_EINVAL;
}

/* A plain decimal ("0.5", "1", ".75"), no exponent or sign, within [lo, hi] thousandths. */
static int cfg_parse_decimal(const char *s, uint32_t lo, uint32_t hi, double *out)
{
    double v = 0, scale = 1;
    bool dot = false, digits = false;
    for (; *s; s++) {
        if (*s == '.' && !dot) {
            dot = true;
        } else if (cfg_is_digit(*s)) {
            digits = true;
            if (dot)
                v += (scale /= 10) * (*s - '0');
            else if ((v = v * 10 + (*s - '0')) > 1e9)
                return VA_EINVAL;
        } else {
            return VA_EINVAL;
        }
    }
    if (!digits || v * 1000 < lo || v * 1000 > hi)
        return VA_EINVAL;
    *out = v;
    return 0;
}

/* E.164 allows at most 15 digits; 2 is the shortest country code plus a digit. */
static bool cfg_is_phone(const char *s)
{
    size_t n = 0;

    if (*s++ != '+')
        return false;
    for (; *s; s++, n++) {
        if (!cfg_is_digit(*s))
            return false;
    }
    return n >= 2 && n <= 15;
}

/* A URL split at the end of its authority. */
struct cfg_url {
    size_t scheme_len; /* "wss" in "wss://h/p" */
    const char *auth;  /* host[:port] */
    size_t auth_len;
    const char *rest; /* path, query and fragment, possibly "" */
};

static bool cfg_is_host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || cfg_is_digit(c) || c == '.' ||
           c == '-' || c == '_';
}

static bool cfg_port_ok(const char *p, size_t n)
{
    uint32_t v = 0;

    if (n == 0 || n > 5)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!cfg_is_digit(p[i]))
            return false;
        v = v * 10 + (uint32_t)(p[i] - '0');
    }
    return v >= 1 && v <= 65535;
}

/* host, [v6] or either with :port; no user info, which has no place in these URLs. */
static bool cfg_auth_ok(const char *a, size_t n)
{
    size_t host_end;

    if (n == 0)
        return false;
    if (a[0] == '[') {
        const char *close = memchr(a, ']', n);
        struct va_addr addr;
        if (!close || va_addr_parse(&addr, a + 1, (size_t)(close - a - 1)) ||
            addr.family != AF_INET6)
            return false;
        host_end = (size_t)(close - a) + 1;
    } else {
        host_end = 0;
        while (host_end < n && cfg_is_host_char(a[host_end]))
            host_end++;
        if (host_end == 0)
            return false;
    }
    if (host_end == n)
        return true;
    if (a[host_end] != ':')
        return false;
    return cfg_port_ok(a + host_end + 1, n - host_end - 1);
}

/* Splits s if its scheme is one of the two given (any case) and its authority is sound. */
static bool cfg_url_split(const char *s, const char *scheme_a, const char *scheme_b,
                          struct cfg_url *u)
{
    const char *schemes[] = {scheme_a, scheme_b};

    if (!cfg_is_token(s))
        return false;
    u->scheme_len = 0;
    for (size_t i = 0; i < 2; i++) {
        size_t n = strlen(schemes[i]);
        if (strncasecmp(s, schemes[i], n) == 0 && strncmp(s + n, "://", 3) == 0) {
            u->scheme_len = n;
            break;
        }
    }
    if (!u->scheme_len)
        return false;
    u->auth = s + u->scheme_len + 3;
    u->auth_len = strcspn(u->auth, "/?#");
    u->rest = u->auth + u->auth_len;
    return cfg_auth_ok(u->auth, u->auth_len);
}

/* https://host[:port] for wss://host[:port]/..., http:// for ws://. */
static char *cfg_derive_base(const char *ws_url)
{
    struct cfg_url u;
    struct va_buf b;

    if (!cfg_url_split(ws_url, "ws", "wss", &u))
        return NULL;
    va_buf_init(&b, strlen(ws_url) + 8);
    /* The bound above fits "https://" plus the authority, so these cannot fail. */
    (void)va_buf_printf(&b, "%s://%.*s", u.scheme_len == 3 ? "https" : "http", (int)u.auth_len,
                        u.auth);
    return va_buf_steal(&b, NULL);
}

/* Parses val into the field of row v. 0 or VA_EINVAL. */
static int cfg_set(struct va_cfg *cfg, const struct va_cfg_var *v, const char *val)
{
    struct cfg_url u;
    uint32_t n;
    int err;

    switch (v->kind) {
    case VA_CFG_STRING:
        if (cfg_has_ctl(val))
            return VA_EINVAL;
        break;
    case VA_CFG_SECRET:
        if (!cfg_is_token(val))
            return VA_EINVAL;
        break;
    case VA_CFG_IP: {
        struct va_addr addr;
        err = va_addr_parse(&addr, val, strlen(val));
        /* va_addr_parse() trims spaces; a bind address must be exact. */
        if (err || strchr(val, ' ') || strchr(val, '\t'))
            return VA_EINVAL;
        break;
    }
    case VA_CFG_PHONE:
        if (!cfg_is_phone(val))
            return VA_EINVAL;
        break;
    case VA_CFG_WS_URL:
        if (!cfg_url_split(val, "ws", "wss", &u))
            return VA_EINVAL;
        break;
    case VA_CFG_HTTP_URL:
        if (!cfg_url_split(val, "http", "https", &u))
            return VA_EINVAL;
        break;
    case VA_CFG_PUBLIC_WS_URL:
        /* Twilio drops the query string of a <Stream> URL; parameters go in <Parameter>. */
        if (!cfg_url_split(val, "ws", "wss", &u) || strpbrk(u.rest, "?#"))
            return VA_EINVAL;
        break;
    case VA_CFG_PUBLIC_BASE_URL: {
        /* Webhook URLs are built as base + "/twilio/...", and signatures cover the URL. */
        if (!cfg_url_split(val, "http", "https", &u) || (u.rest[0] && strcmp(u.rest, "/") != 0))
            return VA_EINVAL;
        char **p = cfg_field(cfg, v);
        *p = va_xstrndup(val, (size_t)(u.rest - val));
        return 0;
    }
    case VA_CFG_BOOL:
        return cfg_parse_bool(val, cfg_field(cfg, v));
    case VA_CFG_U16:
        err = cfg_parse_uint(val, v->min, v->max, &n);
        if (err)
            return err;
        *(uint16_t *)cfg_field(cfg, v) = (uint16_t)n;
        return 0;
    case VA_CFG_U32:
        return cfg_parse_uint(val, v->min, v->max, cfg_field(cfg, v));
    case VA_CFG_LOG_LEVEL:
        return cfg_parse_log_level(val, cfg_field(cfg, v));
    case VA_CFG_CHOICE:
        return cfg_parse_choice(val, v->choices, cfg_field(cfg, v));
    case VA_CFG_DECIMAL:
        return cfg_parse_decimal(val, v->min, v->max, cfg_field(cfg, v));
    case VA_CFG_CIDR_LIST:
        return va_cidr_parse_list(cfg->trust_proxy, VA_CFG_MAX_PROXIES, &cfg->trust_proxy_len, val,
                                  strlen(val))
                   ? VA_EINVAL
                   : 0;
    }
    /* The text kinds that passed their check are kept as written. */
    char **p = cfg_field(cfg, v);
    *p = va_xstrdup(val);
    return 0;
}

/* What a row accepts, for the error message. */
static void cfg_expect(const struct va_cfg_var *v, char *buf, size_t len)
{
    const char *s = "";

    switch (v->kind) {
    case VA_CFG_STRING:
        s = "text without control characters";
        break;
    case VA_CFG_SECRET:
        s = "printable ASCII without spaces";
        break;
    case VA_CFG_IP:
        s = "an IPv4 or IPv6 address";
        break;
    case VA_CFG_PHONE:
        s = "an E.164 number: + then 2..15 digits";
        break;
    case VA_CFG_WS_URL:
        s = "a ws:// or wss:// URL";
        break;
    case VA_CFG_HTTP_URL:
        s = "an http:// or https:// URL";
        break;
    case VA_CFG_PUBLIC_WS_URL:
        s = "a ws:// or wss:// URL without query string or fragment";
        break;
    case VA_CFG_PUBLIC_BASE_URL:
        s = "an http:// or https:// URL without path, query string or fragment";
        break;
    case VA_CFG_BOOL:
        s = "true, false, 1, 0, yes, no, on or off";
        break;
    case VA_CFG_U16:
    case VA_CFG_U32:
        snprintf(buf, len, "an integer %u..%u", (unsigned)v->min, (unsigned)v->max);
        return;
    case VA_CFG_LOG_LEVEL:
        s = "debug, info, warn or error";
        break;
    case VA_CFG_CHOICE:
        snprintf(buf, len, "one of %s", v->range);
        return;
    case VA_CFG_DECIMAL:
        snprintf(buf, len, "a decimal number %s", v->range);
        return;
    case VA_CFG_CIDR_LIST:
        s = "up to " CFG_STR(VA_CFG_MAX_PROXIES) " addresses or CIDR ranges separated by commas "
                                                 "or spaces";
        break;
    }
    snprintf(buf, len, "%s", s);
}

/* "NAME: expected X (got "val")", the value shortened and made printable for the log;
 * a secret is never shown, not even in part. */
static void cfg_error(char *err, size_t errlen, const struct va_cfg_var *v, const char *val)
{
    char expect[128];
    char shown[84];
    size_t n = 0;

    if (!err || errlen == 0)
        return;
    cfg_expect(v, expect, sizeof(expect));
    if (v->secret) {
        snprintf(err, errlen, "%s: expected %s (value not shown)", v->name, expect);
        return;
    }
    for (; val[n] && n < 80; n++) {
        unsigned char c = (unsigned char)val[n];
        shown[n] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    shown[n] = '\0';
    snprintf(err, errlen, "%s: expected %s (got \"%s%s\")", v->name, expect, shown,
             val[n] ? "..." : "");
}

int va_cfg_load(struct va_cfg *cfg, va_cfg_lookup_fn lookup, void *ud, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof(*cfg));
    if (err && errlen)
        err[0] = '\0';
    for (size_t i = 0; i < CFG_NVARS; i++) {
        const struct va_cfg_var *v = &cfg_table[i];
        const char *val = lookup ? lookup(ud, v->name) : NULL;
        /* An empty value is unset: "PORT=" in a file or the shell means the default. */
        if (!val || !*val)
            val = v->def;
        if (!*val)
            continue;
        int rc = cfg_set(cfg, v, val);
        if (rc) {
            cfg_error(err, errlen, v, val);
            va_cfg_deinit(cfg);
            return VA_EINVAL;
        }
    }
    if (!cfg->public_base_url && cfg->public_ws_url)
        cfg->public_base_url = cfg_derive_base(cfg->public_ws_url);
    return 0;
}

void va_cfg_deinit(struct va_cfg *cfg)
{
    for (size_t i = 0; i < CFG_NVARS; i++) {
        if (cfg_is_string_kind(cfg_table[i].kind)) {
            char **p = cfg_field(cfg, &cfg_table[i]);
            free(*p);
        }
    }
    memset(cfg, 0, sizeof(*cfg));
}

/* A markdown table cell: '|' would end the cell early. */
static void cfg_md_cell(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            fputc('\\', out);
        fputc(*s, out);
    }
}

int va_cfg_print_table(FILE *out)
{
    fputs("| Variable | Type | Range | Default | Effect |\n", out);
    fputs("|---|---|---|---|---|\n", out);
    for (size_t i = 0; i < CFG_NVARS; i++) {
        const struct va_cfg_var *v = &cfg_table[i];
        fprintf(out, "| `%s` | ", v->name);
        cfg_md_cell(out, v->type);
        fputs(" | ", out);
        cfg_md_cell(out, v->range);
        fputs(" | ", out);
        if (v->def[0]) {
            fputc('`', out);
            cfg_md_cell(out, v->def);
            fputc('`', out);
        } else {
            fputs("(none)", out);
        }
        fputs(" | ", out);
        cfg_md_cell(out, v->effect);
        fputs(" |\n", out);
    }
    return ferror(out) ? -EIO : 0;
}

/* Writes text as '#' comment lines of at most 80 columns, breaking at spaces. */
static void cfg_comment(FILE *out, const char *text)
{
    const size_t width = 78; /* after "# " */
    const char *p = text;

    while (*p) {
        size_t n = strlen(p);
        if (n > width) {
            size_t cut = width;
            while (cut > 0 && p[cut] != ' ')
                cut--;
            n = cut ? cut : width;
        }
        fprintf(out, "# %.*s\n", (int)n, p);
        p += n;
        while (*p == ' ')
            p++;
    }
}

/* A value as .env text: bare when va_dotenv_parse() reads it back unchanged, else
 * double-quoted with escapes. */
static void cfg_env_value(FILE *out, const char *s)
{
    if (!strpbrk(s, " \t#'\"\\")) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

int va_cfg_print_example(FILE *out)
{
    const char *group = NULL;

    fputs("# voice-agent configuration. Copy to .env and fill in the secrets.\n"
          "# The process environment wins over this file; an empty value means the default.\n"
          "# Generated by va_cfg_print_example() from the table in src/core/config.c.\n",
          out);
    for (size_t i = 0; i < CFG_NVARS; i++) {
        const struct va_cfg_var *v = &cfg_table[i];
        char line[256];
        if (!group || strcmp(group, v->group) != 0) {
            group = v->group;
            fprintf(out, "\n# --- %s ---\n", group);
        }
        fputc('\n', out);
        cfg_comment(out, v->effect);
        /* The value line below shows the default. */
        snprintf(line, sizeof(line), "%s: %s.", v->type, v->range);
        cfg_comment(out, line);
        fprintf(out, "%s=", v->name);
        if (!v->secret)
            cfg_env_value(out, v->def);
        fputc('\n', out);
    }
    /* Read by docker-compose.yml, not by the daemon: a comment, so that the file
     * keeps exactly the table's variables. */
    fputs("\n# --- Docker Compose (docker-compose.yml reads this; the daemon does not) ---\n"
          "\n"
          "# Token of the Cloudflare tunnel that the cloudflared container runs: Zero\n"
          "# Trust dashboard, Networks, Tunnels, your tunnel, the value after --token in\n"
          "# the install command. Uncomment and paste it (README.md, Run with Docker).\n"
          "# CLOUDFLARE_TUNNEL_TOKEN=\n",
          out);
    return ferror(out) ? -EIO : 0;
}
