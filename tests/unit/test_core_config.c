/* tests/unit/test_core_config.c: the configuration table, its loader and the generated docs.
 *
 * VA_REGEN_DOCS=1 ./test_core_config rewrites README.md's table and .env.example from the
 * table instead of comparing them; run it after changing a row. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/config.h"
#include "core/err.h"

/* A fake environment: name/value pairs, NULL-terminated. */
struct kv {
    const char *name;
    const char *value;
};

static const char *kv_lookup(void *ud, const char *name)
{
    const struct kv *kv = ud;
    const char *found = NULL;
    for (; kv && kv->name; kv++) {
        if (strcmp(kv->name, name) == 0)
            found = kv->value;
    }
    return found;
}

static int load1(struct va_cfg *cfg, const char *name, const char *value, char *err, size_t errlen)
{
    struct kv kv[] = {{name, value}, {NULL, NULL}};
    return va_cfg_load(cfg, kv_lookup, kv, err, errlen);
}

/* Loads one variable, expects success, leaves cfg loaded for the caller to check. */
static void ok1(struct va_cfg *cfg, const char *name, const char *value)
{
    char err[256];
    int rc = load1(cfg, name, value, err, sizeof(err));
    if (rc)
        fail_msg("%s=\"%s\": %d %s", name, value, rc, err);
}

/* Loads one variable, expects VA_EINVAL and an error naming the variable. */
static void bad1(const char *name, const char *value, char *err, size_t errlen)
{
    struct va_cfg cfg;
    int rc = load1(&cfg, name, value, err, errlen);
    if (rc != VA_EINVAL)
        fail_msg("%s=\"%s\" accepted (%d)", name, value, rc);
    assert_int_equal(strncmp(err, name, strlen(name)), 0);
    assert_int_equal(err[strlen(name)], ':');
    /* cfg is left deinitialised: all zero, nothing to free. */
    static const struct va_cfg zero;
    assert_memory_equal(&cfg, &zero, sizeof(cfg));
}

static const struct va_cfg_var *row(const char *name)
{
    size_t n;
    const struct va_cfg_var *vars = va_cfg_vars(&n);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(vars[i].name, name) == 0)
            return &vars[i];
    }
    fail_msg("no row %s", name);
    return NULL;
}

static void *field(struct va_cfg *cfg, const struct va_cfg_var *v)
{
    return (char *)cfg + v->offset;
}

static void test_defaults(void **state)
{
    struct va_cfg cfg;
    char err[256] = "untouched";
    (void)state;

    assert_int_equal(va_cfg_load(&cfg, kv_lookup, NULL, err, sizeof(err)), 0);
    assert_string_equal(err, "");
    assert_null(cfg.openai_api_key);
    assert_string_equal(cfg.openai_realtime_model, "gpt-realtime");
    assert_string_equal(cfg.openai_realtime_voice, "verse");
    assert_string_equal(cfg.openai_realtime_url, "wss://api.openai.com/v1/realtime");
    assert_null(cfg.twilio_account_sid);
    assert_null(cfg.twilio_auth_token);
    assert_null(cfg.twilio_from_number);
    assert_string_equal(cfg.apology_text, "Sorry, the assistant cannot take your call right now. "
                                          "Please try again later.");
    assert_null(cfg.supabase_url);
    assert_null(cfg.supabase_service_role_key);
    assert_null(cfg.public_ws_url);
    assert_null(cfg.public_base_url);
    assert_true(cfg.enabled);
    assert_true(cfg.duplex_enabled);
    assert_true(cfg.mcp_enabled);
    assert_true(cfg.storage_enabled);
    assert_string_equal(cfg.host, "0.0.0.0");
    assert_int_equal(cfg.port, 8787);
    assert_string_equal(cfg.mcp_host, "127.0.0.1");
    assert_int_equal(cfg.mcp_port, 9797);
    assert_null(cfg.mcp_auth_token);
    assert_int_equal(cfg.max_calls, 100);
    assert_int_equal(cfg.log_level, VA_LOG_INFO);
    assert_int_equal(cfg.drain_timeout_s, 30);
    assert_int_equal(cfg.http_max_connections, 1024);
    assert_int_equal(cfg.http_max_header_bytes, 8192);
    assert_int_equal(cfg.http_max_body_bytes, 65536);
    assert_int_equal(cfg.http_request_timeout_ms, 10000);
    assert_int_equal(cfg.http_idle_timeout_ms, 60000);
    assert_int_equal(cfg.rate_limit_per_min, 60);
    assert_int_equal(cfg.rate_limit_burst, 20);
    assert_int_equal(cfg.trust_proxy_len, 0);
    va_cfg_deinit(&cfg);
    /* deinit twice, or on a zeroed struct, is harmless. */
    va_cfg_deinit(&cfg);

    /* A NULL lookup is an empty environment. */
    assert_int_equal(va_cfg_load(&cfg, NULL, NULL, NULL, 0), 0);
    assert_int_equal(cfg.port, 8787);
    va_cfg_deinit(&cfg);

    /* An empty value counts as unset everywhere. */
    size_t n;
    const struct va_cfg_var *vars = va_cfg_vars(&n);
    struct kv empty[96];
    assert_true(n < 96);
    for (size_t i = 0; i < n; i++)
        empty[i] = (struct kv){vars[i].name, ""};
    empty[n] = (struct kv){NULL, NULL};
    assert_int_equal(va_cfg_load(&cfg, kv_lookup, empty, err, sizeof(err)), 0);
    assert_int_equal(cfg.port, 8787);
    assert_string_equal(cfg.host, "0.0.0.0");
    assert_null(cfg.openai_api_key);
    va_cfg_deinit(&cfg);
}

