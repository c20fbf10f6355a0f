/* Loop test: the MCP server on a real loop and loopback socket. A client thread speaks raw
 * HTTP and hand-masked WebSocket frames with blocking sockets while the main thread runs
 * the loop; it records the first failure, and the main thread asserts on it after a clean
 * close (uv_loop_close() == 0). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "mcp/registry.h"
#include "mcp/server.h"

#define SCHEMA                                                                                     \
    "{\"type\":\"object\",\"properties\":{\"msg\":{\"type\":\"string\"}},\"required\":[\"msg\"],"  \
    "\"additionalProperties\":false}"

struct fixture;

struct slow_call {
    uv_timer_t timer;
    struct mcp_call_done *done;
    char msg[64];
};

struct fixture {
    uv_loop_t loop;
    struct va_log log;
    struct mcp_registry reg;
    struct mcp_server_info info;
    struct mcp_server *srv;
    uv_async_t stop;
    bool closed;
    uint16_t port;
    pthread_t thread;
    void (*script)(struct fixture *f);
    char fail[512];
    int hang_cancelled;
    bool stop_sent; /* the script asked for the close itself */
};

/* ---- fake tools ---- */

static void tool_reply(struct mcp_call_done *done, const char *msg, bool slow)
{
    char json[128];
    int n = snprintf(json, sizeof(json), "{\"success\":true,\"msg\":\"%s%s\"}", msg,
                     slow ? "-slow-ok" : "");
    mcp_call_complete(done, json, (size_t)n, false);
}

static int echo_call(void *ud, const cJSON *args, const struct mcp_call_ctx *cx,
                     struct mcp_call_done *done)
{
    (void)ud;
    (void)cx;
    tool_reply(done, cJSON_GetObjectItem(args, "msg")->valuestring, false);
    return 0;
}

static void slow_closed(uv_handle_t *h)
{
    free(h->data);
}

static void slow_fire(uv_timer_t *t)
{
    struct slow_call *sc = t->data;
    tool_reply(sc->done, sc->msg, true);
    uv_close((uv_handle_t *)t, slow_closed);
}

static int slow_call(void *ud, const cJSON *args, const struct mcp_call_ctx *cx,
                     struct mcp_call_done *done)
{
    struct fixture *f = ud;
    (void)cx;
    struct slow_call *sc = calloc(1, sizeof(*sc));
    sc->done = done;
    snprintf(sc->msg, sizeof(sc->msg), "%s", cJSON_GetObjectItem(args, "msg")->valuestring);
    uv_timer_init(&f->loop, &sc->timer);
    sc->timer.data = sc;
    uv_timer_start(&sc->timer, slow_fire, 30, 0);
    return 0;
}

/* Never answers on its own: only its cancel hook completes it. */
static int hang_call(void *ud, const cJSON *args, const struct mcp_call_ctx *cx,
                     struct mcp_call_done *done)
{
    (void)ud;
    (void)args;
    (void)cx;
    (void)done;
    return 0;
}

static void hang_cancel(void *ud, struct mcp_call_done *done)
{
    struct fixture *f = ud;
    f->hang_cancelled++;
    mcp_call_complete(done, "{\"success\":false,\"error\":\"cancelled\"}", 36, true);
}

static void add_tool(struct fixture *f, const char *name, uint32_t timeout_ms,
                     int (*call)(void *, const cJSON *, const struct mcp_call_ctx *,
                                 struct mcp_call_done *),
                     void (*cancel)(void *, struct mcp_call_done *))
{
    struct mcp_tool_def d = {
        .name = name,
        .description = "test tool",
        .input_schema = SCHEMA,
        .timeout_ms = timeout_ms,
        .offer = MCP_OFFER_BOTH,
        .call = call,
        .cancel = cancel,
        .tool_ud = f,
    };
    assert_int_equal(mcp_registry_add(&f->reg, &d, NULL), 0);
}

/* ---- loop side ---- */

static void *client_main(void *arg);

static void on_srv_closed(void *ud)
{
    struct fixture *f = ud;
    f->closed = true;
}

