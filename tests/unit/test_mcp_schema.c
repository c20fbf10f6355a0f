/* tests/unit/test_mcp_schema.c: the JSON Schema subset, errors naming the field. */
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
#include "mcp/schema.h"

static const char schema_all[] =
    "{\"type\":\"object\",\"properties\":{"
    "\"code\":{\"type\":\"string\",\"minLength\":3,\"maxLength\":8,\"pattern\":\"^[A-Z0-9]+$\"},"
    "\"memberId\":{\"type\":\"string\",\"description\":\"Member id\"},"
    "\"amount\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":100},"
    "\"ratio\":{\"type\":\"number\",\"minimum\":-0.5,\"maximum\":2.5},"
    "\"kind\":{\"enum\":[\"a\",\"b\",{\"x\":1}]},"
    "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"
    "\"opt\":{\"type\":[\"string\",\"null\"]},"
    "\"flag\":{\"type\":\"boolean\"},"
    "\"obj\":{\"type\":\"object\"},"
    "\"list\":{\"type\":\"array\"},"
    "\"nothing\":{\"type\":\"null\"},"
    "\"nested\":{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"integer\"}},"
    "\"required\":[\"x\"],\"additionalProperties\":false}"
    "},\"required\":[\"memberId\"],\"additionalProperties\":false}";

/* Validates value against schema; returns the short and sentence renderings. */
static int run(const char *schema_text, const char *value_text, char *shrt, char *sentence,
               size_t cap)
{
    cJSON *schema = cJSON_Parse(schema_text);
    cJSON *value = cJSON_Parse(value_text);
    struct mcp_schema_report rep;
    struct va_buf b;
    int err;
    assert_non_null(schema);
    assert_non_null(value);
    assert_int_equal(mcp_schema_check(schema, NULL), 0);
    err = mcp_schema_validate(schema, value, &rep);
    va_buf_init(&b, 4096);
    assert_int_equal(mcp_schema_format(&rep, MCP_SCHEMA_STYLE_SHORT, &b), 0);
    snprintf(shrt, cap, "%s", b.data ? b.data : "");
    va_buf_reset(&b);
    assert_int_equal(mcp_schema_format(&rep, MCP_SCHEMA_STYLE_SENTENCE, &b), 0);
    snprintf(sentence, cap, "%s", b.data ? b.data : "");
    va_buf_deinit(&b);
    cJSON_Delete(schema);
    cJSON_Delete(value);
    return err;
}

struct schema_case {
    const char *value;
    const char *shrt;     /* "" when valid */
    const char *sentence; /* NULL: not checked */
};

