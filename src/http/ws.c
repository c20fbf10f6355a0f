/* src/http/ws.c: RFC 6455 server connections; wslay 1.1.1 frames, libuv moves bytes.
 *
 * h2o's shape: every event (bytes read, a write done, a send or close from the
 * owner) ends in ws_proceed(), which lets wslay consume what was read, lets it
 * serialise what is queued into one batch, hands the batch to one uv_write, and
 * then decides whether to keep going or drop TCP. wslay never touches the
 * socket: its recv_callback pulls from the bytes the read callback got and its
 * send_callback appends to our batch. The common frame (final, masked, text or
 * binary, whole in one read) is taken without wslay while wslay stands between
 * frames (ws_fast_frames()); everything else is wslay's.
 *
 * What wslay 1.1.1 leaves to us (read from its lib/wslay_event.c):
 * - A frame-level error (control frame over 125 bytes or fragmented, a
 *   non-minimal length) makes it queue an *empty* Close and return
 *   WSLAY_ERR_CALLBACK_FAILURE; send_callback swaps that empty Close for 1002.
 * - A 1-byte Close payload reads as "no status": rejected here with 1002.
 * - It checks the UTF-8 of a Close reason per received chunk, skipping the
 *   first two bytes of *every* chunk, so a reason split across reads can be
 *   misjudged. A bad reason it misses meets our check of the whole reason
 *   (1007). A good non-ASCII reason split inside a character draws wslay's
 *   own 1007 before we see it; not worked around (it would take a second
 *   frame parser in recv_callback): the connection was closing anyway, only
 *   the code differs.
 * - It has no close timeout: ours is a uv timer.
 * - It never bounds what it queues: va_ws_send() does.
 * - wslay_event_send() puts queued control frames (pongs, Close) before queued
 *   data, so a message sent from on_message could lose to a Close queued
 *   after it and never go out. Every send and close is therefore serialised
 *   into our batch at once (ws_serialise(), also from inside on_message:
 *   wslay's send state is apart from its receive state), so wslay's queue is
 *   empty whenever it reads, and frames leave in the order they were made. */
#include "http/ws.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <wslay/wslay.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "http/server.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
/* A server frame header: 2 bytes plus up to 8 of length, never a mask. */
#define WS_MAX_HEADER 10
#define WS_MAX_REASON 123
/* Bytes of owner messages coalesced into one uv_write before it goes at once. */
#define WS_BATCH_MAX (16 * 1024)

enum ws_state {
    WS_OPEN,    /* messages flow both ways */
    WS_CLOSING, /* a Close is queued: ours, our answer, or a failure's */
    WS_CLOSED,  /* TCP dropped; handles closing, on_closed follows */
};

/* One uv_write: request and payload in one allocation, freed in its callback. */
struct ws_write {
    uv_write_t req;
    char data[];
};

struct va_ws {
    uv_tcp_t tcp;
    uv_timer_t kick;  /* 0 ms: processes pre and starts reading, after va_ws_open() returns */
    uv_timer_t timer; /* close timeout */
    /* Check phase: what the owner sent during this loop turn leaves in one uv_write
     * (a media frame and its mark, a tick's frames), not one write per message. */
    uv_check_t flush;
    int handles; /* open uv handles; the last close callback frees */
    struct va_log *log;
    struct va_ws_cfg cfg;
    struct va_ws_cb cb;
    void *ud;
    wslay_event_context_ptr wslay;
    enum ws_state state;
    bool notify;          /* on_closed is owed: false when va_ws_open() failed */
    bool started;         /* the kick ran: reading may start */
    bool reading;         /* uv_read_start() active */
    bool in_proceed;      /* ws_proceed() is on the stack: it will pick up sends and closes */
    bool close_queued;    /* we queued a Close of our own (not wslay's answer) */
    bool rx_failed;       /* wslay_event_recv() failed: never call it again */
    bool tx_failed;       /* wslay_event_send() failed: drop TCP */
    bool fix_empty_close; /* wslay queued an empty Close after a frame error: send 1002 */
    uint16_t code;        /* for on_closed; 0 until a Close is decided */
    char reason[WS_MAX_REASON + 1];
    char *rptr; /* bytes wslay_event_recv() may still pull (ours: writable) */
    size_t rlen;
    /* Bytes handed to wslay, and how many of them made up frames it finished: equal when
     * wslay stands between two frames, the one state where ws_fast_frames() may go on
     * without it. */
    uint64_t fed, framed;
    uint64_t rx_frame_len; /* payload length of the frame wslay is receiving */
    char *pre;             /* bytes behind the upgrade request, until the kick */
    size_t pre_len;
    struct va_buf out; /* frames wslay serialised, not yet given to uv_write */
    uint64_t tx_left;  /* payload bytes wslay still owes for the frame being sent */
    uint8_t rx_op;     /* opcode of the frame being received */
    uint8_t cpay[125]; /* payload of a Close being received */
    size_t cpay_len;
    /* wslay does not buffer data frames (no_buffering): a frame whole in one chunk goes
     * to on_message from where wslay holds it; anything else is joined here */
    uint8_t msg_op;    /* WSLAY_TEXT_FRAME or WSLAY_BINARY_FRAME of the message, 0: none */
    bool rx_fin;       /* the frame being received ends its message */
    bool rx_delivered; /* ... and went to on_message whole */
    uint64_t rx_len;   /* its payload length */
    uint64_t rx_off;   /* its payload bytes seen */
    struct va_buf msg; /* a message in pieces, bounded by cfg.max_message */
    char remote[64];
};

