/* src/http/server.c: HTTP/1.1 server, libuv sockets + llhttp parsing. */
#include "http/server.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "core/list.h"
#include "core/log.h"
#include "http/request.h"

#define SRV_READ_BUF (64 * 1024)
/* Unsent response bytes past which we stop reading a connection (a pipelining
 * peer that does not read its answers). */
#define SRV_WRITE_HIGH (256 * 1024)
/* Connections we are turning away with a 503 at the same time, beyond the limit. */
#define SRV_MAX_REJECTING 64
#define SRV_LOG_PATH_MAX 256

enum conn_state {
    CONN_IDLE,       /* between requests */
    CONN_READING,    /* a request has begun */
    CONN_DISPATCHED, /* complete, waiting for va_http_respond() */
    CONN_CLOSING,
};

struct va_http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    int handles; /* open uv handles; the last close callback frees */
    struct va_http_server *srv;
    struct va_http_conn *prev, *next;
    enum conn_state state;
    bool reading;     /* uv_read_start active */
    bool in_process;  /* conn_process() is on the stack: it continues after a response */
    bool stalled;     /* reading paused until the peer reads our responses */
    bool finishing;   /* shutdown queued: the connection takes no more requests */
    bool shut_done;   /* our FIN is out; lingering until the peer's */
    bool eof;         /* the peer half-closed */
    bool close_after; /* close once the current response is written */
    bool rejecting;   /* over the connection limit: one 503, then close */
    bool continued;   /* "100 Continue" sent for the current request */
    struct va_http_reqparser rp;
    struct va_buf pending; /* received but not yet parsed (parser paused) */
    struct va_addr peer;
    uint64_t req_start_ms;
    char log_method[16];
    char log_path[SRV_LOG_PATH_MAX];
    struct va_addr log_client;
};

struct va_http_server {
    uv_loop_t *loop;
    struct va_log *log;
    struct va_http_server_cfg cfg;
    struct va_http_server_cb cb;
    void *ud;
    uv_tcp_t listener;
    bool listener_open;
    bool closing;
    bool draining;
    struct va_http_conn *conns; /* list of live connections */
    size_t nconns;
    size_t nrejecting;
    size_t busy;
    uint16_t port;
    char readbuf[SRV_READ_BUF];
    bool readbuf_used;
};

struct srv_write {
    uv_write_t req;
    struct va_http_conn *c;
    size_t len;
    char data[];
};

static void conn_close(struct va_http_conn *c);
static void conn_on_write(uv_write_t *req, int status);
static void conn_process(struct va_http_conn *c, const char *data, size_t len);
static void srv_maybe_closed(struct va_http_server *srv);

const char *va_http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

const char *va_http_req_header(const struct va_http_req *req, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct va_http_header *h = &req->headers[i];
        if (h->name_len == nl && strncasecmp(h->name, name, nl) == 0) {
            if (len)
                *len = h->value_len;
            return h->value;
        }
    }
    return NULL;
}

bool va_http_bearer_ok(const struct va_http_req *req, const char *token, size_t token_len)
{
    size_t len = 0;
    const char *v = va_http_req_header(req, "authorization", &len);
    if (!v || len < 7 || strncasecmp(v, "Bearer ", 7) != 0)
        return false;
    v += 7;
    len -= 7;
    while (len && *v == ' ') {
        v++;
        len--;
    }
    while (len && v[len - 1] == ' ')
        len--;
    return len == token_len && CRYPTO_memcmp(v, token, len) == 0;
}

/* ---- connection lifetime ---- */

static void conn_free(struct va_http_conn *c)
{
    struct va_http_server *srv = c->srv;
    VA_LIST_REMOVE(srv->conns, c, prev, next);
    if (c->rejecting)
        srv->nrejecting--;
    else
        srv->nconns--;
    va_http_reqparser_deinit(&c->rp);
    va_buf_deinit(&c->pending);
    free(c);
    srv_maybe_closed(srv);
}

static void conn_on_handle_closed(uv_handle_t *h)
{
    struct va_http_conn *c = h->data;
    if (--c->handles == 0)
        conn_free(c);
}