static const struct schema_case cases[] = {
    {"{\"memberId\":\"m\"}", "", ""},
    {"{}", "memberId: missing", "memberId is required"},
    {"{\"memberId\":\"m\",\"code\":123}", "code: expected string, got number",
     "code must be a string"},
    {"{\"memberId\":\"m\",\"extra\":1}", "extra: unexpected field", "extra is not allowed"},
    {"{\"memberId\":\"m\",\"code\":\"AB\"}", "code: shorter than 3 characters",
     "code must be at least 3 characters long"},
    /* lengths count code points: 3 two-byte characters are 3, not 6 */
    {"{\"memberId\":\"m\",\"code\":\"\xc3\xa9\xc3\xa9\xc3\xa9\"}", "", ""},
    {"{\"memberId\":\"m\",\"code\":\"\xc3\xa9\xc3\xa9\"}", "code: shorter than 3 characters", NULL},
    /* 8 four-byte characters (32 bytes) fit maxLength 8; 9 do not */
    {"{\"memberId\":\"m\",\"code\":\"\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98"
     "\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\"}",
     "", ""},
    {"{\"memberId\":\"m\",\"code\":\"ABCDEFGHI\"}", "code: longer than 8 characters",
     "code must be at most 8 characters long"},
    /* pattern is documentation only (no regex engine) */
    {"{\"memberId\":\"m\",\"code\":\"lower\"}", "", ""},
    {"{\"memberId\":\"m\",\"amount\":0}", "amount: below minimum 1", "amount must be at least 1"},
    {"{\"memberId\":\"m\",\"amount\":101}", "amount: above maximum 100",
     "amount must be at most 100"},
    {"{\"memberId\":\"m\",\"amount\":1.5}", "amount: expected integer, got number",
     "amount must be an integer"},
    {"{\"memberId\":\"m\",\"amount\":5.0}", "", ""},
    {"{\"memberId\":\"m\",\"amount\":\"5\"}", "amount: expected integer, got string", NULL},
    {"{\"memberId\":\"m\",\"ratio\":1}", "", ""},
    {"{\"memberId\":\"m\",\"ratio\":-0.75}", "ratio: below minimum -0.5", NULL},
    {"{\"memberId\":\"m\",\"ratio\":2.75}", "ratio: above maximum 2.5", NULL},
    {"{\"memberId\":\"m\",\"kind\":\"b\"}", "", ""},
    {"{\"memberId\":\"m\",\"kind\":{\"x\":1}}", "", ""},
    {"{\"memberId\":\"m\",\"kind\":\"c\"}", "kind: not one of the allowed values",
     "kind must be one of the allowed values"},
    {"{\"memberId\":\"m\",\"tags\":[\"a\",\"b\"]}", "", ""},
    {"{\"memberId\":\"m\",\"tags\":[\"a\",2,\"c\",false]}",
     "tags[1]: expected string, got number; tags[3]: expected string, got boolean", NULL},
    {"{\"memberId\":\"m\",\"tags\":\"a\"}", "tags: expected array, got string",
     "tags must be an array"},
    {"{\"memberId\":\"m\",\"opt\":null}", "", ""},
    {"{\"memberId\":\"m\",\"opt\":1}", "opt: expected string or null, got number",
     "opt must be a string or null"},
    {"{\"memberId\":\"m\",\"flag\":\"true\"}", "flag: expected boolean, got string",
     "flag must be a boolean"},
    {"{\"memberId\":\"m\",\"obj\":[]}", "obj: expected object, got array", "obj must be an object"},
    {"{\"memberId\":\"m\",\"list\":{}}", "list: expected array, got object", NULL},
    {"{\"memberId\":\"m\",\"nothing\":0}", "nothing: expected null, got number",
     "nothing must be null"},
    {"{\"memberId\":\"m\",\"nested\":{}}", "nested.x: missing", "nested.x is required"},
    {"{\"memberId\":\"m\",\"nested\":{\"x\":1,\"y\":2}}", "nested.y: unexpected field", NULL},
    {"\"member\"", "value: expected object, got string", "value must be an object"},
    {"null", "value: expected object, got null", NULL},
    /* document order: members as they come, then missing required fields */
    {"{\"extra\":true,\"code\":1}",
     "extra: unexpected field; code: expected string, got number; memberId: missing", NULL},
};

static void test_table(void **state)
{
    (void)state;
    char shrt[512], sentence[512];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int err = run(schema_all, cases[i].value, shrt, sentence, sizeof(shrt));
        if (strcmp(shrt, cases[i].shrt) != 0)
            fail_msg("case %zu %s: got \"%s\", want \"%s\"", i, cases[i].value, shrt,
                     cases[i].shrt);
        assert_int_equal(err, cases[i].shrt[0] ? VA_EINVAL : 0);
        if (cases[i].sentence)
            assert_string_equal(sentence, cases[i].sentence);
    }
}

/* The reference's exchange id 7: the order and wording of its sentence. */
static void test_reference_sentence(void **state)
{
    (void)state;
    static const char redeem[] =
        "{\"type\":\"object\",\"properties\":{\"code\":{\"type\":\"string\"},\"memberId\":{"
        "\"type\":\"string\"}},\"required\":[\"code\",\"memberId\"],\"additionalProperties\":"
        "false}";
    char shrt[256], sentence[256];
    assert_int_equal(run(redeem, "{\"memberId\":123}", shrt, sentence, sizeof(shrt)), VA_EINVAL);
    assert_string_equal(sentence, "memberId must be a string; code is required");
    assert_string_equal(shrt, "memberId: expected string, got number; code: missing");
}

static void test_error_bound(void **state)
{
    (void)state;
    static const char s[] = "{\"type\":\"object\",\"additionalProperties\":false}";
    char shrt[1024], sentence[1024];
    assert_int_equal(run(s,
                         "{\"a\":1,\"b\":1,\"c\":1,\"d\":1,\"e\":1,\"f\":1,\"g\":1,\"h\":1,"
                         "\"i\":1,\"j\":1}",
                         shrt, sentence, sizeof(shrt)),
                     VA_EINVAL);
    assert_string_equal(shrt, "a: unexpected field; b: unexpected field; c: unexpected field; "
                              "d: unexpected field; e: unexpected field; f: unexpected field; "
                              "g: unexpected field; h: unexpected field; and 2 more");
}

