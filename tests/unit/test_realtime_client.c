/* src/realtime/client.c: the URL parser (pure), then the lws client on a real loop
 * against our own WebSocket server (va_http_server + va_ws) in the same loop, and
 * raw sockets for what that server cannot do (fragments, silence, refusals). Every
 * loop test ends with rt_lws_close(), uv_run() until done, rt_lws_free() and
 * uv_loop_close() == 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "http/server.h"
#include "http/ws.h"
#include "realtime/client.h"

#define WAIT_NS (10ull * 1000 * 1000 * 1000)
#define SECRET "sk-test-0123456789abcdefghijklmnop"
#define AZURE_KEY "azure-key-0123456789"

/* ---- pure: URLs ---- */

static int parse(struct rt_url *u, const char *s)
{
    return rt_url_parse(u, s, strlen(s));
}

static void test_url_parse(void **state)
{
    (void)state;
    struct rt_url u;
    assert_int_equal(parse(&u, "wss://api.openai.com/v1/realtime?model=gpt-realtime"), 0);
    assert_true(u.tls);
    assert_false(u.ipv6);
    assert_int_equal(u.port, 443);
    assert_string_equal(u.host, "api.openai.com");
    assert_string_equal(u.path, "/v1/realtime?model=gpt-realtime");

    assert_int_equal(parse(&u, "ws://localhost:8080"), 0);
    assert_false(u.tls);
    assert_int_equal(u.port, 8080);
    assert_string_equal(u.host, "localhost");
    assert_string_equal(u.path, "/");

    assert_int_equal(parse(&u, "WS://h"), 0);
    assert_int_equal(u.port, 80);
    assert_int_equal(parse(&u, "Wss://h:65535?x=1"), 0);
    assert_int_equal(u.port, 65535);
    assert_string_equal(u.path, "/?x=1");

    assert_int_equal(parse(&u, "ws://[::1]:9000/a/b"), 0);
    assert_true(u.ipv6);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 9000);
    assert_string_equal(u.path, "/a/b");
    assert_int_equal(parse(&u, "wss://[2001:db8::7]"), 0);
    assert_string_equal(u.host, "2001:db8::7");
    assert_int_equal(u.port, 443);
    assert_int_equal(parse(&u, "ws://10.1.2.3:1/"), 0);
    assert_string_equal(u.host, "10.1.2.3");
    assert_int_equal(u.port, 1);

    /* the input needs no NUL: only [0, len) is read */
    const char buf[] = "ws://abc:99/xyzJUNK";
    assert_int_equal(rt_url_parse(&u, buf, 15), 0);
    assert_string_equal(u.host, "abc");
    assert_string_equal(u.path, "/xyz");
}

static void test_url_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "ws:/",
        "ws://",
        "http://h/",
        "wss:/h",
        "ws:///path",
        "ws://:80/",
        "ws://h:/",
        "ws://h:0/",
        "ws://h:65536/",
        "ws://h:123456/",
        "ws://h:8a/",
        "ws://h:-1/",
        "ws://user@h/",
        "ws://user:pw@h/",
        "ws://h/#frag",
        "ws://h/a b",
        "ws://h/a\r\nX: y",
        "ws://h\t/",
        "ws://h/\x7f",
        "ws://h/\xc3\xa9",
        "ws://[::1/",
        "ws://[::1]x/",
        "ws://[::1]:/",
        "ws://[zz::1]/",
        "ws://[10.0.0.1]/",
        "ws://[]/",
        "ws://h!/",
        "ws://h%41/",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct rt_url u;
        memset(&u, 0x5A, sizeof(u));
        int err = parse(&u, bad[i]);
        if (err != VA_EINVAL)
            fail_msg("accepted or wrong code for \"%s\": %d", bad[i], err);
        /* nothing written on failure */
        assert_int_equal(((unsigned char *)&u)[0], 0x5A);
    }
    /* a NUL inside is refused too */
    struct rt_url u;
    assert_int_equal(rt_url_parse(&u, "ws://h/\0x", 9), VA_EINVAL);
}

static void test_url_bounds(void **state)
{
    (void)state;
    static char url[4096];
    struct rt_url u;
    /* host: 253 fits, 254 does not */
    for (size_t n = RT_URL_HOST_MAX; n <= RT_URL_HOST_MAX + 1; n++) {
        memcpy(url, "ws://", 5);
        memset(url + 5, 'a', n);
        url[5 + n] = '\0';
        assert_int_equal(parse(&u, url), n == RT_URL_HOST_MAX ? 0 : VA_ETOOBIG);
    }
    /* path: exactly RT_URL_PATH_MAX, then one more; "?q" gains a "/" */
    for (size_t n = RT_URL_PATH_MAX; n <= RT_URL_PATH_MAX + 1; n++) {
        memcpy(url, "ws://h/", 7);
        memset(url + 7, 'p', n - 1);
        url[6 + n] = '\0';
        assert_int_equal(parse(&u, url), n == RT_URL_PATH_MAX ? 0 : VA_ETOOBIG);
        if (n == RT_URL_PATH_MAX)
            assert_int_equal(strlen(u.path), RT_URL_PATH_MAX);
        memcpy(url, "ws://h?", 7);
        memset(url + 7, 'q', n - 2);
        url[5 + n] = '\0';
        assert_int_equal(parse(&u, url), n == RT_URL_PATH_MAX ? 0 : VA_ETOOBIG);
    }
}

/* ---- pure: client frames ---- */

static void test_ws_frame(void **state)
{
    (void)state;
    /* RFC 6455 5.7: a masked text frame "Hello" */
    static const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
    static const unsigned char hello[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                          0x7f, 0x9f, 0x4d, 0x51, 0x58};
    unsigned char out[70000 + RT_FRAME_HEAD_MAX];
    assert_int_equal(rt_ws_frame(out, "Hello", 5, key), sizeof(hello));
    assert_memory_equal(out, hello, sizeof(hello));
    assert_int_equal(rt_ws_frame(out, "", 0, key), 6);
    assert_int_equal(out[1], 0x80);
    /* the three length forms at their edges, and every payload byte masked by
     * its position whatever the word-wise path did */
    static const size_t lens[] = {1, 7, 8, 9, 125, 126, 127, 65535, 65536, 70000};
    static unsigned char pay[70000];
    for (size_t i = 0; i < sizeof(pay); i++)
        pay[i] = (unsigned char)(i * 31 + 7);
    for (size_t t = 0; t < sizeof(lens) / sizeof(lens[0]); t++) {
        size_t n = lens[t];
        size_t fl = rt_ws_frame(out, pay, n, key);
        size_t h = n < 126 ? 6 : n <= 0xffff ? 8 : 14;
        assert_int_equal(fl, h + n);
        assert_int_equal(out[0], 0x81);
        if (n < 126) {
            assert_int_equal(out[1], 0x80 | n);
        } else if (n <= 0xffff) {
            assert_int_equal(out[1], 0x80 | 126);
            assert_int_equal((size_t)out[2] << 8 | out[3], n);
        } else {
            assert_int_equal(out[1], 0x80 | 127);
            uint64_t v = 0;
            for (int i = 2; i < 10; i++)
                v = v << 8 | out[i];
            assert_int_equal(v, n);
        }
        assert_memory_equal(out + h - 4, key, 4);
        for (size_t i = 0; i < n; i++)
            if ((out[h + i] ^ key[i & 3]) != pay[i])
                fail_msg("length %zu: byte %zu", n, i);
    }
}

