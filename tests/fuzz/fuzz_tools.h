/* tests/fuzz/fuzz_tools.h: a tool registry for the fuzz targets, as tests/unit/test_mcp_*.c
 * build theirs. The two tools of the product with their real input schemas, but
 * handlers that answer from memory (the real ones call Supabase: no I/O here), plus
 * tools that reach what the real two do not: a schema using every supported keyword
 * whose handler echoes its arguments as the result, a handler that answers later (after
 * the message is handled, as a database round trip would), one that fails to start and
 * one whose result is not JSON (a tool bug the engine must contain).
 *
 * Everything lives in one struct fz_tools made per input: no state between inputs. */
#ifndef VA_TESTS_FUZZ_TOOLS_H
#define VA_TESTS_FUZZ_TOOLS_H

#include <stdbool.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "core/json.h"
#include "mcp/registry.h"

#include "fuzz.h"

#define FZ_HELD_MAX 64

struct fz_tools {
    struct mcp_registry reg;
    struct mcp_call_done *held[FZ_HELD_MAX]; /* calls of "later", completed by fz_tools_release */
    size_t nheld;
};

static void fz_done_buf(struct mcp_call_done *done, struct va_buf *json, bool is_error,
                        const char *text)
{
    FUZZ_CHECK(json->data != NULL);
    mcp_call_complete_text(done, json->data, json->len, is_error, text, text ? strlen(text) : 0);
}

static int fz_balance(void *ud, const cJSON *args, const struct mcp_call_ctx *cx,
                      struct mcp_call_done *done)
{
    (void)ud;
    (void)cx;
    /* the schema requires a string memberId: validation ran before this */
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(args, "memberId");
    FUZZ_CHECK(cJSON_IsString(id) && id->valuestring);
    struct va_buf json;
    va_buf_init(&json, 64 * 1024);
    bool found = strcmp(id->valuestring, "member_123") == 0;
    va_buf_append_str(&json, found ? "{\"success\":true,\"memberId\":"
                                   : "{\"success\":false,\"error\":\"member_not_found\","
                                     "\"memberId\":");
    va_json_str(&json, id->valuestring, strlen(id->valuestring));
    va_buf_append_str(&json, found ? ",\"balance\":1500,\"currency\":\"RWF\"}" : "}");
    fz_done_buf(done, &json, !found, found ? NULL : "No member with that id.");
    va_buf_deinit(&json);
    return 0;
}

static int fz_redeem(void *ud, const cJSON *args, const struct mcp_call_ctx *cx,
                     struct mcp_call_done *done)
{
    (void)ud;
    (void)cx;
    FUZZ_CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(args, "code")));
    FUZZ_CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(args, "memberId")));
    static const char ok[] = "{\"success\":true,\"code\":\"SAVE50\",\"value\":5000,\"currency\":"
                             "\"RWF\"}";
    mcp_call_complete(done, ok, sizeof(ok) - 1, false);
    return 0;
}

/* Echoes the (validated) arguments: arbitrary JSON into structuredContent. */
static int fz_echo(void *ud, const cJSON *args, const struct mcp_call_ctx *cx,
                   struct mcp_call_done *done)
{
    (void)ud;
    (void)cx;
    char *s = cJSON_PrintUnformatted(args);
    FUZZ_CHECK(s != NULL);
    mcp_call_complete_text(done, s, strlen(s), false, "echo", 4);
    free(s);
    return 0;
}

static int fz_later(void *ud, const cJSON *args, const struct mcp_call_ctx *cx,
                    struct mcp_call_done *done)
{
    struct fz_tools *t = ud;
    (void)args;
    (void)cx;
    if (t->nheld == FZ_HELD_MAX)
        return VA_EFULL; /* did not start: the registry completes it as an internal error */
    t->held[t->nheld++] = done;
    return 0;
}

static int fz_unstartable(void *ud, const cJSON *args, const struct mcp_call_ctx *cx,
                          struct mcp_call_done *done)
{
    (void)ud;
    (void)args;
    (void)cx;
    (void)done;
    return VA_ECLOSED;
}

static int fz_broken(void *ud, const cJSON *args, const struct mcp_call_ctx *cx,
                     struct mcp_call_done *done)
{
    (void)ud;
    (void)args;
    (void)cx;
    mcp_call_complete(done, "not json", 8, false);
    return 0;
}

/* The product's two schemas and result shapes, as src/mcp/tools.c registers them. */
#define FZ_BALANCE_IN                                                                              \
    "{\"type\":\"object\",\"properties\":{\"memberId\":{\"type\":\"string\",\"minLength\":1,"      \
    "\"maxLength\":128,\"description\":\"The member's id, e.g. member_123\"}},"                    \
    "\"required\":[\"memberId\"],\"additionalProperties\":false}"