static void conn_close(struct va_http_conn *c)
{
    if (c->state == CONN_CLOSING)
        return;
    if (c->state == CONN_READING || c->state == CONN_DISPATCHED)
        c->srv->busy--;
    c->state = CONN_CLOSING;
    uv_close((uv_handle_t *)&c->timer, conn_on_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, conn_on_handle_closed);
}

/* How long a finished connection keeps draining what the peer still sends. */
#define SRV_LINGER_MS 2000

static void conn_on_timer(uv_timer_t *t);
static void conn_read_start(struct va_http_conn *c);

static void conn_on_shutdown(uv_shutdown_t *req, int status)
{
    struct va_http_conn *c = req->data;
    free(req);
    c->shut_done = true;
    if (status < 0 || c->eof) {
        conn_close(c);
        return;
    }
    /* Lingering close: closing with unread bytes makes the kernel send RST, which
     * can destroy our response before the peer reads it. Read and discard until the
     * peer closes too, or the linger time ends. */
    uv_timer_start(&c->timer, conn_on_timer, SRV_LINGER_MS, 0);
}

/* Closes after everything queued has been written. */
static void conn_finish(struct va_http_conn *c)
{
    if (c->state == CONN_CLOSING || c->finishing)
        return;
    c->finishing = true;
    uv_timer_stop(&c->timer);
    if (!c->eof)
        conn_read_start(c);
    uv_shutdown_t *req = va_xmalloc(sizeof(*req));
    req->data = c;
    if (uv_shutdown(req, (uv_stream_t *)&c->tcp, conn_on_shutdown)) {
        free(req);
        conn_close(c);
    }
}

static void conn_on_timer(uv_timer_t *t)
{
    struct va_http_conn *c = t->data;
    struct va_http_server *srv = c->srv;
    if (c->finishing) {
        conn_close(c);
        return;
    }
    if (c->state == CONN_READING) {
        va_log_warn(srv->log, "http", "request timed out", VA_LSTR("remote", c->peer.text),
                    VA_LINT("ms", srv->cfg.request_timeout_ms));
        c->close_after = true;
        c->state = CONN_DISPATCHED;
        snprintf(c->log_method, sizeof(c->log_method), "-");
        snprintf(c->log_path, sizeof(c->log_path), "-");
        c->log_client = c->peer;
        va_http_respond_error(c, 408, "request_timeout", "request not completed in time", NULL);
        return;
    }
    if (c->state == CONN_IDLE) {
        va_log_debug(srv->log, "http", "idle connection closed", VA_LSTR("remote", c->peer.text));
        conn_close(c);
    }
}

static void conn_arm_idle(struct va_http_conn *c, bool first)
{
    struct va_http_server *srv = c->srv;
    /* A fresh connection must start a request soon: the idle allowance is for
     * keep-alive between requests, not for holding sockets open for free. */
    uint32_t ms = first ? srv->cfg.request_timeout_ms : srv->cfg.idle_timeout_ms;
    uv_timer_start(&c->timer, conn_on_timer, ms, 0);
}

static void conn_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct va_http_conn *c = h->data;
    (void)hint;
    /* One shared read buffer: reads are processed synchronously, and anything
     * left unparsed is copied into the connection's own bounded buffer. */
    if (c->srv->readbuf_used) {
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    c->srv->readbuf_used = true;
    buf->base = c->srv->readbuf;
    buf->len = sizeof(c->srv->readbuf);
}

