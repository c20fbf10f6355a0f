/* Loop test: the RPC client against our own HTTP server on the same loop and a loopback
 * port. Headers, bodies, statuses, retries, timeouts, the body bound, concurrency, the
 * breaker, cancel at close, and uv_loop_close() == 0 after every test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "core/err.h"
#include "core/log.h"
#include "http/server.h"
#include "supabase/rpc.h"

#define KEY "sk-test-service-role-key-0123456789"
#define NRES 128

struct fx;

struct result {
    struct fx *f;
    int calls;
    int err;
    long status;
    char body[512];
    size_t len;
};

struct fx {
    uv_loop_t loop;
    struct va_log log;
    FILE *logf;
    struct va_http_server *srv;
    struct sb_rpc *rpc;
    uint16_t port;
    uv_timer_t t;
    bool srv_open, srv_closed, rpc_closed;
    /* server side */
    int hits;      /* every request */
    int hang_hits; /* unanswered */
    int flaky_hits;
    struct va_http_conn *conn[2]; /* connections of the first two requests */
    int flaky_fail;               /* 503s before a 200 */
    size_t big_len;
    char method[16], path[128], apikey[128], auth[128], ctype[64], body[256];
    /* client side */
    int pending;
    int cancel_after_hits; /* close the client this many ms after hits reaches it */
    struct result res[NRES];
};

static bool path_is(const struct va_http_req *req, const char *fn)
{
    char want[128];
    int n = snprintf(want, sizeof(want), "/rest/v1/rpc/%s", fn);
    return req->path_len == (size_t)n && memcmp(req->path, want, (size_t)n) == 0;
}

static void copy_hdr(const struct va_http_req *req, const char *name, char *dst, size_t cap)
{
    size_t len = 0;
    const char *v = va_http_req_header(req, name, &len);
    snprintf(dst, cap, "%.*s", v ? (int)len : 0, v ? v : "");
}

static void on_cancel_timer(uv_timer_t *t);

static void on_request(void *ud, struct va_http_conn *c, const struct va_http_req *req)
{
    struct fx *f = ud;
    if (f->hits < 2)
        f->conn[f->hits] = c;
    f->hits++;
    snprintf(f->method, sizeof(f->method), "%s", req->method);
    snprintf(f->path, sizeof(f->path), "%.*s", (int)req->path_len, req->path);
    copy_hdr(req, "apikey", f->apikey, sizeof(f->apikey));
    copy_hdr(req, "authorization", f->auth, sizeof(f->auth));
    copy_hdr(req, "content-type", f->ctype, sizeof(f->ctype));
    snprintf(f->body, sizeof(f->body), "%.*s", (int)req->body_len, req->body);
    if (f->cancel_after_hits && f->hits == f->cancel_after_hits)
        uv_timer_start(&f->t, on_cancel_timer, 100, 0);

    if (path_is(req, "echo")) {
        va_http_respond(c, 200, "application/json", NULL, req->body, req->body_len);
    } else if (path_is(req, "notfound")) {
        const char *b = "{\"code\":\"PGRST202\",\"message\":\"no function\"}";
        va_http_respond(c, 404, "application/json", NULL, b, strlen(b));
    } else if (path_is(req, "bad")) {
        const char *b = "{\"code\":\"22023\",\"message\":\"bad\"}";
        va_http_respond(c, 400, "application/json", NULL, b, strlen(b));
    } else if (path_is(req, "flaky")) {
        f->flaky_hits++;
        if (f->flaky_hits <= f->flaky_fail)
            va_http_respond(c, 503, "application/json", NULL, "{}", 2);
        else
            va_http_respond(c, 200, "application/json", NULL, "{\"ok\":true}", 11);
    } else if (path_is(req, "hang")) {
        f->hang_hits++; /* never answered: the client's timeout or close ends it */
    } else if (path_is(req, "big")) {
        char *b = malloc(f->big_len);
        memset(b, 'x', f->big_len);
        va_http_respond(c, 200, "application/json", NULL, b, f->big_len);
        free(b);
    } else {
        va_http_respond(c, 500, "text/plain", NULL, "?", 1);
    }
}

