/* include/http/routes.h: the public listener's routes and the probes. */
#ifndef VA_HTTP_ROUTES_H
#define VA_HTTP_ROUTES_H

#include <stddef.h>

#include "core/buf.h"

struct va_ctx;
struct va_http_conn;
struct va_http_req;

/* on_request of the public server: ud is the struct va_ctx. Unknown paths get
 * 404, known paths with another method 405 with Allow. */
void va_routes_handle(void *ud, struct va_http_conn *c, const struct va_http_req *req);

/* The /ready verdict as JSON into out: 200 with {"ready":true[,"degraded":[...]]} or
 * 503 with {"ready":false,"reasons":[...][,"degraded":[...]]}. Returns the status. */
int va_ready_report(const struct va_ctx *ctx, struct va_buf *out);

/* True when a new call may start now (enabled, ready, not draining, below MAX_CALLS);
 * otherwise *why names the reason for the log. */
int va_calls_accepting(const struct va_ctx *ctx, const char **why);

#endif
