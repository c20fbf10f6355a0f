/* tests/unit/test_mcp_registry.c: registration, listings, argument checks, completion. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/err.h"
#include "mcp/registry.h"

#define BALANCE_IN                                                                                 \
    "{\"type\":\"object\",\"properties\":{\"memberId\":{\"type\":\"string\",\"description\":"      \
    "\"Member id\"}},\"required\":[\"memberId\"],\"additionalProperties\":false}"
#define REDEEM_IN                                                                                  \
    "{\"type\":\"object\",\"properties\":{\"code\":{\"type\":\"string\"},\"memberId\":{\"type\":"  \
    "\"string\"}},\"required\":[\"code\",\"memberId\"],\"additionalProperties\":false}"
#define BALANCE_OUT                                                                                \
    "{\"type\":\"object\",\"properties\":{\"success\":{\"type\":\"boolean\"},\"memberId\":{"       \
    "\"type\":\"string\"},\"balance\":{\"type\":\"integer\"},\"currency\":{\"type\":\"string\"}}," \
    "\"required\":[\"success\"]}"

/* A fake tool: records its calls, completes at once unless told to wait. */
struct fake {
    int calls;
    int ret;   /* what call() returns */
    bool hold; /* complete later through `held` */
    struct mcp_call_done *held;
    char last_args[256];
    char last_key[64];
    uint32_t last_timeout;
    enum mcp_origin last_origin;
};

static int fake_call(void *ud, const cJSON *args, const struct mcp_call_ctx *cx,
                     struct mcp_call_done *done)
{
    struct fake *f = ud;
    char *s = cJSON_PrintUnformatted(args);
    f->calls++;
    strncpy(f->last_args, s, sizeof(f->last_args) - 1);
    free(s);
    strncpy(f->last_key, cx->idempotency_key ? cx->idempotency_key : "", sizeof(f->last_key) - 1);
    f->last_timeout = cx->timeout_ms;
    f->last_origin = cx->origin;
    if (f->ret)
        return f->ret;
    if (f->hold) {
        f->held = done;
        return 0;
    }
    static const char ok[] = "{\"success\":true}";
    mcp_call_complete(done, ok, sizeof(ok) - 1, false);
    return 0;
}

static int cancels;
static void fake_cancel(void *ud, struct mcp_call_done *done)
{
    (void)ud;
    (void)done;
    cancels++;
}

/* What on_done saw. */
struct seen {
    int n;
    char json[256];
    char text[256];
    bool is_error;
    bool abandoned;
};

static void on_done(struct mcp_call_done *done, const struct mcp_call_result *r)
{
    struct seen *s = done->ud;
    s->n++;
    memcpy(s->json, r->json, r->len);
    s->json[r->len] = '\0';
    if (r->text) {
        memcpy(s->text, r->text, r->text_len);
        s->text[r->text_len] = '\0';
    } else {
        s->text[0] = '\0';
    }
    s->is_error = r->is_error;
    s->abandoned = done->abandoned;
}

static struct mcp_tool_def def_balance(struct fake *f)
{
    return (struct mcp_tool_def){
        .name = "get_member_balance",
        .title = "Member balance",
        .description = "Current balance of a member.",
        .input_schema = BALANCE_IN,
        .annotations = "{\"readOnlyHint\":true,\"openWorldHint\":false}",
        .timeout_ms = 5000,
        .has_side_effects = false,
        .offer = MCP_OFFER_BOTH,
        .call = fake_call,
        .cancel = fake_cancel,
        .tool_ud = f,
    };
}

static struct mcp_tool_def def_redeem(struct fake *f)
{
    return (struct mcp_tool_def){
        .name = "redeem_voucher",
        .title = "Redeem voucher",
        .description = "Redeem a voucher code for a member.",
        .input_schema = REDEEM_IN,
        .annotations = "{\"readOnlyHint\":false,\"destructiveHint\":false,\"idempotentHint\":"
                       "true,\"openWorldHint\":false}",
        .timeout_ms = 8000,
        .has_side_effects = true,
        .offer = MCP_OFFER_BOTH,
        .call = fake_call,
        .tool_ud = f,
    };
}