static void test_url_every_prefix(void **state)
{
    (void)state;
    /* every cut of a valid URL either parses or is refused cleanly (ASan watches) */
    const char *s = "wss://[2001:db8::1]:8443/v1/realtime?model=gpt-realtime";
    for (size_t n = 0; n <= strlen(s); n++) {
        struct rt_url u;
        int err = rt_url_parse(&u, s, n);
        assert_true(err == 0 || err == VA_EINVAL);
    }
}

/* ---- loop fixture ---- */

enum srv_mode {
    SRV_WS,     /* accept the upgrade with va_ws */
    SRV_STATUS, /* answer srv_status instead */
    SRV_RAW_WS, /* write our own 101 and frames on the bare socket */
};

struct fx {
    uv_loop_t loop;
    FILE *logf;
    struct va_log log;
    struct rt_lws *l;
    bool lws_closed;
    bool lws_close_called;
    uv_timer_t tick;

    /* server */
    struct va_http_server *srv;
    bool srv_closed;
    uint16_t port;
    enum srv_mode mode;
    int srv_status;
    size_t srv_max_message;
    char target[512];
    char authz[256];
    char apikey[256];
    char host[256];
    char origin[256];
    int nreq;
    struct va_ws *sws;
    int sws_opened;
    bool sws_closed;
    uint16_t sws_code;
    char sws_reason[128];
    int srv_nmsg;
    struct va_buf srv_msg;
    struct va_buf srv_prev; /* the message before srv_msg */
    char srv_first[16]; /* first byte of each of the first 16 messages, in arrival order */
    bool srv_echo;
    int raw_fd;

    /* client */
    struct rt_client *c;
    int opened;
    int nmsg;
    struct va_buf msg;
    int closed;
    int err, status;
    uint16_t code;
    char reason[128];
    bool close_in_message;
    bool in_open_call;

    /* test scratch */
    int listen_fd;
};

static void on_lws_closed(void *ud)
{
    struct fx *f = ud;
    f->lws_closed = true;
}

static void on_srv_closed(void *ud)
{
    struct fx *f = ud;
    f->srv_closed = true;
}

static void tick_cb(uv_timer_t *t)
{
    (void)t; /* only wakes uv_run(UV_RUN_ONCE) */
}

/* One accepted server connection; f->sws is the latest. */
struct sconn {
    struct fx *f;
    struct va_ws *ws;
};

static void srv_ws_message(void *ud, enum va_ws_opcode op, const char *data, size_t len)
{
    struct sconn *sc = ud;
    struct fx *f = sc->f;
    assert_int_equal(op, VA_WS_TEXT);
    if (f->srv_nmsg < (int)sizeof(f->srv_first))
        f->srv_first[f->srv_nmsg] = len ? data[0] : '-';
    f->srv_nmsg++;
    struct va_buf t = f->srv_prev;
    f->srv_prev = f->srv_msg;
    f->srv_msg = t;
    va_buf_reset(&f->srv_msg);
    assert_int_equal(va_buf_append(&f->srv_msg, data, len), 0);
    if (f->srv_echo)
        assert_int_equal(va_ws_send(sc->ws, VA_WS_TEXT, data, len), 0);
}

static void srv_ws_closed(void *ud, uint16_t code, const char *reason)
{
    struct sconn *sc = ud;
    struct fx *f = sc->f;
    f->sws_closed = true;
    f->sws_code = code;
    snprintf(f->sws_reason, sizeof(f->sws_reason), "%s", reason);
    if (f->sws == sc->ws)
        f->sws = NULL;
    free(sc);
}

static void copy_header(const struct va_http_req *req, const char *name, char *out, size_t max)
{
    size_t n = 0;
    const char *v = va_http_req_header(req, name, &n);
    if (!v) {
        out[0] = '\0';
        return;
    }
    snprintf(out, max, "%.*s", (int)n, v);
}

/* Blocking write of a whole buffer to a non-blocking socket (small test data). */
static void write_all(int fd, const void *p, size_t n)
{
    const char *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        assert_true(w > 0);
        b += w;
        n -= (size_t)w;
    }
}

