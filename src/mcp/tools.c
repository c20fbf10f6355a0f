/* src/mcp/tools.c: get_member_balance and redeem_voucher, served by the Supabase RPC
 * functions of supabase/migrations, for MCP clients and for the model alike. */
#include "mcp/tools.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "mcp/registry.h"
#include "supabase/rpc.h"

#define TOOLS_TIMEOUT_MS 8000
#define TOOLS_BODY_MAX 4096

struct tools_ctx {
    struct sb_rpc *rpc; /* NULL when Supabase is not configured */
    struct va_log *log;
};

/* One call in flight: what the answer needs once the RPC completes. */
struct tools_job {
    struct tools_ctx *tc;
    struct mcp_call_done *done;
    bool redeem;
};

static void tools_fail(struct mcp_call_done *done, const char *error, const char *key,
                       const char *value)
{
    struct va_buf b;
    va_buf_init(&b, TOOLS_BODY_MAX);
    va_buf_append_str(&b, "{\"success\":false,\"error\":");
    va_json_str(&b, error, strlen(error));
    if (key && value) {
        va_buf_printf(&b, ",\"%s\":", key);
        va_json_str(&b, value, strlen(value));
    }
    va_buf_append_char(&b, '}');
    mcp_call_complete(done, b.data, b.len, true);
    va_buf_deinit(&b);
}

/* Appends "name":<value of obj.name> when present (jsonb keeps no key order, the seed's
 * shapes have one, so results are rebuilt field by field). */
static void tools_field(struct va_buf *b, const cJSON *obj, const char *name, bool *first)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!v)
        return;
    char *text = cJSON_PrintUnformatted(v);
    if (!text)
        return;
    va_buf_printf(b, "%s\"%s\":%s", *first ? "" : ",", name, text);
    *first = false;
    cJSON_free(text);
}

static void tools_on_rpc(void *ud, int err, long http_status, const char *body, size_t len)
{
    struct tools_job *job = ud;
    struct mcp_call_done *done = job->done;
    cJSON *obj = NULL;
    if (!err && http_status == 200)
        obj = cJSON_ParseWithLength(body, len);
    if (!cJSON_IsObject(obj)) {
        va_log_warn(job->tc->log, "mcp", "tool backend failed",
                    VA_LSTR("tool", job->redeem ? "redeem_voucher" : "get_member_balance"),
                    VA_LSTR("reason", err ? va_strerror(err) : "bad answer"),
                    VA_LINT("httpStatus", http_status));
        tools_fail(done, "the member service is unavailable, please try again later", NULL, NULL);
        cJSON_Delete(obj);
        free(job);
        return;
    }
    static const char *const balance_keys[] = {"success",  "memberId", "balance",
                                               "currency", "error",    NULL};
    static const char *const redeem_keys[] = {"success", "code",     "value", "currency",
                                              "error",   "memberId", NULL};
    const char *const *keys = job->redeem ? redeem_keys : balance_keys;
    struct va_buf b;
    va_buf_init(&b, TOOLS_BODY_MAX);
    bool first = true;
    va_buf_append_char(&b, '{');
    for (size_t i = 0; keys[i]; i++)
        tools_field(&b, obj, keys[i], &first);
    va_buf_append_char(&b, '}');
    bool ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(obj, "success"));
    mcp_call_complete(done, b.data, b.len, !ok);
    va_buf_deinit(&b);
    cJSON_Delete(obj);
    free(job);
}

static int tools_start(struct tools_ctx *tc, struct mcp_call_done *done, bool redeem,
                       const char *function, const struct va_buf *body)
{
    if (!tc->rpc) {
        tools_fail(done, "the member service is not configured", NULL, NULL);
        return 0;
    }
    struct tools_job *job = va_xcalloc(1, sizeof(*job));
    job->tc = tc;
    job->done = done;
    job->redeem = redeem;
    /* both are safe to retry: a lookup, and a redemption under its idempotency key */
    int err = sb_rpc_call(tc->rpc, function, body->data, body->len, true, tools_on_rpc, job);
    if (err) {
        free(job);
        tools_fail(done, "the member service is busy, please try again later", NULL, NULL);
    }
    return 0;
}

static int tools_balance(void *ud, const cJSON *args, const struct mcp_call_ctx *cx,
                         struct mcp_call_done *done)
{
    (void)cx;
    const char *member = cJSON_GetObjectItemCaseSensitive(args, "memberId")->valuestring;
    struct va_buf body;
    va_buf_init(&body, TOOLS_BODY_MAX);
    va_buf_append_str(&body, "{\"p_member_id\":");
    va_json_str(&body, member, strlen(member));
    va_buf_append_char(&body, '}');
    int err = tools_start(ud, done, false, "get_member_balance", &body);
    va_buf_deinit(&body);
    return err;
}

static int tools_redeem(void *ud, const cJSON *args, const struct mcp_call_ctx *cx,
                        struct mcp_call_done *done)
{
    const char *code = cJSON_GetObjectItemCaseSensitive(args, "code")->valuestring;
    const char *member = cJSON_GetObjectItemCaseSensitive(args, "memberId")->valuestring;
    const char *key = cx->idempotency_key;
    if (!key)
        return VA_EINVAL; /* both origins always give one (registry.h) */
    struct va_buf body;
    va_buf_init(&body, TOOLS_BODY_MAX);
    va_buf_append_str(&body, "{\"p_code\":");
    va_json_str(&body, code, strlen(code));
    va_buf_append_str(&body, ",\"p_member_id\":");
    va_json_str(&body, member, strlen(member));
    va_buf_append_str(&body, ",\"p_idempotency_key\":");
    va_json_str(&body, key, strlen(key));
    va_buf_append_char(&body, '}');
    int err = tools_start(ud, done, true, "redeem_voucher", &body);
    va_buf_deinit(&body);
    return err;
}

