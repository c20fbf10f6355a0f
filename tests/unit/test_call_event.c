/* tests/unit/test_call_event.c: call events as built match the schema in the repo (the
 * one the Edge Function validates with), and the schema refuses what it should. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "call/event.h"
#include "core/buf.h"
#include "core/err.h"
#include "mcp/schema.h"

static cJSON *schema_load(void)
{
    cJSON *s = cJSON_Parse(call_event_schema_json);
    assert_non_null(s);
    struct va_buf why;
    va_buf_init(&why, 1024);
    int err = mcp_schema_check(s, &why);
    if (err)
        fail_msg("schema uses keywords our validator lacks: %s", why.data);
    va_buf_deinit(&why);
    return s;
}

static void expect_valid(const cJSON *schema, const char *json, size_t len)
{
    struct va_buf why;
    va_buf_init(&why, 4096);
    if (call_event_validate(schema, json, len, &why))
        fail_msg("event refused: %s\n%.*s", why.data, (int)len, json);
    va_buf_deinit(&why);
}

static void expect_invalid(const cJSON *schema, const char *json, const char *needle)
{
    struct va_buf why;
    va_buf_init(&why, 4096);
    assert_int_equal(call_event_validate(schema, json, strlen(json), &why), VA_EINVAL);
    if (!strstr(why.data, needle))
        fail_msg("expected \"%s\" in \"%s\"", needle, why.data);
    va_buf_deinit(&why);
}

static void test_id_and_time(void **state)
{
    (void)state;
    char a[CALL_EVENT_ID_LEN + 1], b[CALL_EVENT_ID_LEN + 1];
    call_event_new_id(a);
    call_event_new_id(b);
    assert_int_equal(strlen(a), 36);
    assert_string_not_equal(a, b);
    assert_int_equal(a[14], '4'); /* version */
    assert_true(strchr("89ab", a[19]) != NULL);
    char t[32];
    call_event_time(1795622400123ULL, t);
    assert_string_equal(t, "2026-11-25T16:00:00.123Z");
}

static void test_full_call(void **state)
{
    (void)state;
    cJSON *schema = schema_load();
    struct call_event_turn turns[] = {
        {.role = "agent", .text = "Hello, how can I help?", .len = 22, .at_ms = 300},
        {.role = "caller", .text = "My \"balance\",\nplease", .len = 20, .at_ms = 2100},
        {.role = "dtmf", .text = "5", .len = 1, .at_ms = 2500},
        {.role = "agent", .text = "Your balance is", .len = 15, .at_ms = 4000, .interrupted = true},
    };
    static const char result[] =
        "{\"success\":true,\"memberId\":\"member_123\",\"balance\":1500,\"currency\":\"RWF\"}";
    struct call_event_tool tools[] = {
        {.name = "get_member_balance",
         .call_id = "call_1",
         .outcome = "success",
         .latency_ms = 42,
         .at_ms = 3000,
         .result = result,
         .result_len = sizeof(result) - 1},
        {.name = "redeem_voucher", .outcome = "cancelled"},
    };
    struct call_event_audio audio = {.frames_in = 500, .frames_out = 400, .barge_ins = 1};
    struct call_event e = {
        .type = "call.ended",
        .seq = 3,
        .now_ms = 1795622410000ULL,
        .call_sid = "CA0123456789abcdef0123456789abcdef",
        .stream_sid = "MZ0123456789abcdef0123456789abcdef",
        .from = "+250788000000",
        .to = "+15005550006",
        .status = "completed",
        .reason = "stop",
        .started_ms = 1795622400000ULL,
        .ended_ms = 1795622410000ULL,
        .duration_s = 10,
        .intent = "balance_inquiry",
        .intent_source = "model",
        .turns = turns,
        .nturns = 4,
        .tools = tools,
        .ntools = 2,
        .audio = &audio,
        .tw_duration = -1,
    };
    struct va_buf out;
    va_buf_init(&out, CALL_EVENT_MAX_BYTES);
    assert_int_equal(call_event_build(&e, "0b7e4c1a-2f1d-4c3b-9a8e-1234567890ab", &out), 0);
    expect_valid(schema, out.data, out.len);
    cJSON *v = cJSON_ParseWithLength(out.data, out.len);
    assert_non_null(v);
    const cJSON *call = cJSON_GetObjectItem(v, "call");
    assert_string_equal(cJSON_GetObjectItem(call, "started_at")->valuestring,
                        "2026-11-25T16:00:00.000Z");
    const cJSON *tr = cJSON_GetObjectItem(call, "transcript");
    assert_int_equal(cJSON_GetArraySize(tr), 4);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(tr, 1), "text")->valuestring,
                        "My \"balance\",\nplease");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(tr, 3), "interrupted")));
    const cJSON *t0 = cJSON_GetArrayItem(cJSON_GetObjectItem(call, "tool_calls"), 0);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(t0, "result"), "balance")->valueint,
                     1500);
    cJSON_Delete(v);
    va_buf_deinit(&out);
    cJSON_Delete(schema);
}

