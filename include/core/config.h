/* include/core/config.h: the daemon's configuration, read once at start.
 *
 * Values come from the process environment and an optional .env file; the real
 * environment wins. Every variable is described by one row of a static table
 * (va_cfg_vars()), which also renders docs/config.md and .env.example, so the
 * docs cannot drift from the code. */
#ifndef VA_CORE_CONFIG_H
#define VA_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/net.h"

enum va_log_level { VA_LOG_DEBUG = 0, VA_LOG_INFO, VA_LOG_WARN, VA_LOG_ERROR };

/* Choices of the CHOICE variables, in table order. */
enum { VA_AUTH_BEARER = 0, VA_AUTH_API_KEY };
enum { VA_FMT_PCMU = 0, VA_FMT_PCM24 };
enum { VA_VAD_SERVER = 0, VA_VAD_SEMANTIC, VA_VAD_NONE };

#define VA_CFG_MAX_PROXIES 32

/* Read-only after va_cfg_load(). Strings are owned (freed by va_cfg_deinit());
 * an unset or empty optional string is NULL. */
struct va_cfg {
    /* OpenAI */
    char *openai_api_key;        /* secret; missing -> /ready 503 */
    char *openai_realtime_model; /* default gpt-realtime */
    char *openai_realtime_voice; /* default verse */
    char *openai_realtime_url;   /* ws:// or wss://, default wss://api.openai.com/v1/realtime */

    /* Twilio */
    char *twilio_account_sid;
    char *twilio_auth_token; /* secret; set -> every Twilio request must be signed */
    char *twilio_from_number;
    char *apology_text; /* what callers hear when we cannot take the call */

    /* Supabase */
    char *supabase_url;
    char *supabase_service_role_key; /* secret */
    char *metrics_token; /* secret; NULL = /metrics open */
    char *call_events_url;           /* NULL = {supabase_url}/functions/v1/call-webhook */
    char *call_events_spool_dir;
    uint32_t call_events_spool_max_mb;
    uint32_t call_events_retry_base_ms;
    uint32_t call_events_retry_cap_ms;
    uint32_t call_events_timeout_ms;

    /* Public URLs as Twilio sees them (behind the tunnel) */
    char *public_ws_url;   /* wss://host/ws/twilio; no query string; missing -> /ready 503 */
    char *public_base_url; /* https://host; default derived from public_ws_url */

    /* Feature flags */
    bool enabled;         /* VOICE_AGENT_ENABLED */
    bool duplex_enabled;  /* VOICE_AGENT_DUPLEX_ENABLED */
    bool mcp_enabled;     /* VOICE_AGENT_MCP_ENABLED */
    bool storage_enabled; /* VOICE_AGENT_STORAGE_ENABLED */

    /* Listeners */
    char *host;    /* HOST, default 0.0.0.0 */
    uint16_t port; /* PORT, default 8787; 0 = ephemeral (the bound port is logged) */
    char *mcp_host;
    uint16_t mcp_port;
    char *mcp_auth_token;      /* secret */
    char *mcp_allowed_origins; /* comma-separated, NULL = none */

    /* Capacity and lifecycle */
    uint32_t max_calls;
    enum va_log_level log_level;
    uint32_t drain_timeout_s;

    /* HTTP front door */
    uint32_t http_max_connections;
    uint32_t http_max_header_bytes;   /* request line + headers, over -> 431 */
    uint32_t http_max_body_bytes;     /* over -> 413 */
    uint32_t http_request_timeout_ms; /* a started request must complete within this */
    uint32_t http_idle_timeout_ms;    /* keep-alive connection with no request in flight */

    /* The Realtime session */
    char *openai_instructions;      /* OPENAI_INSTRUCTIONS, or the file's text */
    char *openai_instructions_file; /* read at start */
    int openai_auth;                /* VA_AUTH_BEARER or VA_AUTH_API_KEY (Azure) */
    int openai_audio_format;        /* VA_FMT_PCMU or VA_FMT_PCM24 */
    int openai_vad;                 /* VA_VAD_SERVER, VA_VAD_SEMANTIC, VA_VAD_NONE */
    double openai_vad_threshold;
    uint32_t openai_vad_prefix_ms;
    uint32_t openai_vad_silence_ms;
    int openai_vad_eagerness;         /* index of low|medium|high|auto */
    char *openai_transcription_model; /* NULL = caller transcription off */
    char *openai_transcription_language;
    char *openai_greeting; /* NULL = the caller speaks first */
    uint32_t realtime_connect_timeout_ms;
    char *realtime_ca_file; /* NULL = system CAs */
    uint32_t realtime_max_message_bytes;
    uint32_t realtime_session_max_s; /* rotate the session before this age */
    uint32_t breaker_threshold;
    uint32_t breaker_cooldown_ms;
    uint32_t outbound_ahead_ms;
    uint32_t outbound_queue_bytes;
    uint32_t inbound_batch_ms;
    uint32_t inbound_silence_hold_ms;

    /* Media streams */
    uint32_t ws_max_message_bytes;
    uint32_t ws_max_send_queue_bytes;
    char *recordings_dir; /* NULL = no recordings */
    bool audio_echo;

    /* Rate limit on /twilio/answer, per client address (token bucket) */
    uint32_t rate_limit_per_min;                    /* refill rate */
    uint32_t rate_limit_burst;                      /* bucket size */
    struct va_cidr trust_proxy[VA_CFG_MAX_PROXIES]; /* peers whose forwarding headers we believe */
    size_t trust_proxy_len;
};

