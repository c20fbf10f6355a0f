/* include/http/request.h: assembles HTTP/1.1 requests from bytes (pure, no I/O).
 *
 * Wraps llhttp with the bounds of our front door: request line + headers within
 * max_header_bytes (else 431), at most VA_HTTP_MAX_HEADERS headers (431), a body
 * within max_body_bytes (413, checked against Content-Length before any body
 * byte and again while a chunked body arrives). */
#ifndef VA_HTTP_REQUEST_H
#define VA_HTTP_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>

#include "core/buf.h"
#include "http/server.h"

#define VA_HTTP_MAX_HEADERS 100

enum va_http_parse {
    VA_HTTP_NEED_MORE, /* every byte consumed, the request is not complete yet */
    VA_HTTP_DONE,      /* one request complete; *used says where it ended */
    VA_HTTP_ERR,       /* bad request: status and reason tell why; the stream is lost */
};

struct va_http_span {
    size_t off, len;
};

struct va_http_reqparser {
    llhttp_t parser;
    llhttp_settings_t settings;
    uint32_t max_header_bytes;
    struct va_buf head; /* method, target, header names and values */
    struct va_buf body;
    struct va_http_span method, target;
    struct va_http_span hname[VA_HTTP_MAX_HEADERS], hval[VA_HTTP_MAX_HEADERS];
    size_t nheaders;
    size_t head_bytes;    /* request line + headers as sent */
    int last_cb;          /* 1 = header field, 2 = header value: joins split callbacks */
    bool started;         /* a request has begun (bytes past any leading CRLF) */
    bool expect_continue; /* the client waits for "100 Continue" before its body */
    int status;           /* after VA_HTTP_ERR: 400, 413, 431 or 505 */
    const char *reason;   /* after VA_HTTP_ERR: llhttp's or ours, static */
};

void va_http_reqparser_init(struct va_http_reqparser *p, uint32_t max_header_bytes,
                            uint32_t max_body_bytes);
void va_http_reqparser_deinit(struct va_http_reqparser *p);

/* Feeds data[0, len). On VA_HTTP_DONE *used bytes belong to the request and the
 * rest to the next one: call va_http_reqparser_next() before feeding them. On
 * VA_HTTP_NEED_MORE *used == len. */
enum va_http_parse va_http_reqparser_feed(struct va_http_reqparser *p, const char *data, size_t len,
                                          size_t *used);

/* The complete request as a view into the parser's buffers (valid until _next()).
 * peer and client are left for the caller. hdrs holds VA_HTTP_MAX_HEADERS. */
void va_http_reqparser_request(const struct va_http_reqparser *p, struct va_http_req *req,
                               struct va_http_header *hdrs);

/* Ready for the next request on the same connection. */
void va_http_reqparser_next(struct va_http_reqparser *p);

#endif