static void test_table(void **state)
{
    static const char *const names[] = {
        "OPENAI_API_KEY",
        "OPENAI_REALTIME_MODEL",
        "OPENAI_REALTIME_VOICE",
        "OPENAI_REALTIME_URL",
        "OPENAI_AUTH",
        "OPENAI_INSTRUCTIONS",
        "OPENAI_INSTRUCTIONS_FILE",
        "OPENAI_GREETING",
        "OPENAI_AUDIO_FORMAT",
        "OPENAI_VAD",
        "OPENAI_VAD_THRESHOLD",
        "OPENAI_VAD_PREFIX_MS",
        "OPENAI_VAD_SILENCE_MS",
        "OPENAI_VAD_EAGERNESS",
        "OPENAI_TRANSCRIPTION_MODEL",
        "OPENAI_TRANSCRIPTION_LANGUAGE",
        "REALTIME_CONNECT_TIMEOUT_MS",
        "REALTIME_CA_FILE",
        "REALTIME_MAX_MESSAGE_BYTES",
        "REALTIME_SESSION_MAX_S",
        "BREAKER_THRESHOLD",
        "BREAKER_COOLDOWN_MS",
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "TWILIO_FROM_NUMBER",
        "APOLOGY_TEXT",
        "SUPABASE_URL",
        "SUPABASE_SERVICE_ROLE_KEY",
        "CALL_EVENTS_URL",
        "CALL_EVENTS_SPOOL_DIR",
        "CALL_EVENTS_SPOOL_MAX_MB",
        "CALL_EVENTS_RETRY_BASE_MS",
        "CALL_EVENTS_RETRY_CAP_MS",
        "CALL_EVENTS_TIMEOUT_MS",
        "PUBLIC_WS_URL",
        "PUBLIC_BASE_URL",
        "VOICE_AGENT_ENABLED",
        "VOICE_AGENT_DUPLEX_ENABLED",
        "VOICE_AGENT_MCP_ENABLED",
        "VOICE_AGENT_STORAGE_ENABLED",
        "HOST",
        "PORT",
        "MCP_HOST",
        "MCP_PORT",
        "MCP_AUTH_TOKEN",
        "METRICS_TOKEN",
        "MCP_ALLOWED_ORIGINS",
        "MAX_CALLS",
        "LOG_LEVEL",
        "DRAIN_TIMEOUT_S",
        "HTTP_MAX_CONNECTIONS",
        "HTTP_MAX_HEADER_BYTES",
        "HTTP_MAX_BODY_BYTES",
        "HTTP_REQUEST_TIMEOUT_MS",
        "HTTP_IDLE_TIMEOUT_MS",
        "OUTBOUND_AHEAD_MS",
        "OUTBOUND_QUEUE_BYTES",
        "INBOUND_BATCH_MS",
        "INBOUND_SILENCE_HOLD_MS",
        "WS_MAX_MESSAGE_BYTES",
        "WS_MAX_SEND_QUEUE_BYTES",
        "RECORDINGS_DIR",
        "AUDIO_ECHO",
        "RATE_LIMIT_PER_MIN",
        "RATE_LIMIT_BURST",
        "TRUST_PROXY",
    };
    static const char *const secrets[] = {"OPENAI_API_KEY", "TWILIO_AUTH_TOKEN",
                                          "SUPABASE_SERVICE_ROLE_KEY", "MCP_AUTH_TOKEN",
                                          "METRICS_TOKEN"};
    static const char *const types[] = {"string", "secret", "bool",      "int",
                                        "url",    "enum",   "cidr list", "decimal"};
    size_t n;
    const struct va_cfg_var *vars = va_cfg_vars(&n);
    (void)state;

    assert_int_equal(n, sizeof(names) / sizeof(names[0]));
    for (size_t i = 0; i < n; i++) {
        const struct va_cfg_var *v = &vars[i];
        assert_string_equal(v->name, names[i]);
        bool secret = false;
        for (size_t j = 0; j < sizeof(secrets) / sizeof(secrets[0]); j++)
            secret |= strcmp(v->name, secrets[j]) == 0;
        assert_int_equal(v->secret, secret);
        assert_int_equal(v->kind == VA_CFG_SECRET, secret);
        if (secret)
            assert_string_equal(v->def, "");
        bool typed = false;
        for (size_t j = 0; j < sizeof(types) / sizeof(types[0]); j++)
            typed |= strcmp(v->type, types[j]) == 0;
        assert_true(typed);
        assert_true(v->range[0] && v->effect[0] && v->group[0]);
        assert_int_equal(v->effect[strlen(v->effect) - 1], '.');
        assert_true(v->offset < sizeof(struct va_cfg));
        if (v->kind == VA_CFG_U16 || v->kind == VA_CFG_U32) {
            char range[64];
            snprintf(range, sizeof(range), "%u..%u", (unsigned)v->min, (unsigned)v->max);
            assert_string_equal(v->range, range);
            assert_true(v->min <= v->max);
            if (v->kind == VA_CFG_U16)
                assert_true(v->max <= 65535);
        }
    }
}