static void on_request(void *ud, struct va_http_conn *hc, const struct va_http_req *req)
{
    struct fx *f = ud;
    f->nreq++;
    snprintf(f->target, sizeof(f->target), "%.*s", (int)req->target_len, req->target);
    copy_header(req, "authorization", f->authz, sizeof(f->authz));
    copy_header(req, "api-key", f->apikey, sizeof(f->apikey));
    copy_header(req, "host", f->host, sizeof(f->host));
    copy_header(req, "origin", f->origin, sizeof(f->origin));
    if (f->mode == SRV_STATUS) {
        static const char body[] = "{\"error\":\"no\"}";
        va_http_respond(hc, f->srv_status, "application/json", NULL, body, sizeof(body) - 1);
        return;
    }
    char accept[29];
    const char *why = NULL;
    assert_int_equal(va_ws_handshake_check(req, accept, &why), 0);
    uv_os_sock_t fd;
    char *pre = NULL;
    size_t pre_len = 0;
    assert_int_equal(va_http_upgrade(hc, 101, &fd, &pre, &pre_len), 0);
    if (f->mode == SRV_RAW_WS) {
        assert_int_equal(pre_len, 0);
        free(pre);
        char resp[256];
        int n = snprintf(resp, sizeof(resp),
                         "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                         accept);
        write_all(fd, resp, (size_t)n);
        f->raw_fd = fd;
        return;
    }
    struct va_ws_cfg wcfg = {
        .max_message = f->srv_max_message ? f->srv_max_message : (1u << 20),
        .max_queue = 1u << 21,
        .close_timeout_ms = 2000,
    };
    static const struct va_ws_cb wcb = {.on_message = srv_ws_message, .on_closed = srv_ws_closed};
    struct sconn *sc = calloc(1, sizeof(*sc));
    sc->f = f;
    assert_int_equal(va_ws_open(&sc->ws, &f->loop, &f->log, fd, accept, NULL, pre, pre_len,
                                "rt-client", &wcfg, &wcb, sc),
                     0);
    f->sws = sc->ws;
    free(pre);
    f->sws_opened++;
}

static void fx_init(struct fx *f, bool server)
{
    memset(f, 0, sizeof(*f));
    f->raw_fd = -1;
    f->listen_fd = -1;
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->logf = tmpfile();
    assert_non_null(f->logf);
    va_log_init(&f->log, fileno(f->logf), VA_LOG_DEBUG);
    va_buf_init(&f->msg, 4u << 20);
    va_buf_init(&f->srv_msg, 4u << 20);
    va_buf_init(&f->srv_prev, 4u << 20);
    assert_int_equal(rt_lws_open(&f->l, &f->loop, &f->log, NULL), 0);
    uv_timer_init(&f->loop, &f->tick);
    uv_timer_start(&f->tick, tick_cb, 5, 5);
    if (!server)
        return;
    struct va_http_server_cfg cfg = {
        .host = "127.0.0.1",
        .port = 0,
        .max_connections = 16,
        .max_header_bytes = 16384,
        .max_body_bytes = 65536,
        .request_timeout_ms = 5000,
        .idle_timeout_ms = 5000,
    };
    struct va_http_server_cb cb = {.on_request = on_request, .on_closed = on_srv_closed};
    assert_int_equal(va_http_server_open(&f->srv, &f->loop, &f->log, &cfg, &cb, f), 0);
    f->port = va_http_server_port(f->srv);
}

#define RUN_UNTIL(f, cond)                                                                         \
    do {                                                                                           \
        uint64_t dl_ = uv_hrtime() + WAIT_NS;                                                      \
        while (!(cond)) {                                                                          \
            if (uv_hrtime() > dl_)                                                                 \
                fail_msg("timed out waiting for %s", #cond);                                       \
            uv_run(&(f)->loop, UV_RUN_ONCE);                                                       \
        }                                                                                          \
    } while (0)

static void fx_log_has_no_secret(struct fx *f)
{
    fflush(f->logf);
    long end = ftell(f->logf);
    assert_true(end >= 0);
    char *all = malloc((size_t)end + 1);
    rewind(f->logf);
    size_t n = fread(all, 1, (size_t)end, f->logf);
    all[n] = '\0';
    assert_null(strstr(all, SECRET));
    assert_null(strstr(all, AZURE_KEY));
    free(all);
}

static void walk_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    fprintf(stderr, "left open: %s %p\n", uv_handle_type_name(h->type), (void *)h);
}

static void fx_finish(struct fx *f)
{
    if (f->sws) {
        va_ws_close(f->sws, VA_WS_GOING_AWAY, "test over");
        RUN_UNTIL(f, !f->sws);
    }
    if (f->raw_fd >= 0)
        close(f->raw_fd);
    if (f->listen_fd >= 0)
        close(f->listen_fd);
    if (f->srv)
        va_http_server_close(f->srv);
    bool first = !f->lws_close_called;
    rt_lws_close(f->l, on_lws_closed, f);
    if (first)
        assert_false(f->lws_closed); /* asynchronous */
    uv_close((uv_handle_t *)&f->tick, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(f->lws_closed);
    if (f->srv)
        assert_true(f->srv_closed);
    rt_lws_free(f->l);
    int rc = uv_loop_close(&f->loop);
    if (rc)
        uv_walk(&f->loop, walk_cb, NULL);
    assert_int_equal(rc, 0);
    fx_log_has_no_secret(f);
    va_log_deinit(&f->log);
    fclose(f->logf);
    va_buf_deinit(&f->msg);
    va_buf_deinit(&f->srv_msg);
    va_buf_deinit(&f->srv_prev);
}

/* ---- client callbacks ---- */

static void cli_open(void *ud)
{
    struct fx *f = ud;
    assert_false(f->in_open_call);
    f->opened++;
}

static void cli_message(void *ud, const char *data, size_t len)
{
    struct fx *f = ud;
    assert_false(f->in_open_call);
    f->nmsg++;
    va_buf_reset(&f->msg);
    assert_int_equal(va_buf_append(&f->msg, data, len), 0);
    if (f->close_in_message) {
        rt_client_close(f->c, 4001, "enough");
        /* closing: sends are refused from now on */
        assert_int_equal(rt_client_send(f->c, "x", 1), VA_ECLOSED);
    }
}

static void cli_closed(void *ud, int err, int status, uint16_t code, const char *reason)
{
    struct fx *f = ud;
    assert_false(f->in_open_call);
    assert_non_null(reason);
    f->closed++;
    f->err = err;
    f->status = status;
    f->code = code;
    snprintf(f->reason, sizeof(f->reason), "%s", reason);
    if (getenv("RT_TEST_VERBOSE"))
        fprintf(stderr, "closed: err %d (%s) status %d code %u reason \"%s\"\n", err,
                va_strerror(err), status, (unsigned)code, reason);
}

static const struct rt_client_cb cli_cb = {
    .on_open = cli_open, .on_message = cli_message, .on_closed = cli_closed};

static int fx_connect(struct fx *f, const char *url, const struct rt_client_cfg *base)
{
    struct rt_client_cfg cfg = {
        .url = url,
        .auth_header = "Authorization",
        .auth_value = "Bearer " SECRET,
        .connect_timeout_ms = 5000,
        .max_message = 1u << 20,
        .max_queue = 256u << 10,
    };
    if (base) {
        cfg = *base;
        cfg.url = url;
    }
    int before = f->opened + f->nmsg + f->closed;
    f->in_open_call = true;
    int err = rt_client_open(&f->c, f->l, &cfg, &cli_cb, f);
    f->in_open_call = false;
    /* nothing runs from inside the call */
    assert_int_equal(f->opened + f->nmsg + f->closed, before);
    return err;
}

static void fx_url(struct fx *f, char *out, size_t max, const char *scheme, const char *host,
                   const char *path)
{
    snprintf(out, max, "%s://%s:%u%s", scheme, host, (unsigned)f->port, path);
}

/* ---- loop tests ---- */

static void test_connect_auth_host_and_messages(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, true);
    f.srv_echo = true;
    char url[256];
    fx_url(&f, url, sizeof(url), "ws", "localhost", "/v1/realtime?model=gpt-realtime");
    assert_int_equal(fx_connect(&f, url, NULL), 0);
    /* before on_open */
    assert_int_equal(rt_client_send(f.c, "early", 5), VA_ESTATE);
    RUN_UNTIL(&f, f.opened || f.closed);
    assert_int_equal(f.opened, 1);
    assert_int_equal(f.nreq, 1);
    assert_string_equal(f.target, "/v1/realtime?model=gpt-realtime");
    assert_string_equal(f.authz, "Bearer " SECRET);
    assert_string_equal(f.apikey, "");
    /* the name we were given (resolved by uv_getaddrinfo), not the address */
    char host[64];
    snprintf(host, sizeof(host), "localhost:%u", (unsigned)f.port);
    assert_string_equal(f.host, host);
    assert_string_equal(f.origin, "");

    static const char hello[] = "{\"type\":\"session.update\",\"session\":{\"type\":\"realtime\"}}";
    assert_int_equal(rt_client_send(f.c, hello, sizeof(hello) - 1), 0);
    assert_int_equal(rt_client_send(f.c, "", 0), 0); /* an empty message is a message */
    assert_int_equal(rt_client_send(f.c, "{\"n\":3}", 7), 0);
    RUN_UNTIL(&f, f.nmsg == 3);
    assert_int_equal(f.srv_nmsg, 3);
    assert_int_equal(f.msg.len, 7);
    assert_memory_equal(f.msg.data, "{\"n\":3}", 7);
    assert_int_equal(rt_client_queued(f.c), 0);

    rt_client_close(f.c, 1000, "bye");
    rt_client_close(f.c, 1011, "again"); /* idempotent */
    assert_int_equal(rt_client_send(f.c, "x", 1), VA_ECLOSED);
    assert_int_equal(f.closed, 0);
    RUN_UNTIL(&f, f.closed && f.sws_closed);
    assert_int_equal(f.closed, 1);
    assert_int_equal(f.err, 0);
    assert_int_equal(f.status, 101);
    assert_int_equal(f.code, 1000);
    assert_string_equal(f.reason, "bye");
    assert_int_equal(f.sws_code, 1000);
    assert_string_equal(f.sws_reason, "bye");
    fx_finish(&f);
}

static void test_api_key_and_peer_close(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, true);
    char url[256];
    fx_url(&f, url, sizeof(url), "ws", "127.0.0.1", "/openai/v1/realtime?model=dep");
    struct rt_client_cfg cfg = {
        .auth_header = "api-key",
        .auth_value = AZURE_KEY,
    };
    assert_int_equal(fx_connect(&f, url, &cfg), 0);
    RUN_UNTIL(&f, f.opened);
    assert_string_equal(f.apikey, AZURE_KEY);
    assert_string_equal(f.authz, "");
    char host[64];
    snprintf(host, sizeof(host), "127.0.0.1:%u", (unsigned)f.port);
    assert_string_equal(f.host, host);
    /* the server ends the session the way OpenAI does at expiry */
    assert_int_equal(va_ws_send(f.sws, VA_WS_TEXT, "{\"type\":\"error\"}", 16), 0);
    va_ws_close(f.sws, 1001, "session_expired");
    RUN_UNTIL(&f, f.closed && f.sws_closed);
    assert_int_equal(f.nmsg, 1);
    assert_int_equal(f.err, 0);
    assert_int_equal(f.code, 1001);
    assert_string_equal(f.reason, "session_expired");
    assert_int_equal(f.sws_code, 1001);
    fx_finish(&f);
}