static void on_srv_closed(void *ud)
{
    struct fx *f = ud;
    f->srv_closed = true;
}

static void srv_open(struct fx *f, uint16_t port)
{
    struct va_http_server_cfg cfg = {
        .host = "127.0.0.1",
        .port = port,
        .max_connections = 256,
        .max_header_bytes = 8192,
        .max_body_bytes = 65536,
        .request_timeout_ms = 10000,
        .idle_timeout_ms = 10000,
    };
    struct va_http_server_cb cb = {.on_request = on_request, .on_closed = on_srv_closed};
    assert_int_equal(va_http_server_open(&f->srv, &f->loop, &f->log, &cfg, &cb, f), 0);
    f->port = va_http_server_port(f->srv);
    f->srv_open = true;
    f->srv_closed = false;
}

static void on_rpc_closed(void *ud)
{
    struct fx *f = ud;
    assert_false(f->rpc_closed);
    f->rpc_closed = true;
    if (f->srv_open) {
        f->srv_open = false;
        va_http_server_close(f->srv);
    }
    uv_close((uv_handle_t *)&f->t, NULL);
}

static void finish(struct fx *f)
{
    sb_rpc_close(f->rpc, on_rpc_closed, f);
}

static void on_done(void *ud, int err, long status, const char *body, size_t len)
{
    struct result *r = ud;
    struct fx *f = r->f;
    r->calls++;
    r->err = err;
    r->status = status;
    r->len = len;
    if (body) {
        assert_int_equal(body[len], '\0');
        snprintf(r->body, sizeof(r->body), "%.*s", (int)len, body);
    }
    assert_true(f->pending > 0);
    if (--f->pending == 0)
        finish(f); /* from inside done(): the client defers its teardown */
}

/* with_server: our HTTP server on an ephemeral port; else the client points at port. */
static void fx_open_port(struct fx *f, struct sb_rpc_cfg *cfg, bool with_server, uint16_t port)
{
    memset(f, 0, sizeof(*f));
    for (size_t i = 0; i < NRES; i++)
        f->res[i].f = f;
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->logf = tmpfile();
    assert_non_null(f->logf);
    va_log_init(&f->log, fileno(f->logf), VA_LOG_DEBUG);
    assert_int_equal(uv_timer_init(&f->loop, &f->t), 0);
    f->t.data = f;
    f->port = port;
    if (with_server)
        srv_open(f, 0);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/", (unsigned)f->port);
    cfg->base_url = url;
    cfg->service_role_key = KEY;
    assert_int_equal(sb_rpc_open(&f->rpc, &f->loop, &f->log, cfg), 0);
}

static void fx_open(struct fx *f, struct sb_rpc_cfg *cfg, bool with_server)
{
    fx_open_port(f, cfg, with_server, 0);
}

static void fx_call(struct fx *f, int i, const char *fn, const char *args, bool idem)
{
    assert_int_equal(
        sb_rpc_call(f->rpc, fn, args, args ? strlen(args) : 0, idem, on_done, &f->res[i]), 0);
    f->pending++;
}

/* Runs the loop to the end; the client must close and the loop with it. */
static void fx_run(struct fx *f)
{
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(f->rpc_closed);
    assert_true(!f->srv_open || f->srv_closed);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    va_log_deinit(&f->log);
    /* the key never reached the log */
    long n = ftell(f->logf);
    assert_true(n >= 0);
    char *text = calloc(1, (size_t)n + 1);
    rewind(f->logf);
    assert_int_equal(fread(text, 1, (size_t)n, f->logf), (size_t)n);
    if (getenv("SB_RPC_TEST_LOG")) /* to read what the client logs */
        fputs(text, stderr);
    assert_null(strstr(text, KEY));
    assert_null(strstr(text, "0123456789"));
    free(text);
    fclose(f->logf);
}