static void test_register_and_find(void **state)
{
    (void)state;
    struct mcp_registry r;
    struct fake f = {0};
    struct mcp_tool_def d = def_balance(&f);
    struct va_buf why;
    mcp_registry_init(&r, 4);
    va_buf_init(&why, 256);
    assert_int_equal(mcp_registry_add(&r, &d, &why), 0);
    d = def_redeem(&f);
    assert_int_equal(mcp_registry_add(&r, &d, &why), 0);
    assert_int_equal(r.count, 2);
    const struct mcp_tool *t = mcp_registry_find(&r, "redeem_voucher", 14, MCP_OFFER_MCP);
    assert_non_null(t);
    assert_string_equal(t->name, "redeem_voucher");
    assert_true(t->def.has_side_effects);
    assert_int_equal(t->def.timeout_ms, 8000);
    assert_null(mcp_registry_find(&r, "redeem_vouche", 13, MCP_OFFER_MCP));
    assert_null(mcp_registry_find(&r, "redeem_voucherx", 15, MCP_OFFER_MCP));
    assert_null(mcp_registry_find(&r, "REDEEM_VOUCHER", 14, MCP_OFFER_MCP));
    /* duplicate */
    va_buf_reset(&why);
    assert_int_equal(mcp_registry_add(&r, &d, &why), VA_EINVAL);
    assert_string_equal(why.data, "name: already registered");
    va_buf_deinit(&why);
    mcp_registry_deinit(&r);
}

/* The definition is copied: the caller's strings may go away. */
static void test_copies_strings(void **state)
{
    (void)state;
    struct mcp_registry r;
    struct fake f = {0};
    char name[32] = "get_member_balance";
    char schema[sizeof(BALANCE_IN)] = BALANCE_IN;
    struct mcp_tool_def d = def_balance(&f);
    d.name = name;
    d.input_schema = schema;
    mcp_registry_init(&r, 1);
    assert_int_equal(mcp_registry_add(&r, &d, NULL), 0);
    memset(name, 'x', sizeof(name) - 1);
    memset(schema, ' ', sizeof(schema) - 1);
    assert_non_null(mcp_registry_find(&r, "get_member_balance", 18, MCP_OFFER_MODEL));
    assert_string_equal(r.tools[0].input_text, BALANCE_IN);
    mcp_registry_deinit(&r);
}

