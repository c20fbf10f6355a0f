/* src/core/metrics.c: counters, histograms and their Prometheus text rendering. */
#include "core/metrics.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/err.h"

/* Upper bounds per histogram, in seconds. */
static const double m_bounds[VA_H_COUNT][VA_HIST_BUCKETS] = {
    [VA_H_CALL_DURATION] = {5, 10, 30, 60, 120, 180, 300, 600, 900, 1200, 1800, 2700, 3600, 7200},
    /* the audio path: microseconds matter */
    [VA_H_ADDED_IN] = {0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005,
                       0.01, 0.025, 0.05, 0.1, 0.25},
    [VA_H_ADDED_OUT] = {0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005,
                        0.01, 0.025, 0.05, 0.1, 0.25},
    [VA_H_BARGE_IN] = {0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005,
                       0.01, 0.025, 0.05, 0.1, 0.25},
    [VA_H_RT_CONNECT] = {0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10, 20},
    [VA_H_LOOP_TURN] = {0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005,
                        0.01, 0.025, 0.05, 0.1, 0.25},
};
static const double m_tool_bounds[VA_HIST_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                      1,     2,    3,     5,    8,   10,   30};

static const char *const m_call_outcomes[VA_CALL_OUTCOMES] = {"completed", "failed", "rejected"};
static const char *const m_tool_outcomes[VA_TOOL_OUTCOMES] = {"success", "failure", "error",
                                                              "timeout", "cancelled"};

static void m_hist_add(struct va_hist *h, const double *bounds, double v)
{
    size_t i = 0;
    while (i < VA_HIST_BUCKETS && v > bounds[i])
        i++;
    h->counts[i]++;
    h->count++;
    h->sum += v;
}

void va_metrics_observe(struct va_metrics *m, enum va_hist_id h, double v)
{
    m_hist_add(&m->hist[h], m_bounds[h], v);
}

void va_metrics_call_ended(struct va_metrics *m, enum va_call_outcome o, double duration_s)
{
    m->calls[o]++;
    if (o != VA_CALL_REJECTED)
        va_metrics_observe(m, VA_H_CALL_DURATION, duration_s);
}

/* The slot for a label: found, new, or the shared "other" past VA_METRICS_LABELS. */
static size_t m_slot(char (*names)[VA_METRICS_LABEL_MAX], size_t stride, size_t *n,
                     const char *label)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp(*(char(*)[VA_METRICS_LABEL_MAX])((char *)names + i * stride), label) == 0)
            return i;
    char *slot = (char *)names + (*n < VA_METRICS_LABELS ? *n : VA_METRICS_LABELS) * stride;
    if (*n < VA_METRICS_LABELS) {
        snprintf(slot, VA_METRICS_LABEL_MAX, "%s", label);
        return (*n)++;
    }
    snprintf(slot, VA_METRICS_LABEL_MAX, "other");
    return VA_METRICS_LABELS;
}

void va_metrics_rt_error(struct va_metrics *m, const char *code)
{
    size_t i = m_slot(&m->rt_errors[0].code, sizeof(m->rt_errors[0]), &m->n_rt_errors,
                      code && code[0] ? code : "unknown");
    m->rt_errors[i].count++;
}

void va_metrics_tool(struct va_metrics *m, const char *tool, const char *outcome, double latency_s)
{
    size_t i = m_slot(&m->tools[0].name, sizeof(m->tools[0]), &m->n_tools, tool);
    struct va_metrics_tool *t = &m->tools[i];
    for (size_t o = 0; o < VA_TOOL_OUTCOMES; o++)
        if (strcmp(outcome, m_tool_outcomes[o]) == 0)
            t->outcomes[o]++;
    m_hist_add(&t->latency, m_tool_bounds, latency_s);
}

/* ---- rendering ---- */

static void m_head(struct va_buf *b, const char *name, const char *type, const char *help)
{
    va_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value with \, " and newline escaped as the format asks. */
static void m_label(struct va_buf *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            va_buf_printf(b, "\\%c", *v);
        else if (*v == '\n')
            va_buf_append_str(b, "\\n");
        else
            va_buf_append_char(b, *v);
    }
}

static void m_num(struct va_buf *b, const char *name, const char *labels, double v)
{
    va_buf_printf(b, "%s%s%s%s %.17g\n", name, labels[0] ? "{" : "", labels, labels[0] ? "}" : "",
                  v);
}

/* A metric with one unlabelled sample. */
static void m_one(struct va_buf *b, const char *name, const char *type, const char *help, double v)
{
    m_head(b, name, type, help);
    m_num(b, name, "", v);
}

