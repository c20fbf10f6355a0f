/* Unit tests: JSON log lines and redaction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"

static char *redact(const char *s, char *const *secrets, size_t n)
{
    struct va_buf b;
    va_buf_init(&b, 4096);
    assert_int_equal(va_log_redact(&b, s, strlen(s), secrets, n), 0);
    size_t len;
    char *out = va_buf_steal(&b, &len);
    return out ? out : va_xstrdup("");
}

static void test_redact_registered(void **state)
{
    (void)state;
    char s1[] = "hunter22", s2[] = "tok-abc";
    char *secrets[] = {s1, s2};
    char *out = redact("a hunter22 b tok-abcdef hunter22", secrets, 2);
    assert_string_equal(out, "a [redacted] b [redacted]def [redacted]");
    free(out);
}

static void test_redact_shapes(void **state)
{
    (void)state;
    char *out = redact("Authorization: Bearer abc.DEF-123_x/y+z= rest", NULL, 0);
    assert_string_equal(out, "Authorization: Bearer [redacted] rest");
    free(out);
    out = redact("basic dXNlcjpwYXNz", NULL, 0);
    assert_string_equal(out, "basic [redacted]");
    free(out);
    out = redact("key sk-proj-abcdefghijklmnopqrstuvwxyz0123 end", NULL, 0);
    assert_string_equal(out, "key [redacted] end");
    free(out);
    /* short sk- words and words containing sk- are not keys */
    out = redact("task-list desk-lamp sk-short", NULL, 0);
    assert_string_equal(out, "task-list desk-lamp sk-short");
    free(out);
    out = redact("Bearer ", NULL, 0);
    assert_string_equal(out, "Bearer ");
    free(out);
}

static void test_key_names(void **state)
{
    (void)state;
    assert_true(va_log_key_is_secret("Authorization"));
    assert_true(va_log_key_is_secret("x-twilio-signature"));
    assert_true(va_log_key_is_secret("MCP_AUTH_TOKEN"));
    assert_true(va_log_key_is_secret("apikey"));
    assert_true(va_log_key_is_secret("SUPABASE_SERVICE_ROLE_KEY"));
    assert_true(va_log_key_is_secret("password"));
    assert_false(va_log_key_is_secret("callSid"));
    assert_false(va_log_key_is_secret("route"));
    assert_false(va_log_key_is_secret("keepAlive"));
}

/* Captures one emitted line through a pipe. */
static char *emit_line(struct va_log *lg, enum va_log_level lv, const char *msg,
                       const struct va_log_field *f, size_t n)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    lg->fd = fds[1];
    va_log_emit(lg, lv, "test", msg, f, n);
    close(fds[1]);
    char *buf = calloc(1, 70000);
    ssize_t got = 0, r;
    while ((r = read(fds[0], buf + got, 69999 - (size_t)got)) > 0)
        got += r;
    close(fds[0]);
    return buf;
}

static void test_emit_shape(void **state)
{
    (void)state;
    struct va_log lg;
    va_log_init(&lg, -1, VA_LOG_DEBUG);
    va_log_add_secret(&lg, "s3cr3t-value");
    va_log_add_secret(&lg, "abc"); /* too short to mask */
    const struct va_log_field f[] = {
        VA_LSTR("callSid", "CA1"),
        VA_LINT("status", 200),
        VA_LBOOL("ok", true),
        VA_LDBL("ms", 1.5),
        VA_LSTR("authorization", "Basic x"),
        VA_LSTR("note", "has s3cr3t-value inside"),
        VA_LSTRN("bin", "a\"b\\c\n\x01\xff", 8),
        VA_LSTR("nul", NULL),
    };
    char *line = emit_line(&lg, VA_LOG_WARN, "hello \"world\"", f, sizeof(f) / sizeof(f[0]));
    assert_non_null(
        strstr(line, "\"level\":\"warn\",\"mod\":\"test\",\"msg\":\"hello \\\"world\\\"\""));
    assert_non_null(strstr(line, "\"callSid\":\"CA1\",\"status\":200,\"ok\":true,\"ms\":1.500"));
    assert_non_null(strstr(line, "\"authorization\":\"[redacted]\""));
    assert_non_null(strstr(line, "\"note\":\"has [redacted] inside\""));
    assert_non_null(strstr(line, "\"bin\":\"a\\\"b\\\\c\\n\\u0001\\ufffd\""));
    assert_non_null(strstr(line, "\"nul\":null"));
    assert_int_equal(strncmp(line, "{\"ts\":\"", 7), 0);
    assert_int_equal(line[strlen(line) - 1], '\n');
    assert_ptr_equal(strchr(line, '\n'), line + strlen(line) - 1);
    free(line);
    va_log_deinit(&lg);
}

static void test_level_filter(void **state)
{
    (void)state;
    struct va_log lg;
    va_log_init(&lg, -1, VA_LOG_WARN);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    lg.fd = fds[1];
    va_log_info(&lg, "test", "dropped", VA_LINT("x", 1));
    va_log_error(&lg, "test", "kept");
    close(fds[1]);
    char buf[512] = {0};
    ssize_t r = read(fds[0], buf, sizeof(buf) - 1);
    close(fds[0]);
    assert_true(r > 0);
    assert_null(strstr(buf, "dropped"));
    assert_non_null(strstr(buf, "\"msg\":\"kept\""));
    va_log_deinit(&lg);
}

static void test_huge_value_truncated(void **state)
{
    (void)state;
    struct va_log lg;
    va_log_init(&lg, -1, VA_LOG_DEBUG);
    char *big = malloc(100000);
    memset(big, 'x', 99999);
    big[99999] = '\0';
    const struct va_log_field f[] = {VA_LSTR("big", big)};
    char *line = emit_line(&lg, VA_LOG_INFO, "m", f, 1);
    /* still one valid line, cut and labelled */
    assert_true(strstr(line, "[truncated]") != NULL || strstr(line, "log line too long") != NULL);
    assert_int_equal(line[strlen(line) - 1], '\n');
    free(line);
    free(big);
    va_log_deinit(&lg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redact_registered), cmocka_unit_test(test_redact_shapes),
        cmocka_unit_test(test_key_names),         cmocka_unit_test(test_emit_shape),
        cmocka_unit_test(test_level_filter),      cmocka_unit_test(test_huge_value_truncated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