static void test_peer_close_4000_and_no_status(void **state)
{
    (void)state;
    for (int round = 0; round < 2; round++) {
        struct fx f;
        fx_init(&f, true);
        char url[256];
        fx_url(&f, url, sizeof(url), "ws", "127.0.0.1", "/");
        struct rt_client_cfg cfg = {0};
        assert_int_equal(fx_connect(&f, url, &cfg), 0);
        RUN_UNTIL(&f, f.opened);
        assert_string_equal(f.authz, ""); /* no auth header configured */
        if (round == 0)
            va_ws_close(f.sws, 4000, "beta_api_shape_disabled");
        else
            va_ws_close(f.sws, 1000, NULL);
        RUN_UNTIL(&f, f.closed && f.sws_closed);
        assert_int_equal(f.err, 0);
        assert_int_equal(f.code, round == 0 ? 4000 : 1000);
        assert_string_equal(f.reason, round == 0 ? "beta_api_shape_disabled" : "");
        fx_finish(&f);
    }
}

static void test_big_messages(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, true);
    f.srv_max_message = 1u << 20;
    char url[256];
    fx_url(&f, url, sizeof(url), "ws", "localhost", "/");
    assert_int_equal(fx_connect(&f, url, NULL), 0);
    RUN_UNTIL(&f, f.opened);
    size_t big = 300 * 1024;
    char *p = malloc(big);
    for (size_t i = 0; i < big; i++)
        p[i] = (char)('a' + (i * 7 + i / 1000) % 26);
    assert_int_equal(va_ws_send(f.sws, VA_WS_TEXT, p, big), 0);
    RUN_UNTIL(&f, f.nmsg == 1);
    assert_int_equal(f.msg.len, big);
    assert_memory_equal(f.msg.data, p, big);
    /* and a large one the other way, then a small one behind it: order kept */
    assert_int_equal(rt_client_send(f.c, p, 200 * 1024), 0);
    assert_int_equal(rt_client_send(f.c, "tail", 4), 0);
    assert_int_equal(rt_client_queued(f.c), 200 * 1024 + 4);
    RUN_UNTIL(&f, f.srv_nmsg == 2); /* one write: both may come in one turn */
    assert_int_equal(f.srv_prev.len, 200 * 1024);
    assert_memory_equal(f.srv_prev.data, p, 200 * 1024);
    assert_int_equal(f.srv_msg.len, 4);
    /* exactly max_message is still fine */
    fx_finish(&f);
    assert_int_equal(f.closed, 1);
    free(p);
}

static void test_max_message_edge_and_1009(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, true);
    char url[256];
    fx_url(&f, url, sizeof(url), "ws", "127.0.0.1", "/");
    struct rt_client_cfg cfg = {.max_message = 10000};
    assert_int_equal(fx_connect(&f, url, &cfg), 0);
    RUN_UNTIL(&f, f.opened);
    char *p = malloc(20000);
    memset(p, 'z', 20000);
    assert_int_equal(va_ws_send(f.sws, VA_WS_TEXT, p, 10000), 0);
    RUN_UNTIL(&f, f.nmsg == 1);
    assert_int_equal(f.msg.len, 10000);
    assert_int_equal(va_ws_send(f.sws, VA_WS_TEXT, p, 10001), 0);
    RUN_UNTIL(&f, f.closed && f.sws_closed);
    assert_int_equal(f.nmsg, 1);
    assert_int_equal(f.err, VA_ETOOBIG);
    assert_int_equal(f.code, 1009);
    assert_int_equal(f.sws_code, 1009);
    free(p);
    fx_finish(&f);
}

static void test_binary_1003(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, true);
    char url[256];
    fx_url(&f, url, sizeof(url), "ws", "127.0.0.1", "/");
    assert_int_equal(fx_connect(&f, url, NULL), 0);
    RUN_UNTIL(&f, f.opened);
    assert_int_equal(va_ws_send(f.sws, VA_WS_BINARY, "\x01\x02", 2), 0);
    RUN_UNTIL(&f, f.closed && f.sws_closed);
    assert_int_equal(f.nmsg, 0);
    assert_int_equal(f.err, VA_EPROTO);
    assert_int_equal(f.code, 1003);
    assert_int_equal(f.sws_code, 1003);
    fx_finish(&f);
}

static void test_close_inside_on_message(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, true);
    f.close_in_message = true;
    char url[256];
    fx_url(&f, url, sizeof(url), "ws", "127.0.0.1", "/");
    assert_int_equal(fx_connect(&f, url, NULL), 0);
    RUN_UNTIL(&f, f.opened);
    /* two messages in one burst: none after the close */
    assert_int_equal(va_ws_send(f.sws, VA_WS_TEXT, "one", 3), 0);
    assert_int_equal(va_ws_send(f.sws, VA_WS_TEXT, "two", 3), 0);
    RUN_UNTIL(&f, f.closed && f.sws_closed);
    assert_int_equal(f.nmsg, 1);
    assert_int_equal(f.err, 0);
    assert_int_equal(f.code, 4001);
    assert_string_equal(f.reason, "enough");
    assert_int_equal(f.sws_code, 4001);
    assert_string_equal(f.sws_reason, "enough");
    fx_finish(&f);
}

