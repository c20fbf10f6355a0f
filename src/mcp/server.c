/* src/mcp/server.c: the MCP listener: WebSocket and Streamable HTTP around mcp_handle(). */
#include "mcp/server.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/list.h"
#include "core/log.h"
#include "core/net.h"
#include "http/ratelimit.h"
#include "http/server.h"
#include "http/ws.h"

#define MCP_SID_LEN 32 /* 128 random bits in hex */
#define MCP_WS_CLOSE_TIMEOUT_MS 5000
#define MCP_RL_SLOTS 1024
#define MCP_RPC_BUSY (-32000) /* implementation-defined server error: rate limited */

#define MCP_BUSY_JSON "{\"success\":false,\"error\":\"busy\"}"
#define MCP_BUSY_TEXT "Too many calls in flight on this connection; retry shortly."

struct mcp_xchg;

/* What a connection or HTTP session has in flight: the bound and the cancellation lookup. */
struct mcp_peer {
    uint32_t in_flight;
    struct mcp_xchg *xchgs;
};

struct mcp_bucket {
    double tokens;
    uint64_t last_ms;
};

struct mcp_sess {
    struct mcp_server *srv;
    struct mcp_sess *prev, *next;
    char id[MCP_SID_LEN + 1];
    struct mcp_session rpc;
    struct mcp_peer peer;
    uint64_t last_ms;
};

struct mcp_wsconn {
    struct mcp_server *srv;
    struct mcp_wsconn *prev, *next;
    struct va_ws *ws;
    struct mcp_session rpc;
    struct mcp_peer peer;
    struct mcp_bucket bucket;
    char remote[64];
    bool closing;
};

struct mcp_call {
    struct mcp_xchg *x;
    size_t idx; /* into x->res.pending */
    struct mcp_call_done done;
    uv_timer_t timer;
    bool answered;   /* a result is in x->out, or the call was dropped */
    bool done_ran;   /* on_done has run: the registry is finished with us */
    bool timer_open; /* the close callback has not run yet */
};

/* One transport message being answered: a WebSocket frame or an HTTP POST. */
struct mcp_xchg {
    struct mcp_server *srv;
    struct mcp_xchg *prev, *next;   /* the server's list */
    struct mcp_xchg *pprev, *pnext; /* peer's list */
    struct mcp_peer *peer;          /* NULL: stateless, or the peer went away */
    struct mcp_wsconn *wc;          /* answer over this WebSocket, or */
    struct va_http_conn *hc;        /* answer this HTTP request; both NULL: discard */
    bool sse;
    bool modern;   /* 2026-07-28 over HTTP: some errors are HTTP statuses too (§8.3) */
    bool overflow; /* the answer passed max_response_bytes */
    bool finished;
    char extra[96]; /* response headers (Mcp-Session-Id) */
    struct va_buf out;
    struct mcp_result res;
    struct mcp_call *calls[MCP_BATCH_MAX];
    size_t outstanding; /* calls not answered yet (+1 while starting) */
    size_t refs;        /* call objects alive */
};

struct mcp_server {
    uv_loop_t *loop;
    struct va_log *log;
    struct mcp_server_cfg cfg;
    char *token;
    size_t token_len;
    char **origins;
    const struct mcp_registry *reg;
    struct va_http_server *http;
    struct va_rl rl;
    uv_timer_t sweep;
    struct mcp_sess *sessions;
    size_t nsessions;
    struct mcp_wsconn *wsconns;
    size_t nws;
    struct mcp_xchg *xchgs;
    bool draining;
    bool closing;
    bool http_closed;
    bool sweep_closed;
    void (*on_closed)(void *ud);
    void *closed_ud;
};

void mcp_server_cfg_defaults(struct mcp_server_cfg *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->max_message_bytes = 64 * 1024;
    cfg->max_response_bytes = 1024 * 1024;
    cfg->max_in_flight = 8;
    cfg->rate_per_min = 600;
    cfg->rate_burst = 60;
    cfg->max_sessions = 64;
    cfg->session_idle_ms = 30 * 60 * 1000;
    cfg->max_ws = 64;
    cfg->max_connections = 256;
    cfg->max_header_bytes = 8 * 1024;
    cfg->request_timeout_ms = 10000;
    cfg->idle_timeout_ms = 60000;
}

static void srv_maybe_closed(struct mcp_server *s);
static void xchg_maybe_finish(struct mcp_xchg *x);

/* ---- small pure helpers ---- */

static bool mcp_span_eq(const char *p, size_t len, const char *s)
{
    size_t n = strlen(s);
    return p && len == n && memcmp(p, s, n) == 0;
}

/* Case-insensitive substring search in p[0, len). */
static bool mcp_span_has(const char *p, size_t len, const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; p && n <= len && i <= len - n; i++)
        if (strncasecmp(p + i, s, n) == 0)
            return true;
    return false;
}