static void test_integers(void **state)
{
    static const char *const junk[] = {
        "abc",
        "-1",
        "+1",
        " 1",
        "1 ",
        "1x",
        "0x10",
        "1e3",
        "1.0",
        "1,000",
        "١",
        "\t1",
        "1\n",
        "--1",
        "one",
        "99999999999999999999",
        "4294967296",
        "4294967295",
        "18446744073709551616",
    };
    struct va_cfg cfg;
    char err[256];
    char val[32];
    size_t n;
    const struct va_cfg_var *vars = va_cfg_vars(&n);
    (void)state;

    size_t tested = 0;
    for (size_t i = 0; i < n; i++) {
        const struct va_cfg_var *v = &vars[i];
        if (v->kind != VA_CFG_U16 && v->kind != VA_CFG_U32)
            continue;
        tested++;
        uint32_t edges[] = {v->min, v->max, v->min + (v->max - v->min) / 2};
        for (size_t j = 0; j < 3; j++) {
            snprintf(val, sizeof(val), "%u", (unsigned)edges[j]);
            ok1(&cfg, v->name, val);
            uint32_t got =
                v->kind == VA_CFG_U16 ? *(uint16_t *)field(&cfg, v) : *(uint32_t *)field(&cfg, v);
            assert_int_equal(got, edges[j]);
            va_cfg_deinit(&cfg);
        }
        /* Leading zeros are still decimal. */
        snprintf(val, sizeof(val), "00%u", (unsigned)v->max);
        ok1(&cfg, v->name, val);
        va_cfg_deinit(&cfg);

        char want[160];
        snprintf(want, sizeof(want), "%s: expected an integer %u..%u (got \"", v->name,
                 (unsigned)v->min, (unsigned)v->max);
        if (v->min > 0) {
            snprintf(val, sizeof(val), "%u", (unsigned)(v->min - 1));
            bad1(v->name, val, err, sizeof(err));
            assert_int_equal(strncmp(err, want, strlen(want)), 0);
        }
        snprintf(val, sizeof(val), "%u", (unsigned)v->max + 1);
        bad1(v->name, val, err, sizeof(err));
        assert_int_equal(strncmp(err, want, strlen(want)), 0);
        for (size_t j = 0; j < sizeof(junk) / sizeof(junk[0]); j++) {
            bad1(v->name, junk[j], err, sizeof(err));
            assert_int_equal(strncmp(err, want, strlen(want)), 0);
        }
    }
    assert_int_equal(tested, 28);

    bad1("PORT", "abc", err, sizeof(err));
    assert_string_equal(err, "PORT: expected an integer 0..65535 (got \"abc\")");
    bad1("PORT", "65536", err, sizeof(err));
    assert_string_equal(err, "PORT: expected an integer 0..65535 (got \"65536\")");
    bad1("MAX_CALLS", "0", err, sizeof(err));
    assert_string_equal(err, "MAX_CALLS: expected an integer 1..10000 (got \"0\")");
    bad1("HTTP_MAX_BODY_BYTES", "99999999999999999999", err, sizeof(err));
    assert_string_equal(err, "HTTP_MAX_BODY_BYTES: expected an integer 1024..16777216 "
                             "(got \"99999999999999999999\")");
    ok1(&cfg, "PORT", "0"); /* ephemeral */
    assert_int_equal(cfg.port, 0);
    va_cfg_deinit(&cfg);
}

