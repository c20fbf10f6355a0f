/* include/call/rtlink.h: the calls' Realtime port over rt_client, the circuit breaker's
 * bookkeeping and its probe connections. */
#ifndef VA_CALL_RTLINK_H
#define VA_CALL_RTLINK_H

#include "call/call.h"

struct va_ctx;
struct call_rtlink;

/* The port given to call_open(); its ud is the struct call_rtlink. */
extern const struct call_rt_port call_rtlink_port;

/* Starts the breaker's probe timer. ctx->lws and ctx->breaker must be set. */
struct call_rtlink *call_rtlink_new(struct va_ctx *ctx);
/* Stops probing (closes its timer and any probe connection); asynchronous. */
void call_rtlink_close(struct call_rtlink *l);
/* After uv_run has returned. */
void call_rtlink_free(struct call_rtlink *l);

#endif