static bool mcp_host_is_loopback(const struct va_addr *a)
{
    static const uint8_t v6_loop[16] = {[15] = 1};
    if (a->family == AF_INET)
        return a->bytes[0] == 127;
    return memcmp(a->bytes, v6_loop, 16) == 0;
}

static bool mcp_bucket_take(struct mcp_bucket *b, const struct mcp_server_cfg *cfg, uint64_t now)
{
    double per_ms = (double)cfg->rate_per_min / 60000.0;
    b->tokens += (double)(now - b->last_ms) * per_ms;
    if (b->tokens > cfg->rate_burst)
        b->tokens = cfg->rate_burst;
    b->last_ms = now;
    if (b->tokens < 1.0)
        return false;
    b->tokens -= 1.0;
    return true;
}

/* 128 random bits in hex: session ids and connection scopes. 0 or VA_EIO. */
static int srv_random_id(char out[MCP_SID_LEN + 1])
{
    unsigned char rnd[MCP_SID_LEN / 2];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return VA_ESTATE; /* the RNG failed */
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(out + 2 * i, 3, "%02x", rnd[i]);
    return 0;
}

/* ---- tool calls ---- */

static void call_maybe_free(struct mcp_call *call)
{
    if (!call->done_ran || call->timer_open)
        return;
    struct mcp_xchg *x = call->x;
    x->calls[call->idx] = NULL;
    free(call);
    x->refs--;
    xchg_maybe_finish(x);
}

static void call_on_timer_closed(uv_handle_t *h)
{
    struct mcp_call *call = h->data;
    call->timer_open = false;
    call_maybe_free(call);
}

/* The call's reply slot is settled: by a result, a timeout, or a drop. */
static void call_settle(struct mcp_call *call)
{
    struct mcp_xchg *x = call->x;
    call->answered = true;
    if (x->peer)
        x->peer->in_flight--;
    x->outstanding--;
    uv_close((uv_handle_t *)&call->timer, call_on_timer_closed);
}

static void call_append(struct mcp_call *call, const struct mcp_call_result *r)
{
    struct mcp_xchg *x = call->x;
    if ((x->wc || x->hc) && !x->overflow &&
        mcp_build_call_result(&x->out, &x->res.pending[call->idx], r))
        x->overflow = true;
}

static void call_on_done(struct mcp_call_done *done, const struct mcp_call_result *r)
{
    struct mcp_call *call = done->ud;
    call->done_ran = true;
    if (!done->abandoned && !call->answered) {
        call_append(call, r);
        call_settle(call); /* closes the timer: freed from its close callback */
        xchg_maybe_finish(call->x);
        return;
    }
    call_maybe_free(call);
}

/* Abandons the call: no reply (dropped) unless one was built already; asks the tool to hurry. */
static void call_abandon(struct mcp_call *call, bool timed_out)
{
    if (call->answered)
        return;
    struct mcp_xchg *x = call->x;
    if (timed_out) {
        struct mcp_call_result r = {
            .json = MCP_RESULT_TIMEOUT_JSON,
            .len = strlen(MCP_RESULT_TIMEOUT_JSON),
            .is_error = true,
            .text = MCP_RESULT_TIMEOUT_TEXT,
            .text_len = strlen(MCP_RESULT_TIMEOUT_TEXT),
        };
        call_append(call, &r);
        va_log_warn(x->srv->log, "mcp", "tool call timed out",
                    VA_LSTR("tool", x->res.pending[call->idx].tool->name),
                    VA_LINT("ms", x->res.pending[call->idx].tool->def.timeout_ms));
    }
    call_settle(call); /* the timer handle stays open until its callback: call stays alive */
    call->done.abandoned = true;
    const struct mcp_tool *t = x->res.pending[call->idx].tool;
    if (!call->done_ran && t->def.cancel)
        t->def.cancel(t->def.tool_ud, &call->done);
}

static void call_on_timer(uv_timer_t *t)
{
    struct mcp_call *call = t->data;
    struct mcp_xchg *x = call->x;
    call_abandon(call, true);
    xchg_maybe_finish(x);
}

/* ---- exchanges ---- */

static struct mcp_xchg *xchg_new(struct mcp_server *s, struct mcp_peer *peer)
{
    struct mcp_xchg *x = va_xcalloc(1, sizeof(*x));
    x->srv = s;
    va_buf_init(&x->out, s->cfg.max_response_bytes);
    VA_LIST_PUSH(s->xchgs, x, prev, next);
    if (peer) {
        x->peer = peer;
        VA_LIST_PUSH(peer->xchgs, x, pprev, pnext);
    }
    return x;
}

static void xchg_unlink_peer(struct mcp_xchg *x)
{
    if (!x->peer)
        return;
    VA_LIST_REMOVE(x->peer->xchgs, x, pprev, pnext);
    x->pprev = x->pnext = NULL;
    x->peer = NULL;
}

