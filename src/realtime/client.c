/* src/realtime/client.c: WebSocket client to the OpenAI Realtime API, libwebsockets 4.1
 * on our libuv loop.
 *
 * Shape: one lws callback (rt_lws_callback) turns each lws event into one step of
 * struct rt_client; everything the caller sees (on_open, on_message, on_closed) is
 * called from there or from a uv callback, never from inside an rt_ call. The STYLE
 * pitfalls for lws 4.1.6 decide most of the layout:
 *  - DNS is uv_getaddrinfo; lws gets the address, the name stays Host and TLS name.
 *  - We never close from CLIENT_WRITEABLE: a close (or a connect abort) arms the wsi's
 *    hrtimer, and LWS_CALLBACK_TIMER returns -1 after lws_close_reason(). From a uv
 *    callback that needs lws_cancel_service(), or lws never rearms its uv timer.
 *  - Exactly one of CLIENT_CONNECTION_ERROR / CLIENT_CLOSED ends a wsi we were handed;
 *    we detach there (lws_set_wsi_user(wsi, NULL)) and WSI_DESTROY never reads `user`:
 *    after a NULL connect return lws still sends WSI_DESTROY later with the stale
 *    userdata, so it is matched by wsi pointer against our list instead.
 *  - on_closed runs from the close callback of the client's uv timer (the last handle),
 *    after the getaddrinfo request, if any, has called back. */
#include "realtime/client.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libwebsockets.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/list.h"
#include "core/log.h"
#include "core/net.h"
#include "http/ws.h"

#define RT_MOD "realtime"
#define RT_DEFAULT_CONNECT_TIMEOUT_MS 10000
#define RT_DEFAULT_MAX_MESSAGE (1024 * 1024)
#define RT_DEFAULT_MAX_QUEUE (256 * 1024)
/* Receive memory kept between messages; a larger buffer is released after its message,
 * so an idle call holds 64 KiB at most, not max_message. */
#define RT_RX_KEEP (64 * 1024)
#define RT_REASON_MAX 123 /* a Close payload is at most 125 bytes: 2 of code, 123 of text */
/* lws 4.1 writes "Host: %s\r\n" into 128 bytes and silently cuts the rest. */
#define RT_HOST_HDR_MAX 118
/* lws 4.1 writes the request line into 2048 bytes ("GET " path " HTTP/1.1\r\n"). */
#define RT_PATH_MAX 1024
#define RT_AUTH_NAME_MAX 64
/* Entra ID bearer tokens reach a few KiB; the handshake is built in pt_serv_buf_size. */
#define RT_AUTH_VALUE_MAX 8192
#define RT_SERV_BUF (16 * 1024)
#define RT_RX_CHUNK 2048         /* lws's receive buffer per connection: a 100 ms delta in one */
#define RT_CLOSE_FLUSH_TICKS 200 /* 2 s */
/* Framed bytes kept between flushes; a larger send buffer (a long session.update) is
 * released once written. */
#define RT_TX_KEEP 2048

/* RFC 6455 7.4.1 codes we send or report */
#define RT_CLOSE_NORMAL 1000
#define RT_CLOSE_GOING_AWAY 1001
#define RT_CLOSE_UNSUPPORTED 1003
#define RT_CLOSE_NO_STATUS 1005
#define RT_CLOSE_ABNORMAL 1006
#define RT_CLOSE_TOO_BIG 1009

enum rt_state {
    RT_RESOLVING,  /* uv_getaddrinfo in flight */
    RT_CONNECTING, /* lws has the wsi: TCP, TLS, upgrade */
    RT_OPEN,       /* on_open has run (or is about to) */
    RT_DONE,       /* the outcome is fixed; waiting for handles before on_closed */
};

struct rt_client {
    struct rt_lws *l;
    struct rt_client *prev, *next;
    struct rt_client_cb cb;
    void *ud;
    enum rt_state state;

    struct rt_url url;
    char host_hdr[RT_HOST_HDR_MAX + 1]; /* host[:port], IPv6 in brackets */
    char ip[64];
    char auth_name[RT_AUTH_NAME_MAX + 2]; /* "Authorization:" (lws wants the colon) */
    char *auth_value;                     /* held here: the header hook runs later */
    uint32_t connect_timeout_ms;
    uint64_t start_ms;

    uv_getaddrinfo_t gai;
    bool gai_pending;
    uv_timer_t timer; /* connect timeout; the last of our handles to close */
    bool timer_closed;

    struct lws *wsi;
    bool tcp_up; /* WSI_CREATE seen */
    char tls_error[RT_REASON_MAX + 1];

    struct va_buf rx;
    size_t max_message;
    /* Messages framed by us (rt_ws_frame), in order, not yet handed to lws: one
     * lws_write (one TLS record) per flush, whatever the loop turn queued. */
    struct va_buf tx;
    size_t queued, max_queue;     /* payload bytes in tx, and their bound */
    struct rt_client *flush_next; /* on rt_lws.flush_head: messages queued this loop turn */
    bool flush_pending;

    /* a close we want: rt_client_close(), a connect timeout, or a peer fault */
    bool closing;
    int abort_err; /* before on_open: reported instead of lws's error text */
    int fail_err;  /* after on_open: VA_ETOOBIG / VA_EPROTO when we closed for a fault */
    uint16_t close_code;
    char close_reason[RT_REASON_MAX + 1];

    uint32_t flush_ticks; /* TIMER turns spent waiting for a partial write */