/* Frames by hand: an empty first fragment, continuations, a ping between them, then
 * TCP dropped without a Close. */
static void test_fragments_and_1006(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, true);
    f.mode = SRV_RAW_WS;
    char url[256];
    fx_url(&f, url, sizeof(url), "ws", "127.0.0.1", "/");
    assert_int_equal(fx_connect(&f, url, NULL), 0);
    RUN_UNTIL(&f, f.opened);
    static const unsigned char frames[] = {
        0x01, 0x00,                /* text, not FIN, empty */
        0x00, 0x03, 'a', 'b', 'c', /* continuation */
        0x89, 0x01, 'p',           /* ping in between */
        0x80, 0x03, 'd', 'e', 'f', /* continuation, FIN */
        0x81, 0x00,                /* an empty message */
        0x81, 0x02, '{', '}',      /* a whole one */
    };
    write_all(f.raw_fd, frames, sizeof(frames));
    RUN_UNTIL(&f, f.nmsg == 3);
    assert_int_equal(f.msg.len, 2);
    assert_memory_equal(f.msg.data, "{}", 2);
    /* the pong came back, masked: 0x8A 0x81 + 4 mask bytes + 1 */
    unsigned char pong[16];
    ssize_t n;
    uint64_t dl = uv_hrtime() + WAIT_NS;
    do {
        n = read(f.raw_fd, pong, sizeof(pong));
        if (n < 0)
            uv_run(&f.loop, UV_RUN_NOWAIT);
    } while (n < 0 && (errno == EAGAIN || errno == EINTR) && uv_hrtime() < dl);
    assert_int_equal(n, 7);
    assert_int_equal(pong[0], 0x8A);
    assert_int_equal(pong[1], 0x81);
    assert_int_equal(pong[6] ^ pong[2], 'p');
    close(f.raw_fd);
    f.raw_fd = -1;
    RUN_UNTIL(&f, f.closed);
    assert_int_equal(f.err, 0);
    assert_int_equal(f.code, 1006);
    fx_finish(&f);
}

static void test_fragmented_too_big(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, true);
    f.mode = SRV_RAW_WS;
    char url[256];
    fx_url(&f, url, sizeof(url), "ws", "127.0.0.1", "/");
    struct rt_client_cfg cfg = {.max_message = 5};
    assert_int_equal(fx_connect(&f, url, &cfg), 0);
    RUN_UNTIL(&f, f.opened);
    /* 3 + 3 bytes across fragments: over 5 only together */
    static const unsigned char frames[] = {0x01, 0x03, 'a', 'b', 'c', 0x80, 0x03, 'd', 'e', 'f'};
    write_all(f.raw_fd, frames, sizeof(frames));
    /* the Close comes back: 0x88, masked, code 1009 */
    unsigned char buf[64];
    ssize_t n;
    uint64_t dl = uv_hrtime() + WAIT_NS;
    do {
        uv_run(&f.loop, UV_RUN_NOWAIT);
        n = read(f.raw_fd, buf, sizeof(buf));
    } while (n < 0 && (errno == EAGAIN || errno == EINTR) && uv_hrtime() < dl);
    assert_true(n >= 8);
    assert_int_equal(buf[0], 0x88);
    size_t plen = buf[1] & 0x7f;
    assert_true(plen >= 2);
    unsigned char code_hi = buf[6] ^ buf[2], code_lo = buf[7] ^ buf[3];
    assert_int_equal(code_hi << 8 | code_lo, 1009);
    /* answer it, as a server must */
    static const unsigned char close_ack[] = {0x88, 0x02, 0x03, 0xF1};
    write_all(f.raw_fd, close_ack, sizeof(close_ack));
    RUN_UNTIL(&f, f.closed);
    assert_int_equal(f.nmsg, 0);
    assert_int_equal(f.err, VA_ETOOBIG);
    assert_int_equal(f.code, 1009);
    fx_finish(&f);
}

/* Our Close is never answered: lws drops TCP after its 5 s close-ack timeout. */
static void test_close_ack_timeout(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, true);
    f.mode = SRV_RAW_WS;
    char url[256];
    fx_url(&f, url, sizeof(url), "ws", "127.0.0.1", "/");
    assert_int_equal(fx_connect(&f, url, NULL), 0);
    RUN_UNTIL(&f, f.opened);
    rt_client_close(f.c, 4002, "going");
    RUN_UNTIL(&f, f.closed);
    assert_int_equal(f.err, 0);
    assert_int_equal(f.code, 4002);
    assert_string_equal(f.reason, "going");
    /* what reached the socket: one masked Close with our code */
    unsigned char buf[64];
    ssize_t n = read(f.raw_fd, buf, sizeof(buf));
    assert_true(n >= 8);
    assert_int_equal(buf[0], 0x88);
    assert_int_equal((buf[6] ^ buf[2]) << 8 | (buf[7] ^ buf[3]), 4002);
    fx_finish(&f);
}

/* Closing while lws still holds part of a large message: the message completes, then
 * the Close follows (lws 4.1 alone would flush and drop TCP without one). */
static void test_close_after_partial_write(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, true);
    f.mode = SRV_RAW_WS;
    char url[256];
    fx_url(&f, url, sizeof(url), "ws", "127.0.0.1", "/");
    const size_t big = 16u << 20;
    struct rt_client_cfg cfg = {.max_queue = big};
    assert_int_equal(fx_connect(&f, url, &cfg), 0);
    RUN_UNTIL(&f, f.opened);
    char *p = malloc(big);
    memset(p, 'x', big);
    assert_int_equal(rt_client_send(f.c, p, big), 0);
    free(p);
    /* let lws write what the socket takes; the peer reads nothing yet */
    RUN_UNTIL(&f, rt_client_queued(f.c) == 0);
    for (int i = 0; i < 20; i++)
        uv_run(&f.loop, UV_RUN_NOWAIT);
    rt_client_close(f.c, 4003, "flushed");
    /* now read everything: the whole text frame, then a Close */
    struct va_buf in;
    va_buf_init(&in, 32u << 20);
    size_t need = 0;
    uint64_t dl = uv_hrtime() + WAIT_NS;
    for (;;) {
        char tmp[65536];
        ssize_t n = read(f.raw_fd, tmp, sizeof(tmp));
        if (n > 0)
            assert_int_equal(va_buf_append(&in, tmp, (size_t)n), 0);
        else
            uv_run(&f.loop, UV_RUN_NOWAIT);
        assert_true(uv_hrtime() < dl);
        if (in.len >= 14 && !need) {
            const unsigned char *h = (const unsigned char *)in.data;
            assert_int_equal(h[0], 0x81);
            assert_int_equal(h[1], 0x80 | 127);
            uint64_t len = 0;
            for (int k = 0; k < 8; k++)
                len = len << 8 | h[2 + k];
            assert_int_equal(len, big);
            need = 14 + big;
        }
        if (need && in.len >= need + 8)
            break;
    }
    const unsigned char *cf = (const unsigned char *)in.data + need;
    assert_int_equal(cf[0], 0x88);
    assert_int_equal((cf[6] ^ cf[2]) << 8 | (cf[7] ^ cf[3]), 4003);
    va_buf_deinit(&in);
    static const unsigned char close_ack[] = {0x88, 0x02, 0x0F, 0xA3};
    write_all(f.raw_fd, close_ack, sizeof(close_ack));
    RUN_UNTIL(&f, f.closed);
    assert_int_equal(f.err, 0);
    assert_int_equal(f.code, 4003);
    fx_finish(&f);
}