static void xchg_free(struct mcp_xchg *x)
{
    struct mcp_server *s = x->srv;
    xchg_unlink_peer(x);
    VA_LIST_REMOVE(s->xchgs, x, prev, next);
    mcp_result_deinit(&x->res);
    va_buf_deinit(&x->out);
    free(x);
    srv_maybe_closed(s);
}

/* 2026-07-28 (§8.3): an unknown method is also a 404 and an unsupported version a 400. */
static int xchg_modern_status(const struct mcp_xchg *x)
{
    if (!x->modern || x->out.len == 0 || x->out.data[0] != '{')
        return 200;
    cJSON *root = cJSON_ParseWithLength(x->out.data, x->out.len);
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "error");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(err, "code");
    int status = 200;
    if (cJSON_IsNumber(code) && code->valueint == MCP_RPC_METHOD_NOT_FOUND)
        status = 404;
    else if (cJSON_IsNumber(code) && code->valueint == MCP_RPC_UNSUPPORTED_VERSION)
        status = 400;
    cJSON_Delete(root);
    return status;
}

static void xchg_send_http(struct mcp_xchg *x)
{
    struct va_http_conn *c = x->hc;
    const char *extra = x->extra[0] ? x->extra : NULL;
    if (x->overflow) {
        va_buf_reset(&x->out);
        mcp_build_error(&x->out, NULL, MCP_RPC_INTERNAL_ERROR, "Response too large");
        va_http_respond(c, 500, "application/json", extra, x->out.data, x->out.len);
        return;
    }
    if (x->out.len == 0) {
        va_http_respond(c, 202, "application/json", extra, NULL, 0);
        return;
    }
    if (!x->sse) {
        va_http_respond(c, xchg_modern_status(x), "application/json", extra, x->out.data,
                        x->out.len);
        return;
    }
    /* One SSE event; JSON from cJSON or the builders holds no raw newline. */
    struct va_buf ev;
    va_buf_init(&ev, x->out.len + 64);
    va_buf_append_str(&ev, "event: message\ndata: ");
    va_buf_append(&ev, x->out.data, x->out.len);
    va_buf_append_str(&ev, "\n\n");
    va_http_respond(c, 200, "text/event-stream", extra, ev.data, ev.len);
    va_buf_deinit(&ev);
}

static void xchg_maybe_finish(struct mcp_xchg *x)
{
    if (!x->finished && x->outstanding == 0) {
        x->finished = true;
        if (!x->overflow && mcp_finish(&x->res, &x->out))
            x->overflow = true;
        if (x->hc) {
            xchg_send_http(x);
        } else if (x->wc && !x->wc->closing) {
            if (x->overflow) {
                x->wc->closing = true;
                va_ws_close(x->wc->ws, VA_WS_INTERNAL, "response too large");
            } else if (x->out.len) {
                va_ws_send(x->wc->ws, VA_WS_TEXT, x->out.data, x->out.len);
            }
        }
        x->hc = NULL;
        x->wc = NULL;
        xchg_unlink_peer(x);
    }
    if (x->finished && x->refs == 0)
        xchg_free(x);
}

/* notifications/cancelled: drop the reply to id if that call is still running. */
static void peer_cancel(struct mcp_peer *peer, const struct mcp_id *id)
{
    for (struct mcp_xchg *x = peer ? peer->xchgs : NULL; x; x = x->pnext) {
        for (size_t i = 0; i < x->res.count; i++) {
            struct mcp_call *call = x->calls[i];
            const struct mcp_id *cid = &x->res.pending[i].id;
            if (call && !call->answered && cid->len == id->len &&
                memcmp(cid->json, id->json, id->len) == 0) {
                call_abandon(call, false);
                /* finishing (and freeing) waits for the timer close: x stays valid */
                xchg_maybe_finish(x);
                return;
            }
        }
    }
}

/* Handles one message on x; x answers (and frees itself) once every call is in. */
static void xchg_run(struct mcp_xchg *x, struct mcp_session *rpc, const char *msg, size_t len)
{
    struct mcp_server *s = x->srv;
    if (mcp_handle(rpc, msg, len, &x->out, &x->res))
        x->overflow = true;
    x->outstanding = 1; /* held while starting: a synchronous completion must not finish x */
    for (size_t i = 0; i < x->res.count; i++) {
        struct mcp_pending *p = &x->res.pending[i];
        if (p->kind == MCP_PENDING_CANCEL) {
            peer_cancel(x->peer, &p->id);
            continue;
        }
        if (x->overflow)
            continue;
        if (x->peer && x->peer->in_flight >= s->cfg.max_in_flight) {
            if (mcp_build_tool_result(&x->out, p, MCP_BUSY_JSON, strlen(MCP_BUSY_JSON), true,
                                      MCP_BUSY_TEXT, strlen(MCP_BUSY_TEXT)))
                x->overflow = true;
            continue;
        }
        struct mcp_call *call = va_xcalloc(1, sizeof(*call));
        call->x = x;
        call->idx = i;
        x->calls[i] = call;
        x->refs++;
        x->outstanding++;
        if (x->peer)
            x->peer->in_flight++;
        uv_timer_init(s->loop, &call->timer);
        call->timer.data = call;
        call->timer_open = true;
        uv_timer_start(&call->timer, call_on_timer, p->tool->def.timeout_ms, 0);
        mcp_call_done_init(&call->done, call_on_done, call);
        int err = mcp_pending_start(p, &call->done); /* on_done may already have run */
        if (err)
            va_log_warn(s->log, "mcp", "tool call failed to start", VA_LSTR("tool", p->tool->name),
                        VA_LSTR("reason", va_strerror(err)));
    }
    x->outstanding--;
    xchg_maybe_finish(x);
}