    bool peer_closed;
    uint16_t peer_code;
    char peer_reason[RT_REASON_MAX + 1];

    /* the outcome, fixed once by rt_client_finish() */
    int fin_err;
    int fin_status;
    uint16_t fin_code;
    char fin_reason[RT_REASON_MAX + 1];
};

struct rt_lws {
    uv_loop_t *loop;
    struct va_log *log;
    struct lws_context *ctx;
    void *loops[1]; /* info.foreign_loops */
    struct rt_client *clients;
    size_t nclients;
    uv_timer_t timer; /* runs the first lws_context_destroy outside any lws service */
    /* Writes what clients queued during this loop turn, after the I/O phase: asking lws
     * for WRITEABLE instead costs two epoll_ctl per message (POLLOUT on, then off). */
    uv_check_t flush;
    struct rt_client *flush_head;
    /* Masking keys (RFC 6455 5.3) from OpenSSL's DRBG, drawn 1 KiB at a time: lws
     * would read 4 bytes of /dev/urandom per frame, one syscall per message. */
    unsigned char keys[1024];
    size_t keys_used;
    int handles; /* timer and flush: the last close callback reports on_closed */
    bool closing, destroy_armed, timer_closed; /* timer_closed: both handles */
    void (*on_closed)(void *ud);
    void *closed_ud;
};

static int rt_lws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                           size_t len);

/* protocols[0]: WSI_DESTROY always lands there. No subprotocol on the wire: the
 * name only binds our client wsi (local_protocol_name). lws 4.1 allocates
 * rx_buffer_size per connection (0 would mean pt_serv_buf_size, 16 KiB); RECEIVE comes
 * in chunks of at most that, joined in rt_client.rx when there are several. tx_packet_size keeps
 * each send at up to RT_SERV_BUF: unset, lws would cut sends at rx_buffer_size too. */
static const struct lws_protocols rt_protocols[] = {
    {"va-realtime", rt_lws_callback, 0, RT_RX_CHUNK, 0, NULL, RT_SERV_BUF},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---- URL (pure) ---- */

static bool rt_url_byte_ok(unsigned char ch)
{
    return ch > 0x20 && ch < 0x7f;
}

static bool rt_host_byte_ok(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '.' || ch == '_';
}

int rt_url_parse(struct rt_url *out, const char *url, size_t len)
{
    bool tls;
    size_t i;
    if (len >= 5 && strncasecmp(url, "ws://", 5) == 0) {
        tls = false;
        i = 5;
    } else if (len >= 6 && strncasecmp(url, "wss://", 6) == 0) {
        tls = true;
        i = 6;
    } else {
        return VA_EINVAL;
    }
    for (size_t k = 0; k < len; k++)
        if (!rt_url_byte_ok((unsigned char)url[k]) || url[k] == '#')
            return VA_EINVAL;

    /* authority: up to the first '/' or '?' */
    size_t a = i;
    while (i < len && url[i] != '/' && url[i] != '?')
        i++;
    const char *auth = url + a;
    size_t auth_len = i - a;
    if (memchr(auth, '@', auth_len))
        return VA_EINVAL;

    const char *host;
    size_t host_len;
    const char *port = NULL;
    size_t port_len = 0;
    bool ipv6 = false;
    if (auth_len && auth[0] == '[') {
        const char *rb = memchr(auth, ']', auth_len);
        if (!rb)
            return VA_EINVAL;
        host = auth + 1;
        host_len = (size_t)(rb - host);
        size_t rest = auth_len - (size_t)(rb - auth) - 1;
        if (rest) {
            if (rb[1] != ':')
                return VA_EINVAL;
            port = rb + 2;
            port_len = rest - 1;
            if (!port_len)
                return VA_EINVAL;
        }
        struct va_addr ad;
        if (va_addr_parse(&ad, host, host_len) != 0 || ad.family != AF_INET6 ||
            memchr(host, ' ', host_len))
            return VA_EINVAL;
        ipv6 = true;
    } else {
        const char *colon = memchr(auth, ':', auth_len);
        host = auth;
        host_len = colon ? (size_t)(colon - auth) : auth_len;
        if (colon) {
            port = colon + 1;
            port_len = auth_len - host_len - 1;
            if (!port_len)
                return VA_EINVAL;
        }
        for (size_t k = 0; k < host_len; k++)
            if (!rt_host_byte_ok((unsigned char)host[k]))
                return VA_EINVAL;
    }
    if (!host_len)
        return VA_EINVAL;
    if (host_len > RT_URL_HOST_MAX)
        return VA_ETOOBIG;

    uint32_t pn = tls ? 443 : 80;
    if (port) {
        if (port_len > 5)
            return VA_EINVAL;
        pn = 0;
        for (size_t k = 0; k < port_len; k++) {
            if (port[k] < '0' || port[k] > '9')
                return VA_EINVAL;
            pn = pn * 10 + (uint32_t)(port[k] - '0');
        }
        if (pn < 1 || pn > 65535)
            return VA_EINVAL;
    }

    const char *path = url + i;
    size_t path_len = len - i;
    bool slash = !path_len || path[0] == '?'; /* "/" goes in front */
    if (path_len + (slash ? 1 : 0) > RT_URL_PATH_MAX)
        return VA_ETOOBIG;

    memset(out, 0, sizeof(*out));
    out->tls = tls;
    out->ipv6 = ipv6;
    out->port = (uint16_t)pn;
    memcpy(out->host, host, host_len);
    size_t o = 0;
    if (slash)
        out->path[o++] = '/';
    memcpy(out->path + o, path, path_len);
    return 0;
}

/* ---- small helpers ---- */

static bool rt_code_sendable(uint16_t code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
           (code >= 3000 && code <= 4999);
}

/* Copies s[0, len) into out (RT_REASON_MAX + 1 bytes), cut at a UTF-8 boundary. */
static void rt_copy_reason(char *out, const char *s, size_t len)
{
    if (!s)
        len = 0;
    if (len > RT_REASON_MAX) {
        len = RT_REASON_MAX;
        while (len && ((unsigned char)s[len] & 0xC0) == 0x80)
            len--;
    }
    if (len)
        memcpy(out, s, len);
    out[len] = '\0';
}

static bool rt_header_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (!n || n > RT_AUTH_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        /* RFC 7230 tchar */
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              strchr("!#$%&'*+-.^_`|~", ch)))
            return false;
    }
    return true;
}

