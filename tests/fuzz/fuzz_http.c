/* tests/fuzz/fuzz_http.c: the HTTP request path, from the bytes of one connection to
 * what a route does with a request.
 *
 * The input is everything one client sends. The HTTP server's I/O is not involved:
 * its parsing is already pure (src/http/request.c over llhttp), and this target drives
 * it exactly as conn_process() in src/http/server.c does: feed, and on each complete
 * request answer it, then go on with the bytes behind it (pipelining); stop at a
 * malformed request, after an upgrade request (the rest belongs to the new protocol)
 * and after a request that does not keep the connection alive. Each request then meets
 * the pure code the routes run on it: header lookups, the client address behind a
 * trusted proxy (CF-Connecting-IP, X-Forwarded-For), the WebSocket upgrade check and
 * subprotocol list, and /twilio/answer's form body and signature check.
 *
 * Oracles besides the sanitizers: the same bytes fed at once and one byte per read
 * give the same requests and end the same way (a request never depends on where the
 * socket reads split), and every request stays within the configured bounds, both the
 * defaults and small ones. */
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>

#include "core/net.h"
#include "http/form.h"
#include "http/request.h"
#include "http/server.h"
#include "http/ws.h"
#include "twilio/signature.h"

#include "fuzz.h"

/* The defaults of HTTP_MAX_HEADER_BYTES and HTTP_MAX_BODY_BYTES, and small bounds that
 * inputs of a few hundred bytes reach (the 431 and 413 paths). */
struct http_limits {
    uint32_t head, body;
};
static const struct http_limits HTTP_LIMITS[] = {{8192, 65536}, {256, 64}};
/* ANSWER_MAX_PAIRS of src/twilio/answer.c */
#define HTTP_MAX_PAIRS 256

enum http_end {
    HTTP_END_MORE,    /* every byte consumed, waiting for more */
    HTTP_END_ERR,     /* a malformed request: answered 4xx/505, connection closed */
    HTTP_END_STOPPED, /* upgrade, or Connection: close: later bytes are not HTTP to us */
};

struct http_outcome {
    size_t requests;
    uint64_t hash; /* of every request in order */
    enum http_end end;
    size_t stopped_at; /* HTTP_END_STOPPED: offset just past the last request */
};