static void ws_proceed(struct va_ws *ws);
static void ws_deliver(struct va_ws *ws, const char *msg, size_t len);

/* Lets wslay turn everything queued into bytes in ws->out. */
static void ws_serialise(struct va_ws *ws)
{
    if (ws->tx_failed)
        return;
    if (wslay_event_send(ws->wslay))
        ws->tx_failed = true;
}

/* ---- pure helpers ---- */

bool va_ws_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    const unsigned char *end = p + len;
    while (p < end) {
        /* ASCII, all of a Twilio message: 8 bytes at a time */
        if (end - p >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            if (!(w & 0x8080808080808080ull)) {
                p += 8;
                continue;
            }
        }
        unsigned c = *p;
        if (c < 0x80) {
            p++;
            continue;
        }
        size_t n;
        uint32_t cp, min;
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
            min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2;
            cp = c & 0x0f;
            min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
            min = 0x10000;
        } else {
            return false; /* continuation byte, 0xc0/0xc1 (overlong) or past 0xf4 */
        }
        if ((size_t)(end - p) <= n)
            return false;
        for (size_t i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        p += n + 1;
    }
    return true;
}

/* RFC 6455 7.4: codes a Close may carry. The same set wslay 1.1.1 accepts from
 * the peer, so both sides of this file judge a code alike. */
static bool ws_code_sendable(uint16_t code)
{
    if (code >= 1000 && code <= 1011)
        return code != 1004 && code != 1005 && code != 1006;
    return code >= 3000 && code <= 4999;
}

static bool ws_is_space(char c)
{
    return c == ' ' || c == '\t';
}

static void ws_trim(const char **s, size_t *len)
{
    while (*len && ws_is_space(**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len && ws_is_space((*s)[*len - 1]))
        (*len)--;
}

/* True when the comma-separated list v[0, len) has tok as one item. */
static bool ws_list_has(const char *v, size_t len, const char *tok, bool fold_case)
{
    size_t tl = strlen(tok);
    while (len) {
        const char *comma = memchr(v, ',', len);
        size_t il = comma ? (size_t)(comma - v) : len;
        const char *item = v;
        size_t n = il;
        ws_trim(&item, &n);
        if (n == tl && (fold_case ? strncasecmp(item, tok, tl) : memcmp(item, tok, tl)) == 0)
            return true;
        if (!comma)
            break;
        v += il + 1;
        len -= il + 1;
    }
    return false;
}

/* Looks through every header line called name, not only the first. */
static bool ws_header_has(const struct va_http_req *req, const char *name, const char *tok,
                          bool fold_case)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct va_http_header *h = &req->headers[i];
        if (h->name_len == nl && strncasecmp(h->name, name, nl) == 0 &&
            ws_list_has(h->value, h->value_len, tok, fold_case))
            return true;
    }
    return false;
}

static bool ws_b64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* 16 bytes in base64 are 22 characters and "==". */
static bool ws_key_valid(const char *k, size_t len)
{
    if (len != 24 || k[22] != '=' || k[23] != '=')
        return false;
    for (size_t i = 0; i < 22; i++) {
        if (!ws_b64_char(k[i]))
            return false;
    }
    return true;
}

int va_ws_handshake_check(const struct va_http_req *req, char accept[29], const char **why)
{
    if (!req->method || strcmp(req->method, "GET") != 0) {
        *why = "WebSocket upgrade must be GET";
        return 400;
    }
    if (!ws_header_has(req, "upgrade", "websocket", true)) {
        *why = "missing Upgrade: websocket";
        return 400;
    }
    if (!ws_header_has(req, "connection", "upgrade", true)) {
        *why = "missing Connection: upgrade";
        return 400;
    }
    size_t vlen = 0;
    const char *ver = va_http_req_header(req, "sec-websocket-version", &vlen);
    if (ver)
        ws_trim(&ver, &vlen);
    if (!ver || vlen != 2 || memcmp(ver, "13", 2) != 0) {
        *why = "Sec-WebSocket-Version must be 13";
        return 426;
    }
    size_t klen = 0;
    const char *key = va_http_req_header(req, "sec-websocket-key", &klen);
    if (key)
        ws_trim(&key, &klen);
    if (!key || !ws_key_valid(key, klen)) {
        *why = "Sec-WebSocket-Key must be 16 bytes in base64";
        return 400;
    }
    unsigned char in[24 + sizeof(WS_GUID) - 1];
    memcpy(in, key, 24);
    memcpy(in + 24, WS_GUID, sizeof(WS_GUID) - 1);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(in, sizeof(in), md, &mdlen, EVP_sha1(), NULL) || mdlen != 20) {
        *why = "SHA-1 unavailable";
        return 500;
    }
    /* 20 bytes encode to 28 characters plus the NUL EVP_EncodeBlock writes. */
    EVP_EncodeBlock((unsigned char *)accept, md, 20);
    *why = NULL;
    return 0;
}

