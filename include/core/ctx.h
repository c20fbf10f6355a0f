/* include/core/ctx.h: the daemon context, the one home of mutable state.
 *
 * Made in main(), passed to every module; nothing else is writable at file scope. */
#ifndef VA_CORE_CTX_H
#define VA_CORE_CTX_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "http/ratelimit.h"

struct va_http_server;
struct tw_hub;
struct call_shared;
struct rt_lws;
struct rt_breaker;
struct call_rtlink;
struct mcp_registry;
struct mcp_server;
struct sb_rpc;
struct tools_ctx;
struct sb_events;
struct cJSON;

enum va_run_state {
    VA_RUNNING,
    VA_DRAINING, /* no new calls; probes still answered; waiting for active work */
    VA_STOPPING, /* closing handles */
};

struct va_ctx {
    uv_loop_t *loop;
    const struct va_cfg *cfg;
    struct va_log *log;
    enum va_run_state state;
    uint64_t start_ms;     /* uv_now() at start, for uptime */
    uint32_t active_calls; /* media streams from upgrade to close: what MAX_CALLS counts */
    struct va_http_server *http;
    struct va_rl answer_rl;    /* /twilio/answer, per client */
    struct tw_hub *twilio;     /* live media streams */
    struct call_shared *calls; /* scratch shared by the calls' Realtime sessions */
    struct rt_lws *lws;        /* the Realtime client context */
    struct rt_breaker *breaker;
    struct call_rtlink *rtlink;    /* NULL without a model (AUDIO_ECHO) */
    struct mcp_registry *registry; /* the tools, for MCP clients and the model */
    struct mcp_server *mcp;        /* NULL when disabled or refused to start */
    struct sb_rpc *rpc;            /* Supabase RPC; NULL when not configured */
    struct tools_ctx *tools;
    struct sb_events *events;  /* call events; NULL when storage is off or unavailable */
    struct cJSON *event_schema; /* the call-event schema, parsed once */
    double start_wall_s;        /* for process_start_time_seconds */
    struct va_metrics metrics;
};

#endif