static void conn_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct va_http_conn *c = s->data;
    if (buf->base == c->srv->readbuf)
        c->srv->readbuf_used = false;
    if (n == 0)
        return;
    if (c->finishing) {
        /* lingering: what the peer still sends is discarded */
        if (n < 0) {
            c->eof = true;
            uv_read_stop(s);
            c->reading = false;
            if (c->shut_done)
                conn_close(c);
        }
        return;
    }
    if (n < 0) {
        uv_read_stop(s);
        c->reading = false;
        if (c->state == CONN_READING) {
            va_log_info(c->srv->log, "http", "client closed mid-request",
                        VA_LSTR("remote", c->peer.text), VA_LSTR("reason", uv_err_name((int)n)));
            conn_close(c);
            return;
        }
        if (n != UV_EOF && c->state != CONN_DISPATCHED) {
            conn_close(c);
            return;
        }
        /* A half-close still wants the answers to what it sent: finish those
         * (a dispatched handler answers later), then close. */
        c->eof = true;
        c->close_after = true;
        if (c->state == CONN_IDLE && !c->stalled && c->pending.len == 0)
            conn_finish(c);
        return;
    }
    if (c->rejecting)
        return;
    conn_process(c, buf->base, (size_t)n);
}

static void conn_read_start(struct va_http_conn *c)
{
    if (c->reading || c->state == CONN_CLOSING)
        return;
    if (uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_on_read) == 0)
        c->reading = true;
}

static void conn_read_stop(struct va_http_conn *c)
{
    if (!c->reading)
        return;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
}

/* Keeps bytes the parser has not seen yet, until the request before them is answered.
 * Bounded: reading stops while anything is pending, so this holds at most one read. */
static void conn_keep_pending(struct va_http_conn *c, const char *data, size_t len)
{
    conn_read_stop(c);
    if (len && va_buf_append(&c->pending, data, len))
        c->close_after = true;
}

static void conn_build_req(struct va_http_conn *c, struct va_http_req *req,
                           struct va_http_header *hdrs)
{
    va_http_reqparser_request(&c->rp, req, hdrs);
    req->peer = c->peer;
    size_t cf_len = 0, xff_len = 0;
    const char *cf = va_http_req_header(req, "cf-connecting-ip", &cf_len);
    const char *xff = va_http_req_header(req, "x-forwarded-for", &xff_len);
    va_client_addr(&req->client, &c->peer, c->srv->cfg.trust_proxy, c->srv->cfg.trust_proxy_len, cf,
                   cf_len, xff, xff_len);

    snprintf(c->log_method, sizeof(c->log_method), "%s", req->method);
    size_t pl = req->path_len < SRV_LOG_PATH_MAX - 1 ? req->path_len : SRV_LOG_PATH_MAX - 1;
    memcpy(c->log_path, req->path, pl);
    c->log_path[pl] = '\0';
    c->log_client = req->client;
}

static void conn_dispatch(struct va_http_conn *c)
{
    struct va_http_header hdrs[VA_HTTP_MAX_HEADERS];
    struct va_http_req req;
    uv_timer_stop(&c->timer);
    conn_build_req(c, &req, hdrs);
    /* After an upgrade request the stream is no longer HTTP; unless a handler
     * takes the socket, answering it ends the connection. */
    if (!req.keep_alive || req.upgrade || c->srv->draining)
        c->close_after = true;
    c->state = CONN_DISPATCHED;
    c->srv->cb.on_request(c->srv->ud, c, &req);
}

static void conn_fail(struct va_http_conn *c)
{
    int status = c->rp.status;
    if (c->state != CONN_READING) {
        /* garbage before any request began still deserves an answer */
        c->state = CONN_READING;
        c->srv->busy++;
        c->req_start_ms = uv_now(c->srv->loop);
    }
    snprintf(c->log_method, sizeof(c->log_method), "-");
    snprintf(c->log_path, sizeof(c->log_path), "-");
    c->log_client = c->peer;
    c->close_after = true;
    va_log_warn(c->srv->log, "http", "bad request", VA_LSTR("remote", c->peer.text),
                VA_LINT("status", status), VA_LSTR("reason", c->rp.reason));
    const char *code = status == 431   ? "headers_too_large"
                       : status == 413 ? "body_too_large"
                       : status == 505 ? "http_version"
                                       : "bad_request";
    c->state = CONN_DISPATCHED;
    va_http_respond_error(c, status, code, c->rp.reason, NULL);
}