bool va_ws_offers_protocol(const struct va_http_req *req, const char *proto)
{
    return ws_header_has(req, "sec-websocket-protocol", proto, false);
}

void va_ws_mask(void *dst, const void *src, size_t len, const unsigned char key[4])
{
    const unsigned char *in = src;
    unsigned char *out = dst;
    /* the key repeats every 4 bytes, so the 8-byte word is the key twice */
    unsigned char kk[8] = {key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3]};
    uint64_t k8;
    memcpy(&k8, kk, 8);
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, in + i, 8);
        w ^= k8;
        memcpy(out + i, &w, 8);
    }
    for (; i < len; i++)
        out[i] = in[i] ^ key[i & 3];
}

/* Length of s cut to max bytes without splitting a UTF-8 sequence. */
static size_t ws_cut_utf8(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n <= max)
        return n;
    n = max;
    while (n && ((unsigned char)s[n] & 0xc0) == 0x80)
        n--;
    return n;
}

/* ---- state ---- */

static const char *ws_state_name(enum ws_state s)
{
    switch (s) {
    case WS_OPEN:
        return "open";
    case WS_CLOSING:
        return "closing";
    case WS_CLOSED:
        return "closed";
    }
    return "?";
}

static void ws_set_state(struct va_ws *ws, enum ws_state to)
{
    assert(to > ws->state);
    va_log_debug(ws->log, "ws", "state", VA_LSTR("remote", ws->remote),
                 VA_LSTR("from", ws_state_name(ws->state)), VA_LSTR("to", ws_state_name(to)),
                 VA_LINT("code", ws->code));
    ws->state = to;
}

static void ws_set_reason(struct va_ws *ws, const char *s, size_t len)
{
    if (len > WS_MAX_REASON)
        len = WS_MAX_REASON;
    if (len)
        memcpy(ws->reason, s, len);
    ws->reason[len] = '\0';
}

size_t va_ws_queued(const struct va_ws *ws)
{
    size_t q = ws->out.len + wslay_event_get_queued_msg_length(ws->wslay);
    if (ws->state != WS_CLOSED)
        q += uv_stream_get_write_queue_size((const uv_stream_t *)&ws->tcp);
    return q;
}

/* ---- handles and teardown ---- */

static void ws_on_handle_closed(uv_handle_t *h)
{
    struct va_ws *ws = h->data;
    if (--ws->handles)
        return;
    if (ws->notify)
        ws->cb.on_closed(ws->ud, ws->code, ws->reason);
    if (ws->wslay)
        wslay_event_context_free(ws->wslay);
    va_buf_deinit(&ws->out);
    va_buf_deinit(&ws->msg);
    free(ws->pre);
    free(ws);
}

/* Drops TCP now; on_closed follows from the last close callback. */
static void ws_drop(struct va_ws *ws, const char *cause)
{
    if (ws->state == WS_CLOSED)
        return;
    if (!ws->code) {
        ws->code = VA_WS_ABNORMAL;
        ws_set_reason(ws, cause, strlen(cause));
    }
    ws_set_state(ws, WS_CLOSED);
    va_log_info(ws->log, "ws", "closed", VA_LSTR("remote", ws->remote), VA_LINT("code", ws->code),
                VA_LSTR("reason", ws->reason), VA_LSTR("cause", cause));
    ws->reading = false;
    uv_close((uv_handle_t *)&ws->tcp, ws_on_handle_closed);
    uv_close((uv_handle_t *)&ws->kick, ws_on_handle_closed);
    uv_close((uv_handle_t *)&ws->timer, ws_on_handle_closed);
    uv_close((uv_handle_t *)&ws->flush, ws_on_handle_closed);
}

static void ws_on_timeout(uv_timer_t *t)
{
    struct va_ws *ws = t->data;
    if (ws->state == WS_CLOSED)
        return;
    ws_drop(ws, "close timeout");
}

/* Queues a Close of ours. stop_reading when the peer failed us: nothing it
 * sends matters any more, so TCP drops once the Close is written. */