static void test_register_refusals(void **state)
{
    (void)state;
    struct fake f = {0};
    static const struct {
        const char *field;
        const char *value;
        int err;
        const char *why;
    } c[] = {
        {"name", "", VA_EINVAL, "name: 1 to 64 of A-Z a-z 0-9 _ -"},
        {"name", "has space", VA_EINVAL, "name: 1 to 64 of A-Z a-z 0-9 _ -"},
        {"name", "dotted.name", VA_EINVAL, "name: 1 to 64 of A-Z a-z 0-9 _ -"},
        {"name", "a234567890123456789012345678901234567890123456789012345678901234", 0, ""},
        {"name", "a2345678901234567890123456789012345678901234567890123456789012345", VA_EINVAL,
         "name: 1 to 64 of A-Z a-z 0-9 _ -"},
        {"description", "", VA_EINVAL, "description: required"},
        {"input", "{\"type\":\"object\"", VA_EINVAL, "input_schema: not valid JSON"},
        {"input", "{\"type\":\"object\"} x", VA_EINVAL, "input_schema: not valid JSON"},
        {"input", "{\"type\":\"string\"}", VA_EINVAL, "input_schema: type must be \"object\""},
        {"input", "{\"type\":\"object\",\"anyOf\":[]}", VA_EINVAL,
         "schema: unsupported keyword anyOf"},
        {"output", "[]", VA_EINVAL, "output_schema: type must be \"object\""},
        {"output", "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"date\"}}}", VA_EINVAL,
         "a: unknown type name"},
        {"annotations", "[1]", VA_EINVAL, "annotations: not a JSON object"},
        {"annotations", "nope", VA_EINVAL, "annotations: not a JSON object"},
        {"timeout", NULL, VA_EINVAL, "timeout_ms: must be > 0"},
        {"offer0", NULL, VA_EINVAL, "offer: MCP, model or both"},
        {"offer8", NULL, VA_EINVAL, "offer: MCP, model or both"},
        {"call", NULL, VA_EINVAL, "call: a handler is required"},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        struct mcp_registry r;
        struct va_buf why;
        struct mcp_tool_def d = def_balance(&f);
        if (strcmp(c[i].field, "name") == 0)
            d.name = c[i].value;
        else if (strcmp(c[i].field, "description") == 0)
            d.description = c[i].value;
        else if (strcmp(c[i].field, "input") == 0)
            d.input_schema = c[i].value;
        else if (strcmp(c[i].field, "output") == 0)
            d.output_schema = c[i].value;
        else if (strcmp(c[i].field, "annotations") == 0)
            d.annotations = c[i].value;
        else if (strcmp(c[i].field, "timeout") == 0)
            d.timeout_ms = 0;
        else if (strcmp(c[i].field, "offer0") == 0)
            d.offer = 0;
        else if (strcmp(c[i].field, "offer8") == 0)
            d.offer = 8;
        else if (strcmp(c[i].field, "call") == 0)
            d.call = NULL;
        mcp_registry_init(&r, 2);
        va_buf_init(&why, 256);
        assert_int_equal(mcp_registry_add(&r, &d, &why), c[i].err);
        assert_string_equal(why.data ? why.data : "", c[i].why);
        assert_int_equal(r.count, c[i].err ? 0 : 1);
        va_buf_deinit(&why);
        mcp_registry_deinit(&r);
    }
}

static void test_full(void **state)
{
    (void)state;
    struct mcp_registry r;
    struct fake f = {0};
    struct mcp_tool_def d = def_balance(&f);
    mcp_registry_init(&r, 1);
    assert_int_equal(mcp_registry_add(&r, &d, NULL), 0);
    d = def_redeem(&f);
    assert_int_equal(mcp_registry_add(&r, &d, NULL), VA_EFULL);
    mcp_registry_deinit(&r);
}

static void setup_two(struct mcp_registry *r, struct fake *f)
{
    struct mcp_tool_def d = def_balance(f);
    mcp_registry_init(r, 4);
    assert_int_equal(mcp_registry_add(r, &d, NULL), 0);
    d = def_redeem(f);
    assert_int_equal(mcp_registry_add(r, &d, NULL), 0);
}

/* The reference's section 5 tools/list result, verbatim. */
static void test_list_mcp_reference(void **state)
{
    (void)state;
    struct mcp_registry r;
    struct fake f = {0};
    struct va_buf out;
    setup_two(&r, &f);
    va_buf_init(&out, 1 << 16);
    assert_int_equal(mcp_registry_list_mcp(&r, "2025-06-18", &out), 0);
    assert_string_equal(
        out.data,
        "{\"tools\":[{\"name\":\"get_member_balance\",\"title\":\"Member "
        "balance\",\"description\":\"Current balance of a "
        "member.\",\"inputSchema\":{\"type\":\"object\",\"properties\":{\"memberId\":{\"type\":"
        "\"string\",\"description\":\"Member "
        "id\"}},\"required\":[\"memberId\"],\"additionalProperties\":false},\"annotations\":{"
        "\"readOnlyHint\":true,\"openWorldHint\":false}},{\"name\":\"redeem_voucher\",\"title\":"
        "\"Redeem voucher\",\"description\":\"Redeem a voucher code for a "
        "member.\",\"inputSchema\":{\"type\":\"object\",\"properties\":{\"code\":{\"type\":"
        "\"string\"},\"memberId\":{\"type\":\"string\"}},\"required\":[\"code\",\"memberId\"],"
        "\"additionalProperties\":false},\"annotations\":{\"readOnlyHint\":false,"
        "\"destructiveHint\":false,\"idempotentHint\":true,\"openWorldHint\":false}}]}");
    va_buf_deinit(&out);
    mcp_registry_deinit(&r);
}