/* The client waits for this before sending a large body (curl does past 1 KiB). */
static void conn_continue(struct va_http_conn *c)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    c->continued = true;
    struct srv_write *w = va_xmalloc(sizeof(*w) + sizeof(cont));
    w->c = c;
    memcpy(w->data, cont, sizeof(cont) - 1);
    uv_buf_t b = uv_buf_init(w->data, sizeof(cont) - 1);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, conn_on_write))
        free(w);
}

/* Where a connection goes once nothing is being parsed: wait for the handler,
 * keep reading the current request, or wait for the next one. */
static void conn_settle(struct va_http_conn *c)
{
    if (c->finishing || c->state == CONN_CLOSING || c->state == CONN_DISPATCHED)
        return;
    if (c->state == CONN_READING) {
        if (!c->eof)
            conn_read_start(c);
        return;
    }
    if (c->stalled) {
        /* a peer that never reads again is dropped after the idle timeout */
        conn_arm_idle(c, false);
        return;
    }
    if (c->srv->draining || c->eof || c->close_after) {
        conn_finish(c);
        return;
    }
    conn_arm_idle(c, false);
    conn_read_start(c);
}

/* Feeds data to the parser, answering each complete request before the next
 * (iteratively: a burst of pipelined requests must not recurse). */
static void conn_process(struct va_http_conn *c, const char *data, size_t len)
{
    struct va_http_server *srv = c->srv;
    c->in_process = true;
    while (len > 0 && !c->finishing && c->state != CONN_CLOSING) {
        if (c->state == CONN_DISPATCHED || c->stalled) {
            /* answered later, or the peer is not reading: keep the rest */
            conn_keep_pending(c, data, len);
            break;
        }
        if (c->state == CONN_IDLE) {
            va_http_reqparser_next(&c->rp);
            uv_timer_start(&c->timer, conn_on_timer, srv->cfg.request_timeout_ms, 0);
            c->state = CONN_READING;
            c->continued = false;
            c->req_start_ms = uv_now(srv->loop);
            srv->busy++;
        }
        size_t used = 0;
        enum va_http_parse r = va_http_reqparser_feed(&c->rp, data, len, &used);
        if (r == VA_HTTP_ERR) {
            conn_fail(c);
            break;
        }
        data += used;
        len -= used;
        if (r == VA_HTTP_NEED_MORE) {
            if (c->rp.expect_continue && !c->continued)
                conn_continue(c);
            break;
        }
        if (c->rp.parser.upgrade && len) {
            /* bytes behind an upgrade request belong to the new protocol */
            conn_keep_pending(c, data, len);
            len = 0;
        }
        conn_dispatch(c);
        if (c->state == CONN_IDLE &&
            uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > SRV_WRITE_HIGH)
            c->stalled = true;
    }
    c->in_process = false;
    conn_settle(c);
}

/* After an asynchronous response, or once a stalled peer reads again: go on
 * with pipelined bytes, or wait for more. */
static void conn_next(struct va_http_conn *c)
{
    if (c->finishing || c->state == CONN_CLOSING)
        return;
    if (c->pending.len) {
        /* process a private copy: processing may append to pending again */
        size_t n = 0;
        char *data = va_buf_steal(&c->pending, &n);
        conn_process(c, data, n);
        free(data);
        return;
    }
    conn_settle(c);
}

static void conn_on_write(uv_write_t *req, int status)
{
    struct srv_write *w = (struct srv_write *)req;
    struct va_http_conn *c = w->c;
    free(w);
    if (c->state == CONN_CLOSING)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    /* a stalled pipelining peer started reading again */
    if (c->stalled &&
        uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) <= SRV_WRITE_HIGH / 2) {
        c->stalled = false;
        conn_next(c);
    }
}