static void ws_start_close(struct va_ws *ws, uint16_t code, const char *reason, bool stop_reading)
{
    if (ws->state != WS_OPEN || ws->code)
        return;
    size_t rl = reason ? ws_cut_utf8(reason, WS_MAX_REASON) : 0;
    int r = wslay_event_queue_close(ws->wslay, code, (const uint8_t *)reason, rl);
    if (r) {
        /* WSLAY_ERR_NO_MORE_MSG: wslay queued a Close itself (a failure it
         * found); its code is read once that Close is sent. */
        return;
    }
    ws->close_queued = true;
    ws->code = code;
    ws_set_reason(ws, reason ? reason : "", rl);
    if (stop_reading)
        wslay_event_shutdown_read(ws->wslay);
    ws_serialise(ws);
    if (!ws->in_proceed)
        ws_proceed(ws);
}

static void ws_fail(struct va_ws *ws, uint16_t code, const char *why)
{
    if (ws->state != WS_OPEN || ws->code)
        return;
    va_log_warn(ws->log, "ws", "protocol error", VA_LSTR("remote", ws->remote),
                VA_LINT("code", code), VA_LSTR("why", why));
    ws_start_close(ws, code, why, true);
}

/* ---- socket I/O ---- */

static void ws_on_written(uv_write_t *req, int status)
{
    struct ws_write *w = (struct ws_write *)req;
    struct va_ws *ws = req->data;
    free(w);
    if (ws->state == WS_CLOSED)
        return;
    if (status) {
        ws_drop(ws, uv_err_name(status));
        return;
    }
    ws_proceed(ws);
}

/* Hands everything in ws->out to the socket: straight away when it takes it (no copy,
 * no request, and no epoll_ctl: libuv 1.44 re-arms the watcher after every completed
 * uv_write), the rest to one uv_write (request and payload together); uv_try_write
 * says UV_EAGAIN while an earlier uv_write is pending, which keeps the order.
 * ws_decide() after the flush sees what went. */
static int ws_write_out(struct va_ws *ws)
{
    const char *src = ws->out.data;
    size_t len = ws->out.len;
    uv_buf_t all = uv_buf_init(ws->out.data, (unsigned)len);
    int n = uv_try_write((uv_stream_t *)&ws->tcp, &all, 1);
    if (n < 0 && n != UV_EAGAIN)
        return n;
    if (n > 0) {
        src += n;
        len -= (size_t)n;
    }
    if (!len) {
        va_buf_reset(&ws->out);
        return 0;
    }
    struct ws_write *w = va_xmalloc(sizeof(*w) + len);
    memcpy(w->data, src, len);
    w->req.data = ws;
    va_buf_reset(&ws->out);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    int err = uv_write(&w->req, (uv_stream_t *)&ws->tcp, &b, 1, ws_on_written);
    if (err)
        free(w);
    return err;
}

/* One uv_write for everything wslay serialised since the last one. */
static void ws_flush(struct va_ws *ws)
{
    if (!ws->out.len || ws->state == WS_CLOSED)
        return;
    int err = ws_write_out(ws);
    if (err)
        ws_drop(ws, uv_err_name(err));
}

static void ws_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct va_ws *ws = h->data;
    (void)hint;
    /* Each read is consumed before its callback returns, so the buffer lives only that
     * long: the owner's shared one, or one allocation reused by the allocator across
     * connections, not 16 KiB kept by each of them. */
    char *b = ws->cfg.read_buf ? ws->cfg.read_buf : va_xmalloc(VA_WS_READ_BUF);
    *buf = uv_buf_init(b, VA_WS_READ_BUF);
}

static void ws_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct va_ws *ws = s->data;
    if (ws->state == WS_CLOSED || n == 0)
        goto out;
    if (n < 0) {
        /* EOF or a reset: 1006 unless a Close was already under way. */
        ws_drop(ws, uv_err_name((int)n));
        goto out;
    }
    ws->rptr = buf->base;
    ws->rlen = (size_t)n;
    ws_proceed(ws);
    ws->rptr = NULL; /* the buffer goes: nothing may pull from it later */
    ws->rlen = 0;
out:
    if (buf->base != ws->cfg.read_buf)
        free(buf->base);
}

/* Backpressure: a peer that does not read our frames (pongs included) stops
 * being read until half the bound has drained. */
static void ws_update_reading(struct va_ws *ws)
{
    if (!ws->started || ws->state == WS_CLOSED)
        return;
    size_t q = va_ws_queued(ws);
    if (ws->reading && q > ws->cfg.max_queue) {
        uv_read_stop((uv_stream_t *)&ws->tcp);
        ws->reading = false;
    } else if (!ws->reading && q <= ws->cfg.max_queue / 2) {
        int err = uv_read_start((uv_stream_t *)&ws->tcp, ws_on_alloc, ws_on_read);
        if (err) {
            ws_drop(ws, uv_err_name(err));
            return;
        }
        ws->reading = true;
    }
}

/* After each step: enter CLOSING once any Close is queued or reading ended;
 * drop TCP once our Close is written and nothing more is to be read. */
