/* tests/unit/test_core_json.c: va_json_flat(), the in-place reader of flat objects
 * (va_json_str() is tested through the logger, test_core_log.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/json.h"

static const char *const KEYS[] = {"a", "b"};

/* va_json_flat() on s with keys a, b and a sub object "m" with key a. */
static bool flat(const char *s, struct va_json_span v[2], struct va_json_span *m)
{
    memset(v, 0, 2 * sizeof(*v));
    memset(m, 0, sizeof(*m));
    struct va_json_flat sub = {KEYS, m, 1, NULL, NULL, false};
    struct va_json_flat f = {KEYS, v, 2, "m", &sub, false};
    return va_json_flat(s, strlen(s), &f);
}

static void test_accepted(void **state)
{
    (void)state;
    struct va_json_span v[2], m;
    assert_true(flat("{}", v, &m));
    assert_false(v[0].set || v[1].set || m.set);
    assert_true(flat("{\"a\":\"x y\",\"z\":0,\"b\":120,\"m\":{\"a\":\"\"},\"q\":\"\"}", v, &m));
    assert_true(va_json_span_is(&v[0], "x y"));
    assert_true(v[1].set && v[1].num && v[1].n == 3 && memcmp(v[1].p, "120", 3) == 0);
    assert_false(va_json_span_is(&v[1], "120")); /* a number is not the string */
    assert_true(m.set && !m.num && m.n == 0);
    /* raw UTF-8 bytes pass as cJSON passes them */
    assert_true(flat("{\"a\":\"\xc3\xa9\"}", v, &m));
    assert_int_equal(v[0].n, 2);
    assert_true(flat("{\"b\":0}", v, &m));
    assert_true(flat("{\"b\":999999999999999}", v, &m));
}

/* Not the shape: the caller goes the cJSON way. */
static void test_declined(void **state)
{
    (void)state;
    struct va_json_span v[2], m;
    static const char *const no[] = {
        "",
        "{",
        "{\"a\":\"x\"",
        "{\"a\":\"x\"} ", /* after the value */
        " {\"a\":\"x\"}", /* before it */
        "{ \"a\":\"x\"}", /* whitespace inside */
        "{\"a\": \"x\"}",
        "{\"a\":\"x\",}",
        "{\"a\":\"x\"}{}",
        "{\"a\":\"x\\\"y\"}",        /* an escape */
        "{\"a\":\"x\ny\"}",          /* a control byte */
        "{\"a\":\"x\",\"a\":\"y\"}", /* a key taken twice */
        "{\"m\":{},\"m\":{}}",       /* the sub object twice */
        "{\"m\":{\"m\":{}}}",        /* deeper */
        "{\"z\":{}}",                /* an object elsewhere */
        "{\"z\":[]}",
        "{\"z\":null}",
        "{\"z\":true}",
        "{\"b\":-1}",
        "{\"b\":1.5}",
        "{\"b\":1e3}",
        "{\"b\":01}",               /* a leading zero */
        "{\"b\":1234567890123456}", /* past 15 digits */
        "[]",
        "\"a\"",
    };
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        if (flat(no[i], v, &m))
            fail_msg("accepted: %s", no[i]);
    struct va_json_flat f = {KEYS, v, 2, NULL, NULL, false};
    assert_false(va_json_flat(NULL, 0, &f));
}

/* The string scan goes 8 bytes at a time: the quote, a backslash and a control byte
 * are found at every offset, whatever bytes (>= 0x80 included) come before them. */
static void test_every_offset(void **state)
{
    (void)state;
    struct va_json_span v[2], m;
    for (size_t n = 0; n < 40; n++) {
        char s[64], t[64];
        size_t k = (size_t)snprintf(s, sizeof(s), "{\"a\":\"");
        for (size_t j = 0; j < n; j++)
            s[k++] = (char)(j % 3 == 2 ? 0xc3 : 'a' + (char)(j % 26));
        memcpy(t, s, k); /* the same prefix with a bad byte where the quote goes */
        snprintf(s + k, sizeof(s) - k, "\"}");
        assert_true(flat(s, v, &m));
        assert_int_equal(v[0].n, n);
        static const char bad[] = {'\\', '\n', 0x1f};
        for (size_t b = 0; b < sizeof(bad); b++) {
            t[k] = bad[b];
            snprintf(t + k + 1, sizeof(t) - k - 1, "x\"}");
            assert_false(flat(t, v, &m));
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted),
        cmocka_unit_test(test_declined),
        cmocka_unit_test(test_every_offset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