/* Returns the value of a variable or NULL when unset. */
typedef const char *(*va_cfg_lookup_fn)(void *ud, const char *name);

/* Fills cfg from lookup(). On an invalid value returns VA_EINVAL and writes
 * "NAME: what it expects (got ...)" into err; secrets are never echoed. cfg is
 * left deinitialised on failure. Missing secrets are not errors. */
int va_cfg_load(struct va_cfg *cfg, va_cfg_lookup_fn lookup, void *ud, char *err, size_t errlen);
void va_cfg_deinit(struct va_cfg *cfg);

/* How va_cfg_load() parses a variable and where it stores it. */
enum va_cfg_kind {
    VA_CFG_STRING,          /* char *: text without control characters */
    VA_CFG_SECRET,          /* char *: printable ASCII, no spaces (it goes into headers) */
    VA_CFG_IP,              /* char *: an IPv4 or IPv6 address, kept as written */
    VA_CFG_PHONE,           /* char *: E.164, "+" then 2..15 digits */
    VA_CFG_WS_URL,          /* char *: ws:// or wss:// */
    VA_CFG_HTTP_URL,        /* char *: http:// or https:// */
    VA_CFG_PUBLIC_WS_URL,   /* char *: ws:// or wss://, no query string or fragment */
    VA_CFG_PUBLIC_BASE_URL, /* char *: http(s)://host[:port], stored without a trailing "/" */
    VA_CFG_BOOL,            /* bool: true/false/1/0/yes/no/on/off, any case */
    VA_CFG_U16,             /* uint16_t in [min, max], decimal digits only */
    VA_CFG_U32,             /* uint32_t in [min, max], decimal digits only */
    VA_CFG_LOG_LEVEL,       /* enum va_log_level: debug|info|warn|error, any case */
    VA_CFG_CIDR_LIST,       /* trust_proxy[] and trust_proxy_len */
    VA_CFG_CHOICE,          /* int: index of the value in the row's choices, any case */
    VA_CFG_DECIMAL,         /* double in [min, max] thousandths, e.g. 0.5 */
};

/* Describes one variable for docs and for --print-config; the same row drives
 * va_cfg_load(), so what is documented is what is parsed. */
struct va_cfg_var {
    const char *name;
    const char *type;   /* "string", "secret", "bool", "int", "url", "enum", "cidr list" */
    const char *range;  /* accepted values, human readable */
    const char *def;    /* default as text, "" when none; parsed like a set value */
    const char *effect; /* one sentence */
    bool secret;
    const char *group; /* heading in .env.example */
    enum va_cfg_kind kind;
    size_t offset;              /* of the field in struct va_cfg */
    uint32_t min, max;          /* integer kinds only; thousandths for VA_CFG_DECIMAL */
    const char *const *choices; /* VA_CFG_CHOICE: NULL-terminated */
};
/* The rows in documentation order; *n gets their count. Static, never NULL. */
const struct va_cfg_var *va_cfg_vars(size_t *n);

/* Writes the markdown table of every variable (Variable | Type | Range | Default |
 * Effect); docs/config.md is exactly this output. 0 or -EIO. */
int va_cfg_print_table(FILE *out);
/* Writes .env.example: every variable grouped, a comment from its row, its default
 * as value (secrets and derived values empty). The file at the repository root is
 * exactly this output, and it parses back into the defaults. 0 or -EIO. */
int va_cfg_print_example(FILE *out);

/* .env file support. Parses buf[0, len): KEY=VALUE lines, '#' comments, blank
 * lines, an optional "export " prefix, single quotes (literal), double quotes
 * (\n \r \t \" \\ escapes), unquoted values with trailing whitespace and a
 * " #" comment stripped. cb gets NUL-terminated key and value. Returns 0, or
 * VA_EINVAL with *errline set to the 1-based line that does not parse.
 * Details: KEY is [A-Za-z_][A-Za-z0-9_]*; spaces around '=' are allowed; LF or CRLF
 * line ends and a leading UTF-8 BOM are accepted; quoted values stay on one line
 * (an unterminated quote, an unknown escape or text after the closing quote other
 * than spaces and a '#' comment is an error); a NUL byte is an error; an unquoted
 * '#' is a comment only after whitespace ("a#b" is a value). A non-zero return from
 * cb stops the parse and is returned, with *errline at that line. */
typedef int (*va_dotenv_fn)(void *ud, const char *key, const char *value);
int va_dotenv_parse(const char *buf, size_t len, va_dotenv_fn cb, void *ud, int *errline);

/* Environment + .env: lookup order is the process environment, then the file. */
struct va_env {
    char **keys;
    char **values;
    size_t len, cap;
};
void va_env_init(struct va_env *env);
/* Loads path if it exists (a missing file is 0). VA_EINVAL with a message in err
 * for a malformed line (the line number, never its text: it may hold a secret),
 * VA_ETOOBIG past 1 MiB, -errno for an unreadable file. On failure env is unchanged.
 * Later duplicate keys win, also across files. */
int va_env_load_file(struct va_env *env, const char *path, char *err, size_t errlen);
/* va_cfg_lookup_fn over getenv() then the file's values; ud is the struct va_env.
 * An empty environment variable counts as unset, so the file's value shows through. */
const char *va_env_lookup(void *ud, const char *name);
void va_env_deinit(struct va_env *env);

#endif