static void test_headers_and_body(void **state)
{
    (void)state;
    struct fx f;
    struct sb_rpc_cfg cfg = {0};
    fx_open(&f, &cfg, true);
    fx_call(&f, 0, "echo", "{\"p_member_id\":\"m-1\"}", true);
    fx_run(&f);
    assert_int_equal(f.res[0].calls, 1);
    assert_int_equal(f.res[0].err, 0);
    assert_int_equal(f.res[0].status, 200);
    assert_string_equal(f.res[0].body, "{\"p_member_id\":\"m-1\"}");
    assert_string_equal(f.method, "POST");
    assert_string_equal(f.path, "/rest/v1/rpc/echo");
    assert_string_equal(f.apikey, KEY);
    assert_string_equal(f.auth, "Bearer " KEY);
    assert_string_equal(f.ctype, "application/json");
    assert_string_equal(f.body, "{\"p_member_id\":\"m-1\"}");
}

static void test_empty_args_send_empty_object(void **state)
{
    (void)state;
    struct fx f;
    struct sb_rpc_cfg cfg = {0};
    fx_open(&f, &cfg, true);
    fx_call(&f, 0, "echo", NULL, false);
    fx_run(&f);
    assert_int_equal(f.res[0].err, 0);
    assert_string_equal(f.body, "{}");
    assert_string_equal(f.res[0].body, "{}");
}

static void test_4xx_not_retried(void **state)
{
    (void)state;
    struct fx f;
    struct sb_rpc_cfg cfg = {.retry_backoff_ms = 5};
    fx_open(&f, &cfg, true);
    fx_call(&f, 0, "notfound", "{}", true);
    fx_call(&f, 1, "bad", "{}", true);
    fx_run(&f);
    assert_int_equal(f.hits, 2);
    assert_int_equal(f.res[0].calls, 1);
    assert_int_equal(f.res[0].err, 0);
    assert_int_equal(f.res[0].status, 404);
    assert_non_null(strstr(f.res[0].body, "PGRST202"));
    assert_int_equal(f.res[1].calls, 1);
    assert_int_equal(f.res[1].err, 0);
    assert_int_equal(f.res[1].status, 400);
}

static void test_503_retried_when_idempotent(void **state)
{
    (void)state;
    struct fx f;
    struct sb_rpc_cfg cfg = {.retry_backoff_ms = 5};
    fx_open(&f, &cfg, true);
    f.flaky_fail = 2;
    fx_call(&f, 0, "flaky", "{}", true);
    fx_run(&f);
    assert_int_equal(f.flaky_hits, 3);
    assert_int_equal(f.res[0].calls, 1);
    assert_int_equal(f.res[0].err, 0);
    assert_int_equal(f.res[0].status, 200);
    assert_string_equal(f.res[0].body, "{\"ok\":true}");
}

static void test_503_gives_up_after_two_retries(void **state)
{
    (void)state;
    struct fx f;
    struct sb_rpc_cfg cfg = {.retry_backoff_ms = 5, .breaker_threshold = 100};
    fx_open(&f, &cfg, true);
    f.flaky_fail = 100;
    fx_call(&f, 0, "flaky", "{}", true);
    fx_run(&f);
    assert_int_equal(f.flaky_hits, 3);
    assert_int_equal(f.res[0].err, 0);
    assert_int_equal(f.res[0].status, 503);
}

static void test_503_not_retried_when_not_idempotent(void **state)
{
    (void)state;
    struct fx f;
    struct sb_rpc_cfg cfg = {.retry_backoff_ms = 5};
    fx_open(&f, &cfg, true);
    f.flaky_fail = 1;
    fx_call(&f, 0, "flaky", "{}", false);
    fx_run(&f);
    assert_int_equal(f.flaky_hits, 1);
    assert_int_equal(f.res[0].calls, 1);
    assert_int_equal(f.res[0].err, 0);
    assert_int_equal(f.res[0].status, 503);
}