static uint64_t http_mix(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    /* length first, so that ("ab","c") and ("a","bc") differ */
    for (size_t i = 0; i < sizeof(n); i++)
        h = (h ^ ((n >> (8 * i)) & 0xff)) * 0x100000001b3ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* What the routes do with a request, on the pure side. */
static void http_route(const struct va_http_req *req)
{
    struct va_addr peer;
    FUZZ_CHECK(va_addr_parse(&peer, "127.0.0.1", 9) == 0);
    struct va_cidr trust[4];
    size_t ntrust = 0;
    static const char tp[] = "127.0.0.1/32, 10.0.0.0/8 ::1/128";
    FUZZ_CHECK(va_cidr_parse_list(trust, 4, &ntrust, tp, sizeof(tp) - 1) == 0);

    size_t cf_len = 0, xff_len = 0;
    const char *cf = va_http_req_header(req, "cf-connecting-ip", &cf_len);
    const char *xff = va_http_req_header(req, "x-forwarded-for", &xff_len);
    struct va_addr client;
    va_client_addr(&client, &peer, trust, ntrust, cf, cf_len, xff, xff_len);
    FUZZ_CHECK(memchr(client.text, '\0', sizeof(client.text)) != NULL);
    FUZZ_CHECK(client.family == AF_INET || client.family == AF_INET6);

    char accept[29];
    const char *why = NULL;
    int st = va_ws_handshake_check(req, accept, &why);
    FUZZ_CHECK(st == 0 ? strlen(accept) == 28 && why == NULL : why != NULL);
    (void)va_ws_offers_protocol(req, "mcp");

    /* /twilio/answer: the form body, then the signature over the configured URL */
    struct va_form form;
    if (va_form_parse(&form, req->body, req->body_len, HTTP_MAX_PAIRS) == 0) {
        FUZZ_CHECK(form.len <= HTTP_MAX_PAIRS);
        for (size_t i = 0; i < form.len; i++) {
            FUZZ_CHECK(form.pairs[i].name[form.pairs[i].name_len] == '\0');
            FUZZ_CHECK(form.pairs[i].value[form.pairs[i].value_len] == '\0');
        }
        (void)va_form_get(&form, "AccountSid");
        size_t sig_len = 0;
        const char *sig = va_http_req_header(req, "x-twilio-signature", &sig_len);
        if (sig) {
            struct va_buf url;
            va_buf_init(&url, 8192);
            int err = va_buf_append_str(&url, "https://example.com");
            if (!err)
                err = va_buf_append(&url, req->path, req->path_len);
            if (!err && req->query) {
                err = va_buf_append_char(&url, '?');
                if (!err)
                    err = va_buf_append(&url, req->query, req->query_len);
            }
            if (!err)
                (void)tw_sig_check("12345", 5, url.data, url.len, form.pairs, form.len, sig,
                                   sig_len, 0);
            va_buf_deinit(&url);
        }
    }
    va_form_deinit(&form);
}

/* One complete request: check its bounds, fold it into the outcome, route it. */
static void http_answer(const struct va_http_reqparser *p, const struct http_limits *lim,
                        struct http_outcome *o, bool route)
{
    struct va_http_header hdrs[VA_HTTP_MAX_HEADERS];
    struct va_http_req req;
    va_http_reqparser_request(p, &req, hdrs);
    FUZZ_CHECK(req.method != NULL);
    FUZZ_CHECK(req.nheaders <= VA_HTTP_MAX_HEADERS);
    FUZZ_CHECK(p->head.len <= lim->head && p->head_bytes <= lim->head);
    FUZZ_CHECK(req.body_len <= lim->body);
    FUZZ_CHECK(req.path_len <= req.target_len);
    FUZZ_CHECK(!req.query || req.path_len + 1 + req.query_len == req.target_len);

    uint64_t h = o->hash;
    h = http_mix(h, req.method, strlen(req.method));
    h = http_mix(h, req.target, req.target_len);
    for (size_t i = 0; i < req.nheaders; i++) {
        h = http_mix(h, hdrs[i].name, hdrs[i].name_len);
        h = http_mix(h, hdrs[i].value, hdrs[i].value_len);
    }
    h = http_mix(h, req.body, req.body_len);
    unsigned char flags =
        (unsigned char)(req.keep_alive | req.upgrade << 1 | p->expect_continue << 2);
    o->hash = http_mix(h, &flags, 1);
    o->requests++;
    if (route)
        http_route(&req);
}

/* Feeds data[0, size) in pieces of `piece` bytes, each as conn_process() handles a read. */
static void http_run(const uint8_t *data, size_t size, const struct http_limits *lim, size_t piece,
                     bool route, struct http_outcome *o)
{
    struct va_http_reqparser p;
    va_http_reqparser_init(&p, lim->head, lim->body);
    memset(o, 0, sizeof(*o));
    o->hash = 0xcbf29ce484222325ull;
    o->end = HTTP_END_MORE;
    bool idle = true; /* the next byte starts a request: reset the parser first */
    size_t off = 0;
    while (off < size && o->end == HTTP_END_MORE) {
        size_t len = size - off < piece ? size - off : piece;
        const char *at = (const char *)data + off;
        while (len > 0) {
            if (idle) {
                va_http_reqparser_next(&p);
                idle = false;
            }
            size_t used = 0;
            enum va_http_parse r = va_http_reqparser_feed(&p, at, len, &used);
            FUZZ_CHECK(used <= len);
            if (r == VA_HTTP_ERR) {
                FUZZ_CHECK(p.status == 400 || p.status == 413 || p.status == 431 ||
                           p.status == 505);
                FUZZ_CHECK(p.reason != NULL);
                o->end = HTTP_END_ERR;
                break;
            }
            FUZZ_CHECK(r == VA_HTTP_DONE || used == len);
            at += used;
            len -= used;
            off += used;
            if (r == VA_HTTP_NEED_MORE)
                break;
            http_answer(&p, lim, o, route);
            idle = true;
            if (p.parser.upgrade || !llhttp_should_keep_alive(&p.parser)) {
                o->end = HTTP_END_STOPPED;
                o->stopped_at = off;
                break;
            }
        }
    }
    va_http_reqparser_deinit(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < sizeof(HTTP_LIMITS) / sizeof(HTTP_LIMITS[0]); i++) {
        struct http_outcome whole, bytewise;
        http_run(data, size, &HTTP_LIMITS[i], size ? size : 1, i == 0, &whole);
        http_run(data, size, &HTTP_LIMITS[i], 1, false, &bytewise);
        FUZZ_CHECK(whole.requests == bytewise.requests);
        FUZZ_CHECK(whole.hash == bytewise.hash);
        FUZZ_CHECK(whole.end == bytewise.end);
        FUZZ_CHECK(whole.end != HTTP_END_STOPPED || whole.stopped_at == bytewise.stopped_at);
    }
    return 0;
}
