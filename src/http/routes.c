/* src/http/routes.c: route table of the public listener, /health and /ready. */
#include "http/routes.h"

#include <string.h>

#include "core/ctx.h"
#include "core/json.h"
#include "http/server.h"
#include "realtime/client.h"
#include "supabase/events.h"
#include "supabase/rpc.h"
#include "twilio/answer.h"
#include "twilio/stream.h"

struct route {
    const char *path;
    const char *method; /* the one method served */
    void (*handle)(struct va_ctx *ctx, struct va_http_conn *c, const struct va_http_req *req);
};

static void routes_health(struct va_ctx *ctx, struct va_http_conn *c, const struct va_http_req *req)
{
    (void)req;
    struct va_buf b;
    va_buf_init(&b, 256);
    uint64_t up = (uv_now(ctx->loop) - ctx->start_ms) / 1000;
    va_buf_printf(&b, "{\"ok\":true,\"version\":\"%s\",\"uptime\":%llu}", VA_VERSION,
                  (unsigned long long)up);
    va_http_respond(c, 200, "application/json", NULL, b.data, b.len);
    va_buf_deinit(&b);
}

static void routes_ready(struct va_ctx *ctx, struct va_http_conn *c, const struct va_http_req *req)
{
    (void)req;
    struct va_buf b;
    va_buf_init(&b, 4096);
    int status = va_ready_report(ctx, &b);
    va_http_respond(c, status, "application/json", NULL, b.data, b.len);
    va_buf_deinit(&b);
}

/* Prometheus text format; behind METRICS_TOKEN when it is set. */
static void routes_metrics(struct va_ctx *ctx, struct va_http_conn *c,
                           const struct va_http_req *req)
{
    const char *token = ctx->cfg->metrics_token;
    if (token && !va_http_bearer_ok(req, token, strlen(token))) {
        va_http_respond_error(c, 401, "unauthorized", "bearer token required",
                              "WWW-Authenticate: Bearer realm=\"metrics\"\r\n");
        return;
    }
    struct va_metrics_gauges g = {
        .calls_active = ctx->active_calls,
        .realtime_breaker_open = ctx->breaker && ctx->breaker->state != RT_BREAKER_CLOSED,
        .supabase_configured = ctx->rpc != NULL,
        .supabase_breaker_open = ctx->rpc && !sb_rpc_healthy(ctx->rpc, NULL),
        .start_time_s = ctx->start_wall_s,
    };
    if (ctx->events) {
        struct sb_events_stats st;
        sb_events_stats(ctx->events, &st);
        g.events_enabled = true;
        g.events_pending = st.pending;
        g.events_spool_bytes = st.spool_bytes;
        g.events_spool_max_bytes = st.spool_max_bytes;
        g.events_delivered = st.delivered;
        g.events_failures = st.failures;
        g.events_dead_lettered = st.dead_lettered;
        g.events_dropped = st.dropped;
    }
    va_metrics_process(&g);
    struct va_buf b;
    va_buf_init(&b, 256 * 1024);
    if (va_metrics_render(&ctx->metrics, &g, &b))
        va_http_respond_error(c, 500, "internal", "metrics too large", NULL);
    else
        va_http_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, b.data, b.len);
    va_buf_deinit(&b);
}

static const struct route routes[] = {
    {"/health", "GET", routes_health},
    {"/metrics", "GET", routes_metrics},
    {"/ready", "GET", routes_ready},
    {"/twilio/answer", "POST", tw_answer_handle},
    {"/twilio/status", "POST", tw_status_handle},
    {"/ws/twilio", "GET", tw_stream_upgrade},
};

void va_routes_handle(void *ud, struct va_http_conn *c, const struct va_http_req *req)
{
    struct va_ctx *ctx = ud;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        const struct route *r = &routes[i];
        if (strlen(r->path) != req->path_len || memcmp(r->path, req->path, req->path_len) != 0)
            continue;
        if (strcmp(r->method, req->method) != 0) {
            char allow[64];
            snprintf(allow, sizeof(allow), "Allow: %s\r\n", r->method);
            va_http_respond_error(c, 405, "method_not_allowed", "method not allowed on this route",
                                  allow);
            return;
        }
        r->handle(ctx, c, req);
        return;
    }
    va_http_respond_error(c, 404, "not_found", "no such route", NULL);
}

/* Appends a JSON array of the strings in list[0, n). */
static void ready_list(struct va_buf *b, const char *key, const char *const *list, size_t n)
{
    va_buf_printf(b, ",\"%s\":[", key);
    for (size_t i = 0; i < n; i++) {
        if (i)
            va_buf_append_char(b, ',');
        va_json_str(b, list[i], strlen(list[i]));
    }
    va_buf_append_char(b, ']');
}

/* What stops calls: the /ready 503 reasons, and why a call gets the apology. */
static size_t ready_blockers(const struct va_ctx *ctx, const char **reasons)
{
    const struct va_cfg *cfg = ctx->cfg;
    size_t n = 0;
    if (!cfg->enabled)
        reasons[n++] = "disabled";
    if (ctx->state != VA_RUNNING)
        reasons[n++] = "draining";
    if (!cfg->openai_api_key)
        reasons[n++] = "OPENAI_API_KEY missing";
    if (!cfg->public_ws_url)
        reasons[n++] = "PUBLIC_WS_URL missing";
    if (ctx->breaker && !rt_breaker_allows(ctx->breaker))
        reasons[n++] = "realtime circuit open: connects to the Realtime API keep failing";
    return n;
}

int va_ready_report(const struct va_ctx *ctx, struct va_buf *out)
{
    const struct va_cfg *cfg = ctx->cfg;
    const char *reasons[8];
    const char *degraded[8];
    size_t nd = 0;
    /* Only what stops calls makes us unready; the rest degrades and is listed. */
    size_t nr = ready_blockers(ctx, reasons);

    if (!cfg->twilio_auth_token)
        degraded[nd++] = "TWILIO_AUTH_TOKEN missing: Twilio signatures are not checked";
    if (!cfg->mcp_enabled)
        degraded[nd++] = "mcp disabled";
    else if (!ctx->mcp)
        degraded[nd++] = "mcp not listening (see the log)";
    if (!cfg->storage_enabled)
        degraded[nd++] = "storage disabled";
    else if (!cfg->supabase_url)
        degraded[nd++] = "storage: SUPABASE_URL missing";
    else if (!cfg->supabase_service_role_key)
        degraded[nd++] = "storage: SUPABASE_SERVICE_ROLE_KEY missing";
    else if (!ctx->events)
        degraded[nd++] = "storage: call events unavailable (see the log)";
    const char *why = NULL;
    if (ctx->rpc && !sb_rpc_healthy(ctx->rpc, &why))
        degraded[nd++] = "supabase unreachable: tools fail until it recovers";
    char events_why[160];
    if (ctx->events && !sb_events_healthy(ctx->events, events_why, sizeof(events_why)))
        degraded[nd++] = events_why;

    va_buf_append_str(out, nr ? "{\"ready\":false" : "{\"ready\":true");
    if (nr)
        ready_list(out, "reasons", reasons, nr);
    if (nd)
        ready_list(out, "degraded", degraded, nd);
    va_buf_append_char(out, '}');
    return nr ? 503 : 200;
}

int va_calls_accepting(const struct va_ctx *ctx, const char **why)
{
    const char *reasons[8];
    if (ready_blockers(ctx, reasons)) {
        *why = reasons[0];
        return 0;
    }
    if (ctx->active_calls >= ctx->cfg->max_calls) {
        *why = "at MAX_CALLS";
        return 0;
    }
    return 1;
}