/* Abandons every call of x and forgets its destination. */
static void xchg_orphan(struct mcp_xchg *x)
{
    x->hc = NULL;
    x->wc = NULL;
    xchg_unlink_peer(x);
    x->refs++; /* x stays alive while its calls are walked */
    for (size_t i = 0; i < x->res.count; i++)
        if (x->calls[i])
            call_abandon(x->calls[i], false);
    x->refs--;
    xchg_maybe_finish(x);
}

/* ---- HTTP sessions ---- */

static void sess_free(struct mcp_sess *ss, const char *why)
{
    struct mcp_server *s = ss->srv;
    while (ss->peer.xchgs)
        xchg_unlink_peer(ss->peer.xchgs); /* their POSTs are still answered */
    VA_LIST_REMOVE(s->sessions, ss, prev, next);
    s->nsessions--;
    va_log_info(s->log, "mcp", "session ended", VA_LSTR("reason", why),
                VA_LINT("sessions", s->nsessions));
    free(ss);
}

static bool sess_expired(const struct mcp_sess *ss, uint64_t now)
{
    return !ss->peer.in_flight && !ss->peer.xchgs &&
           now - ss->last_ms >= ss->srv->cfg.session_idle_ms;
}

static struct mcp_sess *sess_find(struct mcp_server *s, const char *id, size_t len)
{
    for (struct mcp_sess *ss = s->sessions; ss; ss = ss->next) {
        if (len == MCP_SID_LEN && CRYPTO_memcmp(ss->id, id, len) == 0) {
            if (sess_expired(ss, uv_now(s->loop))) {
                sess_free(ss, "expired");
                return NULL;
            }
            return ss;
        }
    }
    return NULL;
}

static void srv_on_sweep(uv_timer_t *t)
{
    struct mcp_server *s = t->data;
    uint64_t now = uv_now(s->loop);
    struct mcp_sess *next;
    for (struct mcp_sess *ss = s->sessions; ss; ss = next) {
        next = ss->next;
        if (sess_expired(ss, now))
            sess_free(ss, "expired");
    }
}

/* ---- WebSocket ---- */

static void ws_refuse_rate(struct mcp_wsconn *wc, const char *data, size_t len)
{
    cJSON *j = cJSON_ParseWithLength(data, len);
    cJSON *id = cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, "id") : NULL;
    if (id && !cJSON_IsNull(id) && cJSON_GetObjectItemCaseSensitive(j, "method")) {
        struct mcp_id mid = {0};
        char *txt = cJSON_PrintUnformatted(id);
        if (txt && strlen(txt) < sizeof(mid.json)) {
            mid.len = strlen(txt);
            memcpy(mid.json, txt, mid.len);
            struct va_buf out;
            va_buf_init(&out, 512);
            if (!mcp_build_error(&out, &mid, MCP_RPC_BUSY, "Rate limit exceeded"))
                va_ws_send(wc->ws, VA_WS_TEXT, out.data, out.len);
            va_buf_deinit(&out);
        }
        free(txt);
    }
    cJSON_Delete(j);
}

static void ws_on_message(void *ud, enum va_ws_opcode op, const char *data, size_t len)
{
    struct mcp_wsconn *wc = ud;
    struct mcp_server *s = wc->srv;
    if (wc->closing || s->closing)
        return;
    if (op != VA_WS_TEXT) {
        wc->closing = true;
        va_ws_close(wc->ws, 1003, "JSON-RPC travels in text frames");
        return;
    }
    if (!mcp_bucket_take(&wc->bucket, &s->cfg, uv_now(s->loop))) {
        va_log_warn(s->log, "mcp", "rate limited", VA_LSTR("remote", wc->remote));
        ws_refuse_rate(wc, data, len);
        return;
    }
    struct mcp_xchg *x = xchg_new(s, &wc->peer);
    x->wc = wc;
    xchg_run(x, &wc->rpc, data, len);
}

static void ws_on_closed(void *ud, uint16_t code, const char *reason)
{
    struct mcp_wsconn *wc = ud;
    struct mcp_server *s = wc->srv;
    while (wc->peer.xchgs)
        xchg_orphan(wc->peer.xchgs);
    VA_LIST_REMOVE(s->wsconns, wc, prev, next);
    s->nws--;
    va_log_info(s->log, "mcp", "websocket closed", VA_LINT("code", code), VA_LSTR("reason", reason),
                VA_LSTR("remote", wc->remote));
    free(wc);
    srv_maybe_closed(s);
}

