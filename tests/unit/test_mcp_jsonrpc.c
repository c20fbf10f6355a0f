/* tests/unit/test_mcp_jsonrpc.c: the MCP JSON-RPC engine against the reference's exchanges. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/err.h"
#include "mcp/jsonrpc.h"
#include "mcp/registry.h"

#define BALANCE_IN                                                                                 \
    "{\"type\":\"object\",\"properties\":{\"memberId\":{\"type\":\"string\",\"description\":"      \
    "\"Member id\"}},\"required\":[\"memberId\"],\"additionalProperties\":false}"
#define REDEEM_IN                                                                                  \
    "{\"type\":\"object\",\"properties\":{\"code\":{\"type\":\"string\"},\"memberId\":{\"type\":"  \
    "\"string\"}},\"required\":[\"code\",\"memberId\"],\"additionalProperties\":false}"

static const struct mcp_server_info info = {
    .name = "voice-agent-mcp",
    .version = "0.1.0",
    .instructions = "Member balance lookup and voucher redemption.",
    .ttl_ms = 3600000,
};

/* Fake tools with the seed's and the reference's result shapes, completing synchronously
 * (except "slow", which holds its completion for the test to release). */
struct env {
    struct mcp_registry reg;
    struct mcp_session s;
    int redeemed;
    int calls;
    char last_key[MCP_KEY_MAX];
    struct mcp_call_done *held[4];
    int nheld;
};

static void done_str(struct mcp_call_done *done, const char *json, bool is_error, const char *text)
{
    mcp_call_complete_text(done, json, strlen(json), is_error, text, text ? strlen(text) : 0);
}

static int balance_call(void *ud, const cJSON *args, const struct mcp_call_ctx *cx,
                        struct mcp_call_done *done)
{
    struct env *e = ud;
    const char *id = cJSON_GetObjectItemCaseSensitive(args, "memberId")->valuestring;
    char json[256], text[128];
    e->calls++;
    snprintf(e->last_key, sizeof(e->last_key), "%s",
             cx->idempotency_key ? cx->idempotency_key : "");
    if (strcmp(id, "member_123") == 0) {
        done_str(done,
                 "{\"success\":true,\"memberId\":\"member_123\",\"balance\":1500,\"currency\":"
                 "\"RWF\"}",
                 false, NULL);
        return 0;
    }
    snprintf(json, sizeof(json),
             "{\"success\":false,\"error\":\"member_not_found\",\"memberId\":\"%s\"}", id);
    snprintf(text, sizeof(text), "No member with id %s.", id);
    done_str(done, json, true, text);
    return 0;
}

static int redeem_call(void *ud, const cJSON *args, const struct mcp_call_ctx *cx,
                       struct mcp_call_done *done)
{
    struct env *e = ud;
    (void)args;
    e->calls++;
    snprintf(e->last_key, sizeof(e->last_key), "%s",
             cx->idempotency_key ? cx->idempotency_key : "");
    if (e->redeemed++ == 0)
        done_str(done, "{\"success\":true,\"code\":\"SAVE50\",\"value\":5000,\"currency\":\"RWF\"}",
                 false, NULL);
    else
        done_str(done,
                 "{\"success\":false,\"error\":\"voucher_already_redeemed\",\"code\":"
                 "\"SAVE50\"}",
                 true, "Voucher SAVE50 has already been redeemed.");
    return 0;
}

static int slow_call(void *ud, const cJSON *args, const struct mcp_call_ctx *cx,
                     struct mcp_call_done *done)
{
    struct env *e = ud;
    (void)args;
    (void)cx;
    e->held[e->nheld++] = done;
    return 0;
}

static int broken_call(void *ud, const cJSON *args, const struct mcp_call_ctx *cx,
                       struct mcp_call_done *done)
{
    (void)ud;
    (void)args;
    (void)cx;
    done_str(done, "not json", false, NULL);
    return 0;
}

static int env_make(void **state, size_t ntools)
{
    struct env *e = calloc(1, sizeof(*e));
    struct mcp_tool_def d[] = {
        {.name = "get_member_balance",
         .title = "Member balance",
         .description = "Current balance of a member.",
         .input_schema = BALANCE_IN,
         .annotations = "{\"readOnlyHint\":true,\"openWorldHint\":false}",
         .timeout_ms = 5000,
         .offer = MCP_OFFER_BOTH,
         .call = balance_call,
         .tool_ud = e},
        {.name = "redeem_voucher",
         .title = "Redeem voucher",
         .description = "Redeem a voucher code for a member.",
         .input_schema = REDEEM_IN,
         .annotations = "{\"readOnlyHint\":false,\"destructiveHint\":false,\"idempotentHint\":"
                        "true,\"openWorldHint\":false}",
         .timeout_ms = 8000,
         .has_side_effects = true,
         .offer = MCP_OFFER_BOTH,
         .call = redeem_call,
         .tool_ud = e},
        {.name = "slow",
         .description = "Completes when the test says.",
         .input_schema = "{\"type\":\"object\"}",
         .timeout_ms = 100,
         .offer = MCP_OFFER_MCP,
         .call = slow_call,
         .tool_ud = e},
        {.name = "broken",
         .description = "Returns what is not JSON.",
         .input_schema = "{\"type\":\"object\"}",
         .timeout_ms = 100,
         .offer = MCP_OFFER_MCP,
         .call = broken_call,
         .tool_ud = e},
        {.name = "model_only",
         .description = "Offered to the model only.",
         .input_schema = "{\"type\":\"object\"}",
         .timeout_ms = 100,
         .offer = MCP_OFFER_MODEL,
         .call = broken_call,
         .tool_ud = e},
    };
    mcp_registry_init(&e->reg, 8);
    for (size_t i = 0; i < ntools && i < sizeof(d) / sizeof(d[0]); i++)
        assert_int_equal(mcp_registry_add(&e->reg, &d[i], NULL), 0);
    mcp_session_init(&e->s, &e->reg, &info);
    *state = e;
    return 0;
}

static int env_setup(void **state)
{
    return env_make(state, 5);
}

/* Only the reference's two tools, for its tools/list verbatim. */
static int env_setup_ref(void **state)
{
    return env_make(state, 2);
}

static int env_teardown(void **state)
{
    struct env *e = *state;
    mcp_registry_deinit(&e->reg);
    free(e);
    return 0;
}