/* The two shapes built outside a call: a rejected call and Twilio's status callback. */
static void test_rejected_and_status(void **state)
{
    (void)state;
    cJSON *schema = schema_load();
    struct va_buf out;
    va_buf_init(&out, CALL_EVENT_MAX_BYTES);
    struct call_event rej = {.type = "call.ended",
                             .now_ms = 1795622400000ULL,
                             .call_sid = "CA1",
                             .from = "",
                             .to = "",
                             .status = "rejected",
                             .reason = "draining",
                             .started_ms = 1795622400000ULL,
                             .ended_ms = 1795622400000ULL,
                             .intent = "unknown",
                             .intent_source = "none",
                             .tw_duration = -1};
    assert_int_equal(call_event_build(&rej, "0b7e4c1a-2f1d-4c3b-9a8e-1234567890ab", &out), 0);
    expect_valid(schema, out.data, out.len);
    va_buf_reset(&out);
    struct call_event st = {.type = "call.status",
                            .now_ms = 1795622400000ULL,
                            .call_sid = "CA1",
                            .from = "+1",
                            .to = "+2",
                            .status = "completed",
                            .duration_s = -1,
                            .tw_status = "completed",
                            .tw_duration = 42,
                            .tw_timestamp = "Tue, 24 Nov 2026 16:00:00 +0000"};
    assert_int_equal(call_event_build(&st, "1b7e4c1a-2f1d-4c3b-9a8e-1234567890ab", &out), 0);
    expect_valid(schema, out.data, out.len);
    assert_non_null(strstr(out.data, "\"twilio\":{\"call_status\":\"completed\",\"duration\":42"));
    va_buf_deinit(&out);
    cJSON_Delete(schema);
}

static void test_schema_refuses(void **state)
{
    (void)state;
    cJSON *schema = schema_load();
    static const char base[] = "{\"id\":\"0b7e4c1a-2f1d-4c3b-9a8e-1234567890ab\",\"type\":"
                               "\"call.ended\",\"version\":1,\"seq\":0,\"occurred_at\":"
                               "\"2026-11-24T16:00:00.000Z\",\"call\":{\"call_sid\":\"CA1\","
                               "\"from\":\"\",\"to\":\"\",\"status\":\"completed\"%s}}";
    char buf[1024];
    snprintf(buf, sizeof(buf), base, "");
    expect_valid(schema, buf, strlen(buf));
    snprintf(buf, sizeof(buf), base, ",\"extra\":1");
    expect_invalid(schema, buf, "call.extra");
    snprintf(buf, sizeof(buf), base, ",\"duration\":-1");
    expect_invalid(schema, buf, "call.duration");
    snprintf(buf, sizeof(buf), base,
             ",\"transcript\":[{\"role\":\"robot\",\"text\":\"x\",\"at_ms\":0}]");
    expect_invalid(schema, buf, "role");
    expect_invalid(schema, "{\"id\":\"x\"}", "id");
    expect_invalid(schema, "not json", "not valid JSON");
    cJSON_Delete(schema);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_id_and_time),
        cmocka_unit_test(test_full_call),
        cmocka_unit_test(test_rejected_and_status),
        cmocka_unit_test(test_schema_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