static void test_bools(void **state)
{
    static const char *const yes[] = {"true", "TRUE", "True", "tRuE", "1", "yes",
                                      "YES",  "Yes",  "on",   "ON",   "On"};
    static const char *const no[] = {"false", "FALSE", "False", "0",   "no",
                                     "NO",    "No",    "off",   "OFF", "Off"};
    static const char *const junk[] = {"2",     "y",     "n",    "t",  "f",  "enable", "truee",
                                       " true", "true ", "yes!", "01", "-1", "nope"};
    static const char *const names[] = {"VOICE_AGENT_ENABLED", "VOICE_AGENT_DUPLEX_ENABLED",
                                        "VOICE_AGENT_MCP_ENABLED", "VOICE_AGENT_STORAGE_ENABLED"};
    struct va_cfg cfg;
    char err[256];
    (void)state;

    for (size_t k = 0; k < 4; k++) {
        const struct va_cfg_var *v = row(names[k]);
        assert_int_equal(v->kind, VA_CFG_BOOL);
        for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
            ok1(&cfg, names[k], yes[i]);
            assert_true(*(bool *)field(&cfg, v));
            va_cfg_deinit(&cfg);
        }
        for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
            ok1(&cfg, names[k], no[i]);
            assert_false(*(bool *)field(&cfg, v));
            va_cfg_deinit(&cfg);
        }
        for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
            bad1(names[k], junk[i], err, sizeof(err));
    }
    ok1(&cfg, "VOICE_AGENT_MCP_ENABLED", "off");
    assert_false(cfg.mcp_enabled);
    assert_true(cfg.enabled && cfg.duplex_enabled && cfg.storage_enabled);
    va_cfg_deinit(&cfg);
    bad1("VOICE_AGENT_ENABLED", "maybe", err, sizeof(err));
    assert_string_equal(err, "VOICE_AGENT_ENABLED: expected true, false, 1, 0, yes, no, on or "
                             "off (got \"maybe\")");
}

static void test_log_level(void **state)
{
    static const struct {
        const char *in;
        enum va_log_level want;
    } cases[] = {
        {"debug", VA_LOG_DEBUG}, {"DEBUG", VA_LOG_DEBUG}, {"info", VA_LOG_INFO},
        {"Info", VA_LOG_INFO},   {"warn", VA_LOG_WARN},   {"WARN", VA_LOG_WARN},
        {"error", VA_LOG_ERROR}, {"Error", VA_LOG_ERROR},
    };
    static const char *const junk[] = {"warning", "err", "trace", "fatal", "3", " info"};
    struct va_cfg cfg;
    char err[256];
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ok1(&cfg, "LOG_LEVEL", cases[i].in);
        assert_int_equal(cfg.log_level, cases[i].want);
        va_cfg_deinit(&cfg);
    }
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
        bad1("LOG_LEVEL", junk[i], err, sizeof(err));
    assert_string_equal(err, "LOG_LEVEL: expected debug, info, warn or error (got \" info\")");
}

static void test_hosts(void **state)
{
    static const char *const good[] = {
        "0.0.0.0", "127.0.0.1", "::", "::1", "192.0.2.1", "2001:db8::1"};
    static const char *const junk[] = {"localhost", "example.com", "1.2.3",      "256.1.1.1",
                                       "::1 ",      "[::1]",       "1.2.3.4:80", "*"};
    struct va_cfg cfg;
    char err[256];
    (void)state;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        ok1(&cfg, "HOST", good[i]);
        assert_string_equal(cfg.host, good[i]);
        va_cfg_deinit(&cfg);
        ok1(&cfg, "MCP_HOST", good[i]);
        assert_string_equal(cfg.mcp_host, good[i]);
        va_cfg_deinit(&cfg);
    }
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        bad1("HOST", junk[i], err, sizeof(err));
        bad1("MCP_HOST", junk[i], err, sizeof(err));
    }
    bad1("HOST", "localhost", err, sizeof(err));
    assert_string_equal(err, "HOST: expected an IPv4 or IPv6 address (got \"localhost\")");
}

static void test_phone(void **state)
{
    static const char *const good[] = {"+12", "+15551234567", "+442071234567", "+123456789012345"};
    static const char *const junk[] = {"+1",           "+1234567890123456", "15551234567", "+",
                                       "+1 555",       "+1-555-1234",       "++15551234",  "+1555a",
                                       " +15551234567"};
    struct va_cfg cfg;
    char err[256];
    (void)state;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        ok1(&cfg, "TWILIO_FROM_NUMBER", good[i]);
        assert_string_equal(cfg.twilio_from_number, good[i]);
        va_cfg_deinit(&cfg);
    }
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
        bad1("TWILIO_FROM_NUMBER", junk[i], err, sizeof(err));
}