/* What a transport does with one pending call. */
struct job {
    struct mcp_pending p;
    struct mcp_call_done done;
    struct va_buf *out;
};

static void job_done(struct mcp_call_done *done, const struct mcp_call_result *r)
{
    struct job *j = done->ud;
    if (!done->abandoned)
        assert_int_equal(mcp_build_call_result(j->out, &j->p, r), 0);
}

/* One message through the engine with every call run to completion: the whole answer. */
static char *exchange(struct env *e, const char *msg)
{
    struct va_buf out;
    struct mcp_result res;
    struct job jobs[MCP_BATCH_MAX];
    size_t len;
    va_buf_init(&out, 1 << 16);
    assert_int_equal(mcp_handle(&e->s, msg, strlen(msg), &out, &res), 0);
    for (size_t i = 0; i < res.count; i++) {
        if (res.pending[i].kind != MCP_PENDING_CALL)
            continue;
        jobs[i].p = res.pending[i];
        res.pending[i].args = NULL; /* moved */
        jobs[i].out = &out;
        mcp_call_done_init(&jobs[i].done, job_done, &jobs[i]);
        mcp_pending_start(&jobs[i].p, &jobs[i].done);
        assert_true(jobs[i].done.completed);
    }
    assert_int_equal(mcp_finish(&res, &out), 0);
    mcp_result_deinit(&res);
    char *s = va_buf_steal(&out, &len);
    va_buf_deinit(&out);
    return s ? s : va_xstrdup("");
}

static void expect(struct env *e, const char *msg, const char *want)
{
    char *got = exchange(e, msg);
    if (strcmp(got, want) != 0)
        fail_msg("request %s\n got  %s\n want %s", msg, got, want);
    free(got);
}

static void init_version(struct env *e, const char *v)
{
    char msg[256], *got;
    snprintf(msg, sizeof(msg),
             "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{"
             "\"protocolVersion\":\"%s\",\"capabilities\":{},\"clientInfo\":{\"name\":\"t\","
             "\"version\":\"1\"}}}",
             v);
    got = exchange(e, msg);
    assert_non_null(strstr(got, "\"result\""));
    free(got);
}

struct rpc_case {
    const char *req;
    const char *resp;
};

/* Generated from ../shared/reference/mcp.md, byte for byte (section 5 with its line
 * breaks and indentation removed). */
#define S5_RESULT                                                                                  \
    "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"tools\":[{\"name\":\"get_member_balance\","       \
    "\"title\":\"Member balance\",\"description\":\"Current balance of a "                         \
    "member.\",\"inputSchema\":{\"type\":\"object\",\"properties\":{\"memberId\":{\"type\":"       \
    "\"string\",\"description\":\"Member "                                                         \
    "id\"}},\"required\":[\"memberId\"],\"additionalProperties\":false},\"annotations\":{"         \
    "\"readOnlyHint\":true,\"openWorldHint\":false}},{\"name\":\"redeem_voucher\",\"title\":"      \
    "\"Redeem voucher\",\"description\":\"Redeem a voucher code for a "                            \
    "member.\",\"inputSchema\":{\"type\":\"object\",\"properties\":{\"code\":{\"type\":"           \
    "\"string\"},\"memberId\":{\"type\":\"string\"}},\"required\":[\"code\",\"memberId\"],"        \
    "\"additionalProperties\":false},\"annotations\":{\"readOnlyHint\":false,\"destructiveHint\":" \
    "false,\"idempotentHint\":true,\"openWorldHint\":false}}]}}"
