/* include/core/metrics.h: the daemon's counters and histograms, rendered for GET /metrics
 * in the Prometheus text exposition format (version 0.0.4).
 *
 * Plain memory inside the daemon context: modules bump counters and observe values on the
 * loop (no locks: one thread); gauges that other modules already know (active calls, the
 * spool, breakers, the process) are read at render time. */
#ifndef VA_CORE_METRICS_H
#define VA_CORE_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define VA_HIST_BUCKETS 14 /* finite upper bounds; +Inf is implied */

enum va_hist_id {
    VA_H_CALL_DURATION, /* seconds, per ended call */
    VA_H_ADDED_IN,      /* seconds: a Twilio media message to its append written */
    VA_H_ADDED_OUT,     /* seconds: a Realtime audio delta to its first frame written */
    VA_H_BARGE_IN,      /* seconds: speech_started to the clear written */
    VA_H_RT_CONNECT,    /* seconds: Realtime connect to session ready */
    /* seconds: the work of one loop turn (everything but waiting in epoll); what a
     * message that arrives during a turn waits, at most, before its own turn starts */
    VA_H_LOOP_TURN,
    VA_H_COUNT,
};

enum va_call_outcome { VA_CALL_COMPLETED, VA_CALL_FAILED, VA_CALL_REJECTED, VA_CALL_OUTCOMES };

enum va_tool_outcome {
    VA_TOOL_SUCCESS,
    VA_TOOL_FAILURE,
    VA_TOOL_ERROR,
    VA_TOOL_TIMEOUT,
    VA_TOOL_CANCELLED,
    VA_TOOL_OUTCOMES,
};

struct va_hist {
    uint64_t counts[VA_HIST_BUCKETS + 1]; /* per bucket, not cumulative; last is +Inf */
    uint64_t count;
    double sum;
};

#define VA_METRICS_LABELS 16 /* distinct error codes / tools kept; the rest go to "other" */
#define VA_METRICS_LABEL_MAX 48

struct va_metrics_tool {
    char name[VA_METRICS_LABEL_MAX];
    uint64_t outcomes[VA_TOOL_OUTCOMES];
    struct va_hist latency; /* seconds */
};

struct va_metrics_code {
    char code[VA_METRICS_LABEL_MAX];
    uint64_t count;
};

struct va_metrics {
    uint64_t calls[VA_CALL_OUTCOMES];
    uint64_t frames_in, frames_out;
    uint64_t frames_late; /* outbound frames sent after Twilio ran dry */
    uint64_t dropped_in_bytes, dropped_out_bytes;
    uint64_t barge_ins;
    uint64_t rt_connect_failures;
    struct va_hist hist[VA_H_COUNT];
    struct va_metrics_code rt_errors[VA_METRICS_LABELS + 1]; /* last: "other" */
    size_t n_rt_errors;
    struct va_metrics_tool tools[VA_METRICS_LABELS + 1]; /* last: "other" */
    size_t n_tools;
};

/* What other modules know, read when /metrics is asked for. */
struct va_metrics_gauges {
    uint32_t calls_active;
    bool events_enabled;
    uint64_t events_pending, events_spool_bytes, events_spool_max_bytes;
    uint64_t events_delivered, events_failures, events_dead_lettered, events_dropped;
    bool realtime_breaker_open;
    bool supabase_breaker_open;
    bool supabase_configured;
    double cpu_seconds; /* user + system */
    uint64_t rss_bytes;
    uint64_t open_fds;
    uint64_t max_fds;
    double start_time_s; /* since the epoch */
};

void va_metrics_observe(struct va_metrics *m, enum va_hist_id h, double v);
void va_metrics_call_ended(struct va_metrics *m, enum va_call_outcome o, double duration_s);
void va_metrics_rt_error(struct va_metrics *m, const char *code);
/* outcome: "success", "failure", "error", "timeout", "cancelled" */
void va_metrics_tool(struct va_metrics *m, const char *tool, const char *outcome, double latency_s);

/* Appends the whole exposition. 0 or VA_ETOOBIG. */
int va_metrics_render(const struct va_metrics *m, const struct va_metrics_gauges *g,
                      struct va_buf *out);

/* This process's CPU seconds, RSS, open and maximum descriptors (from getrusage and /proc). */
void va_metrics_process(struct va_metrics_gauges *g);

#endif