static void test_urls(void **state)
{
    static const struct {
        const char *name;
        const char *value;
        bool ok;
    } cases[] = {
        {"OPENAI_REALTIME_URL", "wss://api.openai.com/v1/realtime", true},
        {"OPENAI_REALTIME_URL", "ws://127.0.0.1:8080/v1/realtime", true},
        {"OPENAI_REALTIME_URL", "WSS://api.openai.com", true},
        {"OPENAI_REALTIME_URL", "wss://[::1]:443/x", true},
        {"OPENAI_REALTIME_URL", "wss://h/x?model=a", true},
        {"OPENAI_REALTIME_URL", "wss://fake_host.local:1/", true},
        {"OPENAI_REALTIME_URL", "https://api.openai.com/v1/realtime", false},
        {"OPENAI_REALTIME_URL", "wss://", false},
        {"OPENAI_REALTIME_URL", "wss:///path", false},
        {"OPENAI_REALTIME_URL", "wss:/h", false},
        {"OPENAI_REALTIME_URL", "wss//h", false},
        {"OPENAI_REALTIME_URL", "wss://a b", false},
        {"OPENAI_REALTIME_URL", "wss://user:pw@h/", false},
        {"OPENAI_REALTIME_URL", "wss://h:0", false},
        {"OPENAI_REALTIME_URL", "wss://h:65535", true},
        {"OPENAI_REALTIME_URL", "wss://h:65536", false},
        {"OPENAI_REALTIME_URL", "wss://h:", false},
        {"OPENAI_REALTIME_URL", "wss://h:8x", false},
        {"OPENAI_REALTIME_URL", "wss://[::1/x", false},
        {"OPENAI_REALTIME_URL", "wss://[1.2.3.4]/x", false},
        {"OPENAI_REALTIME_URL", "wss://[::1]x/", false},
        {"OPENAI_REALTIME_URL", "api.openai.com", false},
        {"SUPABASE_URL", "https://abc.supabase.co", true},
        {"SUPABASE_URL", "http://127.0.0.1:54321", true},
        {"SUPABASE_URL", "http://127.0.0.1:54321/functions/v1/", true},
        {"SUPABASE_URL", "ftp://abc.supabase.co", false},
        {"SUPABASE_URL", "wss://abc.supabase.co", false},
        {"SUPABASE_URL", "https//abc", false},
        {"PUBLIC_WS_URL", "wss://a.b/ws/twilio", true},
        {"PUBLIC_WS_URL", "ws://127.0.0.1:9/x", true},
        {"PUBLIC_WS_URL", "wss://a.b", true},
        {"PUBLIC_WS_URL", "wss://a.b/ws?x=1", false},
        {"PUBLIC_WS_URL", "wss://a.b/ws#frag", false},
        {"PUBLIC_WS_URL", "wss://a.b?x", false},
        {"PUBLIC_WS_URL", "https://a.b/ws", false},
        {"PUBLIC_BASE_URL", "https://a.b", true},
        {"PUBLIC_BASE_URL", "https://a.b/", true},
        {"PUBLIC_BASE_URL", "http://127.0.0.1:8787", true},
        {"PUBLIC_BASE_URL", "https://a.b/path", false},
        {"PUBLIC_BASE_URL", "https://a.b//", false},
        {"PUBLIC_BASE_URL", "https://a.b?x=1", false},
        {"PUBLIC_BASE_URL", "https://a.b/?x=1", false},
        {"PUBLIC_BASE_URL", "https://a.b#f", false},
        {"PUBLIC_BASE_URL", "wss://a.b", false},
    };
    struct va_cfg cfg;
    char err[256];
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (cases[i].ok) {
            ok1(&cfg, cases[i].name, cases[i].value);
            va_cfg_deinit(&cfg);
        } else {
            bad1(cases[i].name, cases[i].value, err, sizeof(err));
        }
    }
    bad1("OPENAI_REALTIME_URL", "http://x", err, sizeof(err));
    assert_string_equal(err, "OPENAI_REALTIME_URL: expected a ws:// or wss:// URL (got "
                             "\"http://x\")");
    bad1("PUBLIC_WS_URL", "wss://a.b/ws?x=1", err, sizeof(err));
    assert_string_equal(err, "PUBLIC_WS_URL: expected a ws:// or wss:// URL without query string "
                             "or fragment (got \"wss://a.b/ws?x=1\")");
}

static void test_public_base_url(void **state)
{
    static const struct {
        const char *ws;   /* PUBLIC_WS_URL or NULL */
        const char *base; /* PUBLIC_BASE_URL or NULL */
        const char *want; /* public_base_url or NULL */
    } cases[] = {
        {"wss://a.b/ws/twilio", NULL, "https://a.b"},
        {"ws://127.0.0.1:9/x", NULL, "http://127.0.0.1:9"},
        {"wss://a.b", NULL, "https://a.b"},
        {"wss://a.b:8443/", NULL, "https://a.b:8443"},
        {"wss://[::1]:8443/ws", NULL, "https://[::1]:8443"},
        {"WSS://A.B/ws", NULL, "https://A.B"},
        {"Ws://a.b/ws", NULL, "http://a.b"},
        {NULL, NULL, NULL},
        {NULL, "https://x.y", "https://x.y"},
        {NULL, "https://x.y/", "https://x.y"},
        {NULL, "https://x.y:8443/", "https://x.y:8443"},
        {"wss://a.b/ws/twilio", "https://other.host/", "https://other.host"},
        {"wss://a.b/ws/twilio", "", "https://a.b"},
    };
    struct va_cfg cfg;
    char err[256];
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct kv kv[3] = {{NULL, NULL}, {NULL, NULL}, {NULL, NULL}};
        size_t k = 0;
        if (cases[i].ws)
            kv[k++] = (struct kv){"PUBLIC_WS_URL", cases[i].ws};
        if (cases[i].base)
            kv[k++] = (struct kv){"PUBLIC_BASE_URL", cases[i].base};
        assert_int_equal(va_cfg_load(&cfg, kv_lookup, kv, err, sizeof(err)), 0);
        if (cases[i].want)
            assert_string_equal(cfg.public_base_url, cases[i].want);
        else
            assert_null(cfg.public_base_url);
        if (cases[i].ws)
            assert_string_equal(cfg.public_ws_url, cases[i].ws);
        va_cfg_deinit(&cfg);
    }
}