static void ws_decide(struct va_ws *ws)
{
    if (ws->state == WS_CLOSED)
        return;
    bool rx_open = !ws->rx_failed && wslay_event_get_read_enabled(ws->wslay);
    bool sent = wslay_event_get_close_sent(ws->wslay);
    if (sent && !ws->code) {
        /* a failure wslay found itself: 1002, 1007 or 1009 */
        ws->code = wslay_event_get_status_code_sent(ws->wslay);
        ws_set_reason(ws, "", 0);
        va_log_warn(ws->log, "ws", "protocol error", VA_LSTR("remote", ws->remote),
                    VA_LINT("code", ws->code));
    }
    if (ws->state == WS_OPEN) {
        if (rx_open && !ws->close_queued) {
            ws_update_reading(ws);
            return;
        }
        ws_set_state(ws, WS_CLOSING);
        uv_timer_start(&ws->timer, ws_on_timeout, ws->cfg.close_timeout_ms, 0);
    }
    if (sent && !rx_open && va_ws_queued(ws) == 0) {
        ws_drop(ws, wslay_event_get_close_received(ws->wslay) ? "close handshake" : "failed");
        return;
    }
    ws_update_reading(ws);
}

/* A client frame's header length as wslay accepts it: minimal length, masked. */
static uint64_t ws_client_header_len(uint64_t payload)
{
    return 2 + (payload < 126 ? 0 : payload <= 0xffff ? 2 : 8) + 4;
}

/* The common frame without wslay: a Twilio media message is a final, masked text frame
 * of a few hundred bytes, whole in one read. wslay would copy it into its own buffer and
 * unmask and UTF-8-check it a byte at a time (9-11% of the daemon's CPU in make bench).
 * Taken here only while wslay stands between frames (fed == framed) and no message is in
 * pieces: a final text or binary frame, masked, with a minimal 7- or 16-bit length,
 * within max_message and whole in the bytes read. It is unmasked in place and delivered
 * as wslay's path does (ws_deliver: the strict UTF-8 check, 1007). At the first frame
 * that is anything else (control, fragment, split across reads, 64-bit length, any
 * error) wslay takes over from that frame's first byte, so every rule it enforces still
 * applies to everything it sees. */
static void ws_fast_frames(struct va_ws *ws)
{
    if (ws->fed != ws->framed || ws->rx_failed || !wslay_event_get_read_enabled(ws->wslay))
        return;
    while (ws->rlen >= 6 && ws->state == WS_OPEN && !ws->code && !ws->msg_op) {
        unsigned char *p = (unsigned char *)ws->rptr;
        if ((p[0] != (0x80 | WSLAY_TEXT_FRAME) && p[0] != (0x80 | WSLAY_BINARY_FRAME)) ||
            !(p[1] & 0x80))
            return;
        size_t n = p[1] & 0x7f, h = 6;
        if (n == 127)
            return;
        if (n == 126) {
            if (ws->rlen < 8)
                return;
            n = (size_t)p[2] << 8 | p[3];
            h = 8;
            if (n < 126)
                return;
        }
        if (n > ws->cfg.max_message || ws->rlen - h < n)
            return;
        char *payload = ws->rptr + h;
        va_ws_mask(payload, payload, n, p + h - 4);
        ws->rptr += h + n;
        ws->rlen -= h + n;
        ws->msg_op = p[0] & 0x0f;
        ws_deliver(ws, payload, n);
        ws->msg_op = 0;
    }
}

/* The one place that makes progress: read what arrived, serialise what is
 * queued, write it, then decide. A send or close from inside on_message only
 * serialises; the outer call writes and decides once wslay has returned. */
static void ws_proceed(struct va_ws *ws)
{
    if (ws->in_proceed || ws->state == WS_CLOSED)
        return;
    ws->in_proceed = true;
    if (ws->rlen)
        ws_fast_frames(ws);
    if (ws->rlen && !ws->rx_failed && wslay_event_get_read_enabled(ws->wslay)) {
        int r = wslay_event_recv(ws->wslay);
        if (r == WSLAY_ERR_CALLBACK_FAILURE) {
            /* our recv_callback only ever says WOULDBLOCK: this is a frame error */
            ws->rx_failed = true;
            if (!ws->code) {
                /* wslay queued an empty Close for it: send_callback makes it 1002 */
                ws->fix_empty_close = true;
                ws->code = VA_WS_PROTOCOL_ERROR;
                ws_set_reason(ws, "", 0);
                va_log_warn(ws->log, "ws", "protocol error", VA_LSTR("remote", ws->remote),
                            VA_LINT("code", ws->code), VA_LSTR("why", "bad frame"));
            }
        } else if (r) {
            ws->rx_failed = true;
            ws->in_proceed = false;
            ws_drop(ws, "wslay_event_recv failed");
            return;
        }
    }
    ws->rlen = 0;     /* whatever wslay no longer reads is discarded */
    ws_serialise(ws); /* pongs and Close answers wslay queued while reading */
    ws->in_proceed = false;
    if (ws->tx_failed) {
        ws_drop(ws, "wslay_event_send failed");
        return;
    }
    ws_flush(ws);
    ws_decide(ws);
}