static bool rt_header_value_ok(const char *s)
{
    size_t n = strlen(s);
    if (n > RT_AUTH_VALUE_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return false; /* no CR/LF: nothing can be smuggled into the handshake */
    }
    return true;
}

/* ---- client frames (pure) ---- */

size_t rt_ws_frame(unsigned char *out, const void *payload, size_t len, const unsigned char key[4])
{
    size_t h = 0;
    out[h++] = 0x81; /* FIN, text */
    if (len < 126) {
        out[h++] = (unsigned char)(0x80 | len);
    } else if (len <= 0xffff) {
        out[h++] = 0x80 | 126;
        out[h++] = (unsigned char)(len >> 8);
        out[h++] = (unsigned char)len;
    } else {
        out[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            out[h++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    memcpy(out + h, key, 4);
    h += 4;
    va_ws_mask(out + h, payload, len, key);
    return h + len;
}

static void rt_queue_free(struct rt_client *c)
{
    va_buf_deinit(&c->tx);
    c->queued = 0;
}

/* ---- teardown of one client ---- */

static void rt_lws_maybe_destroy(struct rt_lws *l);

/* Called once the timer has closed and no getaddrinfo callback is pending. */
static void rt_client_release(struct rt_client *c)
{
    struct rt_lws *l = c->l;
    VA_LIST_REMOVE(l->clients, c, prev, next);
    l->nclients--;
    for (struct rt_client **pp = &l->flush_head; *pp; pp = &(*pp)->flush_next) {
        if (*pp == c) {
            *pp = c->flush_next;
            break;
        }
    }
    if (c->cb.on_closed)
        c->cb.on_closed(c->ud, c->fin_err, c->fin_status, c->fin_code, c->fin_reason);
    rt_queue_free(c);
    va_buf_deinit(&c->rx);
    free(c->auth_value);
    free(c);
    rt_lws_maybe_destroy(l);
}

static void rt_client_timer_closed(uv_handle_t *h)
{
    struct rt_client *c = h->data;
    c->timer_closed = true;
    if (!c->gai_pending)
        rt_client_release(c);
    /* else the getaddrinfo callback, cancelled or not, releases */
}

/* Fixes the outcome once, detaches from lws, starts closing our handle. Safe from
 * inside lws callbacks: on_closed comes from the timer's close callback. */
static void rt_client_finish(struct rt_client *c, int err, int status, uint16_t code,
                             const char *reason, size_t reason_len)
{
    if (c->state == RT_DONE)
        return;
    bool was_open = c->state == RT_OPEN;
    c->state = RT_DONE;
    c->fin_err = err;
    c->fin_status = status;
    c->fin_code = code;
    rt_copy_reason(c->fin_reason, reason, reason_len);
    if (c->wsi) {
        lws_set_wsi_user(c->wsi, NULL);
        c->wsi = NULL;
    }
    rt_queue_free(c);
    if (c->gai_pending)
        uv_cancel((uv_req_t *)&c->gai); /* UV_EBUSY when running: its callback still comes */
    uint64_t ms = uv_now(c->l->loop) - c->start_ms;
    if (was_open)
        va_log_info(c->l->log, RT_MOD, "realtime socket closed", VA_LSTR("host", c->url.host),
                    VA_LINT("code", code), VA_LSTR("reason", c->fin_reason),
                    VA_LSTR("err", err ? va_strerror(err) : NULL), VA_LINT("ms", ms));
    else if (err == UV_ECANCELED)
        va_log_info(c->l->log, RT_MOD, "realtime connect aborted", VA_LSTR("host", c->url.host),
                    VA_LSTR("reason", c->fin_reason), VA_LINT("ms", ms));
    else
        va_log_warn(c->l->log, RT_MOD, "realtime connect failed", VA_LSTR("host", c->url.host),
                    VA_LSTR("ip", c->ip[0] ? c->ip : NULL), VA_LSTR("err", va_strerror(err)),
                    VA_LINT("status", status), VA_LSTR("lws", c->fin_reason), VA_LINT("ms", ms));
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, rt_client_timer_closed);
}

/* Asks lws to close (open) or drop (connecting) the wsi from its own service: the
 * hrtimer fires LWS_CALLBACK_TIMER, which returns -1. */
static void rt_client_kill(struct rt_client *c)
{
    lws_set_timer_usecs(c->wsi, 1);
    /* lws rearms its uv timer only on its service path: wake it */
    lws_cancel_service(c->l->ctx);
}

/* ---- connecting ---- */

/* lws 4.1 keeps no errno for a failed TCP connect: a refusal shows as POLLHUP and the
 * text "closed before established", the same text as a drop during the upgrade. The
 * socket is still open during CLIENT_CONNECTION_ERROR, so SO_ERROR tells; failing that,
 * a TCP connect that never completed (no WSI_CREATE) is reported as refused. */
static int rt_map_connect_error(struct rt_client *c, struct lws *wsi, int status, const char *text,
                                size_t len)
{
    if (status == 401 || status == 403)
        return VA_EAUTH;
    if (status && status != 101)
        return VA_EPROTO;
    if (!c->tcp_up) {
        int fd = lws_get_socket_fd(wsi);
        int e = 0;
        socklen_t sl = sizeof(e);
        if (fd >= 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &sl) == 0 && e > 0)
            return -e;
        return UV_ECONNREFUSED;
    }
    for (size_t i = 0; i + 8 <= len; i++)
        if (memcmp(text + i, "imed out", 8) == 0)
            return UV_ETIMEDOUT;
    return VA_EPROTO;
}

static void rt_client_connect(struct rt_client *c)
{
    struct lws_client_connect_info i;
    memset(&i, 0, sizeof(i));
    i.context = c->l->ctx;
    i.address = c->ip;
    i.port = c->url.port;
    i.path = c->url.path;
    i.host = c->host_hdr;
    /* No Origin: it marks a browser client (RFC 6455 4.1); this is a server. */
    i.origin = NULL;
    /* Redirects stay off: lws would resolve the new host with a blocking getaddrinfo
     * and send our Authorization header to wherever the Location points. */
    i.ssl_connection = (c->url.tls ? LCCSCF_USE_SSL : 0) | LCCSCF_HTTP_NO_FOLLOW_REDIRECT;
    i.protocol = NULL;
    i.local_protocol_name = rt_protocols[0].name;
    i.ietf_version_or_minus_one = -1;
    i.userdata = c;
    i.pwsi = &c->wsi;
    c->state = RT_CONNECTING;
    errno = 0;
    struct lws *w = lws_client_connect_via_info(&i);
    if (!w) {
        /* No callback follows a NULL return (CONNECTION_ERROR is suppressed inside the
         * call); lws has closed the socket. A connect refused at once shows in errno. */
        int e = errno;
        c->wsi = NULL;
        int err = VA_EPROTO;
        if (e == ECONNREFUSED || e == ENETUNREACH || e == EHOSTUNREACH || e == EMFILE ||
            e == ENFILE || e == ENOMEM)
            err = -e;
        static const char why[] = "lws_client_connect_via_info failed";
        rt_client_finish(c, err, 0, RT_CLOSE_ABNORMAL, why, sizeof(why) - 1);
    }
}

static const struct addrinfo *rt_pick_addr(const struct addrinfo *res, int family)
{
    for (; res; res = res->ai_next)
        if (res->ai_family == family)
            return res;
    return NULL;
}

static void rt_client_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct rt_client *c = req->data;
    c->gai_pending = false;
    if (c->state == RT_DONE) {
        uv_freeaddrinfo(res);
        if (c->timer_closed) /* the timer closed while we were pending */
            rt_client_release(c);
        return;
    }
    if (status) {
        uv_freeaddrinfo(res);
        const char *why = uv_strerror(status);
        rt_client_finish(c, status, 0, RT_CLOSE_ABNORMAL, why, strlen(why));
        return;
    }
    /* the first IPv4 address, else the first IPv6 one */
    const struct addrinfo *v4 = rt_pick_addr(res, AF_INET);
    const struct addrinfo *v6 = v4 ? NULL : rt_pick_addr(res, AF_INET6);
    int err = UV_EAI_NONAME;
    if (v4)
        err = uv_ip4_name((const struct sockaddr_in *)(const void *)v4->ai_addr, c->ip,
                          sizeof(c->ip));
    else if (v6)
        err = uv_ip6_name((const struct sockaddr_in6 *)(const void *)v6->ai_addr, c->ip,
                          sizeof(c->ip));
    uv_freeaddrinfo(res);
    if (err) {
        const char *why = "no usable address";
        rt_client_finish(c, err, 0, RT_CLOSE_ABNORMAL, why, strlen(why));
        return;
    }
    va_log_debug(c->l->log, RT_MOD, "realtime resolved", VA_LSTR("host", c->url.host),
                 VA_LSTR("ip", c->ip));
    rt_client_connect(c);
}