static const struct rpc_case s7_cases[] = {
    {"{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/"
     "call\",\"params\":{\"name\":\"get_member_balance\",\"arguments\":{\"memberId\":\"member_"
     "123\"}}}",
     "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"{"
     "\\\"success\\\":true,\\\"memberId\\\":\\\"member_123\\\",\\\"balance\\\":1500,"
     "\\\"currency\\\":\\\"RWF\\\"}\"}],\"structuredContent\":{\"success\":true,\"memberId\":"
     "\"member_123\",\"balance\":1500,\"currency\":\"RWF\"},\"isError\":false}}"},
    {"{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/"
     "call\",\"params\":{\"name\":\"get_member_balance\",\"arguments\":{\"memberId\":\"member_"
     "999\"}}}",
     "{\"jsonrpc\":\"2.0\",\"id\":4,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"No "
     "member with id "
     "member_999.\"}],\"structuredContent\":{\"success\":false,\"error\":\"member_not_found\","
     "\"memberId\":\"member_999\"},\"isError\":true}}"},
    {"{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/"
     "call\",\"params\":{\"name\":\"redeem_voucher\",\"arguments\":{\"code\":\"SAVE50\","
     "\"memberId\":\"member_123\"}}}",
     "{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"{"
     "\\\"success\\\":true,\\\"code\\\":\\\"SAVE50\\\",\\\"value\\\":5000,\\\"currency\\\":"
     "\\\"RWF\\\"}\"}],\"structuredContent\":{\"success\":true,\"code\":\"SAVE50\",\"value\":5000,"
     "\"currency\":\"RWF\"},\"isError\":false}}"},
    {"{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tools/"
     "call\",\"params\":{\"name\":\"redeem_voucher\",\"arguments\":{\"code\":\"SAVE50\","
     "\"memberId\":\"member_123\"}}}",
     "{\"jsonrpc\":\"2.0\",\"id\":6,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"Voucher "
     "SAVE50 has already been "
     "redeemed.\"}],\"structuredContent\":{\"success\":false,\"error\":\"voucher_already_"
     "redeemed\",\"code\":\"SAVE50\"},\"isError\":true}}"},
    {"{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/"
     "call\",\"params\":{\"name\":\"redeem_voucher\",\"arguments\":{\"memberId\":123}}}",
     "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"Invalid "
     "arguments: memberId must be a string; code is "
     "required.\"}],\"structuredContent\":{\"success\":false,\"error\":\"invalid_arguments\"},"
     "\"isError\":true}}"},
    {"{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tools/"
     "call\",\"params\":{\"name\":\"transfer_points\",\"arguments\":{}}}",
     "{\"jsonrpc\":\"2.0\",\"id\":8,\"error\":{\"code\":-32602,\"message\":\"Unknown tool: "
     "transfer_points\"}}"},
    {"{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/"
     "call\",\"params\":{\"name\":\"redeem_voucher\",\"arguments\":\"member_123\"}}",
     "{\"jsonrpc\":\"2.0\",\"id\":9,\"error\":{\"code\":-32602,\"message\":\"Invalid params: "
     "arguments must be an object\"}}"},
    {"{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"resources/list\"}",
     "{\"jsonrpc\":\"2.0\",\"id\":10,\"error\":{\"code\":-32601,\"message\":\"Method not "
     "found\"}}"},
    {"{\"jsonrpc\":\"2.0\",\"id\":11,\"method\":\"tools/call\",\"params\":",
     "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":\"Parse error\"}}"},
    {"{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}",
     "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32600,\"message\":\"Invalid "
     "Request\"}}"},
};
static const char *const s3_lines[] = {
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"
    "\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{\"name\":\"bridge-test\",\"version\":\"1.0."
    "0\"}}}",
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"protocolVersion\":\"2025-06-18\",\"capabilities\":"
    "{\"tools\":{\"listChanged\":false}},\"serverInfo\":{\"name\":\"voice-agent-mcp\",\"version\":"
    "\"0.1.0\"},\"instructions\":\"Member balance lookup and voucher redemption.\"}}",
    "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}",
    "{\"jsonrpc\":\"2.0\",\"id\":\"p1\",\"method\":\"ping\"}",
    "{\"jsonrpc\":\"2.0\",\"id\":\"p1\",\"result\":{}}",
};
static const char *const s4_lines[] = {
    "{\"jsonrpc\":\"2.0\",\"id\":\"d1\",\"method\":\"server/"
    "discover\",\"params\":{\"_meta\":{\"io.modelcontextprotocol/"
    "protocolVersion\":\"2026-07-28\",\"io.modelcontextprotocol/clientCapabilities\":{}}}}",
    "{\"jsonrpc\":\"2.0\",\"id\":\"d1\",\"result\":{\"resultType\":\"complete\","
    "\"supportedVersions\":[\"2026-07-28\",\"2025-11-25\"],\"capabilities\":{\"tools\":{}},"
    "\"ttlMs\":3600000,\"cacheScope\":\"public\",\"_meta\":{\"io.modelcontextprotocol/"
    "serverInfo\":{\"name\":\"voice-agent-mcp\",\"version\":\"0.1.0\"}}}}",
    "{\"jsonrpc\":\"2.0\",\"id\":2,\"error\":{\"code\":-32022,\"message\":\"Unsupported protocol "
    "version\",\"data\":{\"supported\":[\"2026-07-28\",\"2025-11-25\"],\"requested\":\"1900-01-"
    "01\"}}}",
};
static const char *const s5_lines[] = {
    "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\",\"params\":{}}",
    S5_RESULT,
};
static const char *const s10_lines[] = {
    "{\"id\":\"req_123\",\"method\":\"tool.call\",\"params\":{\"name\":\"get_member_balance\","
    "\"args\":{\"memberId\":\"member_123\"}}}",
    "{\"id\":\"req_123\",\"result\":{\"success\":true,\"memberId\":\"member_123\",\"balance\":1500,"
    "\"currency\":\"RWF\"}}",
    "{\"id\":\"req_124\",\"method\":\"tool.call\",\"params\":{\"name\":\"redeem_voucher\",\"args\":"
    "{\"code\":\"SAVE50\",\"memberId\":\"member_123\"}}}",
    "{\"id\":\"req_124\",\"result\":{\"success\":true,\"code\":\"SAVE50\",\"value\":5000,"
    "\"currency\":\"RWF\"}}",
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Section 7, in order (ids 5 and 6 depend on it: the second redemption is refused). */
static void test_reference_section7(void **state)
{
    struct env *e = *state;
    init_version(e, "2025-06-18");
    for (size_t i = 0; i < N(s7_cases); i++)
        expect(e, s7_cases[i].req, s7_cases[i].resp);
    assert_int_equal(e->redeemed, 2);
}

/* Section 7 on a fresh connection with no handshake at all but a 2025-11-25 header
 * (Streamable HTTP): same answers. */
static void test_reference_section7_header_version(void **state)
{
    struct env *e = *state;
    assert_int_equal(mcp_session_set_version(&e->s, "2025-11-25", 10), 0);
    for (size_t i = 0; i < N(s7_cases); i++)
        expect(e, s7_cases[i].req, s7_cases[i].resp);
    assert_int_equal(mcp_session_set_version(&e->s, "2026-07-28", 10), VA_EINVAL);
    assert_int_equal(mcp_session_set_version(&e->s, "2025-06-1", 9), VA_EINVAL);
}

static void test_reference_section3(void **state)
{
    struct env *e = *state;
    assert_string_equal(mcp_session_version(&e->s), MCP_VERSION_DEFAULT);
    expect(e, s3_lines[0], s3_lines[1]);
    assert_true(e->s.initialized);
    assert_false(e->s.ready);
    assert_string_equal(e->s.client_name, "bridge-test");
    assert_string_equal(e->s.client_version, "1.0.0");
    expect(e, s3_lines[2], "");
    assert_true(e->s.ready);
    expect(e, s3_lines[3], s3_lines[4]);
    assert_string_equal(mcp_session_version(&e->s), "2025-06-18");
    /* a second initialize on the same session is refused */
    expect(e, s3_lines[0],
           "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32600,\"message\":\"Invalid "
           "Request: already initialized\"}}");
}

static void test_reference_section4(void **state)
{
    struct env *e = *state;
    expect(e, s4_lines[0], s4_lines[1]);
    expect(e,
           "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\",\"params\":{\"_meta\":{\"io."
           "modelcontextprotocol/protocolVersion\":\"1900-01-01\",\"io.modelcontextprotocol/"
           "clientCapabilities\":{}}}}",
           s4_lines[2]);
    /* stateless: nothing was negotiated */
    assert_false(e->s.initialized);
}

static void test_reference_section5(void **state)
{
    struct env *e = *state;
    init_version(e, "2025-06-18");
    expect(e, s5_lines[0], s5_lines[1]);
}

/* The seed's two examples (reference section 10), byte for byte. */
static void test_reference_section10_seed(void **state)
{
    struct env *e = *state;
    expect(e, s10_lines[0], s10_lines[1]);
    expect(e, s10_lines[2], s10_lines[3]);
    assert_false(e->s.initialized); /* no handshake in this dialect */
}

static void test_version_negotiation(void **state)
{
    struct env *e = *state;
    static const struct {
        const char *asked, *answered;
    } c[] = {
        {"2024-11-05", "2024-11-05"}, {"2025-03-26", "2025-03-26"},  {"2025-06-18", "2025-06-18"},
        {"2025-11-25", "2025-11-25"}, {"2026-07-28", "2025-11-25"},  {"1999-01-01", "2025-11-25"},
        {"", "2025-11-25"},           {"2025-11-25x", "2025-11-25"},
    };
    for (size_t i = 0; i < N(c); i++) {
        char msg[256], want[512];
        mcp_session_init(&e->s, &e->reg, &info);
        snprintf(msg, sizeof(msg),
                 "{\"jsonrpc\":\"2.0\",\"id\":\"i\",\"method\":\"initialize\",\"params\":{"
                 "\"protocolVersion\":\"%s\",\"capabilities\":{}}}",
                 c[i].asked);
        snprintf(want, sizeof(want),
                 "{\"jsonrpc\":\"2.0\",\"id\":\"i\",\"result\":{\"protocolVersion\":\"%s\","
                 "\"capabilities\":{\"tools\":{\"listChanged\":false}},\"serverInfo\":{\"name\":"
                 "\"voice-agent-mcp\",\"version\":\"0.1.0\"},\"instructions\":\"Member balance "
                 "lookup and voucher redemption.\"}}",
                 c[i].answered);
        expect(e, msg, want);
        assert_string_equal(mcp_session_version(&e->s), c[i].answered);
    }
    assert_true(mcp_version_supported("2024-11-05", 10));
    assert_false(mcp_version_supported("2026-07-28", 10));
}

/* What each revision shows: structuredContent from 2025-06-18; batches only in 2025-03-26. */
static void test_per_revision(void **state)
{
    struct env *e = *state;
    static const struct {
        const char *v;
        bool structured, batch, title;
    } c[] = {
        {"2024-11-05", false, false, false},
        {"2025-03-26", false, true, false},
        {"2025-06-18", true, false, true},
        {"2025-11-25", true, false, true},
    };
    static const char call[] = "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":"
                               "{\"name\":\"get_member_balance\",\"arguments\":{\"memberId\":"
                               "\"member_123\"}}}";
    static const char batch[] = "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]";
    static const char list[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}";
    for (size_t i = 0; i < N(c); i++) {
        char *got;
        mcp_session_init(&e->s, &e->reg, &info);
        init_version(e, c[i].v);
        got = exchange(e, call);
        assert_int_equal(strstr(got, "structuredContent") != NULL, c[i].structured);
        assert_non_null(strstr(got, "\"isError\":false"));
        free(got);
        expect(e, batch,
               c[i].batch ? "[{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}]"
                          : "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32600,"
                            "\"message\":\"Invalid Request\"}}");
        got = exchange(e, list);
        assert_int_equal(strstr(got, "\"title\"") != NULL, c[i].title);
        assert_null(strstr(got, "model_only"));
        free(got);
    }
}

static void test_batches(void **state)
{
    struct env *e = *state;
    init_version(e, "2025-03-26");
    /* requests, a notification (nothing), a response (ignored), a bad element, a call */
    expect(e,
           "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"},"
           "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"},"
           "{\"jsonrpc\":\"2.0\",\"id\":9,\"result\":{}},"
           "42,"
           "{\"jsonrpc\":\"2.0\",\"id\":\"c\",\"method\":\"tools/call\",\"params\":{\"name\":"
           "\"get_member_balance\",\"arguments\":{\"memberId\":\"member_123\"}}},"
           "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"nope\"}]",
           "[{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}},"
           "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32600,\"message\":\"Invalid "
           "Request\"}},"
           "{\"jsonrpc\":\"2.0\",\"id\":2,\"error\":{\"code\":-32601,\"message\":\"Method not "
           "found\"}},"
           "{\"jsonrpc\":\"2.0\",\"id\":\"c\",\"result\":{\"content\":[{\"type\":\"text\","
           "\"text\":\"{\\\"success\\\":true,\\\"memberId\\\":\\\"member_123\\\",\\\"balance\\\":"
           "1500,\\\"currency\\\":\\\"RWF\\\"}\"}],\"isError\":false}}]");
    assert_true(e->s.ready);
    /* only notifications: no body at all */
    expect(e,
           "[{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"},"
           "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}]",
           "");
    /* empty batch: one Invalid Request, not an array */
    expect(e, "[]",
           "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32600,\"message\":\"Invalid "
           "Request\"}}");
    /* initialize must not be part of a batch */
    expect(e,
           "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
           "\"protocolVersion\":\"2025-03-26\"}}]",
           "[{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32600,\"message\":\"Invalid "
           "Request: initialize in a batch\"}}]");
    /* the legacy dialect is per message, never inside a batch */
    expect(e, "[{\"id\":1,\"method\":\"tool.call\",\"params\":{\"name\":\"slow\"}}]",
           "[{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32600,\"message\":\"Invalid "
           "Request\"}}]");
    /* past MCP_BATCH_MAX elements: one Invalid Request */
    {
        struct va_buf b;
        va_buf_init(&b, 4096);
        va_buf_append_char(&b, '[');
        for (int i = 0; i <= MCP_BATCH_MAX; i++)
            va_buf_printf(&b, "%s{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"ping\"}", i ? "," : "",
                          i);
        va_buf_append_char(&b, ']');
        expect(e, b.data,
               "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32600,\"message\":"
               "\"Invalid Request\"}}");
        va_buf_deinit(&b);
    }
}