int va_http_respond(struct va_http_conn *c, int status, const char *content_type,
                    const char *extra_headers, const void *body, size_t len)
{
    if (c->state != CONN_DISPATCHED)
        return VA_ESTATE;
    struct va_http_server *srv = c->srv;
    bool close = c->close_after || srv->draining;
    char head[512];
    int hl =
        snprintf(head, sizeof(head),
                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                 "Cache-Control: no-store\r\nConnection: %s\r\n",
                 status, va_http_reason(status), content_type, len, close ? "close" : "keep-alive");
    size_t el = extra_headers ? strlen(extra_headers) : 0;
    size_t total = (size_t)hl + el + 2 + len;
    struct srv_write *w = va_xmalloc(sizeof(*w) + total);
    w->c = c;
    w->len = total;
    memcpy(w->data, head, (size_t)hl);
    if (el)
        memcpy(w->data + hl, extra_headers, el);
    memcpy(w->data + hl + el, "\r\n", 2);
    if (len)
        memcpy(w->data + hl + el + 2, body, len);

    uint64_t ms = uv_now(srv->loop) - c->req_start_ms;
    VA_LOG(srv->log, status >= 500 ? VA_LOG_WARN : VA_LOG_INFO, "http", "request",
           VA_LSTR("method", c->log_method), VA_LSTR("route", c->log_path),
           VA_LINT("status", status), VA_LINT("ms", ms), VA_LSTR("remote", c->log_client.text));

    srv->busy--;
    c->state = CONN_IDLE;
    uv_buf_t b = uv_buf_init(w->data, (unsigned)total);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, conn_on_write)) {
        free(w);
        c->state = CONN_DISPATCHED; /* so conn_close counts it once */
        srv->busy++;
        conn_close(c);
        return 0;
    }
    if (close) {
        va_buf_reset(&c->pending);
        conn_finish(c);
        return 0;
    }
    if (!c->in_process)
        conn_next(c);
    return 0;
}

int va_http_upgrade(struct va_http_conn *c, int status, uv_os_sock_t *fd, char **pre,
                    size_t *pre_len)
{
    if (c->state != CONN_DISPATCHED || c->finishing)
        return VA_ESTATE;
    /* an earlier pipelined answer still being written would be lost with the handle */
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > 0)
        return VA_ESTATE;
    uv_os_fd_t ofd;
    int err = uv_fileno((uv_handle_t *)&c->tcp, &ofd);
    if (err)
        return err;
    /* The socket moves to a new handle through a duplicate descriptor: closing
     * our handle then releases only our descriptor, not the connection. */
    int nfd = dup(ofd);
    if (nfd < 0)
        return -errno;
    struct va_http_server *srv = c->srv;
    uint64_t ms = uv_now(srv->loop) - c->req_start_ms;
    va_log_info(srv->log, "http", "request", VA_LSTR("method", c->log_method),
                VA_LSTR("route", c->log_path), VA_LINT("status", status), VA_LINT("ms", ms),
                VA_LSTR("remote", c->log_client.text));
    *pre = va_buf_steal(&c->pending, pre_len);
    conn_read_stop(c);
    conn_close(c);
    *fd = nfd;
    return 0;
}

int va_http_respond_error(struct va_http_conn *c, int status, const char *code, const char *message,
                          const char *extra_headers)
{
    struct va_buf b;
    va_buf_init(&b, 4096);
    va_buf_append_str(&b, "{\"error\":");
    va_json_str(&b, code, strlen(code));
    va_buf_append_str(&b, ",\"message\":");
    va_json_str(&b, message, strlen(message));
    va_buf_append_char(&b, '}');
    int err = va_http_respond(c, status, "application/json", extra_headers, b.data, b.len);
    va_buf_deinit(&b);
    return err;
}

/* ---- listener ---- */

static void srv_reject(struct va_http_server *srv, struct va_http_conn *c)
{
    static const char resp[] =
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/json\r\nContent-Length: 62\r\n"
        "Retry-After: 1\r\nConnection: close\r\n\r\n"
        "{\"error\":\"busy\",\"message\":\"too many connections, retry later\"}";
    va_log_warn(srv->log, "http", "connection refused: limit reached",
                VA_LSTR("remote", c->peer.text), VA_LINT("limit", srv->cfg.max_connections));
    uv_buf_t b = uv_buf_init((char *)resp, sizeof(resp) - 1);
    uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    conn_finish(c);
}