static void test_upgrade_refused_status(void **state)
{
    (void)state;
    static const struct {
        int status;
        int err;
    } cases[] = {
        {401, VA_EAUTH}, {403, VA_EAUTH}, {500, VA_EPROTO}, {302, VA_EPROTO}, {200, VA_EPROTO}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct fx f;
        fx_init(&f, true);
        f.mode = SRV_STATUS;
        f.srv_status = cases[i].status;
        char url[256];
        fx_url(&f, url, sizeof(url), "ws", "localhost", "/v1/realtime");
        assert_int_equal(fx_connect(&f, url, NULL), 0);
        RUN_UNTIL(&f, f.closed);
        assert_int_equal(f.opened, 0);
        assert_int_equal(f.nreq, 1); /* 302 is not followed */
        if (f.err != cases[i].err || f.status != cases[i].status)
            fail_msg("status %d: err %d (%s) http %d", cases[i].status, f.err, va_strerror(f.err),
                     f.status);
        assert_int_equal(f.code, 1006);
        assert_true(f.reason[0]); /* lws's text */
        fx_finish(&f);
    }
}

static int listen_socket(uint16_t *port, int backlog)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t sl = sizeof(sa);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    *port = ntohs(sa.sin_port);
    if (backlog >= 0)
        assert_int_equal(listen(fd, backlog), 0);
    return fd;
}

static void test_connection_refused(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, false);
    /* a port that was just ours and is closed now */
    int fd = listen_socket(&f.port, -1);
    close(fd);
    char url[256];
    fx_url(&f, url, sizeof(url), "ws", "127.0.0.1", "/");
    assert_int_equal(fx_connect(&f, url, NULL), 0);
    RUN_UNTIL(&f, f.closed);
    assert_int_equal(f.opened, 0);
    assert_int_equal(f.err, UV_ECONNREFUSED);
    assert_int_equal(f.status, 0);
    fx_finish(&f);
}

static void test_connect_timeout(void **state)
{
    (void)state;
    /* round 0: listens, never accepts (the kernel completes TCP, the upgrade is never
     * answered); round 1: accepts and never writes. */
    for (int round = 0; round < 2; round++) {
        struct fx f;
        fx_init(&f, false);
        f.listen_fd = listen_socket(&f.port, 8);
        char url[256];
        fx_url(&f, url, sizeof(url), "ws", "127.0.0.1", "/");
        struct rt_client_cfg cfg = {.connect_timeout_ms = 300};
        uint64_t t0 = uv_hrtime();
        assert_int_equal(fx_connect(&f, url, &cfg), 0);
        int acc = -1;
        if (round == 1) {
            assert_int_equal(fcntl(f.listen_fd, F_SETFL, O_NONBLOCK), 0);
            RUN_UNTIL(&f, (acc = accept(f.listen_fd, NULL, NULL)) >= 0);
        }
        RUN_UNTIL(&f, f.closed);
        uint64_t ms = (uv_hrtime() - t0) / 1000000;
        if (getenv("RT_TEST_VERBOSE"))
            fprintf(stderr, "timeout after %llu ms\n", (unsigned long long)ms);
        assert_int_equal(f.opened, 0);
        assert_int_equal(f.err, UV_ETIMEDOUT);
        /* ours, not lws's 20 s handshake timeout */
        assert_true(ms >= 250 && ms < 10000);
        if (acc >= 0)
            close(acc);
        fx_finish(&f);
    }
}

/* TCP up, then dropped before any answer: a handshake failure, not a refusal. */
static void test_hangup_during_upgrade(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, false);
    f.listen_fd = listen_socket(&f.port, 8);
    assert_int_equal(fcntl(f.listen_fd, F_SETFL, O_NONBLOCK), 0);
    char url[256];
    fx_url(&f, url, sizeof(url), "ws", "127.0.0.1", "/");
    assert_int_equal(fx_connect(&f, url, NULL), 0);
    int acc = -1;
    RUN_UNTIL(&f, (acc = accept(f.listen_fd, NULL, NULL)) >= 0);
    close(acc);
    RUN_UNTIL(&f, f.closed);
    assert_int_equal(f.opened, 0);
    assert_int_equal(f.err, VA_EPROTO);
    assert_int_equal(f.status, 0);
    fx_finish(&f);
}

static void test_dns_failure(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, false);
    struct rt_client_cfg cfg = {.connect_timeout_ms = 2000};
    assert_int_equal(fx_connect(&f, "ws://nonexistent.invalid/", &cfg), 0);
    /* a resolver that does not answer holds the getaddrinfo thread past our timeout;
     * on_closed waits for it (the request cannot be cancelled while it runs) */
    uint64_t dl = uv_hrtime() + 60ull * 1000 * 1000 * 1000;
    while (!f.closed && uv_hrtime() < dl)
        uv_run(&f.loop, UV_RUN_ONCE);
    assert_int_equal(f.closed, 1);
    assert_int_equal(f.opened, 0);
    /* UV_EAI_* are all at or below UV_EAI_ADDRFAMILY (-3000) */
    if (!(f.err <= UV_EAI_ADDRFAMILY || f.err == UV_ETIMEDOUT))
        fail_msg("err %d (%s)", f.err, va_strerror(f.err));
    fx_finish(&f);
}

static void test_close_while_resolving(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, true);
    char url[256];
    fx_url(&f, url, sizeof(url), "ws", "localhost", "/");
    assert_int_equal(fx_connect(&f, url, NULL), 0);
    rt_client_close(f.c, 1000, "changed my mind");
    assert_int_equal(f.closed, 0); /* never from inside the call */
    assert_int_equal(rt_client_send(f.c, "x", 1), VA_ECLOSED);
    RUN_UNTIL(&f, f.closed);
    assert_int_equal(f.err, UV_ECANCELED);
    assert_int_equal(f.code, 1000);
    assert_string_equal(f.reason, "changed my mind");
    assert_int_equal(f.opened, 0);
    fx_finish(&f);
    assert_int_equal(f.nreq, 0);
    assert_int_equal(f.closed, 1);
}