static void rt_client_timeout(uv_timer_t *t)
{
    struct rt_client *c = t->data;
    if (c->state == RT_DONE || c->state == RT_OPEN)
        return;
    static const char why[] = "connect timeout";
    if (c->state == RT_RESOLVING) {
        rt_client_finish(c, UV_ETIMEDOUT, 0, RT_CLOSE_ABNORMAL, why, sizeof(why) - 1);
        return;
    }
    if (c->closing)
        return; /* already being aborted */
    c->closing = true;
    c->abort_err = UV_ETIMEDOUT;
    c->close_code = RT_CLOSE_ABNORMAL;
    rt_copy_reason(c->close_reason, why, sizeof(why) - 1);
    rt_client_kill(c);
}

/* ---- lws events ---- */

static int rt_on_append_headers(struct rt_client *c, struct lws *wsi, void *in, size_t len)
{
    if (!c->auth_name[0])
        return 0;
    unsigned char **p = in;
    unsigned char *end = *p + len;
    if (lws_add_http_header_by_name(wsi, (const unsigned char *)c->auth_name,
                                    (const unsigned char *)c->auth_value,
                                    (int)strlen(c->auth_value), p, end))
        return -1; /* no room: the connect fails (bounded by RT_AUTH_VALUE_MAX) */
    return 0;
}