/* Fields by revision: annotations from 2025-03-26, title and outputSchema from 2025-06-18. */
static void test_list_mcp_versions(void **state)
{
    (void)state;
    struct mcp_registry r;
    struct fake f = {0};
    struct mcp_tool_def d = def_balance(&f);
    struct va_buf out;
    d.output_schema = BALANCE_OUT;
    mcp_registry_init(&r, 2);
    assert_int_equal(mcp_registry_add(&r, &d, NULL), 0);
    va_buf_init(&out, 1 << 16);
    static const struct {
        const char *v;
        bool title, output, annotations;
    } c[] = {
        {"2024-11-05", false, false, false}, {"2025-03-26", false, false, true},
        {"2025-06-18", true, true, true},    {"2025-11-25", true, true, true},
        {"2026-07-28", true, true, true},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        va_buf_reset(&out);
        assert_int_equal(mcp_registry_list_mcp(&r, c[i].v, &out), 0);
        assert_int_equal(strstr(out.data, "\"title\"") != NULL, c[i].title);
        assert_int_equal(strstr(out.data, "\"outputSchema\":" BALANCE_OUT) != NULL, c[i].output);
        assert_int_equal(strstr(out.data, "\"annotations\"") != NULL, c[i].annotations);
        assert_non_null(strstr(out.data, "\"inputSchema\":" BALANCE_IN));
        cJSON *v = cJSON_Parse(out.data);
        assert_non_null(v);
        cJSON_Delete(v);
    }
    va_buf_deinit(&out);
    mcp_registry_deinit(&r);
}

static void test_list_model_and_offer(void **state)
{
    (void)state;
    struct mcp_registry r;
    struct fake f = {0};
    struct mcp_tool_def d = def_balance(&f);
    struct va_buf out;
    d.offer = MCP_OFFER_MODEL;
    mcp_registry_init(&r, 3);
    assert_int_equal(mcp_registry_add(&r, &d, NULL), 0);
    d = def_redeem(&f);
    d.offer = MCP_OFFER_MCP;
    assert_int_equal(mcp_registry_add(&r, &d, NULL), 0);
    va_buf_init(&out, 1 << 16);
    assert_int_equal(mcp_registry_list_model(&r, &out), 0);
    assert_string_equal(out.data, "[{\"type\":\"function\",\"name\":\"get_member_balance\","
                                  "\"description\":\"Current balance of a member.\","
                                  "\"parameters\":" BALANCE_IN "}]");
    va_buf_reset(&out);
    assert_int_equal(mcp_registry_list_mcp(&r, "2025-11-25", &out), 0);
    assert_null(strstr(out.data, "get_member_balance"));
    assert_non_null(strstr(out.data, "redeem_voucher"));
    assert_null(mcp_registry_find(&r, "get_member_balance", 18, MCP_OFFER_MCP));
    assert_non_null(mcp_registry_find(&r, "get_member_balance", 18, MCP_OFFER_MODEL));
    assert_null(mcp_registry_find(&r, "redeem_voucher", 14, MCP_OFFER_MODEL));
    /* nothing offered: empty lists */
    mcp_registry_deinit(&r);
    mcp_registry_init(&r, 1);
    va_buf_reset(&out);
    assert_int_equal(mcp_registry_list_model(&r, &out), 0);
    assert_string_equal(out.data, "[]");
    va_buf_reset(&out);
    assert_int_equal(mcp_registry_list_mcp(&r, "2025-11-25", &out), 0);
    assert_string_equal(out.data, "{\"tools\":[]}");
    /* bound reached */
    struct va_buf tiny;
    va_buf_init(&tiny, 4);
    assert_int_equal(mcp_registry_list_mcp(&r, "2025-11-25", &tiny), VA_ETOOBIG);
    va_buf_deinit(&tiny);
    va_buf_deinit(&out);
    mcp_registry_deinit(&r);
}