static void test_timeout(void **state)
{
    (void)state;
    struct fx f;
    struct sb_rpc_cfg cfg = {.timeout_ms = 150, .retry_backoff_ms = 5, .breaker_threshold = 100};
    fx_open(&f, &cfg, true);
    fx_call(&f, 0, "hang", "{}", true);
    fx_call(&f, 1, "hang", "{}", false);
    fx_run(&f);
    assert_int_equal(f.hang_hits, 4); /* 3 attempts + 1 */
    for (int i = 0; i < 2; i++) {
        assert_int_equal(f.res[i].calls, 1);
        assert_int_equal(f.res[i].err, UV_ETIMEDOUT);
        assert_int_equal(f.res[i].status, 0);
    }
}

static void test_body_bound(void **state)
{
    (void)state;
    struct fx f;
    struct sb_rpc_cfg cfg = {.max_response_bytes = 1000};
    fx_open(&f, &cfg, true);
    f.big_len = 1001;
    fx_call(&f, 0, "big", "{}", true);
    fx_run(&f);
    assert_int_equal(f.hits, 1); /* not retried */
    assert_int_equal(f.res[0].calls, 1);
    assert_int_equal(f.res[0].err, VA_ETOOBIG);
    assert_int_equal(f.res[0].status, 200);
    assert_int_equal(f.res[0].len, 0);

    fx_open(&f, &cfg, true);
    f.big_len = 1000; /* exactly the bound fits */
    fx_call(&f, 0, "big", "{}", true);
    fx_run(&f);
    assert_int_equal(f.res[0].err, 0);
    assert_int_equal(f.res[0].len, 1000);
}

static void test_100_concurrent(void **state)
{
    (void)state;
    struct fx f;
    struct sb_rpc_cfg cfg = {.max_in_flight = 128};
    fx_open(&f, &cfg, true);
    for (int i = 0; i < 100; i++) {
        char args[32];
        snprintf(args, sizeof(args), "{\"i\":%d}", i);
        fx_call(&f, i, "echo", args, i % 2 == 0);
    }
    assert_int_equal(sb_rpc_in_flight(f.rpc), 100);
    fx_run(&f);
    for (int i = 0; i < 100; i++) {
        char want[32];
        snprintf(want, sizeof(want), "{\"i\":%d}", i);
        assert_int_equal(f.res[i].calls, 1);
        assert_int_equal(f.res[i].err, 0);
        assert_int_equal(f.res[i].status, 200);
        assert_string_equal(f.res[i].body, want);
    }
}