/* labels: "" or `k="v"` pairs without braces, already escaped. */
static void m_hist(struct va_buf *b, const char *name, const char *labels, const struct va_hist *h,
                   const double *bounds)
{
    uint64_t cum = 0;
    for (size_t i = 0; i <= VA_HIST_BUCKETS; i++) {
        cum += h->counts[i];
        if (i < VA_HIST_BUCKETS)
            va_buf_printf(b, "%s_bucket{%s%sle=\"%.6g\"} %llu\n", name, labels,
                          labels[0] ? "," : "", bounds[i], (unsigned long long)cum);
        else
            va_buf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels,
                          labels[0] ? "," : "", (unsigned long long)cum);
    }
    va_buf_printf(b, "%s_sum%s%s%s %.17g\n", name, labels[0] ? "{" : "", labels,
                  labels[0] ? "}" : "", h->sum);
    va_buf_printf(b, "%s_count%s%s%s %llu\n", name, labels[0] ? "{" : "", labels,
                  labels[0] ? "}" : "", (unsigned long long)h->count);
}

int va_metrics_render(const struct va_metrics *m, const struct va_metrics_gauges *g,
                      struct va_buf *out)
{
    struct va_buf *b = out;
    char lab[160];

    m_one(b, "voice_agent_calls_active", "gauge", "Calls with a media stream open.",
          g->calls_active);
    m_head(b, "voice_agent_calls_total", "counter",
           "Calls ended, by outcome (rejected: answered with the apology, no stream).");
    for (size_t o = 0; o < VA_CALL_OUTCOMES; o++) {
        snprintf(lab, sizeof(lab), "outcome=\"%s\"", m_call_outcomes[o]);
        m_num(b, "voice_agent_calls_total", lab, (double)m->calls[o]);
    }
    m_head(b, "voice_agent_call_duration_seconds", "histogram",
           "Duration of calls that had a stream.");
    m_hist(b, "voice_agent_call_duration_seconds", "", &m->hist[VA_H_CALL_DURATION],
           m_bounds[VA_H_CALL_DURATION]);

    m_head(b, "voice_agent_frames_total", "counter", "Twilio media messages, by direction.");
    m_num(b, "voice_agent_frames_total", "direction=\"in\"", (double)m->frames_in);
    m_num(b, "voice_agent_frames_total", "direction=\"out\"", (double)m->frames_out);
    m_one(b, "voice_agent_late_frames_total", "counter",
          "Outbound frames of a reply sent after Twilio had played everything before them "
          "(the caller heard a gap).",
          (double)m->frames_late);
    m_head(b, "voice_agent_dropped_audio_bytes_total", "counter",
           "Audio bytes dropped by a bound or a failed send, by direction.");
    m_num(b, "voice_agent_dropped_audio_bytes_total", "direction=\"in\"",
          (double)m->dropped_in_bytes);
    m_num(b, "voice_agent_dropped_audio_bytes_total", "direction=\"out\"",
          (double)m->dropped_out_bytes);
    m_head(b, "voice_agent_added_latency_seconds", "histogram",
           "Time the daemon holds audio: a Twilio media message to its append written (in), a "
           "Realtime audio delta to its first frame written (out).");
    m_hist(b, "voice_agent_added_latency_seconds", "direction=\"in\"", &m->hist[VA_H_ADDED_IN],
           m_bounds[VA_H_ADDED_IN]);
    m_hist(b, "voice_agent_added_latency_seconds", "direction=\"out\"", &m->hist[VA_H_ADDED_OUT],
           m_bounds[VA_H_ADDED_OUT]);
    m_one(b, "voice_agent_barge_ins_total", "counter", "Caller interruptions of the agent.",
          (double)m->barge_ins);
    m_head(b, "voice_agent_barge_in_reaction_seconds", "histogram",
           "speech_started received to the Twilio clear written.");
    m_hist(b, "voice_agent_barge_in_reaction_seconds", "", &m->hist[VA_H_BARGE_IN],
           m_bounds[VA_H_BARGE_IN]);

    m_head(b, "voice_agent_realtime_connect_seconds", "histogram",
           "Realtime connection start to session ready.");
    m_hist(b, "voice_agent_realtime_connect_seconds", "", &m->hist[VA_H_RT_CONNECT],
           m_bounds[VA_H_RT_CONNECT]);
    m_head(b, "voice_agent_loop_turn_seconds", "histogram",
           "Work of one event-loop turn, waiting for events excluded: the longest a message "
           "waits for the loop.");
    m_hist(b, "voice_agent_loop_turn_seconds", "", &m->hist[VA_H_LOOP_TURN],
           m_bounds[VA_H_LOOP_TURN]);
    m_one(b, "voice_agent_realtime_connect_failures_total", "counter",
          "Realtime connections that failed to open.", (double)m->rt_connect_failures);
    m_head(b, "voice_agent_realtime_errors_total", "counter", "Realtime error events, by code.");
    for (size_t i = 0; i < m->n_rt_errors + (m->rt_errors[VA_METRICS_LABELS].count ? 1 : 0); i++) {
        const struct va_metrics_code *c = &m->rt_errors[i < m->n_rt_errors ? i : VA_METRICS_LABELS];
        struct va_buf l;
        va_buf_init(&l, 256);
        va_buf_append_str(&l, "code=\"");
        m_label(&l, c->code);
        va_buf_append_char(&l, '"');
        m_num(b, "voice_agent_realtime_errors_total", l.data, (double)c->count);
        va_buf_deinit(&l);
    }

