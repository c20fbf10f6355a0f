/* tests/unit/test_http_form.c: application/x-www-form-urlencoded decoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"
#include "http/form.h"

#define LIT(s) s, sizeof(s) - 1

static void check_pair(const struct va_form *f, size_t i, const char *name, size_t name_len,
                       const char *value, size_t value_len)
{
    assert_true(i < f->len);
    const struct va_form_pair *p = &f->pairs[i];
    assert_int_equal(p->name_len, name_len);
    assert_memory_equal(p->name, name, name_len);
    assert_int_equal(p->name[name_len], '\0');
    assert_int_equal(p->value_len, value_len);
    assert_memory_equal(p->value, value, value_len);
    assert_int_equal(p->value[value_len], '\0');
}

/* One body, one expected list of decoded pairs. */
struct form_case {
    const char *body;
    size_t body_len;
    size_t n;
    struct {
        const char *name;
        size_t name_len;
        const char *value;
        size_t value_len;
    } pairs[5];
};

#define P(n, v)                                                                                    \
    {                                                                                              \
        LIT(n), LIT(v)                                                                             \
    }

static const struct form_case form_cases[] = {
    {LIT(""), 0, {{0}}},
    {LIT("a=1"), 1, {P("a", "1")}},
    {LIT("a=1&b=2"), 2, {P("a", "1"), P("b", "2")}},
    /* '+' is a space, %2B is a plus: Twilio sends From=%2B15551230000. */
    {LIT("From=%2B15551230000&Body=hello+world"),
     2,
     {P("From", "+15551230000"), P("Body", "hello world")}},
    {LIT("x=%2b%2B+%20"), 1, {P("x", "++  ")}},
    /* Malformed escapes stay literal, byte for byte. */
    {LIT("a=%&b=%4&c=%zz&d=%4g&e=100%"),
     5,
     {P("a", "%"), P("b", "%4"), P("c", "%zz"), P("d", "%4g"), P("e", "100%")}},
    {LIT("a=%%41"), 1, {P("a", "%A")}},
    {LIT("%=%"), 1, {P("%", "%")}},
    /* Empty segments are skipped; a lone '=' is a pair with empty name and value. */
    {LIT("&&a=1&&&b=2&"), 2, {P("a", "1"), P("b", "2")}},
    {LIT("&"), 0, {{0}}},
    {LIT("="), 1, {P("", "")}},
    {LIT("=v"), 1, {P("", "v")}},
    /* No '=' gives an empty value; an empty value stays a pair. */
    {LIT("flag&k="), 2, {P("flag", ""), P("k", "")}},
    /* Only the first '=' splits; later ones belong to the value. */
    {LIT("a=b=c&d==="), 2, {P("a", "b=c"), P("d", "==")}},
    /* An encoded '=' or '&' does not split. */
    {LIT("a%3Db=c%26d"), 1, {P("a=b", "c&d")}},
    /* Whitespace is kept as is: the signature covers it. */
    {LIT("a=+x+&b=%09"), 2, {P("a", " x "), P("b", "\t")}},
    /* UTF-8 decoded to bytes. */
    {LIT("name=Jos%C3%A9+%E6%97%A5"), 1, {P("name", "Jos\xc3\xa9 \xe6\x97\xa5")}},
    /* Repeated names are kept in order. */
    {LIT("Digits=5678&Digits=1234&Digits=1234"),
     3,
     {P("Digits", "5678"), P("Digits", "1234"), P("Digits", "1234")}},
};

static void test_table(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof(form_cases) / sizeof(form_cases[0]); c++) {
        const struct form_case *fc = &form_cases[c];
        struct va_form f;
        print_message("case %zu: %s\n", c, fc->body);
        assert_int_equal(va_form_parse(&f, fc->body, fc->body_len, 16), 0);
        assert_int_equal(f.len, fc->n);
        for (size_t i = 0; i < fc->n; i++)
            check_pair(&f, i, fc->pairs[i].name, fc->pairs[i].name_len, fc->pairs[i].value,
                       fc->pairs[i].value_len);
        va_form_deinit(&f);
    }
}

static void test_nul_bytes(void **state)
{
    (void)state;
    struct va_form f;
    /* %00 decodes to a NUL inside the value; a raw NUL byte is data too. */
    static const char body[] = "a=x%00y&b\0c=d\0";
    assert_int_equal(va_form_parse(&f, body, sizeof(body) - 1, 8), 0);
    assert_int_equal(f.len, 2);
    check_pair(&f, 0, LIT("a"), LIT("x\0y"));
    check_pair(&f, 1, LIT("b\0c"), LIT("d\0"));
    assert_null(va_form_get(&f, "b"));
    va_form_deinit(&f);

    assert_int_equal(va_form_parse(&f, LIT("%00=%00%00"), 8), 0);
    assert_int_equal(f.len, 1);
    check_pair(&f, 0, LIT("\0"), LIT("\0\0"));
    va_form_deinit(&f);
}