static void ws_upgrade(struct mcp_server *s, struct va_http_conn *c, const struct va_http_req *req)
{
    if (s->nws >= s->cfg.max_ws) {
        va_log_warn(s->log, "mcp", "websocket refused: too many connections",
                    VA_LSTR("remote", req->client.text));
        va_http_respond_error(c, 503, "busy", "too many MCP connections", "Retry-After: 1\r\n");
        return;
    }
    char accept[29];
    const char *why = NULL;
    int status = va_ws_handshake_check(req, accept, &why);
    if (status) {
        va_http_respond_error(c, status, "bad_handshake", why,
                              status == 426 ? "Sec-WebSocket-Version: 13\r\n" : NULL);
        return;
    }
    /* Browser and undici clients abort unless the offered subprotocol comes back. */
    bool proto = va_ws_offers_protocol(req, "mcp");
    uv_os_sock_t fd;
    char *pre = NULL;
    size_t pre_len = 0;
    int err = va_http_upgrade(c, 101, &fd, &pre, &pre_len);
    if (err) {
        va_http_respond_error(c, 503, "unavailable", va_strerror(err), NULL);
        return;
    }
    char scope[MCP_SID_LEN + 1];
    if (srv_random_id(scope)) {
        va_http_respond_error(c, 500, "internal", "no randomness for a connection id", NULL);
        return;
    }
    struct mcp_wsconn *wc = va_xcalloc(1, sizeof(*wc));
    wc->srv = s;
    mcp_session_init(&wc->rpc, s->reg, s->cfg.info);
    mcp_session_set_scope(&wc->rpc, scope);
    wc->bucket.tokens = s->cfg.rate_burst;
    wc->bucket.last_ms = uv_now(s->loop);
    snprintf(wc->remote, sizeof(wc->remote), "%s", req->client.text);
    struct va_ws_cfg wcfg = {
        .max_message = s->cfg.max_message_bytes,
        .max_queue = 2 * s->cfg.max_response_bytes,
        .close_timeout_ms = MCP_WS_CLOSE_TIMEOUT_MS,
    };
    struct va_ws_cb wcb = {.on_message = ws_on_message, .on_closed = ws_on_closed};
    err = va_ws_open(&wc->ws, s->loop, s->log, fd, accept, proto ? "mcp" : NULL, pre, pre_len,
                     wc->remote, &wcfg, &wcb, wc);
    free(pre);
    if (err) {
        va_log_error(s->log, "mcp", "websocket open failed", VA_LSTR("reason", va_strerror(err)),
                     VA_LSTR("remote", wc->remote));
        free(wc);
        return;
    }
    VA_LIST_PUSH(s->wsconns, wc, prev, next);
    s->nws++;
    va_log_info(s->log, "mcp", "websocket connected", VA_LSTR("remote", wc->remote),
                VA_LBOOL("subprotocol", proto), VA_LINT("connections", s->nws));
}

/* ---- Streamable HTTP ---- */

static void http_rpc_error(struct va_http_conn *c, int status, int code, const char *message)
{
    struct va_buf out;
    va_buf_init(&out, 512);
    mcp_build_error(&out, NULL, code, message);
    va_http_respond(c, status, "application/json", NULL, out.data, out.len);
    va_buf_deinit(&out);
}

static bool http_header_is(const struct va_http_req *req, const char *name, const char *want)
{
    size_t len = 0;
    const char *v = va_http_req_header(req, name, &len);
    return mcp_span_eq(v, len, want);
}

/* 2026-07-28: the routing headers must repeat what the body says (-32020 otherwise). */
static bool http_modern_headers_ok(const struct va_http_req *req, const struct mcp_peek *pk)
{
    if (!http_header_is(req, "mcp-protocol-version", pk->meta_version))
        return false;
    if (!http_header_is(req, "mcp-method", pk->method))
        return false;
    return strcmp(pk->method, "tools/call") != 0 || http_header_is(req, "mcp-name", pk->name);
}

static struct mcp_sess *sess_new(struct mcp_server *s)
{
    char id[MCP_SID_LEN + 1];
    if (srv_random_id(id))
        return NULL;
    struct mcp_sess *ss = va_xcalloc(1, sizeof(*ss));
    ss->srv = s;
    memcpy(ss->id, id, sizeof(id));
    mcp_session_init(&ss->rpc, s->reg, s->cfg.info);
    mcp_session_set_scope(&ss->rpc, ss->id);
    ss->last_ms = uv_now(s->loop);
    return ss;
}