/* Asynchronous calls in a batch complete in any order; the answer waits for all. */
static void test_batch_async(void **state)
{
    struct env *e = *state;
    static const char msg[] =
        "[{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"tools/call\",\"params\":{\"name\":"
        "\"slow\"}},{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"},"
        "{\"jsonrpc\":\"2.0\",\"id\":\"b\",\"method\":\"tools/call\",\"params\":{\"name\":"
        "\"slow\",\"arguments\":{\"x\":1}}}]";
    struct va_buf out;
    struct mcp_result res;
    struct job jobs[2];
    init_version(e, "2025-03-26");
    va_buf_init(&out, 1 << 16);
    assert_int_equal(mcp_handle(&e->s, msg, sizeof(msg) - 1, &out, &res), 0);
    assert_true(res.batch);
    assert_int_equal(res.count, 2);
    assert_string_equal(out.data, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}");
    for (int i = 0; i < 2; i++) {
        assert_int_equal(res.pending[i].kind, MCP_PENDING_CALL);
        jobs[i].p = res.pending[i];
        res.pending[i].args = NULL;
        jobs[i].out = &out;
        mcp_call_done_init(&jobs[i].done, job_done, &jobs[i]);
        assert_int_equal(mcp_pending_start(&jobs[i].p, &jobs[i].done), 0);
        assert_null(jobs[i].p.args);
    }
    assert_string_equal(jobs[0].p.id.json, "\"a\"");
    assert_string_equal(jobs[1].p.id.json, "\"b\"");
    assert_int_equal(e->nheld, 2);
    done_str(e->held[1], "{\"n\":2}", false, NULL);
    done_str(e->held[0], "{\"n\":1}", true, "one");
    assert_int_equal(mcp_finish(&res, &out), 0);
    mcp_result_deinit(&res);
    assert_string_equal(out.data,
                        "[{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}},"
                        "{\"jsonrpc\":\"2.0\",\"id\":\"b\",\"result\":{\"content\":[{\"type\":"
                        "\"text\",\"text\":\"{\\\"n\\\":2}\"}],\"isError\":false}},"
                        "{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"result\":{\"content\":[{\"type\":"
                        "\"text\",\"text\":\"one\"}],\"isError\":true}}]");
    cJSON *v = cJSON_Parse(out.data);
    assert_true(cJSON_IsArray(v));
    cJSON_Delete(v);
    va_buf_deinit(&out);
}