static void later_cb(uv_timer_t *t)
{
    struct fx *f = t->data;
    rt_client_close(f->c, 1000, "abort");
    uv_close((uv_handle_t *)t, NULL);
}

static void test_close_while_connecting(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, false);
    f.listen_fd = listen_socket(&f.port, 8);
    char url[256];
    fx_url(&f, url, sizeof(url), "ws", "127.0.0.1", "/");
    assert_int_equal(fx_connect(&f, url, NULL), 0);
    /* the upgrade is sent and never answered: close from a uv callback meanwhile */
    uv_timer_t later;
    uv_timer_init(&f.loop, &later);
    later.data = &f;
    uv_timer_start(&later, later_cb, 150, 0);
    RUN_UNTIL(&f, f.closed);
    assert_int_equal(f.opened, 0);
    assert_int_equal(f.err, UV_ECANCELED);
    assert_int_equal(f.code, 1000);
    assert_string_equal(f.reason, "abort");
    fx_finish(&f);
}

static void test_send_queue_bound(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, true);
    char url[256];
    fx_url(&f, url, sizeof(url), "ws", "127.0.0.1", "/");
    struct rt_client_cfg cfg = {.max_queue = 1000};
    assert_int_equal(fx_connect(&f, url, &cfg), 0);
    RUN_UNTIL(&f, f.opened);
    char p[1001];
    memset(p, 'q', sizeof(p));
    assert_int_equal(rt_client_send(f.c, p, 1001), VA_EFULL);
    assert_int_equal(rt_client_queued(f.c), 0);
    assert_int_equal(rt_client_send(f.c, p, 600), 0);
    assert_int_equal(rt_client_send(f.c, p, 401), VA_EFULL); /* nothing queued */
    assert_int_equal(rt_client_queued(f.c), 600);
    assert_int_equal(rt_client_send(f.c, p, 400), 0); /* exactly at the bound */
    assert_int_equal(rt_client_queued(f.c), 1000);
    assert_int_equal(rt_client_send(f.c, p, 1), VA_EFULL);
    RUN_UNTIL(&f, f.srv_nmsg == 2);
    assert_int_equal(rt_client_queued(f.c), 0);
    assert_int_equal(f.srv_msg.len, 400);
    assert_int_equal(rt_client_send(f.c, p, 1000), 0);
    RUN_UNTIL(&f, f.srv_nmsg == 3);
    assert_int_equal(f.closed, 0); /* VA_EFULL left the connection up */
    fx_finish(&f);
}

/* Messages sent outside lws's service leave from the check phase of the same loop turn,
 * all of them and in order, without a WRITEABLE round trip per message; until then they
 * count against max_queue as before. */
static void test_send_flushes_within_turn(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, true);
    char url[256];
    fx_url(&f, url, sizeof(url), "ws", "127.0.0.1", "/");
    struct rt_client_cfg cfg = {.max_queue = 1000};
    assert_int_equal(fx_connect(&f, url, &cfg), 0);
    RUN_UNTIL(&f, f.opened);
    char p[400];
    memset(p, 'a', sizeof(p));
    assert_int_equal(rt_client_send(f.c, p, 400), 0);
    memset(p, 'b', sizeof(p));
    assert_int_equal(rt_client_send(f.c, p, 400), 0);
    memset(p, 'c', sizeof(p));
    assert_int_equal(rt_client_send(f.c, p, 201), VA_EFULL); /* still queued: bound holds */
    assert_int_equal(rt_client_send(f.c, p, 200), 0);
    assert_int_equal(rt_client_queued(f.c), 1000);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    assert_int_equal(rt_client_queued(f.c), 0); /* one turn wrote all three */
    RUN_UNTIL(&f, f.srv_nmsg == 3);
    assert_memory_equal(f.srv_first, "abc", 3);
    assert_int_equal(f.srv_msg.len, 200);
    /* the next turn's messages too, and the queue is free again */
    assert_int_equal(rt_client_send(f.c, "d", 1), 0);
    assert_int_equal(rt_client_send(f.c, "e", 1), 0);
    RUN_UNTIL(&f, f.srv_nmsg == 5);
    assert_memory_equal(f.srv_first, "abcde", 5);
    assert_int_equal(f.closed, 0);
    fx_finish(&f);
}

static void test_wss_to_plain_port(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, true);
    char url[256];
    fx_url(&f, url, sizeof(url), "wss", "localhost", "/");
    assert_int_equal(fx_connect(&f, url, NULL), 0);
    RUN_UNTIL(&f, f.closed);
    assert_int_equal(f.opened, 0);
    assert_true(f.err < 0);
    assert_int_equal(f.status, 0);
    fx_finish(&f);
}

static void test_open_refusals(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, false);
    struct rt_client *c = NULL;
    struct rt_client_cfg cfg = {.url = "http://x/"};
    assert_int_equal(rt_client_open(&c, f.l, &cfg, &cli_cb, &f), VA_EINVAL);
    cfg.url = "ws://x/";
    cfg.auth_header = "Authorization";
    cfg.auth_value = "Bearer a\r\nX-Evil: 1";
    assert_int_equal(rt_client_open(&c, f.l, &cfg, &cli_cb, &f), VA_EINVAL);
    cfg.auth_value = NULL;
    assert_int_equal(rt_client_open(&c, f.l, &cfg, &cli_cb, &f), VA_EINVAL);
    cfg.auth_header = "Bad Header";
    cfg.auth_value = "v";
    assert_int_equal(rt_client_open(&c, f.l, &cfg, &cli_cb, &f), VA_EINVAL);
    cfg.auth_header = "Authorization:";
    assert_int_equal(rt_client_open(&c, f.l, &cfg, &cli_cb, &f), VA_EINVAL);
    /* a host lws would cut in its 128-byte Host line */
    char url[300];
    memcpy(url, "ws://", 5);
    memset(url + 5, 'h', 200);
    strcpy(url + 205, "/");
    cfg.url = url;
    cfg.auth_header = NULL;
    assert_int_equal(rt_client_open(&c, f.l, &cfg, &cli_cb, &f), VA_ETOOBIG);
    assert_null(c);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    assert_int_equal(f.closed, 0);
    fx_finish(&f);
    /* after rt_lws_close(): refused (checked on a second context) */
    fx_init(&f, false);
    rt_lws_close(f.l, on_lws_closed, &f);
    f.lws_close_called = true;
    cfg.url = "ws://127.0.0.1:1/";
    assert_int_equal(rt_client_open(&c, f.l, &cfg, &cli_cb, &f), VA_ECLOSED);
    fx_finish(&f); /* a second rt_lws_close() is a no-op */
}