static void test_rejects(void **state)
{
    (void)state;
    struct fx f;
    struct sb_rpc_cfg cfg = {.max_in_flight = 2};
    fx_open(&f, &cfg, true);
    assert_int_equal(sb_rpc_call(f.rpc, "", "{}", 2, true, on_done, &f.res[9]), VA_EINVAL);
    assert_int_equal(sb_rpc_call(f.rpc, "a/b", "{}", 2, true, on_done, &f.res[9]), VA_EINVAL);
    assert_int_equal(sb_rpc_call(f.rpc, "x?y=1", "{}", 2, true, on_done, &f.res[9]), VA_EINVAL);
    char longname[80];
    memset(longname, 'a', 64);
    longname[64] = '\0';
    assert_int_equal(sb_rpc_call(f.rpc, longname, "{}", 2, true, on_done, &f.res[9]), VA_EINVAL);
    fx_call(&f, 0, "echo", "{}", true);
    fx_call(&f, 1, "echo", "{}", true);
    assert_int_equal(sb_rpc_call(f.rpc, "echo", "{}", 2, true, on_done, &f.res[9]), VA_EFULL);
    fx_run(&f);
    assert_int_equal(f.res[9].calls, 0);
    assert_int_equal(f.res[0].calls, 1);
    assert_int_equal(f.res[1].calls, 1);

    struct sb_rpc *r = NULL;
    uv_loop_t loop;
    struct va_log lg;
    uv_loop_init(&loop);
    va_log_init(&lg, 2, VA_LOG_ERROR);
    struct sb_rpc_cfg bad = {.base_url = "ftp://x", .service_role_key = KEY};
    assert_int_equal(sb_rpc_open(&r, &loop, &lg, &bad), VA_EINVAL);
    bad.base_url = "http://127.0.0.1:1";
    bad.service_role_key = "";
    assert_int_equal(sb_rpc_open(&r, &loop, &lg, &bad), VA_EINVAL);
    assert_null(r);
    va_log_deinit(&lg);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void on_first_done(void *ud, int err, long status, const char *body, size_t len)
{
    struct result *r = ud;
    struct fx *f = r->f;
    on_done(ud, err, status, body, len);
    /* the second call starts once the first is over: it must find the idle connection */
    assert_int_equal(sb_rpc_call(f->rpc, "echo", "{\"n\":2}", 7, true, on_done, &f->res[1]), 0);
}

static void test_connection_reused(void **state)
{
    (void)state;
    struct fx f;
    struct sb_rpc_cfg cfg = {0};
    fx_open(&f, &cfg, true);
    assert_int_equal(sb_rpc_call(f.rpc, "echo", "{}", 2, true, on_first_done, &f.res[0]), 0);
    f.pending = 2; /* the close waits for the second call */
    fx_run(&f);
    assert_int_equal(f.res[1].calls, 1);
    assert_int_equal(f.res[1].err, 0);
    assert_string_equal(f.res[1].body, "{\"n\":2}");
    assert_int_equal(f.hits, 2);
    /* same server connection object: ASan's quarantine keeps a freed one's address from
     * coming back this soon */
    assert_ptr_equal(f.conn[0], f.conn[1]);
}

/* ---- breaker: refused connects open it; after the cooldown a probe closes it ---- */

static void on_reserve_closed(void *ud)
{
    struct fx *f = ud;
    f->srv_closed = true;
}

static void on_probe_done(void *ud, int err, long status, const char *body, size_t len)
{
    struct result *r = ud;
    struct fx *f = r->f;
    (void)body;
    (void)len;
    r->calls++;
    r->err = err;
    r->status = status;
    assert_true(sb_rpc_healthy(f->rpc, NULL));
    finish(f);
}

static void on_cooldown(uv_timer_t *t)
{
    struct fx *f = t->data;
    const char *why = NULL;
    assert_false(sb_rpc_healthy(f->rpc, &why)); /* open until a probe succeeds */
    srv_open(f, f->port);                       /* the service is back */
    assert_int_equal(sb_rpc_call(f->rpc, "echo", "{}", 2, true, on_probe_done, &f->res[10]), 0);
    /* only one probe at a time */
    assert_int_equal(sb_rpc_call(f->rpc, "echo", "{}", 2, true, on_done, &f->res[11]), VA_EFULL);
}

static void on_refused(void *ud, int err, long status, const char *body, size_t len)
{
    struct result *r = ud;
    struct fx *f = r->f;
    r->calls++;
    r->err = err;
    r->status = status;
    assert_null(body);
    assert_int_equal(len, 0);
    if (--f->pending)
        return;
    const char *why = NULL;
    assert_false(sb_rpc_healthy(f->rpc, &why));
    assert_non_null(why);
    assert_non_null(strstr(why, "refused"));
    assert_null(strstr(why, KEY));
    /* fails fast while open */
    assert_int_equal(sb_rpc_call(f->rpc, "echo", "{}", 2, true, on_done, &f->res[11]), VA_EFULL);
    uv_timer_start(&f->t, on_cooldown, 250, 0);
}

static void test_breaker(void **state)
{
    (void)state;
    struct fx f;
    /* a port nobody listens on: bind one, then close it */
    memset(&f, 0, sizeof(f));
    assert_int_equal(uv_loop_init(&f.loop), 0);
    va_log_init(&f.log, 2, VA_LOG_ERROR);
    struct va_http_server_cfg scfg = {.host = "127.0.0.1",
                                      .max_connections = 4,
                                      .max_header_bytes = 8192,
                                      .max_body_bytes = 8192,
                                      .request_timeout_ms = 1000,
                                      .idle_timeout_ms = 1000};
    struct va_http_server_cb scb = {.on_request = on_request, .on_closed = on_reserve_closed};
    assert_int_equal(va_http_server_open(&f.srv, &f.loop, &f.log, &scfg, &scb, &f), 0);
    uint16_t port = va_http_server_port(f.srv);
    va_http_server_close(f.srv);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_true(f.srv_closed);
    assert_int_equal(uv_loop_close(&f.loop), 0);
    va_log_deinit(&f.log);

    struct sb_rpc_cfg cfg = {.breaker_threshold = 3, .breaker_cooldown_ms = 200};
    fx_open_port(&f, &cfg, false, port);
    assert_true(sb_rpc_healthy(f.rpc, NULL));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sb_rpc_call(f.rpc, "echo", "{}", 2, false, on_refused, &f.res[i]), 0);
        f.pending++;
    }
    fx_run(&f);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(f.res[i].calls, 1);
        assert_int_equal(f.res[i].err, UV_ECONNREFUSED);
    }
    assert_int_equal(f.res[10].calls, 1);
    assert_int_equal(f.res[10].err, 0);
    assert_int_equal(f.res[10].status, 200);
    assert_int_equal(f.res[11].calls, 0);
}

