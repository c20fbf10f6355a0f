/* Unit tests: HTTP request assembly (bounds, splits at every offset, pipelining). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/request.h"

static const char REQ[] = "POST /twilio/answer?x=1 HTTP/1.1\r\n"
                          "Host: example.com\r\n"
                          "Content-Type: application/x-www-form-urlencoded\r\n"
                          "X-Twilio-Signature: abc=\r\n"
                          "Content-Length: 11\r\n"
                          "\r\n"
                          "CallSid=CA1";

static void check_req(const struct va_http_reqparser *p)
{
    struct va_http_header hdrs[VA_HTTP_MAX_HEADERS];
    struct va_http_req req;
    va_http_reqparser_request(p, &req, hdrs);
    assert_string_equal(req.method, "POST");
    assert_int_equal(req.path_len, strlen("/twilio/answer"));
    assert_memory_equal(req.path, "/twilio/answer", req.path_len);
    assert_int_equal(req.query_len, 3);
    assert_memory_equal(req.query, "x=1", 3);
    assert_int_equal(req.nheaders, 4);
    size_t len = 0;
    const char *sig = va_http_req_header(&req, "x-twilio-signature", &len);
    assert_non_null(sig);
    assert_int_equal(len, 4);
    assert_memory_equal(sig, "abc=", 4);
    assert_null(va_http_req_header(&req, "x-missing", NULL));
    assert_int_equal(req.body_len, 11);
    assert_memory_equal(req.body, "CallSid=CA1", 11);
    assert_true(req.keep_alive);
    assert_false(req.upgrade);
}

/* Feeds data in two pieces split at every offset: the same request each time. */
static void test_split_every_offset(void **state)
{
    (void)state;
    size_t n = sizeof(REQ) - 1;
    for (size_t cut = 0; cut <= n; cut++) {
        struct va_http_reqparser p;
        va_http_reqparser_init(&p, 8192, 65536);
        size_t used = 0;
        enum va_http_parse r = VA_HTTP_NEED_MORE;
        if (cut > 0) {
            r = va_http_reqparser_feed(&p, REQ, cut, &used);
            if (cut < n) {
                assert_int_equal(r, VA_HTTP_NEED_MORE);
                assert_int_equal(used, cut);
            }
        }
        if (cut < n)
            r = va_http_reqparser_feed(&p, REQ + cut, n - cut, &used);
        assert_int_equal(r, VA_HTTP_DONE);
        check_req(&p);
        va_http_reqparser_deinit(&p);
    }
}

/* One byte at a time. */
static void test_bytewise(void **state)
{
    (void)state;
    struct va_http_reqparser p;
    va_http_reqparser_init(&p, 8192, 65536);
    enum va_http_parse r = VA_HTTP_NEED_MORE;
    for (size_t i = 0; i < sizeof(REQ) - 1; i++) {
        size_t used;
        r = va_http_reqparser_feed(&p, REQ + i, 1, &used);
        assert_int_equal(used, 1);
        if (i + 1 < sizeof(REQ) - 1)
            assert_int_equal(r, VA_HTTP_NEED_MORE);
    }
    assert_int_equal(r, VA_HTTP_DONE);
    check_req(&p);
    va_http_reqparser_deinit(&p);
}