static void call_with(const struct mcp_tool *t, const char *args_json, struct seen *s,
                      const char *key)
{
    struct mcp_call_done done;
    struct mcp_call_ctx cx = {.origin = MCP_ORIGIN_MODEL, .idempotency_key = key};
    cJSON *args = args_json ? cJSON_Parse(args_json) : NULL;
    mcp_call_done_init(&done, on_done, s);
    mcp_registry_call(t, args, &cx, &done);
    assert_true(done.completed);
    cJSON_Delete(args);
}

static void test_call_validates_first(void **state)
{
    (void)state;
    struct mcp_registry r;
    struct fake f = {0};
    struct seen s = {0};
    setup_two(&r, &f);
    const struct mcp_tool *redeem = mcp_registry_find(&r, "redeem_voucher", 14, MCP_OFFER_MCP);

    call_with(redeem, "{\"memberId\":123}", &s, NULL);
    assert_int_equal(f.calls, 0);
    assert_int_equal(s.n, 1);
    assert_true(s.is_error);
    assert_string_equal(s.json, "{\"success\":false,\"error\":\"invalid_arguments\"}");
    assert_string_equal(s.text, "Invalid arguments: memberId must be a string; code is required.");

    memset(&s, 0, sizeof(s));
    call_with(redeem, NULL, &s, NULL); /* absent arguments are {} */
    assert_int_equal(f.calls, 0);
    assert_string_equal(s.text, "Invalid arguments: code is required; memberId is required.");

    memset(&s, 0, sizeof(s));
    call_with(redeem, "{\"code\":\"A\",\"memberId\":\"m\",\"extra\":1}", &s, NULL);
    assert_int_equal(f.calls, 0);
    assert_string_equal(s.text, "Invalid arguments: extra is not allowed.");

    memset(&s, 0, sizeof(s));
    call_with(redeem, "{\"code\":\"SAVE50\",\"memberId\":\"member_123\"}", &s, "call_abc");
    assert_int_equal(f.calls, 1);
    assert_int_equal(s.n, 1);
    assert_false(s.is_error);
    assert_string_equal(s.json, "{\"success\":true}");
    assert_string_equal(s.text, "");
    assert_string_equal(f.last_args, "{\"code\":\"SAVE50\",\"memberId\":\"member_123\"}");
    assert_string_equal(f.last_key, "call_abc");
    assert_int_equal(f.last_timeout, 8000);
    assert_int_equal(f.last_origin, MCP_ORIGIN_MODEL);

    struct va_buf text;
    va_buf_init(&text, 256);
    cJSON *bad = cJSON_Parse("{\"memberId\":1}");
    const struct mcp_tool *bal = mcp_registry_find(&r, "get_member_balance", 18, MCP_OFFER_MCP);
    assert_int_equal(mcp_registry_check_args(bal, bad, &text), VA_EINVAL);
    assert_string_equal(text.data, "Invalid arguments: memberId must be a string.");
    assert_int_equal(mcp_registry_check_args(bal, bad, NULL), VA_EINVAL);
    cJSON_Delete(bad);
    va_buf_deinit(&text);
    mcp_registry_deinit(&r);
}

static void test_call_handler_fails(void **state)
{
    (void)state;
    struct mcp_registry r;
    struct fake f = {.ret = -5};
    struct seen s = {0};
    struct mcp_call_done done;
    struct mcp_call_ctx cx = {.origin = MCP_ORIGIN_MCP};
    cJSON *args = cJSON_Parse("{\"memberId\":\"m\"}");
    setup_two(&r, &f);
    mcp_call_done_init(&done, on_done, &s);
    assert_int_equal(mcp_registry_call(&r.tools[0], args, &cx, &done), -5);
    assert_int_equal(s.n, 1);
    assert_true(s.is_error);
    assert_string_equal(s.json, MCP_RESULT_INTERNAL_JSON);
    assert_string_equal(s.text, MCP_RESULT_INTERNAL_TEXT);
    cJSON_Delete(args);
    mcp_registry_deinit(&r);
}

/* Asynchronous completion, and a timeout handled by the caller: the handler still
 * completes exactly once and on_done sees the call abandoned. */