/* ---- close with calls in flight: each done() once, UV_ECANCELED ---- */

static void on_cancel_timer(uv_timer_t *t)
{
    struct fx *f = t->data;
    sb_rpc_close(f->rpc, on_rpc_closed, f);
    for (int i = 0; i < 6; i++)
        assert_int_equal(f->res[i].calls, 1); /* all delivered before close returned */
    assert_int_equal(f->pending, 0);
    assert_int_equal(sb_rpc_call(f->rpc, "echo", "{}", 2, true, on_done, &f->res[20]), VA_ECLOSED);
    sb_rpc_close(f->rpc, on_rpc_closed, f); /* idempotent */
}

static void on_cancelled(void *ud, int err, long status, const char *body, size_t len)
{
    struct result *r = ud;
    r->calls++;
    r->err = err;
    r->status = status;
    assert_null(body);
    assert_int_equal(len, 0);
    r->f->pending--;
}

static void test_close_cancels_in_flight(void **state)
{
    (void)state;
    struct fx f;
    struct sb_rpc_cfg cfg = {.retry_backoff_ms = 60000, .breaker_threshold = 100};
    fx_open(&f, &cfg, true);
    f.flaky_fail = 100;
    f.cancel_after_hits = 6;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(sb_rpc_call(f.rpc, "hang", "{}", 2, i % 2, on_cancelled, &f.res[i]), 0);
        f.pending++;
    }
    /* this one sits on its backoff timer when the close comes */
    assert_int_equal(sb_rpc_call(f.rpc, "flaky", "{}", 2, true, on_cancelled, &f.res[5]), 0);
    f.pending++;
    fx_run(&f);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(f.res[i].calls, 1);
        assert_int_equal(f.res[i].err, UV_ECANCELED);
        assert_int_equal(f.res[i].status, 0);
    }
    assert_int_equal(f.res[20].calls, 0);
}

/* Closing a client that never made a call. */
static void test_close_idle(void **state)
{
    (void)state;
    struct fx f;
    struct sb_rpc_cfg cfg = {0};
    fx_open(&f, &cfg, true);
    finish(&f);
    fx_run(&f);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT); /* as main() does, once */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_headers_and_body),
        cmocka_unit_test(test_empty_args_send_empty_object),
        cmocka_unit_test(test_4xx_not_retried),
        cmocka_unit_test(test_503_retried_when_idempotent),
        cmocka_unit_test(test_503_gives_up_after_two_retries),
        cmocka_unit_test(test_503_not_retried_when_not_idempotent),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_body_bound),
        cmocka_unit_test(test_100_concurrent),
        cmocka_unit_test(test_connection_reused),
        cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_breaker),
        cmocka_unit_test(test_close_cancels_in_flight),
        cmocka_unit_test(test_close_idle),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