static void test_pipelined(void **state)
{
    (void)state;
    char buf[1024];
    int n = snprintf(buf, sizeof(buf), "%s%s", REQ, "GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
    struct va_http_reqparser p;
    va_http_reqparser_init(&p, 8192, 65536);
    size_t used;
    assert_int_equal(va_http_reqparser_feed(&p, buf, (size_t)n, &used), VA_HTTP_DONE);
    assert_int_equal(used, sizeof(REQ) - 1);
    check_req(&p);
    va_http_reqparser_next(&p);
    size_t used2;
    assert_int_equal(va_http_reqparser_feed(&p, buf + used, (size_t)n - used, &used2),
                     VA_HTTP_DONE);
    assert_int_equal(used + used2, (size_t)n);
    struct va_http_header hdrs[VA_HTTP_MAX_HEADERS];
    struct va_http_req req;
    va_http_reqparser_request(&p, &req, hdrs);
    assert_string_equal(req.method, "GET");
    assert_int_equal(req.body_len, 0);
    assert_null(req.query);
    va_http_reqparser_deinit(&p);
}

static int feed_all(struct va_http_reqparser *p, const char *s, size_t n)
{
    size_t used;
    enum va_http_parse r = va_http_reqparser_feed(p, s, n, &used);
    return r == VA_HTTP_ERR ? p->status : (int)r;
}

/* The header bound counts the request line and headers as sent: at the limit is
 * fine, one past is 431. */
static void test_header_bound(void **state)
{
    (void)state;
    const char *pre = "GET / HTTP/1.1\r\nX: ";
    for (int extra = -1; extra <= 1; extra++) {
        char buf[2048];
        /* request line 16 + "X: " 3 + value + CRLF 2 + final CRLF 2 */
        size_t value = (size_t)(1024 - 16 - 3 - 2 - 2 + extra);
        size_t n = (size_t)snprintf(buf, sizeof(buf), "%s", pre);
        memset(buf + n, 'a', value);
        n += value;
        memcpy(buf + n, "\r\n\r\n", 4);
        n += 4;
        assert_int_equal(n, (size_t)(1024 + extra));
        struct va_http_reqparser p;
        va_http_reqparser_init(&p, 1024, 65536);
        int r = feed_all(&p, buf, n);
        assert_int_equal(r, extra <= 0 ? VA_HTTP_DONE : 431);
        va_http_reqparser_deinit(&p);
    }
}

static void test_too_many_headers(void **state)
{
    (void)state;
    struct va_buf b;
    va_buf_init(&b, 1 << 20);
    va_buf_append_str(&b, "GET / HTTP/1.1\r\n");
    for (int i = 0; i <= VA_HTTP_MAX_HEADERS; i++)
        va_buf_printf(&b, "H%d: v\r\n", i);
    va_buf_append_str(&b, "\r\n");
    struct va_http_reqparser p;
    va_http_reqparser_init(&p, 1 << 20, 65536);
    assert_int_equal(feed_all(&p, b.data, b.len), 431);
    va_http_reqparser_deinit(&p);
    va_buf_deinit(&b);
}

static void test_body_bound(void **state)
{
    (void)state;
    struct va_http_reqparser p;
    /* announced too big: refused before any body byte */
    va_http_reqparser_init(&p, 8192, 1024);
    const char *big = "POST / HTTP/1.1\r\nContent-Length: 1025\r\n\r\n";
    assert_int_equal(feed_all(&p, big, strlen(big)), 413);
    va_http_reqparser_deinit(&p);
    /* exactly at the bound is fine */
    va_http_reqparser_init(&p, 8192, 1024);
    char buf[2048];
    int n = snprintf(buf, sizeof(buf), "POST / HTTP/1.1\r\nContent-Length: 1024\r\n\r\n");
    memset(buf + n, 'b', 1024);
    assert_int_equal(feed_all(&p, buf, (size_t)n + 1024), VA_HTTP_DONE);
    va_http_reqparser_deinit(&p);
    /* chunked past the bound */
    va_http_reqparser_init(&p, 8192, 1024);
    struct va_buf b;
    va_buf_init(&b, 1 << 16);
    va_buf_append_str(&b, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 3; i++) {
        va_buf_append_str(&b, "200\r\n");
        for (int j = 0; j < 0x200; j++)
            va_buf_append_char(&b, 'c');
        va_buf_append_str(&b, "\r\n");
    }
    va_buf_append_str(&b, "0\r\n\r\n");
    assert_int_equal(feed_all(&p, b.data, b.len), 413);
    va_http_reqparser_deinit(&p);
    va_buf_deinit(&b);
}

static void test_malformed(void **state)
{
    (void)state;
    static const char *bad[] = {
        "GARBAGE\r\n\r\n",
        "GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        "GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
        "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "GET / HTTP/1.1\r\nHo\x01st: a\r\n\r\n",
        "\x16\x03\x01\x02\x00",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct va_http_reqparser p;
        va_http_reqparser_init(&p, 8192, 65536);
        int r = feed_all(&p, bad[i], strlen(bad[i]));
        if (r != 400)
            fail_msg("case %zu: got %d", i, r);
        assert_non_null(p.reason);
        /* once failed, it stays failed */
        size_t used;
        assert_int_equal(va_http_reqparser_feed(&p, "GET / HTTP/1.1\r\n\r\n", 18, &used),
                         VA_HTTP_ERR);
        va_http_reqparser_deinit(&p);
    }
}

static void test_expect_continue_and_upgrade(void **state)
{
    (void)state;
    struct va_http_reqparser p;
    va_http_reqparser_init(&p, 8192, 65536);
    const char *h = "POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
    size_t used;
    assert_int_equal(va_http_reqparser_feed(&p, h, strlen(h), &used), VA_HTTP_NEED_MORE);
    assert_true(p.expect_continue);
    assert_int_equal(va_http_reqparser_feed(&p, "ab", 2, &used), VA_HTTP_DONE);
    va_http_reqparser_deinit(&p);

    va_http_reqparser_init(&p, 8192, 65536);
    const char *u =
        "GET /ws/twilio HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    assert_int_equal(va_http_reqparser_feed(&p, u, strlen(u), &used), VA_HTTP_DONE);
    assert_int_equal(used, strlen(u));
    struct va_http_header hdrs[VA_HTTP_MAX_HEADERS];
    struct va_http_req req;
    va_http_reqparser_request(&p, &req, hdrs);
    assert_true(req.upgrade);
    va_http_reqparser_deinit(&p);
}

static void test_http10(void **state)
{
    (void)state;
    struct va_http_reqparser p;
    va_http_reqparser_init(&p, 8192, 65536);
    const char *h = "GET /health HTTP/1.0\r\n\r\n";
    assert_int_equal(feed_all(&p, h, strlen(h)), VA_HTTP_DONE);
    struct va_http_header hdrs[VA_HTTP_MAX_HEADERS];
    struct va_http_req req;
    va_http_reqparser_request(&p, &req, hdrs);
    assert_false(req.keep_alive);
    va_http_reqparser_deinit(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_every_offset),
        cmocka_unit_test(test_bytewise),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_header_bound),
        cmocka_unit_test(test_too_many_headers),
        cmocka_unit_test(test_body_bound),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_expect_continue_and_upgrade),
        cmocka_unit_test(test_http10),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