static void on_stop(uv_async_t *a)
{
    struct fixture *f = a->data;
    mcp_server_close(f->srv, on_srv_closed, f);
    uv_close((uv_handle_t *)a, NULL);
}

static void fixture_cfg(struct mcp_server_cfg *cfg, struct fixture *f)
{
    static const char *const origins[] = {"http://good.example"};
    mcp_server_cfg_defaults(cfg);
    cfg->host = "127.0.0.1";
    cfg->port = 0;
    cfg->info = &f->info;
    cfg->allowed_origins = origins;
    cfg->norigins = 1;
    cfg->max_message_bytes = 1024;
    cfg->max_in_flight = 2;
}

static void fixture_init(struct fixture *f)
{
    memset(f, 0, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    va_log_init(&f->log, 1, VA_LOG_WARN);
    f->info = (struct mcp_server_info){.name = "voice-agent-mcp", .version = "0.1.0"};
    mcp_registry_init(&f->reg, 8);
    add_tool(f, "echo", 1000, echo_call, NULL);
    add_tool(f, "slow", 1000, slow_call, NULL);
    add_tool(f, "hang", 100, hang_call, hang_cancel);
}

static void fixture_run(struct fixture *f, const struct mcp_server_cfg *cfg,
                        void (*script)(struct fixture *f))
{
    assert_int_equal(mcp_server_open(&f->srv, &f->loop, &f->log, cfg, &f->reg), 0);
    f->port = mcp_server_port(f->srv);
    f->script = script;
    uv_async_init(&f->loop, &f->stop, on_stop);
    f->stop.data = f;
    assert_int_equal(pthread_create(&f->thread, NULL, client_main, f), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    pthread_join(f->thread, NULL);
    assert_true(f->closed);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    mcp_registry_deinit(&f->reg);
    va_log_deinit(&f->log);
    if (f->fail[0])
        fail_msg("%s", f->fail);
}

/* ---- client side (its own thread, blocking sockets) ---- */

static void check_fail(struct fixture *f, int line, const char *what, const char *ctx)
{
    if (!f->fail[0])
        snprintf(f->fail, sizeof(f->fail), "line %d: %s; got: %.380s", line, what, ctx);
}

#define CHECK(f, cond, ctx)                                                                        \
    do {                                                                                           \
        if (!(cond))                                                                               \
            check_fail((f), __LINE__, #cond, (ctx));                                               \
    } while (0)

static void *client_main(void *arg)
{
    struct fixture *f = arg;
    f->script(f);
    if (!f->stop_sent)
        uv_async_send(&f->stop);
    return NULL;
}

static int cl_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
        close(fd);
        return -1;
    }
    return fd;
}

static void cl_send(int fd, const void *p, size_t len)
{
    const char *c = p;
    while (len) {
        ssize_t n = send(fd, c, len, MSG_NOSIGNAL);
        if (n <= 0)
            return;
        c += n;
        len -= (size_t)n;
    }
}

struct resp {
    int status;
    char text[8192]; /* head and body, NUL-terminated */
    const char *body;
};

/* One request on a fresh connection (Connection: close): reads until EOF. */
static void cl_http(struct fixture *f, struct resp *r, const char *method, const char *path,
                    const char *headers, const char *body)
{
    char req[4096];
    size_t blen = body ? strlen(body) : 0;
    int n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s"
                     "Content-Length: %zu\r\n\r\n",
                     method, path, headers ? headers : "", blen);
    memset(r, 0, sizeof(*r));
    int fd = cl_connect(f->port);
    if (fd < 0)
        return;
    cl_send(fd, req, (size_t)n);
    if (blen)
        cl_send(fd, body, blen);
    size_t got = 0;
    for (;;) {
        ssize_t k = recv(fd, r->text + got, sizeof(r->text) - 1 - got, 0);
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    close(fd);
    r->text[got] = '\0';
    if (got > 12)
        r->status = (int)strtol(r->text + 9, NULL, 10);
    char *b = strstr(r->text, "\r\n\r\n");
    r->body = b ? b + 4 : "";
}

/* The value of header name (case-insensitive) copied into out, "" when absent. */
static void resp_header(const char *text, const char *name, char *out, size_t cap)
{
    out[0] = '\0';
    size_t nl = strlen(name);
    for (const char *p = strstr(text, "\r\n"); p && p[2] != '\r'; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, nl) == 0 && p[2 + nl] == ':') {
            const char *v = p + 2 + nl + 1;
            while (*v == ' ')
                v++;
            size_t len = strcspn(v, "\r");
            snprintf(out, cap, "%.*s", (int)len, v);
            return;
        }
    }
}