static void srv_on_connection(uv_stream_t *ls, int status)
{
    struct va_http_server *srv = ls->data;
    if (status < 0) {
        va_log_warn(srv->log, "http", "accept failed", VA_LSTR("reason", uv_strerror(status)));
        return;
    }
    bool over = srv->nconns >= srv->cfg.max_connections;
    struct va_http_conn *c = va_xcalloc(1, sizeof(*c));
    c->srv = srv;
    uv_tcp_init(srv->loop, &c->tcp);
    uv_timer_init(srv->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles = 2;
    c->rejecting = over;
    if (over)
        srv->nrejecting++;
    else
        srv->nconns++;
    VA_LIST_PUSH(srv->conns, c, prev, next);
    va_http_reqparser_init(&c->rp, srv->cfg.max_header_bytes, srv->cfg.max_body_bytes);
    va_buf_init(&c->pending, SRV_READ_BUF);

    if (uv_accept(ls, (uv_stream_t *)&c->tcp)) {
        conn_close(c);
        return;
    }
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) ||
        va_addr_from_sockaddr(&c->peer, &ss)) {
        conn_close(c);
        return;
    }
    if (over) {
        if (srv->nrejecting > SRV_MAX_REJECTING)
            conn_close(c);
        else
            srv_reject(srv, c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    conn_arm_idle(c, true);
    conn_read_start(c);
}

static void srv_on_listener_closed(uv_handle_t *h)
{
    struct va_http_server *srv = h->data;
    srv->listener_open = false;
    srv_maybe_closed(srv);
}

static void srv_maybe_closed(struct va_http_server *srv)
{
    if (!srv->closing || srv->listener_open || srv->conns)
        return;
    void (*cb)(void *) = srv->cb.on_closed;
    void *ud = srv->ud;
    free(srv);
    if (cb)
        cb(ud);
}

int va_http_server_open(struct va_http_server **out, uv_loop_t *loop, struct va_log *log,
                        const struct va_http_server_cfg *cfg, const struct va_http_server_cb *cb,
                        void *ud)
{
    struct va_http_server *srv = va_xcalloc(1, sizeof(*srv));
    srv->loop = loop;
    srv->log = log;
    srv->cfg = *cfg;
    srv->cb = *cb;
    srv->ud = ud;
    struct sockaddr_storage ss;
    int err = uv_ip4_addr(cfg->host, cfg->port, (struct sockaddr_in *)&ss);
    if (err)
        err = uv_ip6_addr(cfg->host, cfg->port, (struct sockaddr_in6 *)&ss);
    if (err) {
        free(srv);
        return err;
    }
    uv_tcp_init(loop, &srv->listener);
    srv->listener.data = srv;
    srv->listener_open = true;
    err = uv_tcp_bind(&srv->listener, (struct sockaddr *)&ss, 0);
    if (!err)
        err = uv_listen((uv_stream_t *)&srv->listener, 511, srv_on_connection);
    if (err) {
        /* the handle must still be closed; free once it is */
        srv->closing = true;
        srv->cb.on_closed = NULL;
        uv_close((uv_handle_t *)&srv->listener, srv_on_listener_closed);
        return err;
    }
    struct sockaddr_storage bound;
    int bl = sizeof(bound);
    uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&bound, &bl);
    srv->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                  : ((struct sockaddr_in *)&bound)->sin_port);
    *out = srv;
    return 0;
}

uint16_t va_http_server_port(const struct va_http_server *srv)
{
    return srv->port;
}

size_t va_http_server_busy(const struct va_http_server *srv)
{
    return srv->busy;
}

void va_http_server_drain(struct va_http_server *srv)
{
    srv->draining = true;
    struct va_http_conn *next;
    for (struct va_http_conn *c = srv->conns; c; c = next) {
        next = c->next;
        if (c->state == CONN_IDLE && !c->rejecting && !c->in_process && c->pending.len == 0)
            conn_finish(c);
    }
}

void va_http_server_close(struct va_http_server *srv)
{
    if (srv->closing)
        return;
    srv->closing = true;
    struct va_http_conn *next;
    for (struct va_http_conn *c = srv->conns; c; c = next) {
        next = c->next;
        conn_close(c);
    }
    uv_close((uv_handle_t *)&srv->listener, srv_on_listener_closed);
}