/* ---- wslay callbacks: one library event, one step here ---- */

static ssize_t ws_wslay_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                             void *ud)
{
    struct va_ws *ws = ud;
    (void)flags;
    if (!ws->rlen) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = len < ws->rlen ? len : ws->rlen;
    memcpy(buf, ws->rptr, n);
    ws->rptr += n;
    ws->rlen -= n;
    ws->fed += n;
    return (ssize_t)n;
}

/* wslay hands over each frame header whole, then the payload, because we
 * never take part of a chunk; tx_left tells the two apart. */
static ssize_t ws_wslay_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
                             int flags, void *ud)
{
    struct va_ws *ws = ud;
    (void)flags;
    if (ws->tx_left) {
        if (va_buf_append(&ws->out, data, len))
            goto full;
        ws->tx_left -= len < ws->tx_left ? len : ws->tx_left;
        return (ssize_t)len;
    }
    assert(len >= 2);
    uint64_t plen = data[1] & 0x7f;
    if (plen == 126) {
        assert(len >= 4);
        plen = (uint64_t)data[2] << 8 | data[3];
    } else if (plen == 127) {
        assert(len >= 10);
        plen = 0;
        for (int i = 2; i < 10; i++)
            plen = plen << 8 | data[i];
    }
    if (ws->fix_empty_close && (data[0] & 0x0f) == WSLAY_CONNECTION_CLOSE && plen == 0) {
        static const uint8_t close1002[] = {0x88, 0x02, 0x03, 0xea};
        if (va_buf_append(&ws->out, close1002, sizeof(close1002)))
            goto full;
        ws->fix_empty_close = false;
        return (ssize_t)len;
    }
    if (va_buf_append(&ws->out, data, len))
        goto full;
    ws->tx_left = plen;
    return (ssize_t)len;
full:
    /* past the batch bound: wslay keeps the rest until a write completes */
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
}

static void ws_wslay_frame_start(wslay_event_context_ptr ctx,
                                 const struct wslay_event_on_frame_recv_start_arg *arg, void *ud)
{
    struct va_ws *ws = ud;
    (void)ctx;
    ws->rx_op = arg->opcode;
    ws->rx_frame_len = arg->payload_length;
    ws->cpay_len = 0;
    if (arg->opcode & 0x8)
        return; /* control: between fragments too, never part of the message */
    /* wslay has checked the order (a continuation only inside a message, no new one
     * before the last ends); it bounds each frame, not the joined message */
    if (arg->opcode != WSLAY_CONTINUATION_FRAME) {
        ws->msg_op = arg->opcode;
        va_buf_reset(&ws->msg);
    }
    ws->rx_fin = arg->fin;
    ws->rx_delivered = false;
    ws->rx_len = arg->payload_length;
    ws->rx_off = 0;
    if (ws->msg.len + arg->payload_length > ws->cfg.max_message)
        ws_fail(ws, VA_WS_TOO_BIG, "message too big");
}

/* One whole message: the strict UTF-8 look, then the owner. */
static void ws_deliver(struct va_ws *ws, const char *msg, size_t len)
{
    if (ws->state != WS_OPEN || ws->code)
        return; /* closing: the owner asked for no more */
    if (ws->msg_op == WSLAY_TEXT_FRAME && !va_ws_utf8_valid(msg, len)) {
        /* wslay checks as it reads; this is the strict second look */
        ws_fail(ws, VA_WS_INVALID_DATA, "text not UTF-8");
        return;
    }
    ws->cb.on_message(ws->ud, ws->msg_op == WSLAY_TEXT_FRAME ? VA_WS_TEXT : VA_WS_BINARY, msg, len);
}

static void ws_wslay_frame_chunk(wslay_event_context_ptr ctx,
                                 const struct wslay_event_on_frame_recv_chunk_arg *arg, void *ud)
{
    struct va_ws *ws = ud;
    (void)ctx;
    if (!(ws->rx_op & 0x8)) {
        if (ws->code)
            return; /* failed or closing: nothing more is kept */
        if (ws->rx_fin && ws->rx_off == 0 && arg->data_length == ws->rx_len && ws->msg.len == 0) {
            /* the whole message in one piece (a Twilio frame nearly always): no copy */
            ws->rx_delivered = true;
            ws_deliver(ws, arg->data_length ? (const char *)arg->data : "", arg->data_length);
        } else if (va_buf_append(&ws->msg, arg->data, arg->data_length)) {
            ws_fail(ws, VA_WS_TOO_BIG, "message too big");
        }
        ws->rx_off += arg->data_length;
        return;
    }
    if (ws->rx_op != WSLAY_CONNECTION_CLOSE)
        return;
    size_t n = arg->data_length;
    if (n > sizeof(ws->cpay) - ws->cpay_len)
        n = sizeof(ws->cpay) - ws->cpay_len; /* wslay caps control frames at 125 */
    if (n)
        memcpy(ws->cpay + ws->cpay_len, arg->data, n);
    ws->cpay_len += n;
}