static void test_escape_at_every_end(void **state)
{
    (void)state;
    /* The body cut at every length: an escape cut short stays literal, and nothing
     * reads past len (ASan watches the heap copy). */
    static const char full[] = "k=%41%4";
    static const char *const want[] = {"", "", "", "%", "%4", "A", "A%", "A%4"};
    for (size_t len = 0; len <= sizeof(full) - 1; len++) {
        char *body = malloc(len ? len : 1);
        memcpy(body, full, len);
        struct va_form f;
        assert_int_equal(va_form_parse(&f, body, len, 4), 0);
        if (len == 0) {
            assert_int_equal(f.len, 0);
        } else {
            assert_int_equal(f.len, 1);
            check_pair(&f, 0, LIT("k"), want[len], strlen(want[len]));
        }
        va_form_deinit(&f);
        free(body);
    }
}

static void test_max_pairs(void **state)
{
    (void)state;
    struct va_form f;
    assert_int_equal(va_form_parse(&f, LIT("a=1&b=2&c=3"), 3), 0);
    assert_int_equal(f.len, 3);
    va_form_deinit(&f);

    /* Empty segments do not count towards the bound. */
    assert_int_equal(va_form_parse(&f, LIT("&&a=1&&b=2&&c=3&&"), 3), 0);
    assert_int_equal(f.len, 3);
    va_form_deinit(&f);

    assert_int_equal(va_form_parse(&f, LIT("a=1&b=2&c=3&d"), 3), VA_ETOOBIG);
    assert_int_equal(f.len, 0);
    assert_null(f.pairs);
    assert_null(f.arena);
    va_form_deinit(&f);

    assert_int_equal(va_form_parse(&f, LIT("a"), 0), VA_ETOOBIG);
    assert_int_equal(f.len, 0);
    assert_int_equal(va_form_parse(&f, LIT("&&"), 0), 0);
    assert_int_equal(f.len, 0);
    va_form_deinit(&f);
}

static void test_get(void **state)
{
    (void)state;
    struct va_form f;
    assert_int_equal(
        va_form_parse(&f, LIT("CallSid=CA1&CallSid=CA2&Call=x&callsid=y&CallStatus=ringing"), 8),
        0);
    const struct va_form_pair *p = va_form_get(&f, "CallSid");
    assert_non_null(p);
    assert_string_equal(p->value, "CA1"); /* the first one */
    p = va_form_get(&f, "Call");
    assert_non_null(p);
    assert_string_equal(p->value, "x");
    assert_null(va_form_get(&f, "Cal"));
    assert_null(va_form_get(&f, "CALLSID"));
    assert_null(va_form_get(&f, "CallStatusX"));
    assert_string_equal(va_form_get(&f, "callsid")->value, "y");
    va_form_deinit(&f);
    va_form_deinit(&f); /* twice is safe */
    assert_null(va_form_get(&f, "CallSid"));
}

static void test_body_not_kept(void **state)
{
    (void)state;
    /* The form owns its strings: the body may go away. */
    char *body = strdup("To=%2B15559870000&From=%2B15551230000");
    struct va_form f;
    assert_int_equal(va_form_parse(&f, body, strlen(body), 8), 0);
    memset(body, 'x', strlen(body));
    free(body);
    assert_string_equal(va_form_get(&f, "To")->value, "+15559870000");
    assert_string_equal(va_form_get(&f, "From")->value, "+15551230000");
    va_form_deinit(&f);
}

static void test_large(void **state)
{
    (void)state;
    /* A 64 KiB body (the default limit): 4096 pairs "%41%42=%43%44%4" joined by '&',
     * each value ending in an escape cut short by the separator or the end. */
    size_t n = 4096;
    size_t len = n * 16 - 1;
    char *body = malloc(len);
    for (size_t i = 0; i < n; i++) {
        memcpy(body + i * 16, "%41%42=%43%44%4", 15);
        if (i + 1 < n)
            body[i * 16 + 15] = '&';
    }
    struct va_form f;
    assert_int_equal(va_form_parse(&f, body, len, n - 1), VA_ETOOBIG);
    assert_int_equal(va_form_parse(&f, body, len, n), 0);
    assert_int_equal(f.len, n);
    check_pair(&f, 0, LIT("AB"), LIT("CD%4"));
    check_pair(&f, n - 1, LIT("AB"), LIT("CD%4"));
    va_form_deinit(&f);
    free(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_nul_bytes),
        cmocka_unit_test(test_escape_at_every_end),
        cmocka_unit_test(test_max_pairs),
        cmocka_unit_test(test_get),
        cmocka_unit_test(test_body_not_kept),
        cmocka_unit_test(test_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
