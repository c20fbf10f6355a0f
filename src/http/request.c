/* src/http/request.c: bounded request assembly over llhttp. */
#include "http/request.h"

#include <string.h>
#include <strings.h>

#include "core/err.h"

static int req_fail(struct va_http_reqparser *p, int status, const char *reason)
{
    p->status = status;
    p->reason = reason;
    return -1;
}

static int req_count_head(struct va_http_reqparser *p, size_t n)
{
    p->head_bytes += n;
    if (p->head_bytes > p->max_header_bytes)
        return req_fail(p, 431, "request line and headers exceed the limit");
    return 0;
}

/* Spans are contiguous: a callback split across reads continues the last span,
 * and nothing else is appended in between. */
static int req_head_append(struct va_http_reqparser *p, struct va_http_span *s, const char *at,
                           size_t n)
{
    if (req_count_head(p, n))
        return -1;
    if (s->len == 0)
        s->off = p->head.len;
    if (va_buf_append(&p->head, at, n))
        return req_fail(p, 431, "request line and headers exceed the limit");
    s->len += n;
    return 0;
}

static int on_message_begin(llhttp_t *lp)
{
    struct va_http_reqparser *p = lp->data;
    p->started = true;
    /* what no callback reports: two spaces, "HTTP/" and CRLF of the request line,
     * the empty line at the end */
    p->head_bytes = 11;
    return 0;
}

static int on_method(llhttp_t *lp, const char *at, size_t n)
{
    struct va_http_reqparser *p = lp->data;
    return req_head_append(p, &p->method, at, n);
}

static int on_url(llhttp_t *lp, const char *at, size_t n)
{
    struct va_http_reqparser *p = lp->data;
    return req_head_append(p, &p->target, at, n);
}

static int on_version(llhttp_t *lp, const char *at, size_t n)
{
    (void)at;
    return req_count_head(lp->data, n);
}

static int on_header_field(llhttp_t *lp, const char *at, size_t n)
{
    struct va_http_reqparser *p = lp->data;
    if (p->last_cb != 1) {
        if (p->nheaders == VA_HTTP_MAX_HEADERS)
            return req_fail(p, 431, "too many header fields");
        memset(&p->hname[p->nheaders], 0, sizeof(p->hname[0]));
        memset(&p->hval[p->nheaders], 0, sizeof(p->hval[0]));
        p->nheaders++;
        p->last_cb = 1;
        if (req_count_head(p, 4)) /* ": " and CRLF */
            return -1;
    }
    return req_head_append(p, &p->hname[p->nheaders - 1], at, n);
}

static int on_header_value(llhttp_t *lp, const char *at, size_t n)
{
    struct va_http_reqparser *p = lp->data;
    p->last_cb = 2;
    return req_head_append(p, &p->hval[p->nheaders - 1], at, n);
}

static int on_headers_complete(llhttp_t *lp)
{
    struct va_http_reqparser *p = lp->data;
    if ((lp->flags & F_CONTENT_LENGTH) && lp->content_length > p->body.max)
        return req_fail(p, 413, "request body exceeds the limit");
    for (size_t i = 0; i < p->nheaders; i++) {
        const char *name = p->head.data + p->hname[i].off;
        const char *val = p->head.data + p->hval[i].off;
        if (p->hname[i].len == 6 && strncasecmp(name, "expect", 6) == 0 && p->hval[i].len == 12 &&
            strncasecmp(val, "100-continue", 12) == 0)
            p->expect_continue = true;
    }
    return 0;
}

static int on_body(llhttp_t *lp, const char *at, size_t n)
{
    struct va_http_reqparser *p = lp->data;
    if (va_buf_append(&p->body, at, n))
        return req_fail(p, 413, "request body exceeds the limit");
    return 0;
}

static int on_message_complete(llhttp_t *lp)
{
    (void)lp;
    /* Pause: one request is answered before the next is parsed. */
    return HPE_PAUSED;
}

void va_http_reqparser_init(struct va_http_reqparser *p, uint32_t max_header_bytes,
                            uint32_t max_body_bytes)
{
    memset(p, 0, sizeof(*p));
    p->max_header_bytes = max_header_bytes;
    va_buf_init(&p->head, max_header_bytes);
    va_buf_init(&p->body, max_body_bytes);
    llhttp_settings_init(&p->settings);
    p->settings.on_message_begin = on_message_begin;
    p->settings.on_method = on_method;
    p->settings.on_url = on_url;
    p->settings.on_version = on_version;
    p->settings.on_header_field = on_header_field;
    p->settings.on_header_value = on_header_value;
    p->settings.on_headers_complete = on_headers_complete;
    p->settings.on_body = on_body;
    p->settings.on_message_complete = on_message_complete;
    llhttp_init(&p->parser, HTTP_REQUEST, &p->settings);
    p->parser.data = p;
}

void va_http_reqparser_deinit(struct va_http_reqparser *p)
{
    va_buf_deinit(&p->head);
    va_buf_deinit(&p->body);
}

void va_http_reqparser_next(struct va_http_reqparser *p)
{
    va_buf_reset(&p->head);
    va_buf_reset(&p->body);
    memset(&p->method, 0, sizeof(p->method));
    memset(&p->target, 0, sizeof(p->target));
    p->nheaders = 0;
    p->head_bytes = 0;
    p->last_cb = 0;
    p->started = false;
    p->expect_continue = false;
    p->status = 0;
    p->reason = NULL;
}

enum va_http_parse va_http_reqparser_feed(struct va_http_reqparser *p, const char *data, size_t len,
                                          size_t *used)
{
    *used = 0;
    if (p->status)
        return VA_HTTP_ERR;
    llhttp_errno_t perr = llhttp_execute(&p->parser, data, len);
    if (perr == HPE_OK) {
        *used = len;
        return VA_HTTP_NEED_MORE;
    }
    if (perr == HPE_PAUSED) {
        *used = (size_t)(llhttp_get_error_pos(&p->parser) - data);
        llhttp_resume(&p->parser);
        return VA_HTTP_DONE;
    }
    if (!p->status) {
        p->status = perr == HPE_INVALID_VERSION ? 505 : 400;
        p->reason = llhttp_get_error_reason(&p->parser);
        if (!p->reason)
            p->reason = "malformed HTTP request";
    }
    return VA_HTTP_ERR;
}

void va_http_reqparser_request(const struct va_http_reqparser *p, struct va_http_req *req,
                               struct va_http_header *hdrs)
{
    const char *base = p->head.data ? p->head.data : "";
    memset(req, 0, sizeof(*req));
    req->method = llhttp_method_name((llhttp_method_t)p->parser.method);
    req->target = base + p->target.off;
    req->target_len = p->target.len;
    const char *q = memchr(req->target, '?', req->target_len);
    req->path = req->target;
    req->path_len = q ? (size_t)(q - req->target) : req->target_len;
    if (q) {
        req->query = q + 1;
        req->query_len = req->target_len - req->path_len - 1;
    }
    for (size_t i = 0; i < p->nheaders; i++) {
        hdrs[i].name = base + p->hname[i].off;
        hdrs[i].name_len = p->hname[i].len;
        hdrs[i].value = base + p->hval[i].off;
        hdrs[i].value_len = p->hval[i].len;
    }
    req->headers = hdrs;
    req->nheaders = p->nheaders;
    req->body = p->body.data ? p->body.data : "";
    req->body_len = p->body.len;
    req->keep_alive = llhttp_should_keep_alive(&p->parser) != 0;
    req->upgrade = p->parser.upgrade != 0;
}