static void test_secrets(void **state)
{
    static const char *const names[] = {"OPENAI_API_KEY", "TWILIO_AUTH_TOKEN",
                                        "SUPABASE_SERVICE_ROLE_KEY", "MCP_AUTH_TOKEN"};
    static const char *const junk[] = {"sk-SECRETVALUE with-space", "sk-SECRETVALUE\n",
                                       "\tsk-SECRETVALUE",          "sk-SECRETVALUE\r\nX-Evil: 1",
                                       "sk-SECRETVALUE\x7f",        "sk-SECRETVALUE\xc3\xa9"};
    struct va_cfg cfg;
    char err[256];
    (void)state;

    for (size_t k = 0; k < 4; k++) {
        const struct va_cfg_var *v = row(names[k]);
        ok1(&cfg, names[k], "sk-proj_AZaz09.-+/=~");
        assert_string_equal(*(char **)field(&cfg, v), "sk-proj_AZaz09.-+/=~");
        va_cfg_deinit(&cfg);
        for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
            bad1(names[k], junk[i], err, sizeof(err));
            /* Not the value, not a piece of it. */
            assert_null(strstr(err, "SECRET"));
            assert_null(strstr(err, "sk-"));
            assert_null(strstr(err, "got"));
        }
    }
    bad1("OPENAI_API_KEY", "sk-SECRETVALUE with-space", err, sizeof(err));
    assert_string_equal(err, "OPENAI_API_KEY: expected printable ASCII without spaces "
                             "(value not shown)");
}

static void test_strings(void **state)
{
    struct va_cfg cfg;
    char err[256];
    (void)state;

    ok1(&cfg, "APOLOGY_TEXT", "Désolé, on ne peut pas répondre. Réessayez !");
    assert_string_equal(cfg.apology_text, "Désolé, on ne peut pas répondre. Réessayez !");
    va_cfg_deinit(&cfg);
    ok1(&cfg, "OPENAI_REALTIME_MODEL", "gpt-realtime-2025-08-28");
    assert_string_equal(cfg.openai_realtime_model, "gpt-realtime-2025-08-28");
    va_cfg_deinit(&cfg);
    ok1(&cfg, "TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef");
    assert_string_equal(cfg.twilio_account_sid, "AC0123456789abcdef0123456789abcdef");
    va_cfg_deinit(&cfg);

    /* Control characters would reach headers, TwiML and logs; the echo is made printable. */
    bad1("APOLOGY_TEXT", "line one\nline two", err, sizeof(err));
    assert_string_equal(err, "APOLOGY_TEXT: expected text without control characters (got "
                             "\"line one?line two\")");
    bad1("OPENAI_REALTIME_VOICE", "verse\r", err, sizeof(err));
    bad1("OPENAI_REALTIME_MODEL", "a\x1b[31m", err, sizeof(err));

    /* A long value is shortened in the message. */
    char longval[300];
    memset(longval, 'x', sizeof(longval) - 1);
    longval[sizeof(longval) - 1] = '\0';
    longval[0] = '\n';
    bad1("APOLOGY_TEXT", longval, err, sizeof(err));
    assert_non_null(strstr(err, "(got \"?xxx"));
    assert_non_null(strstr(err, "xxx...\")"));
    assert_true(strlen(err) < 200);
}

static void test_trust_proxy(void **state)
{
    struct va_cfg cfg;
    char err[256];
    char list[1024];
    (void)state;

    ok1(&cfg, "TRUST_PROXY", "127.0.0.1/32, ::1 10.0.0.0/8");
    assert_int_equal(cfg.trust_proxy_len, 3);
    assert_int_equal(cfg.trust_proxy[1].family, AF_INET6);
    assert_int_equal(cfg.trust_proxy[2].prefix, 8);
    va_cfg_deinit(&cfg);
    assert_int_equal(cfg.trust_proxy_len, 0);

    /* Exactly the maximum, then one more. */
    list[0] = '\0';
    for (int i = 0; i < VA_CFG_MAX_PROXIES; i++) {
        char item[32];
        snprintf(item, sizeof(item), "%s10.0.%d.0/24", i ? "," : "", i);
        strcat(list, item);
    }
    ok1(&cfg, "TRUST_PROXY", list);
    assert_int_equal(cfg.trust_proxy_len, VA_CFG_MAX_PROXIES);
    va_cfg_deinit(&cfg);
    strcat(list, ",192.168.0.0/16");
    bad1("TRUST_PROXY", list, err, sizeof(err));

    bad1("TRUST_PROXY", "10.0.0.0/33", err, sizeof(err));
    assert_string_equal(err, "TRUST_PROXY: expected up to 32 addresses or CIDR ranges separated by "
                             "commas or spaces (got \"10.0.0.0/33\")");
    bad1("TRUST_PROXY", "127.0.0.1; 10.0.0.0/8", err, sizeof(err));
    bad1("TRUST_PROXY", "localhost", err, sizeof(err));
    ok1(&cfg, "TRUST_PROXY", " , ");
    assert_int_equal(cfg.trust_proxy_len, 0);
    va_cfg_deinit(&cfg);
}