static void rt_on_established(struct rt_client *c)
{
    uv_timer_stop(&c->timer);
    c->state = RT_OPEN;
    if (c->closing)
        return; /* an abort is pending: its TIMER closes, on_open never runs */
    va_log_info(c->l->log, RT_MOD, "realtime connected", VA_LSTR("host", c->url.host),
                VA_LSTR("ip", c->ip), VA_LINT("ms", uv_now(c->l->loop) - c->start_ms));
    if (c->cb.on_open)
        c->cb.on_open(c->ud); /* what it sends leaves from rt_lws_on_flush() */
}

/* A peer fault on an open connection: lws sends our Close once we return -1. */
static int rt_fail(struct rt_client *c, struct lws *wsi, int err, uint16_t code, const char *why)
{
    va_log_warn(c->l->log, RT_MOD, "realtime socket failed", VA_LSTR("host", c->url.host),
                VA_LINT("code", code), VA_LSTR("reason", why),
                VA_LINT("maxMessage", c->max_message));
    c->closing = true;
    c->fail_err = err;
    c->close_code = code;
    rt_copy_reason(c->close_reason, why, strlen(why));
    rt_queue_free(c);
    lws_close_reason(wsi, (enum lws_close_status)code, (unsigned char *)c->close_reason,
                     strlen(c->close_reason));
    return -1;
}

static int rt_on_receive(struct rt_client *c, struct lws *wsi, const void *in, size_t len)
{
    if (c->state != RT_OPEN || c->closing)
        return 0; /* no on_message after rt_client_close() */
    if (lws_frame_is_binary(wsi))
        return rt_fail(c, wsi, VA_EPROTO, RT_CLOSE_UNSUPPORTED, "binary message: text expected");
    if (lws_is_first_fragment(wsi)) {
        va_buf_reset(&c->rx);
        /* a whole message in one piece (a pcmu delta is): parsed where lws holds it,
         * so a call keeps no receive buffer of its own */
        if (lws_is_final_fragment(wsi)) {
            if (c->cb.on_message)
                c->cb.on_message(c->ud, len ? in : "", len);
            return 0;
        }
    }
    /* len may be 0: an empty first fragment */
    if (len && va_buf_append(&c->rx, in, len))
        return rt_fail(c, wsi, VA_ETOOBIG, RT_CLOSE_TOO_BIG, "message too big");
    if (!lws_is_final_fragment(wsi))
        return 0;
    if (c->cb.on_message)
        c->cb.on_message(c->ud, c->rx.data ? c->rx.data : "", c->rx.len);
    if (c->rx.cap > RT_RX_KEEP) {
        va_buf_deinit(&c->rx);
        va_buf_init(&c->rx, c->max_message);
    } else {
        va_buf_reset(&c->rx);
    }
    return 0;
}

/* Hands every framed message to lws in one write; false when the write failed (a
 * close is armed). The frames are complete, so lws sends them as they are
 * (LWS_WRITE_HTTP: no framing of its own); what the socket does not take lws keeps and
 * drains before the next WRITEABLE. */
static bool rt_write_queued(struct rt_client *c, struct lws *wsi)
{
    int n = lws_write(wsi, (unsigned char *)c->tx.data, c->tx.len, LWS_WRITE_HTTP);
    c->queued = 0;
    if (c->tx.cap > RT_TX_KEEP)
        va_buf_deinit(&c->tx);
    else
        va_buf_reset(&c->tx);
    if (n < 0) {
        c->closing = true;
        c->fail_err = UV_EIO;
        c->close_code = RT_CLOSE_ABNORMAL;
        rt_copy_reason(c->close_reason, "write failed", 12);
        rt_queue_free(c);
        rt_client_kill(c);
        return false;
    }
    return true;
}

static void rt_on_writeable(struct rt_client *c, struct lws *wsi)
{
    /* WRITEABLE also comes unasked; and never close from here (pitfall) */
    if (c->state != RT_OPEN || c->closing || !c->tx.len)
        return;
    rt_write_queued(c, wsi);
}

/* From the loop's check phase, outside any lws service. With nothing of ours left in
 * lws's buflist_out, lws_write sends at once (lws_issue_raw); what the socket does not
 * take lws keeps, asks for POLLOUT itself, and drains before the next WRITEABLE, which
 * carries on with our queue. So only a partial write costs the POLLOUT round trip. */
static void rt_client_flush(struct rt_client *c)
{
    if (c->state != RT_OPEN || c->closing || !c->wsi || !c->tx.len)
        return;
    /* lws is answering the peer's Close: leave the timing of writes to it */
    if (!c->peer_closed && !lws_partial_buffered(c->wsi))
        rt_write_queued(c, c->wsi);
    else
        lws_callback_on_writable(c->wsi);
}

static void rt_lws_on_flush(uv_check_t *h)
{
    struct rt_lws *l = h->data;
    struct rt_client *c;
    /* rt_client_flush() never releases a client, nor queues for the flush */
    while ((c = l->flush_head)) {
        l->flush_head = c->flush_next;
        c->flush_next = NULL;
        c->flush_pending = false;
        rt_client_flush(c);
    }
    uv_check_stop(h);
}