/* A single pending call: nothing to send until it completes; a timeout answered by the
 * caller; the late completion is dropped. */
static void test_pending_single_and_timeout(void **state)
{
    struct env *e = *state;
    static const char msg[] = "{\"jsonrpc\":\"2.0\",\"id\":77,\"method\":\"tools/call\",\"params\":"
                              "{\"name\":\"slow\",\"arguments\":{}}}";
    struct va_buf out;
    struct mcp_result res;
    struct job j;
    init_version(e, "2025-11-25");
    va_buf_init(&out, 1 << 16);
    assert_int_equal(mcp_handle(&e->s, msg, sizeof(msg) - 1, &out, &res), 0);
    assert_false(res.batch);
    assert_int_equal(res.count, 1);
    assert_int_equal(out.len, 0);
    assert_string_equal(res.pending[0].id.json, "77");
    assert_int_equal(res.pending[0].tool->def.timeout_ms, 100);
    j.p = res.pending[0];
    res.pending[0].args = NULL;
    j.out = &out;
    mcp_call_done_init(&j.done, job_done, &j);
    assert_int_equal(mcp_pending_start(&j.p, &j.done), 0);
    assert_int_equal(out.len, 0);
    /* the timer fires: the caller answers and abandons */
    j.done.abandoned = true;
    assert_int_equal(mcp_build_tool_result(
                         &out, &j.p, MCP_RESULT_TIMEOUT_JSON, sizeof(MCP_RESULT_TIMEOUT_JSON) - 1,
                         true, MCP_RESULT_TIMEOUT_TEXT, sizeof(MCP_RESULT_TIMEOUT_TEXT) - 1),
                     0);
    done_str(e->held[0], "{\"late\":true}", false, NULL);
    assert_int_equal(mcp_finish(&res, &out), 0);
    mcp_result_deinit(&res);
    assert_string_equal(out.data,
                        "{\"jsonrpc\":\"2.0\",\"id\":77,\"result\":{\"content\":[{\"type\":"
                        "\"text\",\"text\":\"The tool did not answer in time.\"}],"
                        "\"structuredContent\":{\"success\":false,\"error\":\"timeout\"},"
                        "\"isError\":true}}");
    va_buf_deinit(&out);
}

static void test_notifications(void **state)
{
    struct env *e = *state;
    struct va_buf out;
    struct mcp_result res;
    static const char cancel[] = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\","
                                 "\"params\":{\"requestId\":\"r7\",\"reason\":\"user\"}}";
    expect(e, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/whatever\",\"params\":{}}", "");
    /* a request method without an id is a notification too: never answered */
    expect(e, "{\"jsonrpc\":\"2.0\",\"method\":\"tools/call\",\"params\":{\"name\":\"x\"}}", "");
    expect(e, "{\"jsonrpc\":\"2.0\",\"method\":\"nope\",\"params\":7}", "");
    assert_int_equal(e->calls, 0);
    va_buf_init(&out, 1024);
    assert_int_equal(mcp_handle(&e->s, cancel, sizeof(cancel) - 1, &out, &res), 0);
    assert_int_equal(out.len, 0);
    assert_int_equal(res.count, 1);
    assert_int_equal(res.pending[0].kind, MCP_PENDING_CANCEL);
    assert_string_equal(res.pending[0].id.json, "\"r7\"");
    mcp_result_deinit(&res);
    /* a cancellation naming no valid id is ignored */
    static const char bad[] = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\","
                              "\"params\":{\"requestId\":null}}";
    assert_int_equal(mcp_handle(&e->s, bad, sizeof(bad) - 1, &out, &res), 0);
    assert_int_equal(res.count, 0);
    assert_int_equal(out.len, 0);
    va_buf_deinit(&out);
    /* responses (we send no requests) are dropped */
    expect(e, "{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}", "");
    expect(e, "{\"jsonrpc\":\"2.0\",\"id\":5,\"error\":{\"code\":1,\"message\":\"x\"}}", "");
}

#define ERR(id, code, msg)                                                                         \
    "{\"jsonrpc\":\"2.0\",\"id\":" id ",\"error\":{\"code\":" #code ",\"message\":\"" msg "\"}}"