static void test_error_buffer(void **state)
{
    struct va_cfg cfg;
    char small[8];
    (void)state;

    /* A short buffer truncates, NUL-terminated; none at all is allowed. */
    memset(small, 'z', sizeof(small));
    assert_int_equal(load1(&cfg, "PORT", "abc", small, sizeof(small)), VA_EINVAL);
    assert_string_equal(small, "PORT: e");
    assert_int_equal(load1(&cfg, "PORT", "abc", NULL, 0), VA_EINVAL);
    assert_int_equal(load1(&cfg, "PORT", "abc", small, 0), VA_EINVAL);

    /* The first bad variable in table order is the one reported; what was already
     * loaded is freed (ASan checks). */
    struct kv kv[] = {{"OPENAI_API_KEY", "sk-ok"},
                      {"PUBLIC_WS_URL", "wss://a.b/ws"},
                      {"RATE_LIMIT_BURST", "0"},
                      {"PORT", "x"},
                      {NULL, NULL}};
    char err[256];
    assert_int_equal(va_cfg_load(&cfg, kv_lookup, kv, err, sizeof(err)), VA_EINVAL);
    assert_string_equal(err, "PORT: expected an integer 0..65535 (got \"x\")");
    static const struct va_cfg zero;
    assert_memory_equal(&cfg, &zero, sizeof(cfg));
}

/* Runs fn into a string the caller frees. */
static char *capture(int (*fn)(FILE *), size_t *len)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    assert_non_null(f);
    assert_int_equal(fn(f), 0);
    assert_int_equal(fclose(f), 0);
    return text;
}

static void test_print_table(void **state)
{
    size_t len;
    size_t n;
    const struct va_cfg_var *vars = va_cfg_vars(&n);
    char *text = capture(va_cfg_print_table, &len);
    (void)state;

    assert_int_equal(strncmp(text, "| Variable | Type | Range | Default | Effect |\n|---|", 49), 0);
    size_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    assert_int_equal(lines, n + 2);
    for (size_t i = 0; i < n; i++) {
        char cell[80];
        snprintf(cell, sizeof(cell), "\n| `%s` | %s | ", vars[i].name, vars[i].type);
        assert_non_null(strstr(text, cell));
    }
    assert_non_null(strstr(text, "| `PORT` | int | 0..65535 | `8787` | "));
    assert_non_null(strstr(text, "| `OPENAI_API_KEY` | secret | printable ASCII, no spaces | "
                                 "(none) | "));
    /* Every row has exactly five cells. */
    for (char *line = text; *line; line = strchr(line, '\n') + 1) {
        size_t pipes = 0;
        for (char *c = line; *c != '\n'; c++)
            pipes += *c == '|' && (c == line || c[-1] != '\\');
        assert_int_equal(pipes, 6);
    }
    free(text);
}

/* .env.example read back gives the defaults. */
struct example {
    struct kv kv[96]; /* strings owned, NULL-terminated like the fake environment */
    size_t n;
};

static int example_add(void *ud, const char *key, const char *value)
{
    struct example *ex = ud;
    assert_true(ex->n < 95);
    for (size_t i = 0; i < ex->n; i++)
        assert_string_not_equal(ex->kv[i].name, key); /* each variable once */
    ex->kv[ex->n] = (struct kv){strdup(key), strdup(value)};
    ex->n++;
    return 0;
}