/* The peer's Close, whole, before wslay answers it: what wslay would let
 * through is refused here first, so wslay's echo is never queued. */
static void ws_wslay_frame_end(wslay_event_context_ptr ctx, void *ud)
{
    struct va_ws *ws = ud;
    (void)ctx;
    ws->framed += ws_client_header_len(ws->rx_frame_len) + ws->rx_frame_len;
    if (!(ws->rx_op & 0x8)) {
        if (!ws->rx_fin)
            return; /* more fragments to come */
        if (!ws->rx_delivered)
            ws_deliver(ws, ws->msg.data ? ws->msg.data : "", ws->msg.len);
        ws->msg_op = 0;
        va_buf_deinit(&ws->msg); /* a message in pieces is rare: its buffer is not kept */
        va_buf_init(&ws->msg, ws->cfg.max_message);
        return;
    }
    if (ws->rx_op != WSLAY_CONNECTION_CLOSE || ws->code)
        return; /* not a Close, or ours went first: wslay just ends reading */
    if (ws->cpay_len == 1) {
        ws_fail(ws, VA_WS_PROTOCOL_ERROR, "close payload of 1 byte");
        return;
    }
    if (ws->cpay_len == 0) {
        ws->code = 1005; /* no status: wslay answers with an empty Close */
        ws_set_reason(ws, "", 0);
        return;
    }
    uint16_t code = (uint16_t)(ws->cpay[0] << 8 | ws->cpay[1]);
    const char *reason = (const char *)ws->cpay + 2;
    size_t rl = ws->cpay_len - 2;
    if (!ws_code_sendable(code)) {
        ws_fail(ws, VA_WS_PROTOCOL_ERROR, "invalid close code");
        return;
    }
    if (!va_ws_utf8_valid(reason, rl)) {
        ws_fail(ws, VA_WS_INVALID_DATA, "close reason not UTF-8");
        return;
    }
    /* wslay echoes code and reason */
    ws->code = code;
    ws_set_reason(ws, reason, rl);
}

static void ws_on_flush(uv_check_t *h)
{
    struct va_ws *ws = h->data;
    uv_check_stop(h);
    ws_proceed(ws);
}

static void ws_on_kick(uv_timer_t *t)
{
    struct va_ws *ws = t->data;
    if (ws->state == WS_CLOSED)
        return;
    ws->started = true;
    if (ws->pre_len) {
        ws->rptr = ws->pre;
        ws->rlen = ws->pre_len;
    }
    ws_proceed(ws); /* also starts reading, through ws_decide() */
    free(ws->pre);
    ws->pre = NULL;
    ws->pre_len = 0;
}

/* ---- public ---- */