static void test_error_codes(void **state)
{
    struct env *e = *state;
    static const struct rpc_case c[] = {
        /* -32700 */
        {"", ERR("null", -32700, "Parse error")},
        {"{", ERR("null", -32700, "Parse error")},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"} x",
         ERR("null", -32700, "Parse error")},
        {"{\"jsonrpc\":\"2.0\",\"id\":\"\xff\",\"method\":\"ping\"}",
         ERR("null", -32700, "Parse error")},
        {"{\"jsonrpc\":\"2.0\",\"id\":\"\xed\xa0\x80\",\"method\":\"ping\"}",
         ERR("null", -32700, "Parse error")},
        {"{\"jsonrpc\":\"2.0\",\"id\":\"\xc0\xaf\",\"method\":\"ping\"}",
         ERR("null", -32700, "Parse error")},
        /* -32600 */
        {"42", ERR("null", -32600, "Invalid Request")},
        {"\"ping\"", ERR("null", -32600, "Invalid Request")},
        {"{\"id\":1,\"method\":\"ping\"}", ERR("1", -32600, "Invalid Request")},
        {"{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"ping\"}", ERR("1", -32600, "Invalid Request")},
        {"{\"jsonrpc\":2,\"id\":\"s\",\"method\":\"ping\"}",
         ERR("\"s\"", -32600, "Invalid Request")},
        {"{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"ping\"}",
         ERR("null", -32600, "Invalid Request")},
        {"{\"jsonrpc\":\"2.0\",\"id\":true,\"method\":\"ping\"}",
         ERR("null", -32600, "Invalid Request")},
        {"{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"ping\"}",
         ERR("null", -32600, "Invalid Request")},
        {"{\"jsonrpc\":\"2.0\",\"id\":1e300,\"method\":\"ping\"}",
         ERR("null", -32600, "Invalid Request")},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":5}", ERR("1", -32600, "Invalid Request")},
        {"{\"jsonrpc\":\"2.0\",\"id\":1}", ERR("1", -32600, "Invalid Request")},
        {"{\"jsonrpc\":\"2.0\"}", ERR("null", -32600, "Invalid Request")},
        /* -32601 */
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"prompts/list\"}",
         ERR("1", -32601, "Method not found")},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"resources/read\",\"params\":{}}",
         ERR("1", -32601, "Method not found")},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"server/discover\"}",
         ERR("1", -32601, "Method not found")},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tool.call\"}",
         ERR("1", -32601, "Method not found")},
        /* -32602 */
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\"}",
         ERR("1", -32602, "Invalid params: params must be an object")},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":[]}",
         ERR("1", -32602, "Invalid params: params must be an object")},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{}}",
         ERR("1", -32602, "Invalid params: name must be a string")},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":7}}",
         ERR("1", -32602, "Invalid params: name must be a string")},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
         "\"slow\",\"arguments\":[]}}",
         ERR("1", -32602, "Invalid params: arguments must be an object")},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
         "\"model_only\"}}",
         ERR("1", -32602, "Unknown tool: model_only")},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
         "\"a\\\"b\"}}",
         ERR("1", -32602, "Unknown tool: a\\\"b")},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
         "\"slow\",\"_meta\":{\"idempotencyKey\":5}}}",
         ERR("1", -32602, "Invalid params: _meta.idempotencyKey must be a short string")},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{\"cursor\":\"x\"}}",
         ERR("1", -32602, "Invalid params: unknown cursor")},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":\"x\"}",
         ERR("1", -32602, "Invalid params: params must be an object")},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{}}",
         ERR("1", -32602, "Invalid params: protocolVersion must be a string")},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\"}",
         ERR("1", -32602, "Invalid params: params must be an object")},
        /* -32603: a tool returning something that is not JSON */
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
         "\"broken\"}}",
         ERR("1", -32603, "Internal error")},
    };
    for (size_t i = 0; i < N(c); i++)
        expect(e, c[i].req, c[i].resp);
    assert_false(e->s.initialized);
    assert_int_equal(e->calls, 0);
}