#define FZ_BALANCE_OUT                                                                             \
    "{\"type\":\"object\",\"properties\":{\"success\":{\"type\":\"boolean\"},\"memberId\":{"       \
    "\"type\":\"string\"},\"balance\":{\"type\":\"integer\"},\"currency\":{\"type\":\"string\"},"  \
    "\"error\":{\"type\":\"string\"}},\"required\":[\"success\"]}"
#define FZ_REDEEM_IN                                                                               \
    "{\"type\":\"object\",\"properties\":{\"code\":{\"type\":\"string\",\"minLength\":1,"          \
    "\"maxLength\":64,\"description\":\"The voucher code, e.g. SAVE50\"},\"memberId\":{\"type\":"  \
    "\"string\",\"minLength\":1,\"maxLength\":128}},\"required\":[\"code\",\"memberId\"],"         \
    "\"additionalProperties\":false}"
/* Every keyword of include/mcp/schema.h's subset. */
#define FZ_ECHO_IN                                                                                 \
    "{\"type\":\"object\",\"$schema\":\"https://json-schema.org/draft/2020-12/schema\","           \
    "\"properties\":{"                                                                             \
    "\"amount\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":100000},"                          \
    "\"ratio\":{\"type\":\"number\",\"minimum\":0,\"maximum\":1},"                                 \
    "\"currency\":{\"type\":\"string\",\"enum\":[\"RWF\",\"USD\",\"EUR\"]},"                       \
    "\"note\":{\"type\":[\"string\",\"null\"],\"minLength\":1,\"maxLength\":16,"                   \
    "\"pattern\":\"^[a-z]+$\",\"format\":\"text\",\"default\":null},"                              \
    "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":8}},"               \
    "\"flag\":{\"type\":\"boolean\"},"                                                             \
    "\"choice\":{\"enum\":[1,\"one\",[1],{\"a\":1},null,true]},"                                   \
    "\"meta\":{\"type\":\"object\",\"properties\":{\"k\":{\"type\":\"string\"}},"                  \
    "\"required\":[\"k\"],\"additionalProperties\":false}},"                                       \
    "\"required\":[\"amount\"],\"additionalProperties\":false}"
#define FZ_OPEN_IN "{\"type\":\"object\"}"

/* Makes the registry; every tool is offered to MCP and the model alike. */
static void fz_tools_init(struct fz_tools *t)
{
    const struct mcp_tool_def defs[] = {
        {.name = "get_member_balance",
         .title = "Member balance",
         .description = "Current balance of a member.",
         .input_schema = FZ_BALANCE_IN,
         .output_schema = FZ_BALANCE_OUT,
         .annotations = "{\"readOnlyHint\":true}",
         .timeout_ms = 5000,
         .offer = MCP_OFFER_BOTH,
         .call = fz_balance},
        {.name = "redeem_voucher",
         .title = "Redeem voucher",
         .description = "Redeem a voucher code for a member.",
         .input_schema = FZ_REDEEM_IN,
         .annotations = "{\"readOnlyHint\":false,\"idempotentHint\":true}",
         .timeout_ms = 8000,
         .has_side_effects = true,
         .offer = MCP_OFFER_BOTH,
         .call = fz_redeem},
        {.name = "echo",
         .description = "Returns its arguments.",
         .input_schema = FZ_ECHO_IN,
         .timeout_ms = 1000,
         .offer = MCP_OFFER_BOTH,
         .call = fz_echo},
        {.name = "later",
         .description = "Answers after the message is handled.",
         .input_schema = FZ_OPEN_IN,
         .timeout_ms = 1000,
         .offer = MCP_OFFER_BOTH,
         .call = fz_later},
        {.name = "unstartable",
         .description = "Fails to start.",
         .input_schema = FZ_OPEN_IN,
         .timeout_ms = 1000,
         .offer = MCP_OFFER_MCP,
         .call = fz_unstartable},
        {.name = "broken",
         .description = "Answers something that is not JSON.",
         .input_schema = FZ_OPEN_IN,
         .timeout_ms = 1000,
         .offer = MCP_OFFER_BOTH,
         .call = fz_broken},
    };
    size_t n = sizeof(defs) / sizeof(defs[0]);
    memset(t, 0, sizeof(*t));
    mcp_registry_init(&t->reg, n);
    for (size_t i = 0; i < n; i++) {
        struct mcp_tool_def d = defs[i];
        d.tool_ud = t;
        FUZZ_CHECK(mcp_registry_add(&t->reg, &d, NULL) == 0);
    }
}

/* Completes what "later" holds, in the order it was started. */
static void fz_tools_release(struct fz_tools *t)
{
    static const char res[] = "{\"success\":true,\"later\":true}";
    for (size_t i = 0; i < t->nheld; i++)
        mcp_call_complete_text(t->held[i], res, sizeof(res) - 1, false, NULL, 0);
    t->nheld = 0;
}

static void fz_tools_deinit(struct fz_tools *t)
{
    FUZZ_CHECK(t->nheld == 0);
    mcp_registry_deinit(&t->reg);
}

#endif