static void http_post(struct mcp_server *s, struct va_http_conn *c, const struct va_http_req *req)
{
    size_t ct_len = 0, acc_len = 0, pv_len = 0, sid_len = 0;
    const char *ct = va_http_req_header(req, "content-type", &ct_len);
    const char *acc = va_http_req_header(req, "accept", &acc_len);
    const char *pv = va_http_req_header(req, "mcp-protocol-version", &pv_len);
    const char *sid = va_http_req_header(req, "mcp-session-id", &sid_len);
    if (ct && !mcp_span_has(ct, ct_len, "application/json")) {
        va_http_respond_error(c, 415, "unsupported_media_type", "send application/json", NULL);
        return;
    }
    bool acc_json =
        !acc || mcp_span_has(acc, acc_len, "application/json") || mcp_span_has(acc, acc_len, "*/*");
    bool acc_sse = acc && mcp_span_has(acc, acc_len, "text/event-stream");
    if (!acc_json && !acc_sse) {
        va_http_respond_error(c, 406, "not_acceptable",
                              "accept application/json or text/event-stream", NULL);
        return;
    }
    struct mcp_peek pk;
    if (mcp_peek(req->body, req->body_len, &pk)) {
        http_rpc_error(c, 400, MCP_RPC_PARSE_ERROR, "Parse error");
        return;
    }
    struct mcp_session tmp;
    struct mcp_session *rpc = &tmp;
    struct mcp_sess *ss = NULL;
    struct mcp_sess *fresh = NULL;
    mcp_session_init(&tmp, s->reg, s->cfg.info);

    if (pk.meta_version[0]) {
        /* stateless revision: Mcp-Session-Id is ignored */
        if (!http_modern_headers_ok(req, &pk)) {
            http_rpc_error(c, 400, MCP_RPC_HEADER_MISMATCH,
                           "MCP-Protocol-Version, Mcp-Method or Mcp-Name header mismatch");
            return;
        }
    } else {
        if (pv && !mcp_version_supported(pv, pv_len)) {
            va_http_respond_error(c, 400, "bad_request", "unsupported MCP-Protocol-Version", NULL);
            return;
        }
        if (!pk.batch && strcmp(pk.method, "tool.call") == 0) {
            /* the legacy dialect has no handshake and no session */
        } else if (!pk.batch && strcmp(pk.method, "initialize") == 0) {
            if (s->nsessions >= s->cfg.max_sessions) {
                srv_on_sweep(&s->sweep);
                if (s->nsessions >= s->cfg.max_sessions) {
                    va_log_warn(s->log, "mcp", "session refused: too many sessions",
                                VA_LSTR("remote", req->client.text));
                    va_http_respond_error(c, 503, "busy", "too many MCP sessions",
                                          "Retry-After: 5\r\n");
                    return;
                }
            }
            fresh = sess_new(s);
            if (!fresh) {
                va_http_respond_error(c, 500, "internal", "no randomness for a session id", NULL);
                return;
            }
            rpc = &fresh->rpc;
        } else if (!sid) {
            va_http_respond_error(c, 400, "bad_request", "Mcp-Session-Id header required", NULL);
            return;
        } else {
            ss = sess_find(s, sid, sid_len);
            if (!ss) {
                va_http_respond_error(c, 404, "not_found", "unknown or expired MCP session", NULL);
                return;
            }
            ss->last_ms = uv_now(s->loop);
            rpc = &ss->rpc;
        }
        if (pv && rpc == &tmp)
            mcp_session_set_version(&tmp, pv, pv_len);
    }

    struct mcp_xchg *x = xchg_new(s, ss ? &ss->peer : NULL);
    x->hc = c;
    x->modern = pk.meta_version[0] != '\0';
    x->sse = acc_sse && !acc_json;
    if (fresh) {
        /* mcp_handle() answers initialize synchronously: the session exists only if it took */
        int herr = mcp_handle(rpc, req->body, req->body_len, &x->out, &x->res);
        if (herr)
            x->overflow = true;
        if (herr || !rpc->initialized) {
            free(fresh);
            fresh = NULL;
        } else {
            VA_LIST_PUSH(s->sessions, fresh, prev, next);
            s->nsessions++;
            snprintf(x->extra, sizeof(x->extra), "Mcp-Session-Id: %s\r\n", fresh->id);
            va_log_info(s->log, "mcp", "session started", VA_LSTR("version", rpc->version),
                        VA_LSTR("client", rpc->client_name), VA_LSTR("remote", req->client.text),
                        VA_LINT("sessions", s->nsessions));
        }
        x->outstanding = 0;
        xchg_maybe_finish(x); /* initialize never starts a call */
        return;
    }
    xchg_run(x, rpc, req->body, req->body_len);
}

static void http_delete(struct mcp_server *s, struct va_http_conn *c, const struct va_http_req *req)
{
    size_t sid_len = 0;
    const char *sid = va_http_req_header(req, "mcp-session-id", &sid_len);
    if (!sid) {
        va_http_respond_error(c, 400, "bad_request", "Mcp-Session-Id header required", NULL);
        return;
    }
    struct mcp_sess *ss = sess_find(s, sid, sid_len);
    if (!ss) {
        va_http_respond_error(c, 404, "not_found", "unknown or expired MCP session", NULL);
        return;
    }
    sess_free(ss, "deleted");
    va_http_respond(c, 200, "application/json", NULL, NULL, 0);
}