    m_head(b, "voice_agent_tool_calls_total", "counter", "Tool calls, by tool and outcome.");
    size_t ntools = m->n_tools + (m->tools[VA_METRICS_LABELS].latency.count ? 1 : 0);
    for (size_t i = 0; i < ntools; i++) {
        const struct va_metrics_tool *t = &m->tools[i < m->n_tools ? i : VA_METRICS_LABELS];
        for (size_t o = 0; o < VA_TOOL_OUTCOMES; o++) {
            struct va_buf l;
            va_buf_init(&l, 256);
            va_buf_append_str(&l, "tool=\"");
            m_label(&l, t->name);
            va_buf_printf(&l, "\",outcome=\"%s\"", m_tool_outcomes[o]);
            m_num(b, "voice_agent_tool_calls_total", l.data, (double)t->outcomes[o]);
            va_buf_deinit(&l);
        }
    }
    m_head(b, "voice_agent_tool_latency_seconds", "histogram", "Tool call latency, by tool.");
    for (size_t i = 0; i < ntools; i++) {
        const struct va_metrics_tool *t = &m->tools[i < m->n_tools ? i : VA_METRICS_LABELS];
        struct va_buf l;
        va_buf_init(&l, 256);
        va_buf_append_str(&l, "tool=\"");
        m_label(&l, t->name);
        va_buf_append_char(&l, '"');
        m_hist(b, "voice_agent_tool_latency_seconds", l.data, &t->latency, m_tool_bounds);
        va_buf_deinit(&l);
    }

    m_one(b, "voice_agent_events_enabled", "gauge", "1 when call events are being recorded.",
          g->events_enabled);
    m_one(b, "voice_agent_event_spool_depth", "gauge", "Call events not yet delivered.",
          (double)g->events_pending);
    m_one(b, "voice_agent_event_spool_bytes", "gauge", "Bytes of call events in the spool.",
          (double)g->events_spool_bytes);
    m_one(b, "voice_agent_event_spool_max_bytes", "gauge", "The spool's bound.",
          (double)g->events_spool_max_bytes);
    m_one(b, "voice_agent_events_delivered_total", "counter", "Call events acknowledged (2xx).",
          (double)g->events_delivered);
    m_one(b, "voice_agent_event_delivery_failures_total", "counter",
          "Failed delivery attempts (each is retried, unless dead-lettered).",
          (double)g->events_failures);
    m_one(b, "voice_agent_events_dead_lettered_total", "counter",
          "Call events refused by the function and moved to the dead letter file.",
          (double)g->events_dead_lettered);
    m_one(b, "voice_agent_events_dropped_total", "counter", "Call events dropped: spool full.",
          (double)g->events_dropped);

    m_head(b, "voice_agent_breaker_open", "gauge",
           "1 while a circuit breaker is open, by dependency.");
    m_num(b, "voice_agent_breaker_open", "breaker=\"realtime\"", g->realtime_breaker_open);
    if (g->supabase_configured)
        m_num(b, "voice_agent_breaker_open", "breaker=\"supabase\"", g->supabase_breaker_open);

    m_one(b, "process_cpu_seconds_total", "counter", "User and system CPU time spent.",
          g->cpu_seconds);
    m_one(b, "process_resident_memory_bytes", "gauge", "Resident memory size.",
          (double)g->rss_bytes);
    m_one(b, "process_open_fds", "gauge", "Open file descriptors.", (double)g->open_fds);
    m_one(b, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
          (double)g->max_fds);
    m_head(b, "process_start_time_seconds", "gauge", "Start time since the epoch.");
    return va_buf_printf(b, "process_start_time_seconds %.3f\n", g->start_time_s) ? VA_ETOOBIG : 0;
}

void va_metrics_process(struct va_metrics_gauges *g)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        g->cpu_seconds = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                         (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    FILE *f = fopen("/proc/self/statm", "re");
    unsigned long size = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &resident) == 2)
            g->rss_bytes = (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
        fclose(f);
    }
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        uint64_t n = 0;
        for (struct dirent *e; (e = readdir(d));)
            n += e->d_name[0] != '.';
        closedir(d);
        g->open_fds = n > 0 ? n - 1 : 0; /* the directory's own descriptor */
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        g->max_fds = rl.rlim_cur;
}