static const char tools_member_schema[] =
    "{\"type\":\"object\",\"properties\":{\"memberId\":{\"type\":\"string\",\"minLength\":1,"
    "\"maxLength\":128,\"description\":\"The member's id, e.g. member_123\"}},"
    "\"required\":[\"memberId\"],\"additionalProperties\":false}";
static const char tools_balance_out[] =
    "{\"type\":\"object\",\"properties\":{\"success\":{\"type\":\"boolean\"},\"memberId\":{"
    "\"type\":\"string\"},\"balance\":{\"type\":\"integer\"},\"currency\":{\"type\":\"string\"},"
    "\"error\":{\"type\":\"string\"}},\"required\":[\"success\"]}";
static const char tools_redeem_schema[] =
    "{\"type\":\"object\",\"properties\":{\"code\":{\"type\":\"string\",\"minLength\":1,"
    "\"maxLength\":64,\"description\":\"The voucher code, e.g. SAVE50\"},\"memberId\":{\"type\":"
    "\"string\",\"minLength\":1,\"maxLength\":128}},\"required\":[\"code\",\"memberId\"],"
    "\"additionalProperties\":false}";
static const char tools_redeem_out[] =
    "{\"type\":\"object\",\"properties\":{\"success\":{\"type\":\"boolean\"},\"code\":{\"type\":"
    "\"string\"},\"value\":{\"type\":\"integer\"},\"currency\":{\"type\":\"string\"},\"error\":{"
    "\"type\":\"string\"}},\"required\":[\"success\"]}";

/* set_call_intent: the model names what the caller wants; the call keeps it for its
 * events (the call bridge reads the result). Nothing to look up: it completes at once. */
static int tools_intent(void *ud, const cJSON *args, const struct mcp_call_ctx *cx,
                        struct mcp_call_done *done)
{
    (void)ud;
    (void)cx;
    const char *intent = cJSON_GetObjectItemCaseSensitive(args, "intent")->valuestring;
    struct va_buf out;
    va_buf_init(&out, 256);
    va_buf_append_str(&out, "{\"success\":true,\"intent\":");
    va_json_str(&out, intent, strlen(intent));
    va_buf_append_char(&out, '}');
    mcp_call_complete_text(done, out.data, out.len, false, NULL, 0);
    va_buf_deinit(&out);
    return 0;
}

static const char tools_intent_schema[] =
    "{\"type\":\"object\",\"properties\":{\"intent\":{\"type\":\"string\",\"enum\":["
    "\"balance_inquiry\",\"voucher_redemption\",\"account_help\",\"general_question\","
    "\"complaint\",\"other\"],\"description\":\"What the caller wants.\"}},"
    "\"required\":[\"intent\"],\"additionalProperties\":false}";

static const char tools_intent_out[] =
    "{\"type\":\"object\",\"properties\":{\"success\":{\"type\":\"boolean\"},\"intent\":{"
    "\"type\":\"string\"}},\"required\":[\"success\"]}";

struct tools_ctx *mcp_tools_register(struct mcp_registry *reg, struct sb_rpc *rpc,
                                     struct va_log *log)
{
    struct tools_ctx *tc = va_xcalloc(1, sizeof(*tc));
    tc->rpc = rpc;
    tc->log = log;
    const struct mcp_tool_def defs[] = {
        {
            .name = "get_member_balance",
            .title = "Member balance",
            .description = "Get a member's balance, in the currency's smallest unit.",
            .input_schema = tools_member_schema,
            .output_schema = tools_balance_out,
            .annotations = "{\"readOnlyHint\":true}",
            .timeout_ms = TOOLS_TIMEOUT_MS,
            .has_side_effects = false,
            .offer = MCP_OFFER_BOTH,
            .call = tools_balance,
            .tool_ud = tc,
        },
        {
            .name = "redeem_voucher",
            .title = "Redeem a voucher",
            .description = "Redeem a voucher code for a member: the voucher's value is credited "
                           "to the member's balance. Only when the caller asks for it.",
            .input_schema = tools_redeem_schema,
            .output_schema = tools_redeem_out,
            .annotations = "{\"readOnlyHint\":false,\"idempotentHint\":true}",
            .timeout_ms = TOOLS_TIMEOUT_MS,
            .has_side_effects = true,
            .offer = MCP_OFFER_BOTH,
            .call = tools_redeem,
            .tool_ud = tc,
        },
        {
            .name = TOOLS_INTENT,
            .title = "Call intent",
            .description = "Record what the caller wants, once you understand it. Call it once "
                           "per call, without telling the caller.",
            .input_schema = tools_intent_schema,
            .output_schema = tools_intent_out,
            .timeout_ms = TOOLS_TIMEOUT_MS,
            .has_side_effects = false,
            .offer = MCP_OFFER_MODEL, /* about the phone call: nothing for MCP clients */
            .call = tools_intent,
            .tool_ud = tc,
        },
    };
    for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++) {
        struct va_buf why;
        va_buf_init(&why, 512);
        if (mcp_registry_add(reg, &defs[i], &why))
            va_log_error(log, "mcp", "tool not registered", VA_LSTR("tool", defs[i].name),
                         VA_LSTR("reason", why.data ? why.data : ""));
        va_buf_deinit(&why);
    }
    return tc;
}

void mcp_tools_free(struct tools_ctx *tc)
{
    free(tc);
}