static void rt_on_peer_close(struct rt_client *c, const unsigned char *in, size_t len)
{
    c->peer_closed = true;
    if (len >= 2) {
        c->peer_code = (uint16_t)(in[0] << 8 | in[1]);
        rt_copy_reason(c->peer_reason, (const char *)in + 2, len - 2);
    } else {
        c->peer_code = RT_CLOSE_NO_STATUS;
        c->peer_reason[0] = '\0';
    }
}

static int rt_on_timer(struct rt_client *c, struct lws *wsi)
{
    if (!c->closing)
        return 0;
    if (c->state != RT_OPEN)
        return -1; /* still connecting: lws drops it, CLIENT_CONNECTION_ERROR follows */
    if (c->peer_closed)
        return 0; /* lws is already answering the peer's Close; -1 would skip that */
    /* With part of a message still buffered, lws 4.1 flushes it and then drops TCP
     * without a Close: give the flush RT_CLOSE_FLUSH_TICKS x 10 ms first. */
    if (lws_partial_buffered(wsi) && c->flush_ticks++ < RT_CLOSE_FLUSH_TICKS) {
        lws_set_timer_usecs(wsi, 10 * 1000);
        return 0;
    }
    uint16_t code = rt_code_sendable(c->close_code) ? c->close_code : RT_CLOSE_NORMAL;
    lws_close_reason(wsi, (enum lws_close_status)code, (unsigned char *)c->close_reason,
                     strlen(c->close_reason));
    return -1;
}

static void rt_on_connect_error(struct rt_client *c, struct lws *wsi, const char *in, size_t len)
{
    /* `in` is lws's text; some paths count the NUL in len, some pass NULL */
    size_t tl = in ? strnlen(in, len) : 0;
    int status = (int)lws_http_client_http_response(wsi);
    if (c->abort_err) {
        va_log_debug(c->l->log, RT_MOD, "realtime connect aborted", VA_LSTR("host", c->url.host),
                     VA_LSTRN("lws", in ? in : "", tl));
        rt_client_finish(c, c->abort_err, status, c->close_code, c->close_reason,
                         strlen(c->close_reason));
        return;
    }
    int err = rt_map_connect_error(c, wsi, status, in, tl);
    if (c->tls_error[0]) {
        va_log_debug(c->l->log, RT_MOD, "realtime tls failed", VA_LSTRN("lws", in ? in : "", tl));
        in = c->tls_error;
        tl = strlen(c->tls_error);
    }
    rt_client_finish(c, err, status, RT_CLOSE_ABNORMAL, in, tl);
}

static void rt_on_client_closed(struct rt_client *c)
{
    static const char abnormal[] = "connection dropped without a Close";
    if (c->state != RT_OPEN) {
        /* CLOSED_CLIENT_HTTP: the wsi still had its h1 role (killed awaiting the 101) */
        static const char why[] = "closed during the handshake";
        if (c->abort_err)
            rt_client_finish(c, c->abort_err, 0, c->close_code, c->close_reason,
                             strlen(c->close_reason));
        else
            rt_client_finish(c, VA_EPROTO, 0, RT_CLOSE_ABNORMAL, why, sizeof(why) - 1);
        return;
    }
    if (c->abort_err || c->fail_err)
        rt_client_finish(c, c->abort_err ? c->abort_err : c->fail_err, 101, c->close_code,
                         c->close_reason, strlen(c->close_reason));
    else if (c->peer_closed)
        rt_client_finish(c, 0, 101, c->peer_code, c->peer_reason, strlen(c->peer_reason));
    else if (c->closing)
        rt_client_finish(c, 0, 101, c->close_code, c->close_reason, strlen(c->close_reason));
    else
        rt_client_finish(c, 0, 101, RT_CLOSE_ABNORMAL, abnormal, sizeof(abnormal) - 1);
}

static void rt_note_tls_error(struct rt_client *c, void *x509_ctx)
{
    int e = X509_STORE_CTX_get_error(x509_ctx);
    if (c && e != X509_V_OK && !c->tls_error[0])
        snprintf(c->tls_error, sizeof(c->tls_error), "TLS: %s", X509_verify_cert_error_string(e));
}

/* `user` is not read here: after a NULL connect return it still names a client that
 * may be gone. A wsi still attached to a client lost its terminal callback. */
static void rt_on_wsi_destroy(struct lws *wsi)
{
    struct rt_lws *l = lws_context_user(lws_get_context(wsi));
    for (struct rt_client *c = l ? l->clients : NULL; c; c = c->next) {
        if (c->wsi == wsi) {
            static const char why[] = "wsi destroyed without a close event";
            rt_client_finish(c, c->abort_err ? c->abort_err : VA_EPROTO, 0, RT_CLOSE_ABNORMAL, why,
                             sizeof(why) - 1);
            return;
        }
    }
}

/* Only for reasons about our client wsi is `user` our struct rt_client (NULL once
 * detached); for others it is something else (an SSL_CTX, an X509_STORE_CTX) or NULL. */
