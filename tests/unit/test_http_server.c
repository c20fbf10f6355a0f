/* Loop test: the HTTP server on a real loop and loopback socket; async answers,
 * pipelining, and a clean close (uv_loop_close() == 0). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "http/server.h"

struct fixture {
    uv_loop_t loop;
    struct va_log log;
    struct va_http_server *srv;
    bool srv_closed;
    uv_tcp_t client;
    uv_connect_t connect;
    uv_timer_t later; /* answers the deferred request */
    struct va_http_conn *deferred;
    struct va_buf got;
    const char *send;
    int requests;
};

static void on_later(uv_timer_t *t);

static void on_request(void *ud, struct va_http_conn *c, const struct va_http_req *req)
{
    struct fixture *f = ud;
    f->requests++;
    if (req->path_len == 6 && memcmp(req->path, "/later", 6) == 0) {
        /* answered from a timer: the next pipelined request must wait for it */
        f->deferred = c;
        uv_timer_start(&f->later, on_later, 20, 0);
        return;
    }
    char body[64];
    int n = snprintf(body, sizeof(body), "%.*s", (int)req->path_len, req->path);
    va_http_respond(c, 200, "text/plain", NULL, body, (size_t)n);
}

static void on_later(uv_timer_t *t)
{
    struct fixture *f = t->data;
    assert_int_equal(va_http_respond(f->deferred, 200, "text/plain", NULL, "late", 4), 0);
    f->deferred = NULL;
}

static void on_srv_closed(void *ud)
{
    struct fixture *f = ud;
    f->srv_closed = true;
}

static void client_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(hint);
    buf->len = hint;
}

static void client_closed(uv_handle_t *h)
{
    struct fixture *f = h->data;
    va_http_server_close(f->srv);
    uv_close((uv_handle_t *)&f->later, NULL);
}

static void client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct fixture *f = s->data;
    if (n > 0)
        va_buf_append(&f->got, buf->base, (size_t)n);
    free(buf->base);
    if (n < 0)
        uv_close((uv_handle_t *)s, client_closed);
}

static void client_written(uv_write_t *w, int status)
{
    assert_int_equal(status, 0);
    free(w);
}

static void client_connected(uv_connect_t *req, int status)
{
    struct fixture *f = req->data;
    assert_int_equal(status, 0);
    uv_write_t *w = malloc(sizeof(*w));
    uv_buf_t b = uv_buf_init((char *)f->send, (unsigned)strlen(f->send));
    uv_write(w, (uv_stream_t *)&f->client, &b, 1, client_written);
    uv_read_start((uv_stream_t *)&f->client, client_alloc, client_read);
}

static void run_exchange(struct fixture *f, const char *send)
{
    memset(f, 0, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    va_log_init(&f->log, STDERR_FILENO, VA_LOG_ERROR);
    va_buf_init(&f->got, 1 << 20);
    f->send = send;
    struct va_http_server_cfg cfg = {
        .host = "127.0.0.1",
        .port = 0,
        .max_connections = 8,
        .max_header_bytes = 8192,
        .max_body_bytes = 65536,
        .request_timeout_ms = 5000,
        .idle_timeout_ms = 5000,
    };
    struct va_http_server_cb cb = {.on_request = on_request, .on_closed = on_srv_closed};
    assert_int_equal(va_http_server_open(&f->srv, &f->loop, &f->log, &cfg, &cb, f), 0);
    uv_timer_init(&f->loop, &f->later);
    f->later.data = f;
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", va_http_server_port(f->srv), &sa);
    uv_tcp_init(&f->loop, &f->client);
    f->client.data = f;
    f->connect.data = f;
    uv_tcp_connect(&f->connect, &f->client, (struct sockaddr *)&sa, client_connected);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(f->srv_closed);
    /* every handle of the server closed: the loop closes */
    assert_int_equal(uv_loop_close(&f->loop), 0);
    va_log_deinit(&f->log);
}

static void test_pipelined_with_async_answer(void **state)
{
    (void)state;
    struct fixture f;
    run_exchange(&f, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                     "GET /later HTTP/1.1\r\nHost: x\r\n\r\n"
                     "GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_int_equal(f.requests, 3);
    const char *a = strstr(f.got.data, "\r\n\r\n/a");
    const char *late = strstr(f.got.data, "\r\n\r\nlate");
    const char *b = strstr(f.got.data, "\r\n\r\n/b");
    assert_non_null(a);
    assert_non_null(late);
    assert_non_null(b);
    assert_true(a < late && late < b);
    assert_non_null(strstr(f.got.data, "Connection: close"));
    va_buf_deinit(&f.got);
}

static void test_bad_request_closes(void **state)
{
    (void)state;
    struct fixture f;
    run_exchange(&f, "NOT HTTP AT ALL\r\n\r\n");
    assert_int_equal(f.requests, 0);
    assert_non_null(strstr(f.got.data, "HTTP/1.1 400 Bad Request"));
    va_buf_deinit(&f.got);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipelined_with_async_answer),
        cmocka_unit_test(test_bad_request_closes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