static void test_long_path_cut(void **state)
{
    (void)state;
    char name[201], value[300];
    char shrt[512], sentence[512];
    memset(name, 'n', 200);
    name[200] = '\0';
    snprintf(value, sizeof(value), "{\"%s\":1}", name);
    assert_int_equal(run("{\"type\":\"object\",\"additionalProperties\":false}", value, shrt,
                         sentence, sizeof(shrt)),
                     VA_EINVAL);
    assert_int_equal(strlen(shrt), MCP_SCHEMA_PATH_MAX - 1 + strlen(": unexpected field"));
    assert_non_null(strstr(shrt, "...: unexpected field"));
}

static void test_check(void **state)
{
    (void)state;
    static const struct {
        const char *schema;
        int err;
        const char *why;
    } c[] = {
        {schema_all, 0, ""},
        {"{}", 0, ""},
        {"[]", VA_EINVAL, "schema: a schema must be an object"},
        {"{\"type\":\"text\"}", VA_EINVAL, "schema: unknown type name"},
        {"{\"type\":[]}", VA_EINVAL, "schema: type must be a name or an array of names"},
        {"{\"type\":[\"string\",1]}", VA_EINVAL, "schema: unknown type name"},
        {"{\"oneOf\":[]}", VA_EINVAL, "schema: unsupported keyword oneOf"},
        {"{\"properties\":{\"a\":{\"$ref\":\"#\"}}}", VA_EINVAL, "a: unsupported keyword $ref"},
        {"{\"properties\":{\"a\":{\"items\":{\"type\":1}}}}", VA_EINVAL,
         "a[]: type must be a name or an array of names"},
        {"{\"additionalProperties\":{}}", VA_EINVAL,
         "schema: additionalProperties must be a boolean"},
        {"{\"minLength\":-1}", VA_EINVAL, "schema: minLength/maxLength must be whole and >= 0"},
        {"{\"maxLength\":1.5}", VA_EINVAL, "schema: minLength/maxLength must be whole and >= 0"},
        {"{\"minimum\":\"1\"}", VA_EINVAL, "schema: minimum/maximum must be numbers"},
        {"{\"enum\":[]}", VA_EINVAL, "schema: enum must be a non-empty array"},
        {"{\"required\":[1]}", VA_EINVAL, "schema: required must be an array of names"},
        {"{\"properties\":[]}", VA_EINVAL, "schema: properties must be an object"},
        {"{\"pattern\":1}", VA_EINVAL, "schema: pattern must be a string"},
        {"{\"title\":\"t\",\"description\":\"d\",\"default\":1,\"examples\":[],\"format\":"
         "\"uuid\",\"$schema\":\"x\",\"$id\":\"y\",\"$comment\":\"z\"}",
         0, ""},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        cJSON *s = cJSON_Parse(c[i].schema);
        struct va_buf why;
        assert_non_null(s);
        va_buf_init(&why, 256);
        assert_int_equal(mcp_schema_check(s, &why), c[i].err);
        assert_string_equal(why.data ? why.data : "", c[i].why);
        va_buf_deinit(&why);
        cJSON_Delete(s);
    }
}

static void test_check_depth(void **state)
{
    (void)state;
    struct va_buf b;
    cJSON *s;
    va_buf_init(&b, 4096);
    for (int i = 0; i < 40; i++)
        va_buf_append_str(&b, "{\"items\":");
    va_buf_append_str(&b, "{}");
    for (int i = 0; i < 40; i++)
        va_buf_append_char(&b, '}');
    s = cJSON_Parse(b.data);
    assert_non_null(s);
    assert_int_equal(mcp_schema_check(s, NULL), VA_EINVAL);
    cJSON_Delete(s);
    va_buf_deinit(&b);
}

static void test_type_of(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        unsigned t;
    } c[] = {
        {"null", MCP_T_NULL},   {"true", MCP_T_BOOLEAN}, {"{}", MCP_T_OBJECT},
        {"[]", MCP_T_ARRAY},    {"1", MCP_T_INTEGER},    {"1.0", MCP_T_INTEGER},
        {"1.25", MCP_T_NUMBER}, {"\"s\"", MCP_T_STRING}, {"-3e2", MCP_T_INTEGER},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        cJSON *v = cJSON_Parse(c[i].json);
        assert_int_equal(mcp_schema_type_of(v), c[i].t);
        cJSON_Delete(v);
    }
    assert_string_equal(mcp_schema_type_name(MCP_T_INTEGER), "integer");
    assert_string_equal(mcp_schema_type_name(0), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),       cmocka_unit_test(test_reference_sentence),
        cmocka_unit_test(test_error_bound), cmocka_unit_test(test_long_path_cut),
        cmocka_unit_test(test_check),       cmocka_unit_test(test_check_depth),
        cmocka_unit_test(test_type_of),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