/* Ids come back with their JSON type; the exact-integer range is kept. */
static void test_id_echo(void **state)
{
    struct env *e = *state;
    expect(e, "{\"jsonrpc\":\"2.0\",\"id\":\"7\",\"method\":\"ping\"}",
           "{\"jsonrpc\":\"2.0\",\"id\":\"7\",\"result\":{}}");
    expect(e, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"ping\"}",
           "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}");
    expect(e, "{\"jsonrpc\":\"2.0\",\"id\":-3,\"method\":\"ping\"}",
           "{\"jsonrpc\":\"2.0\",\"id\":-3,\"result\":{}}");
    expect(e, "{\"jsonrpc\":\"2.0\",\"id\":9007199254740991,\"method\":\"ping\"}",
           "{\"jsonrpc\":\"2.0\",\"id\":9007199254740991,\"result\":{}}");
    expect(e, "{\"jsonrpc\":\"2.0\",\"id\":\"\xc3\xa9\\n\\u00e9\",\"method\":\"ping\"}",
           "{\"jsonrpc\":\"2.0\",\"id\":\"\xc3\xa9\\n\xc3\xa9\",\"result\":{}}");
    expect(e, "  {\"method\":\"ping\",\"id\":\"x\",\"jsonrpc\":\"2.0\"}\r\n",
           "{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"result\":{}}");
    /* an id longer than MCP_ID_MAX cannot be kept, so it is not echoed */
    char msg[600];
    char longid[400];
    memset(longid, 'i', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    snprintf(msg, sizeof(msg), "{\"jsonrpc\":\"2.0\",\"id\":\"%s\",\"method\":\"ping\"}", longid);
    expect(e, msg, ERR("null", -32600, "Invalid Request"));
}

static void test_legacy_dialect(void **state)
{
    struct env *e = *state;
    static const struct rpc_case c[] = {
        {"{\"id\":1,\"method\":\"tool.call\",\"params\":{\"name\":\"get_member_balance\","
         "\"args\":{\"memberId\":\"member_999\"}}}",
         "{\"id\":1,\"result\":{\"success\":false,\"error\":\"member_not_found\",\"memberId\":"
         "\"member_999\",\"message\":\"No member with id member_999.\"}}"},
        {"{\"id\":{\"k\":[1,2]},\"method\":\"tool.call\",\"params\":{\"name\":"
         "\"get_member_balance\",\"args\":{\"memberId\":\"member_123\"}}}",
         "{\"id\":{\"k\":[1,2]},\"result\":{\"success\":true,\"memberId\":\"member_123\","
         "\"balance\":1500,\"currency\":\"RWF\"}}"},
        {"{\"id\":2.5,\"method\":\"tool.call\",\"params\":{\"name\":\"redeem_voucher\","
         "\"args\":{\"memberId\":123}}}",
         "{\"id\":2.5,\"result\":{\"success\":false,\"error\":\"invalid_arguments\",\"message\":"
         "\"Invalid arguments: memberId must be a string; code is required.\"}}"},
        {"{\"id\":\"r3\",\"method\":\"tool.call\",\"params\":{\"name\":\"get_member_balance\"}}",
         "{\"id\":\"r3\",\"result\":{\"success\":false,\"error\":\"invalid_arguments\","
         "\"message\":\"Invalid arguments: memberId is required.\"}}"},
        {"{\"id\":\"r4\",\"method\":\"tool.call\",\"params\":{\"name\":\"transfer_points\","
         "\"args\":{}}}",
         "{\"id\":\"r4\",\"error\":{\"code\":-32602,\"message\":\"Unknown tool: "
         "transfer_points\"}}"},
        {"{\"id\":\"r5\",\"method\":\"tool.call\"}",
         "{\"id\":\"r5\",\"error\":{\"code\":-32602,\"message\":\"Invalid params: params must be "
         "an object\"}}"},
        {"{\"id\":\"r6\",\"method\":\"tool.call\",\"params\":{\"args\":{}}}",
         "{\"id\":\"r6\",\"error\":{\"code\":-32602,\"message\":\"Invalid params: name must be a "
         "string\"}}"},
        {"{\"id\":\"r7\",\"method\":\"tool.call\",\"params\":{\"name\":\"get_member_balance\","
         "\"args\":\"member_123\"}}",
         "{\"id\":\"r7\",\"error\":{\"code\":-32602,\"message\":\"Invalid params: args must be an "
         "object\"}}"},
        {"{\"method\":\"tool.call\",\"params\":{\"name\":\"get_member_balance\"}}",
         "{\"id\":null,\"error\":{\"code\":-32600,\"message\":\"Invalid Request\"}}"},
        {"{\"id\":\"r8\",\"method\":\"tool.call\",\"params\":{\"name\":\"broken\"}}",
         "{\"id\":\"r8\",\"error\":{\"code\":-32603,\"message\":\"Internal error\"}}"},
        /* a null id is still an id in this dialect: echoed */
        {"{\"id\":null,\"method\":\"tool.call\",\"params\":{\"name\":\"redeem_voucher\","
         "\"args\":{\"code\":\"SAVE50\",\"memberId\":\"member_123\"}}}",
         "{\"id\":null,\"result\":{\"success\":true,\"code\":\"SAVE50\",\"value\":5000,"
         "\"currency\":\"RWF\"}}"},
    };
    for (size_t i = 0; i < N(c); i++)
        expect(e, c[i].req, c[i].resp);
}

#define MODERN_META(v)                                                                             \
    "\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"" v                                  \
    "\",\"io.modelcontextprotocol/clientCapabilities\":{}}"
#define SERVER_META                                                                                \
    "\"_meta\":{\"io.modelcontextprotocol/serverInfo\":{\"name\":\"voice-agent-mcp\","             \
    "\"version\":\"0.1.0\"}}"

static void test_modern(void **state)
{
    struct env *e = *state;
    char *got;
    expect(e,
           "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
           "\"get_member_balance\",\"arguments\":{\"memberId\":\"member_123\"},"
           "\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\","
           "\"io.modelcontextprotocol/clientCapabilities\":{},\"idempotencyKey\":\"k-1\"}}}",
           "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"resultType\":\"complete\",\"content\":[{"
           "\"type\":\"text\",\"text\":\"{\\\"success\\\":true,\\\"memberId\\\":\\\"member_123\\\","
           "\\\"balance\\\":1500,\\\"currency\\\":\\\"RWF\\\"}\"}],\"structuredContent\":{"
           "\"success\":true,\"memberId\":\"member_123\",\"balance\":1500,\"currency\":\"RWF\"},"
           "\"isError\":false," SERVER_META "}}");
    assert_string_equal(e->last_key, "k-1");
    /* structuredContent may be any JSON value in this revision */
    static const char call_slow[] = "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\","
                                    "\"params\":{\"name\":\"slow\"," MODERN_META("2026-07-28") "}}";
    {
        struct va_buf out;
        struct mcp_result res;
        struct job j;
        va_buf_init(&out, 4096);
        assert_int_equal(mcp_handle(&e->s, call_slow, sizeof(call_slow) - 1, &out, &res), 0);
        assert_int_equal(res.count, 1);
        assert_int_equal(res.pending[0].dialect, MCP_DIALECT_MODERN);
        j.p = res.pending[0];
        res.pending[0].args = NULL;
        j.out = &out;
        mcp_call_done_init(&j.done, job_done, &j);
        mcp_pending_start(&j.p, &j.done);
        done_str(e->held[0], "[1,2]", false, NULL);
        mcp_result_deinit(&res);
        assert_string_equal(out.data, "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"resultType\":"
                                      "\"complete\",\"content\":[{\"type\":\"text\",\"text\":"
                                      "\"[1,2]\"}],\"structuredContent\":[1,2],\"isError\":"
                                      "false," SERVER_META "}}");
        va_buf_deinit(&out);
    }
    got = exchange(
        e, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/list\",\"params\":{" MODERN_META(
               "2026-07-28") "}}");
    assert_true(strncmp(got,
                        "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"resultType\":\"complete\","
                        "\"tools\":[{\"name\":\"get_member_balance\",\"title\":",
                        95) == 0);
    assert_non_null(strstr(got, "],"
                                "\"ttlMs\":3600000,\"cacheScope\":\"public\"," SERVER_META "}}"));
    assert_null(strstr(got, "model_only"));
    free(got);
    /* gone in this revision */
    expect(e,
           "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"ping\",\"params\":{" MODERN_META(
               "2026-07-28") "}}",
           ERR("4", -32601, "Method not found"));
    expect(
        e,
        "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"
        "\"2025-06-18\"," MODERN_META("2026-07-28") "}}",
        ERR("5", -32601, "Method not found"));
    expect(e,
           "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tools/list\",\"params\":{\"_meta\":{"
           "\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\"}}}",
           ERR("6", -32602,
               "Invalid params: _meta io.modelcontextprotocol/clientCapabilities must be an "
               "object"));
    expect(e,
           "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/list\",\"params\":{\"_meta\":{"
           "\"io.modelcontextprotocol/protocolVersion\":1}}}",
           ERR("7", -32602,
               "Invalid params: _meta io.modelcontextprotocol/protocolVersion must be a string"));
    /* a legacy revision named in modern _meta is not served statelessly */
    expect(e,
           "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tools/list\",\"params\":{" MODERN_META(
               "2025-11-25") "}}",
           "{\"jsonrpc\":\"2.0\",\"id\":8,\"error\":{\"code\":-32022,\"message\":\"Unsupported "
           "protocol version\",\"data\":{\"supported\":[\"2026-07-28\",\"2025-11-25\"],"
           "\"requested\":\"2025-11-25\"}}}");
    /* dual era: after a legacy handshake, a modern request is still served statelessly */
    init_version(e, "2025-06-18");
    expect(e, s4_lines[0], s4_lines[1]);
    assert_string_equal(mcp_session_version(&e->s), "2025-06-18");
}

static void test_idempotency_key(void **state)
{
    struct env *e = *state;
    char *got = exchange(e, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{"
                            "\"name\":\"redeem_voucher\",\"arguments\":{\"code\":\"SAVE50\","
                            "\"memberId\":\"m\"},\"_meta\":{\"idempotencyKey\":\"idem-42\"}}}");
    assert_string_equal(e->last_key, "idem-42");
    free(got);
    got = exchange(e, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{"
                      "\"name\":\"redeem_voucher\",\"arguments\":{\"code\":\"SAVE50\","
                      "\"memberId\":\"m\"}}}");
    /* no key: derived from the scope, the request id, the tool and the arguments */
    char first[MCP_KEY_MAX];
    snprintf(first, sizeof(first), "%s", e->last_key);
    assert_int_equal(strlen(first), 5 + 64);
    assert_memory_equal(first, "auto:", 5);
    free(got);
    /* the same request again (a retry) maps to the same key */
    got = exchange(e, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{"
                      "\"name\":\"redeem_voucher\",\"arguments\":{\"code\":\"SAVE50\","
                      "\"memberId\":\"m\"}}}");
    assert_string_equal(e->last_key, first);
    free(got);
    /* another request id, or another session, is another request */
    got = exchange(e, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{"
                      "\"name\":\"redeem_voucher\",\"arguments\":{\"code\":\"SAVE50\","
                      "\"memberId\":\"m\"}}}");
    assert_string_not_equal(e->last_key, first);
    free(got);
    mcp_session_set_scope(&e->s, "other-session");
    got = exchange(e, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{"
                      "\"name\":\"redeem_voucher\",\"arguments\":{\"code\":\"SAVE50\","
                      "\"memberId\":\"m\"}}}");
    assert_string_not_equal(e->last_key, first);
    free(got);
}

/* An answer that does not fit the bound: VA_ETOOBIG, for the transport to handle. */
static void test_out_bound(void **state)
{
    struct env *e = *state;
    struct va_buf out;
    struct mcp_result res;
    static const char msg[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}";
    va_buf_init(&out, 64);
    assert_int_equal(mcp_handle(&e->s, msg, sizeof(msg) - 1, &out, &res), VA_ETOOBIG);
    mcp_result_deinit(&res);
    va_buf_deinit(&out);
}

static void test_build_error(void **state)
{
    (void)state;
    struct va_buf out;
    struct mcp_id id = {.json = "\"q\"", .len = 3};
    va_buf_init(&out, 256);
    assert_int_equal(mcp_build_error(&out, NULL, MCP_RPC_PARSE_ERROR, "Parse error"), 0);
    assert_string_equal(out.data, ERR("null", -32700, "Parse error"));
    va_buf_reset(&out);
    assert_int_equal(mcp_build_error(&out, &id, MCP_RPC_INVALID_REQUEST, "Too \"big\""), 0);
    assert_string_equal(out.data, ERR("\"q\"", -32600, "Too \\\"big\\\""));
    va_buf_deinit(&out);
}

static void test_peek(void **state)
{
    (void)state;
    struct mcp_peek pk;
    static const char call[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":"
                               "{\"name\":\"redeem_voucher\"," MODERN_META("2026-07-28") "}}";
    assert_int_equal(mcp_peek(call, sizeof(call) - 1, &pk), 0);
    assert_false(pk.batch);
    assert_true(pk.expects_response);
    assert_string_equal(pk.method, "tools/call");
    assert_string_equal(pk.name, "redeem_voucher");
    assert_string_equal(pk.meta_version, "2026-07-28");
    static const char note[] = "[{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"},"
                               "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}]";
    assert_int_equal(mcp_peek(note, sizeof(note) - 1, &pk), 0);
    assert_true(pk.batch);
    assert_false(pk.expects_response);
    assert_string_equal(pk.method, "");
    assert_int_equal(mcp_peek("[]", 2, &pk), 0);
    assert_true(pk.expects_response);
    assert_int_equal(mcp_peek("7", 1, &pk), 0);
    assert_true(pk.expects_response);
    assert_int_equal(mcp_peek("{", 1, &pk), VA_EPROTO);
}

/* Every prefix of a request is either a parse error or (the whole) an answer: no crash,
 * no leak, no partial state. */
static void test_every_prefix(void **state)
{
    struct env *e = *state;
    static const char msg[] = "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":"
                              "{\"name\":\"get_member_balance\",\"arguments\":{\"memberId\":"
                              "\"member_123\"}}}";
    for (size_t n = 0; n < sizeof(msg) - 1; n++) {
        struct va_buf out;
        struct mcp_result res;
        va_buf_init(&out, 4096);
        assert_int_equal(mcp_handle(&e->s, msg, n, &out, &res), 0);
        assert_int_equal(res.count, 0);
        assert_string_equal(out.data, ERR("null", -32700, "Parse error"));
        mcp_result_deinit(&res);
        va_buf_deinit(&out);
    }
}

#define T(f) cmocka_unit_test_setup_teardown(f, env_setup, env_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_reference_section7),
        T(test_reference_section7_header_version),
        T(test_reference_section3),
        T(test_reference_section4),
        cmocka_unit_test_setup_teardown(test_reference_section5, env_setup_ref, env_teardown),
        T(test_reference_section10_seed),
        T(test_version_negotiation),
        T(test_per_revision),
        T(test_batches),
        T(test_batch_async),
        T(test_pending_single_and_timeout),
        T(test_notifications),
        T(test_error_codes),
        T(test_id_echo),
        T(test_legacy_dialect),
        T(test_modern),
        T(test_idempotency_key),
        T(test_out_bound),
        cmocka_unit_test(test_build_error),
        cmocka_unit_test(test_peek),
        T(test_every_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