static void test_lws_close_with_clients(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, true);
    char url[256];
    fx_url(&f, url, sizeof(url), "ws", "127.0.0.1", "/");
    assert_int_equal(fx_connect(&f, url, NULL), 0);
    RUN_UNTIL(&f, f.opened);
    /* a second client still resolving */
    struct rt_client *c2;
    struct rt_client_cfg cfg = {.url = url};
    assert_int_equal(rt_client_open(&c2, f.l, &cfg, &cli_cb, &f), 0);
    rt_lws_close(f.l, on_lws_closed, &f);
    f.lws_close_called = true;
    RUN_UNTIL(&f, f.closed == 2 && f.sws_closed);
    assert_int_equal(f.sws_code, 1001);
    assert_string_equal(f.sws_reason, "shutdown");
    fx_finish(&f); /* its rt_lws_close() is the second call */
}

/* Two clients on one context, interleaved. */
static void test_two_clients(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, true);
    f.srv_echo = true;
    char url[256];
    fx_url(&f, url, sizeof(url), "ws", "127.0.0.1", "/");
    assert_int_equal(fx_connect(&f, url, NULL), 0);
    RUN_UNTIL(&f, f.opened == 1);
    struct va_ws *first = f.sws;
    struct rt_client *c1 = f.c;
    assert_int_equal(fx_connect(&f, url, NULL), 0);
    struct rt_client *c2 = f.c;
    RUN_UNTIL(&f, f.opened == 2);
    assert_true(f.sws != first);
    assert_int_equal(rt_client_send(c1, "a", 1), 0);
    assert_int_equal(rt_client_send(c2, "b", 1), 0);
    RUN_UNTIL(&f, f.nmsg == 2);
    rt_client_close(c1, 1000, NULL);
    RUN_UNTIL(&f, f.closed == 1);
    assert_int_equal(f.code, 1000);
    assert_int_equal(rt_client_send(c2, "c", 1), 0);
    RUN_UNTIL(&f, f.nmsg == 3);
    assert_memory_equal(f.msg.data, "c", 1);
    /* va_ws of the first connection is gone; the second is closed by fx_finish */
    fx_finish(&f);
    assert_int_equal(f.closed, 2);
}

/* ---- TLS: openssl s_server terminates TLS and answers a plain HTTP page ---- */

static bool run_cmd(const char *cmd)
{
    int rc = system(cmd);
    return rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0;
}

static void test_tls_handshake(void **state)
{
    (void)state;
    if (!run_cmd("command -v openssl >/dev/null 2>&1")) {
        skip();
        return;
    }
    char dir[] = "/tmp/rt-tls-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "-keyout ca.key -out ca.pem -days 1 -subj /CN=test-ca >/dev/null 2>&1 && "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout srv.key "
             "-out srv.csr -subj /CN=localhost >/dev/null 2>&1 && "
             "printf 'subjectAltName=DNS:localhost\\n' > ext.cnf && "
             "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
             "-out srv.pem -days 1 -extfile ext.cnf >/dev/null 2>&1 && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "-keyout other.key -out other.pem -days 1 -subj /CN=other-ca >/dev/null 2>&1",
             dir);
    assert_true(run_cmd(cmd));

    uint16_t port;
    int probe = listen_socket(&port, -1);
    close(probe);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char acc[16], cert[256], key[256];
        snprintf(acc, sizeof(acc), "%u", (unsigned)port);
        snprintf(cert, sizeof(cert), "%s/srv.pem", dir);
        snprintf(key, sizeof(key), "%s/srv.key", dir);
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execlp("openssl", "openssl", "s_server", "-accept", acc, "-cert", cert, "-key", key, "-www",
               "-quiet", (char *)NULL);
        _exit(127);
    }
    /* wait until it listens */
    bool up = false;
    for (int i = 0; i < 200 && !up; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons(port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        up = connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0;
        close(s);
        if (!up)
            usleep(20000);
    }
    assert_true(up);

    /* round 0: our CA, the name matches: TLS completes, the page is a 200, not a 101.
     * round 1: another CA: the certificate check fails, no HTTP status at all.
     * round 2: our CA but the address as the name: the hostname check fails. */
    for (int round = 0; round < 3; round++) {
        char ca[256];
        snprintf(ca, sizeof(ca), "%s/%s", dir, round == 1 ? "other.pem" : "ca.pem");
        struct fx f;
        memset(&f, 0, sizeof(f));
        f.raw_fd = f.listen_fd = -1;
        assert_int_equal(uv_loop_init(&f.loop), 0);
        f.logf = tmpfile();
        va_log_init(&f.log, fileno(f.logf), VA_LOG_DEBUG);
        va_buf_init(&f.msg, 1 << 20);
        va_buf_init(&f.srv_msg, 1 << 20);
        assert_int_equal(rt_lws_open(&f.l, &f.loop, &f.log, ca), 0);
        uv_timer_init(&f.loop, &f.tick);
        uv_timer_start(&f.tick, tick_cb, 5, 5);
        f.port = port;
        char url[256];
        fx_url(&f, url, sizeof(url), "wss", round == 2 ? "127.0.0.1" : "localhost", "/");
        assert_int_equal(fx_connect(&f, url, NULL), 0);
        RUN_UNTIL(&f, f.closed);
        assert_int_equal(f.opened, 0);
        assert_int_equal(f.err, VA_EPROTO);
        if (round == 0) {
            assert_int_equal(f.status, 200);
        } else {
            assert_int_equal(f.status, 0);
            /* OpenSSL's verify error, not lws's "connect SSL err 1" */
            assert_string_equal(f.reason, round == 1 ? "TLS: unable to get local issuer certificate"
                                                     : "TLS: IP address mismatch");
        }
        fx_finish(&f);
    }
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_true(run_cmd(cmd));
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_parse),
        cmocka_unit_test(test_url_refused),
        cmocka_unit_test(test_url_bounds),
        cmocka_unit_test(test_url_every_prefix),
        cmocka_unit_test(test_ws_frame),
        cmocka_unit_test(test_connect_auth_host_and_messages),
        cmocka_unit_test(test_api_key_and_peer_close),
        cmocka_unit_test(test_peer_close_4000_and_no_status),
        cmocka_unit_test(test_big_messages),
        cmocka_unit_test(test_max_message_edge_and_1009),
        cmocka_unit_test(test_binary_1003),
        cmocka_unit_test(test_close_inside_on_message),
        cmocka_unit_test(test_fragments_and_1006),
        cmocka_unit_test(test_fragmented_too_big),
        cmocka_unit_test(test_close_ack_timeout),
        cmocka_unit_test(test_close_after_partial_write),
        cmocka_unit_test(test_upgrade_refused_status),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_connect_timeout),
        cmocka_unit_test(test_hangup_during_upgrade),
        cmocka_unit_test(test_dns_failure),
        cmocka_unit_test(test_close_while_resolving),
        cmocka_unit_test(test_close_while_connecting),
        cmocka_unit_test(test_send_queue_bound),
        cmocka_unit_test(test_send_flushes_within_turn),
        cmocka_unit_test(test_wss_to_plain_port),
        cmocka_unit_test(test_open_refusals),
        cmocka_unit_test(test_lws_close_with_clients),
        cmocka_unit_test(test_two_clients),
        cmocka_unit_test(test_tls_handshake),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