/* Origin, when sent, must be listed: a browser page must not reach us through DNS rebinding. */
static bool srv_origin_ok(const struct mcp_server *s, const struct va_http_req *req)
{
    size_t len = 0;
    const char *o = va_http_req_header(req, "origin", &len);
    if (!o)
        return true;
    for (size_t i = 0; i < s->cfg.norigins; i++)
        if (strcmp(s->origins[i], "*") == 0 || mcp_span_eq(o, len, s->origins[i]))
            return true;
    return false;
}

static bool srv_auth_ok(const struct mcp_server *s, const struct va_http_req *req)
{
    return !s->token || va_http_bearer_ok(req, s->token, s->token_len);
}

static void srv_on_request(void *ud, struct va_http_conn *c, const struct va_http_req *req)
{
    struct mcp_server *s = ud;
    bool root = mcp_span_eq(req->path, req->path_len, "/");
    bool mcp = mcp_span_eq(req->path, req->path_len, "/mcp");
    if (s->closing || s->draining) {
        va_http_respond_error(c, 503, "unavailable", "shutting down", "Retry-After: 5\r\n");
        return;
    }
    if (!root && !mcp) {
        va_http_respond_error(c, 404, "not_found", "MCP is served on /mcp", NULL);
        return;
    }
    if (!srv_origin_ok(s, req)) {
        va_log_warn(s->log, "mcp", "origin refused", VA_LSTR("remote", req->client.text));
        va_http_respond_error(c, 403, "forbidden", "origin not allowed", NULL);
        return;
    }
    if (!srv_auth_ok(s, req)) {
        va_log_warn(s->log, "mcp", "unauthorized", VA_LSTR("remote", req->client.text),
                    VA_LBOOL("upgrade", req->upgrade));
        va_http_respond_error(c, 401, "unauthorized", "bearer token required",
                              "WWW-Authenticate: Bearer realm=\"voice-agent\"\r\n");
        return;
    }
    uint32_t retry = 1;
    if (!va_rl_take(&s->rl, &req->client, uv_now(s->loop), &retry)) {
        char hdr[48];
        snprintf(hdr, sizeof(hdr), "Retry-After: %u\r\n", retry);
        va_log_warn(s->log, "mcp", "rate limited", VA_LSTR("remote", req->client.text));
        va_http_respond_error(c, 429, "rate_limited", "too many requests", hdr);
        return;
    }
    if (req->upgrade) {
        ws_upgrade(s, c, req);
        return;
    }
    if (root) {
        va_http_respond_error(c, 426, "upgrade_required", "WebSocket on /, Streamable HTTP on /mcp",
                              "Upgrade: websocket\r\n");
        return;
    }
    if (strcmp(req->method, "POST") == 0)
        http_post(s, c, req);
    else if (strcmp(req->method, "DELETE") == 0)
        http_delete(s, c, req);
    else /* GET: this server opens no server-initiated stream */
        va_http_respond_error(c, 405, "method_not_allowed", "use POST", "Allow: POST, DELETE\r\n");
}

/* ---- lifetime ---- */

static void srv_free(struct mcp_server *s)
{
    void (*cb)(void *) = s->on_closed;
    void *ud = s->closed_ud;
    for (size_t i = 0; i < s->cfg.norigins; i++)
        free(s->origins[i]);
    free(s->origins);
    if (s->token) {
        OPENSSL_cleanse(s->token, s->token_len);
        free(s->token);
    }
    va_rl_deinit(&s->rl);
    free(s);
    if (cb)
        cb(ud);
}

static void srv_maybe_closed(struct mcp_server *s)
{
    if (s->closing && s->http_closed && s->sweep_closed && !s->wsconns && !s->xchgs)
        srv_free(s);
}

static void srv_on_http_closed(void *ud)
{
    struct mcp_server *s = ud;
    s->http_closed = true;
    srv_maybe_closed(s);
}

static void srv_on_sweep_closed(uv_handle_t *h)
{
    struct mcp_server *s = h->data;
    s->sweep_closed = true;
    srv_maybe_closed(s);
}

