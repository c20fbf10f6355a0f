/* src/call/rtlink.c: connects calls to the Realtime API through rt_client and keeps the
 * circuit breaker: consecutive connect failures open it, probes close it again. */
#include "call/rtlink.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/err.h"
#include "realtime/client.h"

#define RTLINK_PROBE_CHECK_MS 250

struct call_rtlink {
    struct va_ctx *ctx;
    uv_timer_t timer;
    bool closing;
    bool timer_closed;
    struct rt_client *probe;
    char url[2048];
    char auth[1024];
    struct rt_client_cfg cfg;
};

struct rtlink_conn {
    struct call_rtlink *link;
    struct call *call; /* NULL for a probe */
    struct rt_client *client;
};

static void rtlink_result(struct call_rtlink *l, int err, int http_status)
{
    struct va_ctx *ctx = l->ctx;
    if (!err) {
        if (ctx->breaker->state == RT_BREAKER_OPEN)
            va_log_info(ctx->log, "realtime", "circuit closed: connected again");
        rt_breaker_success(ctx->breaker);
        return;
    }
    ctx->metrics.rt_connect_failures++;
    char why[96];
    snprintf(why, sizeof(why), "%s%s%d", va_strerror(err), http_status ? " http " : "",
             http_status);
    if (rt_breaker_failure(ctx->breaker, uv_now(ctx->loop), why))
        va_log_error(ctx->log, "realtime", "circuit open: new calls are refused",
                     VA_LINT("failures", ctx->breaker->failures), VA_LSTR("lastError", why));
}

static void rtlink_on_open(void *ud)
{
    struct rtlink_conn *rc = ud;
    rtlink_result(rc->link, 0, 0);
    if (rc->call)
        call_rt_opened(rc->call, rc);
    else
        rt_client_close(rc->client, 1000, "probe");
}

static void rtlink_on_message(void *ud, const char *data, size_t len)
{
    struct rtlink_conn *rc = ud;
    if (rc->call)
        call_rt_message(rc->call, rc, data, len);
}

static void rtlink_on_closed(void *ud, int err, int http_status, uint16_t code, const char *reason)
{
    struct rtlink_conn *rc = ud;
    struct call_rtlink *l = rc->link;
    if (err) {
        va_log_warn(l->ctx->log, "realtime", rc->call ? "connect failed" : "probe failed",
                    VA_LSTR("callSid", rc->call ? call_sid(rc->call) : NULL),
                    VA_LSTR("reason", va_strerror(err)), VA_LINT("httpStatus", http_status));
        if (rc->call)
            rtlink_result(l, err, http_status);
    }
    if (!rc->call) {
        l->probe = NULL;
        rt_breaker_probe_done(l->ctx->breaker, !err, uv_now(l->ctx->loop), va_strerror(err));
    } else {
        call_rt_closed(rc->call, rc, err, code, reason);
    }
    free(rc);
}

static const struct rt_client_cb rtlink_cb = {
    .on_open = rtlink_on_open,
    .on_message = rtlink_on_message,
    .on_closed = rtlink_on_closed,
};

static int rtlink_open(struct call_rtlink *l, struct call *call, struct rtlink_conn **out)
{
    struct rtlink_conn *rc = va_xcalloc(1, sizeof(*rc));
    rc->link = l;
    rc->call = call;
    int err = rt_client_open(&rc->client, l->ctx->lws, &l->cfg, &rtlink_cb, rc);
    if (err) {
        free(rc);
        return err;
    }
    *out = rc;
    return 0;
}

static int rtlink_connect(void *ud, struct call *c, void **conn)
{
    struct call_rtlink *l = ud;
    if (l->closing)
        return VA_ECLOSED;
    if (!rt_breaker_allows(l->ctx->breaker))
        return VA_ESTATE;
    struct rtlink_conn *rc;
    int err = rtlink_open(l, c, &rc);
    if (err)
        return err;
    *conn = rc;
    return 0;
}

static int rtlink_send(void *conn, const char *json, size_t len)
{
    struct rtlink_conn *rc = conn;
    return rt_client_send(rc->client, json, len);
}

static void rtlink_close_conn(void *conn, uint16_t code, const char *reason)
{
    struct rtlink_conn *rc = conn;
    rt_client_close(rc->client, code, reason);
}

const struct call_rt_port call_rtlink_port = {
    .connect = rtlink_connect,
    .send = rtlink_send,
    .close = rtlink_close_conn,
};

static void rtlink_on_timer(uv_timer_t *t)
{
    struct call_rtlink *l = t->data;
    if (l->closing || !rt_breaker_probe_due(l->ctx->breaker, uv_now(l->ctx->loop)))
        return;
    va_log_info(l->ctx->log, "realtime", "circuit open: probing");
    struct rtlink_conn *rc;
    int err = rtlink_open(l, NULL, &rc);
    if (err) {
        rt_breaker_probe_done(l->ctx->breaker, false, uv_now(l->ctx->loop), va_strerror(err));
        return;
    }
    l->probe = rc->client;
}

struct call_rtlink *call_rtlink_new(struct va_ctx *ctx)
{
    const struct va_cfg *cfg = ctx->cfg;
    struct call_rtlink *l = va_xcalloc(1, sizeof(*l));
    l->ctx = ctx;
    const char *sep = strchr(cfg->openai_realtime_url, '?') ? "&" : "?";
    snprintf(l->url, sizeof(l->url), "%s%smodel=%s", cfg->openai_realtime_url, sep,
             cfg->openai_realtime_model);
    bool azure = cfg->openai_auth == VA_AUTH_API_KEY;
    snprintf(l->auth, sizeof(l->auth), "%s%s", azure ? "" : "Bearer ",
             cfg->openai_api_key ? cfg->openai_api_key : "");
    l->cfg = (struct rt_client_cfg){
        .url = l->url,
        .auth_header = azure ? "api-key" : "Authorization",
        .auth_value = l->auth,
        .connect_timeout_ms = cfg->realtime_connect_timeout_ms,
        .max_message = cfg->realtime_max_message_bytes,
        /* what the caller says in a few seconds of a stalled model: then drop */
        .max_queue = 256 * 1024,
    };
    uv_timer_init(ctx->loop, &l->timer);
    l->timer.data = l;
    uv_timer_start(&l->timer, rtlink_on_timer, RTLINK_PROBE_CHECK_MS, RTLINK_PROBE_CHECK_MS);
    return l;
}

static void rtlink_on_timer_closed(uv_handle_t *h)
{
    struct call_rtlink *l = h->data;
    l->timer_closed = true;
}

void call_rtlink_close(struct call_rtlink *l)
{
    if (!l || l->closing)
        return;
    l->closing = true;
    if (l->probe)
        rt_client_close(l->probe, 1001, "shutting down");
    uv_close((uv_handle_t *)&l->timer, rtlink_on_timer_closed);
}

void call_rtlink_free(struct call_rtlink *l)
{
    free(l);
}