static int rt_lws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                           size_t len)
{
    struct rt_client *c = user;
    switch (reason) {
    case LWS_CALLBACK_OPENSSL_PERFORM_SERVER_CERT_VERIFICATION:
        /* user: X509_STORE_CTX, len: preverify_ok. Keep OpenSSL's words for on_closed:
         * lws's own error text for this is "connect SSL err 1: error:00000001:..." */
        if (!len)
            rt_note_tls_error(lws_wsi_user(wsi), user);
        return 0;
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
        return c ? rt_on_append_headers(c, wsi, in, len) : 0;
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        if (c)
            rt_on_established(c);
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        return c ? rt_on_receive(c, wsi, in, len) : 0;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        if (c)
            rt_on_writeable(c, wsi);
        return 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (c)
            rt_on_peer_close(c, in, len);
        return 0;
    case LWS_CALLBACK_TIMER:
        return c ? rt_on_timer(c, wsi) : 0;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (c)
            rt_on_connect_error(c, wsi, in, len);
        return 0;
    case LWS_CALLBACK_CLIENT_CLOSED:
    case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
        if (c)
            rt_on_client_closed(c);
        return 0;
    case LWS_CALLBACK_WSI_CREATE: /* lws 4.1: the TCP connect completed */
        if (c)
            c->tcp_up = true;
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        rt_on_wsi_destroy(wsi);
        return 0;
    default:
        return 0;
    }
}

/* ---- lws logs ---- */

/* lws 4.1's log hook has no user pointer and its level is process-wide, so reaching a
 * context's struct va_log would take a writable global. Instead each line is formatted
 * by a va_log made on the stack for it, writing to stdout, the daemon's sink: the same
 * JSON shape and escaping, "Bearer x" and "sk-..." masked. What it cannot do: honour
 * LOG_LEVEL=error (lws warnings still show) or mask secrets registered on the daemon's
 * log; at LLL_ERR|LLL_WARN lws 4.1 prints no header values, and its info levels, which
 * could, are never enabled. */
static void rt_lws_log_emit(int level, const char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    struct va_log lg;
    va_log_init(&lg, STDOUT_FILENO, VA_LOG_WARN);
    VA_LOG(&lg, (level & LLL_ERR) ? VA_LOG_ERROR : VA_LOG_WARN, "lws", "lws log",
           VA_LSTRN("text", line, n));
    va_log_deinit(&lg);
}

/* ---- the context ---- */

int rt_lws_open(struct rt_lws **out, uv_loop_t *loop, struct va_log *log, const char *ca_file)
{
    /* before the context: creation itself logs */
    lws_set_log_level(LLL_ERR | LLL_WARN, rt_lws_log_emit);
    struct rt_lws *l = va_xcalloc(1, sizeof(*l));
    l->keys_used = sizeof(l->keys); /* drawn at the first send */
    l->loop = loop;
    l->log = log;
    l->loops[0] = loop;

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    /* DO_SSL_GLOBAL_INIT also gates the client SSL_CTX of the default vhost */
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    if (ca_file)
        info.options |= LWS_SERVER_OPTION_DISABLE_OS_CA_CERTS;
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = rt_protocols;
    info.gid = -1;
    info.uid = -1;
    info.user = l;
    info.foreign_loops = l->loops;
    info.client_ssl_ca_filepath = ca_file;
    info.pt_serv_buf_size = RT_SERV_BUF;
    l->ctx = lws_create_context(&info);
    if (!l->ctx) {
        va_log_error(log, RT_MOD, "lws_create_context failed",
                     VA_LSTR("hint", "is libwebsockets-evlib-uv installed?"),
                     VA_LSTR("caFile", ca_file));
        free(l);
        return VA_EINVAL;
    }
    uv_timer_init(loop, &l->timer);
    l->timer.data = l;
    uv_check_init(loop, &l->flush);
    l->flush.data = l;
    l->handles = 2;
    *out = l;
    return 0;
}

static void rt_lws_handle_closed(uv_handle_t *h)
{
    struct rt_lws *l = h->data;
    if (--l->handles)
        return;
    l->timer_closed = true;
    if (l->on_closed)
        l->on_closed(l->closed_ud);
}

static void rt_lws_destroy_cb(uv_timer_t *t)
{
    struct rt_lws *l = t->data;
    /* From a uv callback, outside lws's service: this starts closing lws's own handles
     * (event pipe, idle, timer); on a foreign loop the context stays allocated until the
     * second call in rt_lws_free(). */
    lws_context_destroy(l->ctx);
    uv_close((uv_handle_t *)&l->timer, rt_lws_handle_closed);
    uv_close((uv_handle_t *)&l->flush, rt_lws_handle_closed);
}

static void rt_lws_maybe_destroy(struct rt_lws *l)
{
    if (!l->closing || l->nclients || l->destroy_armed)
        return;
    l->destroy_armed = true;
    uv_timer_start(&l->timer, rt_lws_destroy_cb, 0, 0);
}

void rt_lws_close(struct rt_lws *l, void (*on_closed)(void *ud), void *ud)
{
    if (l->closing)
        return;
    l->closing = true;
    l->on_closed = on_closed;
    l->closed_ud = ud;
    /* rt_client_close() never unlinks synchronously: the walk is safe */
    for (struct rt_client *c = l->clients; c; c = c->next)
        rt_client_close(c, RT_CLOSE_GOING_AWAY, "shutdown");
    rt_lws_maybe_destroy(l);
}

void rt_lws_free(struct rt_lws *l)
{
    if (!l)
        return;
    assert(l->timer_closed && !l->clients);
    lws_context_destroy(l->ctx);
    free(l);
}

/* ---- clients ---- */