int va_ws_open(struct va_ws **out, uv_loop_t *loop, struct va_log *log, uv_os_sock_t fd,
               const char *accept, const char *subprotocol, const char *pre, size_t pre_len,
               const char *remote, const struct va_ws_cfg *cfg, const struct va_ws_cb *cb, void *ud)
{
    if (!cfg->max_message || !cfg->max_queue || !cb->on_message || !cb->on_closed || !accept) {
        close(fd);
        return VA_EINVAL;
    }
    struct va_ws *ws = va_xcalloc(1, sizeof(*ws));
    ws->log = log;
    ws->cfg = *cfg;
    ws->cb = *cb;
    ws->ud = ud;
    ws->state = WS_OPEN;
    snprintf(ws->remote, sizeof(ws->remote), "%s", remote ? remote : "");
    /* The batch bound: max_queue of messages plus what one read's pongs and a
     * Close can add; past it wslay keeps frames queued (send_callback blocks). */
    va_buf_init(&ws->out, cfg->max_queue + VA_WS_READ_BUF + 4096);
    va_buf_init(&ws->msg, cfg->max_message);
    ws->tcp.data = ws->kick.data = ws->timer.data = ws->flush.data = ws;
    uv_timer_init(loop, &ws->kick);
    uv_timer_init(loop, &ws->timer);
    uv_check_init(loop, &ws->flush);
    ws->handles = 3;
    int err = uv_tcp_init(loop, &ws->tcp);
    if (err) {
        close(fd);
        goto fail;
    }
    ws->handles++;
    err = uv_tcp_open(&ws->tcp, fd);
    if (err) {
        close(fd);
        goto fail;
    }
    /* From here fd belongs to the handle. */
    err = uv_tcp_nodelay(&ws->tcp, 1);
    if (err)
        va_log_warn(log, "ws", "TCP_NODELAY failed", VA_LSTR("remote", ws->remote),
                    VA_LSTR("err", uv_err_name(err)));
    if (cfg->sndbuf > 0) {
        int sz = cfg->sndbuf;
        err = uv_send_buffer_size((uv_handle_t *)&ws->tcp, &sz);
        if (err)
            va_log_warn(log, "ws", "SO_SNDBUF failed", VA_LSTR("remote", ws->remote),
                        VA_LSTR("err", uv_err_name(err)));
    }
    struct wslay_event_callbacks wcb = {
        .recv_callback = ws_wslay_recv,
        .send_callback = ws_wslay_send,
        .on_frame_recv_start_callback = ws_wslay_frame_start,
        .on_frame_recv_chunk_callback = ws_wslay_frame_chunk,
        .on_frame_recv_end_callback = ws_wslay_frame_end,
    };
    err = wslay_event_context_server_init(&ws->wslay, &wcb, ws);
    if (err) {
        ws->wslay = NULL;
        err = UV_ENOMEM;
        goto fail;
    }
    wslay_event_config_set_max_recv_msg_length(ws->wslay, cfg->max_message);
    /* data frames reach us as chunks (ws_wslay_frame_chunk): no copy per message into
     * wslay's queue and a second one to flatten it */
    wslay_event_config_set_no_buffering(ws->wslay, 1);
    if (pre_len) {
        ws->pre = va_xmalloc(pre_len);
        memcpy(ws->pre, pre, pre_len);
        ws->pre_len = pre_len;
    }
    va_buf_append_str(&ws->out, "HTTP/1.1 101 Switching Protocols\r\n"
                                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                                "Sec-WebSocket-Accept: ");
    va_buf_append_str(&ws->out, accept);
    if (subprotocol) {
        va_buf_append_str(&ws->out, "\r\nSec-WebSocket-Protocol: ");
        va_buf_append_str(&ws->out, subprotocol);
    }
    err = va_buf_append_str(&ws->out, "\r\n\r\n");
    if (err)
        goto fail;
    err = ws_write_out(ws);
    if (err)
        goto fail;
    uv_timer_start(&ws->kick, ws_on_kick, 0, 0);
    ws->notify = true;
    *out = ws;
    return 0;
fail:
    /* the handles close on the loop and the last close callback frees, quietly */
    ws->state = WS_CLOSED;
    if (ws->handles == 4)
        uv_close((uv_handle_t *)&ws->tcp, ws_on_handle_closed);
    uv_close((uv_handle_t *)&ws->kick, ws_on_handle_closed);
    uv_close((uv_handle_t *)&ws->timer, ws_on_handle_closed);
    uv_close((uv_handle_t *)&ws->flush, ws_on_handle_closed);
    return err;
}

int va_ws_send(struct va_ws *ws, enum va_ws_opcode op, const void *data, size_t len)
{
    if (ws->state != WS_OPEN || ws->code)
        return VA_ECLOSED;
    size_t q = va_ws_queued(ws);
    if (len > ws->cfg.max_queue || q > ws->cfg.max_queue - len ||
        ws->cfg.max_queue - len - q < WS_MAX_HEADER) {
        va_log_warn(ws->log, "ws", "send queue full", VA_LSTR("remote", ws->remote),
                    VA_LINT("queued", q), VA_LINT("len", len), VA_LINT("max", ws->cfg.max_queue),
                    VA_LINT("code", VA_WS_POLICY));
        ws_start_close(ws, VA_WS_POLICY, "send queue full", true);
        return VA_EFULL;
    }
    struct wslay_event_msg m = {
        .opcode = op == VA_WS_TEXT ? WSLAY_TEXT_FRAME : WSLAY_BINARY_FRAME,
        .msg = data,
        .msg_length = len,
    };
    int r = wslay_event_queue_msg(ws->wslay, &m);
    if (r) {
        /* NO_MORE_MSG: wslay queued a Close of its own and waits to send it */
        return VA_ECLOSED;
    }
    ws_serialise(ws);
    if (ws->in_proceed)
        return 0; /* the ws_proceed() on the stack writes it */
    /* Written by ws_on_flush() at the end of this loop turn; a batch past its cap goes
     * now, so that a burst still reaches the kernel as it did and the bound above does
     * not fill with bytes the socket would take. */
    size_t cap = ws->cfg.max_queue / 2 < WS_BATCH_MAX ? ws->cfg.max_queue / 2 : WS_BATCH_MAX;
    if (ws->out.len >= cap)
        ws_proceed(ws);
    else
        uv_check_start(&ws->flush, ws_on_flush);
    return 0;
}

void va_ws_flush(struct va_ws *ws)
{
    if (ws->in_proceed || ws->state == WS_CLOSED || !ws->out.len)
        return;
    ws_proceed(ws);
}

void va_ws_close(struct va_ws *ws, uint16_t code, const char *reason)
{
    if (ws->state != WS_OPEN || ws->code)
        return;
    if (!ws_code_sendable(code)) {
        va_log_warn(ws->log, "ws", "unsendable close code", VA_LSTR("remote", ws->remote),
                    VA_LINT("code", code));
        code = VA_WS_INTERNAL;
    }
    ws_start_close(ws, code, reason, false);
}