static void test_print_example(void **state)
{
    size_t len;
    size_t n;
    const struct va_cfg_var *vars = va_cfg_vars(&n);
    char *text = capture(va_cfg_print_example, &len);
    struct example ex;
    int line = 0;
    (void)state;

    memset(&ex, 0, sizeof(ex));
    assert_int_equal(va_dotenv_parse(text, len, example_add, &ex, &line), 0);
    assert_int_equal(ex.n, n);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(ex.kv[i].name, vars[i].name);
        assert_string_equal(ex.kv[i].value, vars[i].secret ? "" : vars[i].def);
    }
    /* Comment lines stay within 80 columns. */
    for (char *l = text; *l; l = strchr(l, '\n') + 1) {
        size_t w = (size_t)(strchr(l, '\n') - l);
        if (l[0] == '#')
            assert_true(w <= 80);
    }

    struct va_cfg from_file, defaults;
    char err[256];
    assert_int_equal(va_cfg_load(&from_file, kv_lookup, ex.kv, err, sizeof(err)), 0);
    assert_int_equal(va_cfg_load(&defaults, kv_lookup, NULL, err, sizeof(err)), 0);
    for (size_t i = 0; i < n; i++) {
        const struct va_cfg_var *v = &vars[i];
        switch (v->kind) {
        case VA_CFG_BOOL:
            assert_int_equal(*(bool *)field(&from_file, v), *(bool *)field(&defaults, v));
            break;
        case VA_CFG_U16:
            assert_int_equal(*(uint16_t *)field(&from_file, v), *(uint16_t *)field(&defaults, v));
            break;
        case VA_CFG_U32:
            assert_int_equal(*(uint32_t *)field(&from_file, v), *(uint32_t *)field(&defaults, v));
            break;
        case VA_CFG_LOG_LEVEL:
            assert_int_equal(from_file.log_level, defaults.log_level);
            break;
        case VA_CFG_CIDR_LIST:
            assert_int_equal(from_file.trust_proxy_len, defaults.trust_proxy_len);
            break;
        case VA_CFG_CHOICE:
            assert_int_equal(*(int *)field(&from_file, v), *(int *)field(&defaults, v));
            break;
        case VA_CFG_DECIMAL:
            assert_true(*(double *)field(&from_file, v) == *(double *)field(&defaults, v));
            break;
        default: {
            const char *a = *(char **)field(&from_file, v);
            const char *b = *(char **)field(&defaults, v);
            if (b)
                assert_string_equal(a, b);
            else
                assert_null(a);
        }
        }
    }
    va_cfg_deinit(&from_file);
    va_cfg_deinit(&defaults);
    for (size_t i = 0; i < ex.n; i++) {
        free((char *)ex.kv[i].name);
        free((char *)ex.kv[i].value);
    }
    free(text);
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0;
    *len = 0;
    for (;;) {
        if (*len == cap) {
            cap = cap ? cap * 2 : 4096;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        size_t got = fread(buf + *len, 1, cap - *len, f);
        *len += got;
        if (got == 0)
            break;
    }
    fclose(f);
    return buf;
}

#define TABLE_BEGIN "<!-- config-table:begin -->\n"
#define TABLE_END "<!-- config-table:end -->\n"

/* .env.example is the table's output byte for byte, and README.md carries the
 * rendered table between its markers. VA_REGEN_DOCS=1 rewrites both. */
static void check_doc(const char *rel, int (*fn)(FILE *), bool region)
{
    char path[512];
    size_t want_len;
    char *want = capture(fn, &want_len);
    snprintf(path, sizeof(path), "%s/%s", VA_SOURCE_DIR, rel);
    size_t got_len = 0;
    char *got = read_all(path, &got_len);
    assert_non_null(got);
    /* the part of the file the table owns */
    size_t off = 0, len = got_len;
    if (region) {
        char *b = strstr(got, TABLE_BEGIN);
        char *e = b ? strstr(b, TABLE_END) : NULL;
        if (!b || !e)
            fail_msg("%s lacks the %s and %s markers", rel, TABLE_BEGIN, TABLE_END);
        off = (size_t)(b - got) + strlen(TABLE_BEGIN);
        len = (size_t)(e - got) - off;
    }
    const char *regen = getenv("VA_REGEN_DOCS");
    if (regen && strcmp(regen, "1") == 0) {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(got, 1, off, f), off);
        assert_int_equal(fwrite(want, 1, want_len, f), want_len);
        size_t tail = got_len - off - len;
        assert_int_equal(fwrite(got + off + len, 1, tail, f), tail);
        assert_int_equal(fclose(f), 0);
        len = want_len;
        free(got);
        got = read_all(path, &got_len);
    }
    bool same = len == want_len && memcmp(got + off, want, want_len) == 0;
    free(got);
    free(want);
    if (!same)
        fail_msg("%s does not match the config table: run VA_REGEN_DOCS=1 test_core_config", rel);
}

static void test_docs_match_table(void **state)
{
    (void)state;
    check_doc("README.md", va_cfg_print_table, true);
    check_doc(".env.example", va_cfg_print_example, false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),        cmocka_unit_test(test_table),
        cmocka_unit_test(test_integers),        cmocka_unit_test(test_bools),
        cmocka_unit_test(test_log_level),       cmocka_unit_test(test_hosts),
        cmocka_unit_test(test_phone),           cmocka_unit_test(test_urls),
        cmocka_unit_test(test_public_base_url), cmocka_unit_test(test_secrets),
        cmocka_unit_test(test_strings),         cmocka_unit_test(test_trust_proxy),
        cmocka_unit_test(test_error_buffer),    cmocka_unit_test(test_print_table),
        cmocka_unit_test(test_print_example),   cmocka_unit_test(test_docs_match_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