int rt_client_open(struct rt_client **out, struct rt_lws *l, const struct rt_client_cfg *cfg,
                   const struct rt_client_cb *cb, void *ud)
{
    if (l->closing)
        return VA_ECLOSED;
    if (!cfg || !cfg->url || !cb)
        return VA_EINVAL;
    struct rt_url u;
    int err = rt_url_parse(&u, cfg->url, strlen(cfg->url));
    if (err)
        return err;
    if (strlen(u.path) > RT_PATH_MAX)
        return VA_ETOOBIG;
    if (cfg->auth_header && (!rt_header_name_ok(cfg->auth_header) || !cfg->auth_value ||
                             !rt_header_value_ok(cfg->auth_value)))
        return VA_EINVAL;
    char host_hdr[RT_URL_HOST_MAX + 16];
    bool dflt = u.port == (u.tls ? 443 : 80);
    int n = snprintf(host_hdr, sizeof(host_hdr), "%s%s%s", u.ipv6 ? "[" : "", u.host,
                     u.ipv6 ? "]" : "");
    if (!dflt)
        n += snprintf(host_hdr + n, sizeof(host_hdr) - (size_t)n, ":%u", (unsigned)u.port);
    if (n > RT_HOST_HDR_MAX)
        return VA_ETOOBIG;

    struct rt_client *c = va_xcalloc(1, sizeof(*c));
    c->l = l;
    c->cb = *cb;
    c->ud = ud;
    c->state = RT_RESOLVING;
    c->url = u;
    memcpy(c->host_hdr, host_hdr, (size_t)n + 1);
    if (cfg->auth_header) {
        snprintf(c->auth_name, sizeof(c->auth_name), "%s:", cfg->auth_header);
        c->auth_value = va_xstrdup(cfg->auth_value);
    }
    c->connect_timeout_ms =
        cfg->connect_timeout_ms ? cfg->connect_timeout_ms : RT_DEFAULT_CONNECT_TIMEOUT_MS;
    c->max_message = cfg->max_message ? cfg->max_message : RT_DEFAULT_MAX_MESSAGE;
    c->max_queue = cfg->max_queue ? cfg->max_queue : RT_DEFAULT_MAX_QUEUE;
    va_buf_init(&c->rx, c->max_message);
    /* the bound is on payload bytes (queued); this one only caps the headers of
     * tiny messages: 15 framed bytes per payload byte at worst */
    va_buf_init(&c->tx, c->max_queue * 15 + 64);
    /* the loop's cached time may be far behind (we may run long after its last poll):
     * the timeout counts from now */
    uv_update_time(l->loop);
    c->start_ms = uv_now(l->loop);

    /* the request first: if it fails there is no handle to close yet */
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    c->gai.data = c;
    err = uv_getaddrinfo(l->loop, &c->gai, rt_client_resolved, c->url.host, NULL, &hints);
    if (err) {
        va_buf_deinit(&c->rx);
        free(c->auth_value);
        free(c);
        return err;
    }
    c->gai_pending = true;
    uv_timer_init(l->loop, &c->timer);
    c->timer.data = c;
    uv_timer_start(&c->timer, rt_client_timeout, c->connect_timeout_ms, 0);

    VA_LIST_PUSH(l->clients, c, prev, next);
    l->nclients++;
    if (c->auth_value)
        va_log_add_secret(l->log, c->auth_value);
    va_log_debug(l->log, RT_MOD, "realtime connecting", VA_LSTR("host", c->url.host),
                 VA_LINT("port", c->url.port), VA_LBOOL("tls", c->url.tls));
    *out = c;
    return 0;
}

int rt_client_send(struct rt_client *c, const char *data, size_t len)
{
    if (c->state == RT_DONE || c->closing)
        return VA_ECLOSED;
    if (c->state != RT_OPEN)
        return VA_ESTATE;
    if (len > c->max_queue - c->queued)
        return VA_EFULL;
    struct rt_lws *l = c->l;
    if (l->keys_used + 4 > sizeof(l->keys)) {
        if (RAND_bytes(l->keys, (int)sizeof(l->keys)) != 1)
            return UV_EIO; /* no entropy: nothing is sent with a guessable key */
        l->keys_used = 0;
    }
    if (va_buf_reserve(&c->tx, len + RT_FRAME_HEAD_MAX))
        return VA_EFULL;
    c->tx.len +=
        rt_ws_frame((unsigned char *)c->tx.data + c->tx.len, data, len, l->keys + l->keys_used);
    l->keys_used += 4;
    c->queued += len;
    /* written from the check phase of this loop turn (rt_lws_on_flush) */
    if (!c->flush_pending) {
        c->flush_pending = true;
        c->flush_next = c->l->flush_head;
        c->l->flush_head = c;
        uv_check_start(&c->l->flush, rt_lws_on_flush);
    }
    return 0;
}

size_t rt_client_queued(const struct rt_client *c)
{
    return c->queued;
}

void rt_client_close(struct rt_client *c, uint16_t code, const char *reason)
{
    if (!c || c->state == RT_DONE || c->closing)
        return;
    c->closing = true;
    c->close_code = rt_code_sendable(code) ? code : RT_CLOSE_NORMAL;
    rt_copy_reason(c->close_reason, reason, reason ? strlen(reason) : 0);
    switch (c->state) {
    case RT_RESOLVING:
        c->abort_err = UV_ECANCELED;
        rt_client_finish(c, UV_ECANCELED, 0, c->close_code, c->close_reason,
                         strlen(c->close_reason));
        break;
    case RT_CONNECTING:
        c->abort_err = UV_ECANCELED;
        rt_client_kill(c);
        break;
    case RT_OPEN:
        rt_queue_free(c);
        rt_client_kill(c);
        break;
    case RT_DONE:
        break;
    }
}