#define INIT_BODY                                                                                  \
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"     \
    "\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}"
#define JSON_HDRS                                                                                  \
    "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"

static void script_http(struct fixture *f)
{
    struct resp r;
    char sid[128], hdrs[512], v[128];

    cl_http(f, &r, "POST", "/mcp", JSON_HDRS, INIT_BODY);
    CHECK(f, r.status == 200, r.text);
    CHECK(f, strstr(r.body, "\"protocolVersion\":\"2025-06-18\"") != NULL, r.text);
    resp_header(r.text, "mcp-session-id", sid, sizeof(sid));
    CHECK(f, strlen(sid) == 32 && strspn(sid, "0123456789abcdef") == 32, r.text);
    snprintf(hdrs, sizeof(hdrs),
             JSON_HDRS "Mcp-Session-Id: %s\r\nMCP-Protocol-Version: 2025-06-18\r\n", sid);

    cl_http(f, &r, "POST", "/mcp", hdrs,
            "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
    CHECK(f, r.status == 202 && r.body[0] == '\0', r.text);

    cl_http(f, &r, "POST", "/mcp", hdrs,
            "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}");
    CHECK(f, r.status == 200, r.text);
    CHECK(f, strstr(r.body, "\"name\":\"echo\"") && strstr(r.body, "\"name\":\"slow\""), r.text);
    resp_header(r.text, "content-type", v, sizeof(v));
    CHECK(f, strcmp(v, "application/json") == 0, r.text);

    cl_http(f, &r, "POST", "/mcp", hdrs,
            "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\","
            "\"arguments\":{\"msg\":\"hi\"}}}");
    CHECK(f, r.status == 200 && strstr(r.body, "\"id\":3"), r.text);
    CHECK(f, strstr(r.body, "\"structuredContent\":{\"success\":true,\"msg\":\"hi\"}"), r.text);
    CHECK(f, strstr(r.body, "\"isError\":false"), r.text);

    /* asynchronous tool: the POST is held until its timer completes it */
    cl_http(f, &r, "POST", "/mcp", hdrs,
            "{\"jsonrpc\":\"2.0\",\"id\":\"s\",\"method\":\"tools/call\",\"params\":{\"name\":"
            "\"slow\",\"arguments\":{\"msg\":\"yo\"}}}");
    CHECK(f, r.status == 200 && strstr(r.body, "\"id\":\"s\"") && strstr(r.body, "yo-slow-ok"),
          r.text);

    /* a tool that never answers: the timeout result, and its cancel hook was asked */
    cl_http(f, &r, "POST", "/mcp", hdrs,
            "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":{\"name\":\"hang\","
            "\"arguments\":{\"msg\":\"x\"}}}");
    CHECK(f,
          r.status == 200 && strstr(r.body, "\"error\":\"timeout\"") &&
              strstr(r.body, "\"isError\":true"),
          r.text);

    /* argument failure is a result, unknown tool a -32602 */
    cl_http(f, &r, "POST", "/mcp", hdrs,
            "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\","
            "\"arguments\":{\"msg\":1}}}");
    CHECK(f, r.status == 200 && strstr(r.body, "\"isError\":true"), r.text);
    cl_http(
        f, &r, "POST", "/mcp", hdrs,
        "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tools/call\",\"params\":{\"name\":\"nope\"}}");
    CHECK(f, r.status == 200 && strstr(r.body, "-32602"), r.text);

    /* SSE when only text/event-stream is acceptable */
    snprintf(
        hdrs, sizeof(hdrs),
        "Content-Type: application/json\r\nAccept: text/event-stream\r\nMcp-Session-Id: %s\r\n",
        sid);
    cl_http(f, &r, "POST", "/mcp", hdrs, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"ping\"}");
    resp_header(r.text, "content-type", v, sizeof(v));
    CHECK(f, r.status == 200 && strcmp(v, "text/event-stream") == 0, r.text);
    CHECK(f,
          strcmp(r.body,
                 "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}\n\n") == 0,
          r.text);

    /* session rules */
    cl_http(f, &r, "POST", "/mcp", JSON_HDRS, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"ping\"}");
    CHECK(f, r.status == 400, r.text);
    cl_http(f, &r, "POST", "/mcp", JSON_HDRS "Mcp-Session-Id: 0123456789abcdef0123456789abcdef\r\n",
            "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"ping\"}");
    CHECK(f, r.status == 404, r.text);
    snprintf(hdrs, sizeof(hdrs),
             JSON_HDRS "Mcp-Session-Id: %s\r\nMCP-Protocol-Version: 1999-01-01\r\n", sid);
    cl_http(f, &r, "POST", "/mcp", hdrs, "{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"ping\"}");
    CHECK(f, r.status == 400, r.text);

    /* the legacy dialect needs no session */
    cl_http(f, &r, "POST", "/mcp", JSON_HDRS,
            "{\"id\":\"req_1\",\"method\":\"tool.call\",\"params\":{\"name\":\"echo\",\"args\":{"
            "\"msg\":\"legacy\"}}}");
    CHECK(f,
          r.status == 200 &&
              strcmp(r.body,
                     "{\"id\":\"req_1\",\"result\":{\"success\":true,\"msg\":\"legacy\"}}") == 0,
          r.text);

    /* faults before the engine */
    cl_http(f, &r, "POST", "/mcp", JSON_HDRS, "{\"jsonrpc\":");
    CHECK(f, r.status == 400 && strstr(r.body, "-32700"), r.text);
    char big[2048];
    memset(big, ' ', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    cl_http(f, &r, "POST", "/mcp", JSON_HDRS, big);
    CHECK(f, r.status == 413, r.text);
    cl_http(f, &r, "GET", "/mcp", "Accept: text/event-stream\r\n", NULL);
    CHECK(f, r.status == 405, r.text);
    cl_http(f, &r, "GET", "/", NULL, NULL);
    CHECK(f, r.status == 426, r.text);
    cl_http(f, &r, "GET", "/elsewhere", NULL, NULL);
    CHECK(f, r.status == 404, r.text);
    cl_http(f, &r, "POST", "/mcp", JSON_HDRS "Origin: http://evil.example\r\n", INIT_BODY);
    CHECK(f, r.status == 403, r.text);
    cl_http(f, &r, "POST", "/mcp", JSON_HDRS "Origin: http://good.example\r\n", INIT_BODY);
    CHECK(f, r.status == 200, r.text);
    cl_http(f, &r, "POST", "/mcp", "Content-Type: text/plain\r\n", INIT_BODY);
    CHECK(f, r.status == 415, r.text);

    /* DELETE ends the session */
    snprintf(hdrs, sizeof(hdrs), "Mcp-Session-Id: %s\r\n", sid);
    cl_http(f, &r, "DELETE", "/mcp", hdrs, NULL);
    CHECK(f, r.status == 200, r.text);
    snprintf(hdrs, sizeof(hdrs), JSON_HDRS "Mcp-Session-Id: %s\r\n", sid);
    cl_http(f, &r, "POST", "/mcp", hdrs, "{\"jsonrpc\":\"2.0\",\"id\":11,\"method\":\"ping\"}");
    CHECK(f, r.status == 404, r.text);
}

static void test_http(void **state)
{
    (void)state;
    struct fixture f;
    struct mcp_server_cfg cfg;
    fixture_init(&f);
    fixture_cfg(&cfg, &f);
    fixture_run(&f, &cfg, script_http);
    assert_int_equal(f.hang_cancelled, 1);
}

static void script_auth(struct fixture *f)
{
    struct resp r;
    char v[128];
    cl_http(f, &r, "POST", "/mcp", JSON_HDRS, INIT_BODY);
    resp_header(r.text, "www-authenticate", v, sizeof(v));
    CHECK(f, r.status == 401 && strncmp(v, "Bearer", 6) == 0, r.text);
    cl_http(f, &r, "POST", "/mcp", JSON_HDRS "Authorization: Bearer s3cret-tokeN\r\n", INIT_BODY);
    CHECK(f, r.status == 401, r.text);
    cl_http(f, &r, "POST", "/mcp", JSON_HDRS "Authorization: Bearer s3cret\r\n", INIT_BODY);
    CHECK(f, r.status == 401, r.text);
    cl_http(f, &r, "GET", "/mcp",
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
            NULL);
    CHECK(f, r.status == 401, r.text);
    /* the bucket holds 3: three good requests pass, the fourth is limited */
    for (int i = 0; i < 3; i++) {
        cl_http(f, &r, "POST", "/mcp", JSON_HDRS "Authorization: Bearer s3cret-token\r\n",
                INIT_BODY);
        CHECK(f, r.status == 200, r.text);
    }
    cl_http(f, &r, "POST", "/mcp", JSON_HDRS "Authorization: bearer s3cret-token\r\n", INIT_BODY);
    resp_header(r.text, "retry-after", v, sizeof(v));
    CHECK(f, r.status == 429 && v[0], r.text);
}

static void test_auth_and_rate(void **state)
{
    (void)state;
    struct fixture f;
    struct mcp_server_cfg cfg;
    fixture_init(&f);
    fixture_cfg(&cfg, &f);
    cfg.auth_token = "s3cret-token";
    cfg.rate_per_min = 1;
    cfg.rate_burst = 3;
    fixture_run(&f, &cfg, script_auth);
}

/* ---- WebSocket ---- */

static void ws_send_text(int fd, const char *s)
{
    size_t len = strlen(s);
    unsigned char hdr[8];
    size_t h = 0;
    hdr[h++] = 0x81;
    if (len < 126) {
        hdr[h++] = (unsigned char)(0x80 | len);
    } else {
        hdr[h++] = 0x80 | 126;
        hdr[h++] = (unsigned char)(len >> 8);
        hdr[h++] = (unsigned char)len;
    }
    const unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
    memcpy(hdr + h, mask, 4);
    h += 4;
    unsigned char *frame = malloc(h + len);
    memcpy(frame, hdr, h);
    for (size_t i = 0; i < len; i++)
        frame[h + i] = (unsigned char)s[i] ^ mask[i % 4];
    cl_send(fd, frame, h + len);
    free(frame);
}

static bool cl_read_n(int fd, void *p, size_t n)
{
    char *c = p;
    while (n) {
        ssize_t k = recv(fd, c, n, 0);
        if (k <= 0)
            return false;
        c += k;
        n -= (size_t)k;
    }
    return true;
}

/* One server frame's payload into out (NUL-terminated); returns the opcode or -1. */
static int ws_read(int fd, char *out, size_t cap)
{
    unsigned char h[2];
    out[0] = '\0';
    if (!cl_read_n(fd, h, 2))
        return -1;
    size_t len = h[1] & 0x7f;
    if (len == 126) {
        unsigned char e[2];
        if (!cl_read_n(fd, e, 2))
            return -1;
        len = (size_t)e[0] << 8 | e[1];
    } else if (len == 127) {
        return -1;
    }
    if (len >= cap || !cl_read_n(fd, out, len))
        return -1;
    out[len] = '\0';
    return h[0] & 0x0f;
}

/* Upgrades; fills the response head into head. Returns the socket or -1. */
static int ws_connect(struct fixture *f, const char *path, const char *extra, char *head,
                      size_t cap)
{
    int fd = cl_connect(f->port);
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n%s\r\n",
                     path, extra ? extra : "");
    cl_send(fd, req, (size_t)n);
    size_t got = 0;
    head[0] = '\0';
    while (got < cap - 1 && !strstr(head, "\r\n\r\n")) {
        if (recv(fd, head + got, 1, 0) != 1)
            break;
        head[++got] = '\0';
    }
    return fd;
}

static void script_ws(struct fixture *f)
{
    char head[1024], msg[4096], v[64];
    int fd = ws_connect(f, "/mcp", "Sec-WebSocket-Protocol: mcp\r\n", head, sizeof(head));
    resp_header(head, "sec-websocket-protocol", v, sizeof(v));
    CHECK(f, strncmp(head, "HTTP/1.1 101", 12) == 0 && strcmp(v, "mcp") == 0, head);

    ws_send_text(fd, INIT_BODY);
    CHECK(f,
          ws_read(fd, msg, sizeof(msg)) == 1 && strstr(msg, "\"protocolVersion\":\"2025-06-18\""),
          msg);
    ws_send_text(fd, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
    /* the slow call is answered after the ping sent behind it */
    ws_send_text(fd, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":"
                     "\"slow\",\"arguments\":{\"msg\":\"w\"}}}");
    ws_send_text(fd, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}");
    CHECK(f, ws_read(fd, msg, sizeof(msg)) == 1 && strstr(msg, "\"id\":3"), msg);
    CHECK(f,
          ws_read(fd, msg, sizeof(msg)) == 1 && strstr(msg, "\"id\":2") && strstr(msg, "w-slow-ok"),
          msg);

    /* legacy dialect on the same connection */
    ws_send_text(fd, "{\"id\":7,\"method\":\"tool.call\",\"params\":{\"name\":\"echo\",\"args\":{"
                     "\"msg\":\"old\"}}}");
    CHECK(f,
          ws_read(fd, msg, sizeof(msg)) == 1 &&
              strcmp(msg, "{\"id\":7,\"result\":{\"success\":true,\"msg\":\"old\"}}") == 0,
          msg);

    /* in flight: two hang calls take the slots, the third is refused at once as busy */
    for (int i = 10; i < 13; i++) {
        char req[256];
        snprintf(req, sizeof(req),
                 "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":{\"name\":"
                 "\"hang\",\"arguments\":{\"msg\":\"h\"}}}",
                 i);
        ws_send_text(fd, req);
    }
    CHECK(f,
          ws_read(fd, msg, sizeof(msg)) == 1 && strstr(msg, "\"id\":12") &&
              strstr(msg, "\"error\":\"busy\""),
          msg);
    CHECK(f, ws_read(fd, msg, sizeof(msg)) == 1 && strstr(msg, "\"error\":\"timeout\""), msg);
    CHECK(f, ws_read(fd, msg, sizeof(msg)) == 1 && strstr(msg, "\"error\":\"timeout\""), msg);

    /* "/" without a subprotocol: none is answered */
    int fd2 = ws_connect(f, "/", NULL, head, sizeof(head));
    resp_header(head, "sec-websocket-protocol", v, sizeof(v));
    CHECK(f, strncmp(head, "HTTP/1.1 101", 12) == 0 && v[0] == '\0', head);
    ws_send_text(fd2, "{\"jsonrpc\":\"2.0\",\"id\":\"p\",\"method\":\"ping\"}");
    CHECK(f,
          ws_read(fd2, msg, sizeof(msg)) == 1 &&
              strcmp(msg, "{\"jsonrpc\":\"2.0\",\"id\":\"p\",\"result\":{}}") == 0,
          msg);
    /* a cross-site page is refused before the upgrade */
    int fd3 = ws_connect(f, "/mcp", "Origin: http://evil.example\r\n", head, sizeof(head));
    CHECK(f, strncmp(head, "HTTP/1.1 403", 12) == 0, head);
    close(fd3);

    /* the server closes with a call still running: abandoned, cancelled, loop closes */
    ws_send_text(fd2, "{\"jsonrpc\":\"2.0\",\"id\":20,\"method\":\"tools/call\",\"params\":{"
                      "\"name\":\"hang\",\"arguments\":{\"msg\":\"h\"}}}");
    ws_send_text(fd2, "{\"jsonrpc\":\"2.0\",\"id\":21,\"method\":\"ping\"}");
    CHECK(f, ws_read(fd2, msg, sizeof(msg)) == 1 && strstr(msg, "\"id\":21"), msg);
    f->stop_sent = true;
    uv_async_send(&f->stop);
    /* the server says Going Away */
    CHECK(f, ws_read(fd2, msg, sizeof(msg)) == 8, msg);
    close(fd2);
    close(fd);
}

static void test_ws(void **state)
{
    (void)state;
    struct fixture f;
    struct mcp_server_cfg cfg;
    fixture_init(&f);
    fixture_cfg(&cfg, &f);
    fixture_run(&f, &cfg, script_ws);
    assert_int_equal(f.hang_cancelled, 3);
}

/* ---- the official SDK (tests/fakes/mcp_client.mjs) over both transports ---- */

#define SDK_CLIENT VA_SOURCE_DIR "/tests/fakes/mcp_client.mjs"
#define SDK_PKG VA_SOURCE_DIR "/tests/node/node_modules/@modelcontextprotocol/sdk/package.json"

static void sdk_run(struct fixture *f, const char *url, char *out, size_t cap)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "node %s --url %s --call slow --args '{\"msg\":\"sdk\"}' 2>&1",
             SDK_CLIENT, url);
    out[0] = '\0';
    FILE *p = popen(cmd, "r");
    if (!p)
        return;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    pclose(p);
    (void)f;
}

static void script_sdk(struct fixture *f)
{
    char url[128], out[4096];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/mcp", f->port);
    sdk_run(f, url, out, sizeof(out));
    CHECK(f, strstr(out, "\"tools\":[\"echo\",\"slow\",\"hang\"]") != NULL, out);
    CHECK(f, strstr(out, "\"structuredContent\":{\"success\":true,\"msg\":\"sdk-slow-ok\"}"), out);
    CHECK(f, strstr(out, "\"protocolVersion\":\"2025-11-25\""), out);
    snprintf(url, sizeof(url), "ws://127.0.0.1:%u/mcp", f->port);
    sdk_run(f, url, out, sizeof(out));
    CHECK(f, strstr(out, "\"tools\":[\"echo\",\"slow\",\"hang\"]") != NULL, out);
    CHECK(f, strstr(out, "sdk-slow-ok"), out);
}

static void test_sdk(void **state)
{
    (void)state;
    if (access(SDK_PKG, R_OK) != 0 || system("node --version >/dev/null 2>&1") != 0) {
        print_message("node or @modelcontextprotocol/sdk missing: skipped\n");
        skip();
    }
    struct fixture f;
    struct mcp_server_cfg cfg;
    fixture_init(&f);
    fixture_cfg(&cfg, &f);
    fixture_run(&f, &cfg, script_sdk);
}

static void test_open_refuses_public_without_token(void **state)
{
    (void)state;
    struct fixture f;
    struct mcp_server_cfg cfg;
    fixture_init(&f);
    fixture_cfg(&cfg, &f);
    cfg.host = "0.0.0.0";
    assert_int_equal(mcp_server_open(&f.srv, &f.loop, &f.log, &cfg, &f.reg), VA_EINVAL);
    cfg.host = "localhost";
    assert_int_equal(mcp_server_open(&f.srv, &f.loop, &f.log, &cfg, &f.reg), VA_EINVAL);
    cfg.host = "::1";
    cfg.max_in_flight = 0;
    assert_int_equal(mcp_server_open(&f.srv, &f.loop, &f.log, &cfg, &f.reg), VA_EINVAL);
    cfg.host = "0.0.0.0";
    cfg.max_in_flight = 2;
    cfg.auth_token = "a-token-of-some-length";
    assert_int_equal(mcp_server_open(&f.srv, &f.loop, &f.log, &cfg, &f.reg), 0);
    mcp_server_close(f.srv, on_srv_closed, &f);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_true(f.closed);
    assert_int_equal(uv_loop_close(&f.loop), 0);
    mcp_registry_deinit(&f.reg);
    va_log_deinit(&f.log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http),
        cmocka_unit_test(test_auth_and_rate),
        cmocka_unit_test(test_ws),
        cmocka_unit_test(test_sdk),
        cmocka_unit_test(test_open_refuses_public_without_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