int mcp_server_open(struct mcp_server **out, uv_loop_t *loop, struct va_log *log,
                    const struct mcp_server_cfg *cfg, const struct mcp_registry *reg)
{
    struct va_addr a;
    bool token = cfg->auth_token && cfg->auth_token[0];
    if (!cfg->host || va_addr_parse(&a, cfg->host, strlen(cfg->host))) {
        va_log_error(log, "mcp", "MCP_HOST must be an IP address", VA_LSTR("host", cfg->host));
        return VA_EINVAL;
    }
    if (!token && !mcp_host_is_loopback(&a)) {
        va_log_error(log, "mcp",
                     "MCP refuses a non-loopback bind without MCP_AUTH_TOKEN; MCP stays off",
                     VA_LSTR("host", cfg->host));
        return VA_EINVAL;
    }
    if (!cfg->info || !cfg->max_message_bytes || !cfg->max_response_bytes || !cfg->max_in_flight ||
        !cfg->rate_per_min || !cfg->rate_burst || !cfg->max_sessions || !cfg->session_idle_ms ||
        !cfg->max_ws || cfg->max_message_bytes > UINT32_MAX) {
        va_log_error(log, "mcp", "MCP server limits must be set and non-zero");
        return VA_EINVAL;
    }
    struct mcp_server *s = va_xcalloc(1, sizeof(*s));
    int err = va_rl_init(&s->rl, cfg->rate_per_min, cfg->rate_burst, MCP_RL_SLOTS);
    if (err) {
        free(s);
        return err;
    }
    s->loop = loop;
    s->log = log;
    s->cfg = *cfg;
    s->reg = reg;
    if (token) {
        s->token = va_xstrdup(cfg->auth_token);
        s->token_len = strlen(s->token);
    }
    s->origins = va_xcalloc(cfg->norigins ? cfg->norigins : 1, sizeof(char *));
    for (size_t i = 0; i < cfg->norigins; i++)
        s->origins[i] = va_xstrdup(cfg->allowed_origins[i]);
    s->cfg.auth_token = NULL;
    s->cfg.allowed_origins = NULL;
    struct va_http_server_cfg hcfg = {
        .host = cfg->host,
        .port = cfg->port,
        .max_connections = cfg->max_connections,
        .max_header_bytes = cfg->max_header_bytes,
        .max_body_bytes = (uint32_t)cfg->max_message_bytes,
        .request_timeout_ms = cfg->request_timeout_ms,
        .idle_timeout_ms = cfg->idle_timeout_ms,
    };
    struct va_http_server_cb hcb = {.on_request = srv_on_request, .on_closed = srv_on_http_closed};
    err = va_http_server_open(&s->http, loop, log, &hcfg, &hcb, s);
    if (err) {
        va_log_error(log, "mcp", "MCP listen failed", VA_LSTR("host", cfg->host),
                     VA_LINT("port", cfg->port), VA_LSTR("reason", va_strerror(err)));
        s->on_closed = NULL;
        srv_free(s); /* the HTTP server releases its own listener on the loop */
        return err;
    }
    uint64_t every = cfg->session_idle_ms / 4 ? cfg->session_idle_ms / 4 : 1;
    uv_timer_init(loop, &s->sweep);
    s->sweep.data = s;
    uv_timer_start(&s->sweep, srv_on_sweep, every, every);
    uv_unref((uv_handle_t *)&s->sweep);
    va_log_info(log, "mcp", "MCP listening", VA_LSTR("host", cfg->host),
                VA_LINT("port", va_http_server_port(s->http)), VA_LBOOL("auth", token));
    *out = s;
    return 0;
}

uint16_t mcp_server_port(const struct mcp_server *s)
{
    return va_http_server_port(s->http);
}

size_t mcp_server_connections(const struct mcp_server *s)
{
    return s->nws;
}

size_t mcp_server_sessions(const struct mcp_server *s)
{
    return s->nsessions;
}

size_t mcp_server_busy(const struct mcp_server *s)
{
    size_t n = 0;
    for (const struct mcp_xchg *x = s->xchgs; x; x = x->next)
        n += !x->finished;
    return n;
}

void mcp_server_drain(struct mcp_server *s)
{
    s->draining = true;
    va_http_server_drain(s->http);
}

void mcp_server_close(struct mcp_server *s, void (*on_closed)(void *ud), void *ud)
{
    if (s->closing)
        return;
    s->closing = true;
    s->on_closed = on_closed;
    s->closed_ud = ud;
    /* Held POSTs get their 503 now (the HTTP server closes their connections next), and
     * every call is abandoned (each still completes; then its memory goes). */
    struct mcp_xchg *x = s->xchgs;
    while (x) {
        struct mcp_xchg *next = x->next;
        if (!x->finished) {
            if (x->hc) {
                va_buf_reset(&x->out);
                mcp_build_error(&x->out, NULL, MCP_RPC_INTERNAL_ERROR, "Server shutting down");
                va_http_respond(x->hc, 503, "application/json", "Retry-After: 5\r\n", x->out.data,
                                x->out.len);
            }
            xchg_orphan(x); /* x is not freed here: its calls' timers close asynchronously */
        }
        x = next;
    }
    while (s->sessions)
        sess_free(s->sessions, "server closing");
    for (struct mcp_wsconn *wc = s->wsconns; wc; wc = wc->next) {
        if (!wc->closing) {
            wc->closing = true;
            va_ws_close(wc->ws, VA_WS_GOING_AWAY, "server closing");
        }
    }
    uv_close((uv_handle_t *)&s->sweep, srv_on_sweep_closed);
    va_http_server_close(s->http);
}