static void test_call_async_and_abandoned(void **state)
{
    (void)state;
    struct mcp_registry r;
    struct fake f = {.hold = true};
    struct seen s = {0};
    struct mcp_call_done done;
    struct mcp_call_ctx cx = {.origin = MCP_ORIGIN_MCP};
    cJSON *args = cJSON_Parse("{\"memberId\":\"m\"}");
    setup_two(&r, &f);
    mcp_call_done_init(&done, on_done, &s);
    assert_int_equal(mcp_registry_call(&r.tools[0], args, &cx, &done), 0);
    cJSON_Delete(args); /* handlers borrow args only during call() */
    assert_int_equal(s.n, 0);
    assert_false(done.completed);
    assert_ptr_equal(f.held, &done);
    assert_int_equal(f.last_timeout, 5000);
    static const char res[] = "{\"success\":true,\"memberId\":\"m\",\"balance\":1,\"currency\":"
                              "\"RWF\"}";
    mcp_call_complete(f.held, res, sizeof(res) - 1, false);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.json, res);
    assert_false(s.abandoned);

    /* timeout: the caller abandons and asks the tool to hurry */
    memset(&s, 0, sizeof(s));
    args = cJSON_Parse("{\"memberId\":\"m\"}");
    mcp_call_done_init(&done, on_done, &s);
    assert_int_equal(mcp_registry_call(&r.tools[0], args, &cx, &done), 0);
    cJSON_Delete(args);
    done.abandoned = true;
    r.tools[0].def.cancel(r.tools[0].def.tool_ud, &done);
    assert_int_equal(cancels, 1);
    static const char late[] = "{\"success\":false,\"error\":\"aborted\"}";
    mcp_call_complete_text(f.held, late, sizeof(late) - 1, true, "Aborted.", 8);
    assert_int_equal(s.n, 1);
    assert_true(s.abandoned);
    assert_string_equal(s.text, "Aborted.");
    mcp_registry_deinit(&r);
}

static void test_call_json(void **state)
{
    (void)state;
    struct mcp_registry r;
    struct fake f = {0};
    struct seen s = {0};
    struct mcp_call_done done;
    struct mcp_call_ctx cx = {.origin = MCP_ORIGIN_MODEL, .idempotency_key = "call_1"};
    setup_two(&r, &f);
    static const char good[] = "{\"memberId\":\"member_123\"}";
    mcp_call_done_init(&done, on_done, &s);
    assert_int_equal(mcp_registry_call_json(&r.tools[0], good, sizeof(good) - 1, &cx, &done), 0);
    assert_int_equal(f.calls, 1);
    assert_int_equal(s.n, 1);
    assert_false(s.is_error);

    static const char bad[] = "{\"memberId\":";
    memset(&s, 0, sizeof(s));
    mcp_call_done_init(&done, on_done, &s);
    assert_int_equal(mcp_registry_call_json(&r.tools[0], bad, sizeof(bad) - 1, &cx, &done), 0);
    assert_int_equal(f.calls, 1);
    assert_int_equal(s.n, 1);
    assert_true(s.is_error);
    assert_string_equal(s.json, MCP_RESULT_INVALID_ARGS_JSON);
    assert_string_equal(s.text, "Invalid arguments: not valid JSON.");

    /* a JSON value that is not an object */
    memset(&s, 0, sizeof(s));
    mcp_call_done_init(&done, on_done, &s);
    assert_int_equal(mcp_registry_call_json(&r.tools[0], "[]", 2, &cx, &done), 0);
    assert_int_equal(f.calls, 1);
    assert_string_equal(s.text, "Invalid arguments: value must be an object.");
    mcp_registry_deinit(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_and_find),
        cmocka_unit_test(test_copies_strings),
        cmocka_unit_test(test_register_refusals),
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_list_mcp_reference),
        cmocka_unit_test(test_list_mcp_versions),
        cmocka_unit_test(test_list_model_and_offer),
        cmocka_unit_test(test_call_validates_first),
        cmocka_unit_test(test_call_handler_fails),
        cmocka_unit_test(test_call_async_and_abandoned),
        cmocka_unit_test(test_call_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
