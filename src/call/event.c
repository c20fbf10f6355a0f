/* src/call/event.c: builds and checks call events (see event.h). */
#include "call/event.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "core/ctx.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "mcp/schema.h"
#include "supabase/events.h"

void call_event_new_id(char out[CALL_EVENT_ID_LEN + 1])
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof(b)) != 1)
        abort(); /* no randomness: nothing sensible to go on with */
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    size_t n = 0;
    for (size_t i = 0; i < sizeof(b); i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[n++] = '-';
        snprintf(out + n, 3, "%02x", b[i]);
        n += 2;
    }
    out[n] = '\0';
}

void call_event_time(uint64_t ms, char out[32])
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03uZ", (unsigned)(ms % 1000));
}

static void ev_str(struct va_buf *b, const char *key, const char *v)
{
    va_buf_printf(b, ",\"%s\":", key);
    if (v)
        va_json_str(b, v, strlen(v));
    else
        va_buf_append_str(b, "null");
}

static void ev_time(struct va_buf *b, const char *key, uint64_t ms)
{
    char t[32];
    if (!ms) {
        va_buf_printf(b, ",\"%s\":null", key);
        return;
    }
    call_event_time(ms, t);
    va_buf_printf(b, ",\"%s\":\"%s\"", key, t);
}

static void ev_int(struct va_buf *b, const char *key, int64_t v)
{
    if (v < 0)
        va_buf_printf(b, ",\"%s\":null", key);
    else
        va_buf_printf(b, ",\"%s\":%lld", key, (long long)v);
}

int call_event_build(const struct call_event *e, const char *id, struct va_buf *out)
{
    size_t start = out->len;
    char t[32];
    call_event_time(e->now_ms, t);
    va_buf_append_str(out, "{\"id\":");
    va_json_str(out, id, strlen(id));
    ev_str(out, "type", e->type);
    va_buf_printf(
        out, ",\"version\":1,\"seq\":%u,\"occurred_at\":\"%s\",\"call\":{\"call_sid\":", e->seq, t);
    va_json_str(out, e->call_sid ? e->call_sid : "", e->call_sid ? strlen(e->call_sid) : 0);
    ev_str(out, "stream_sid", e->stream_sid);
    ev_str(out, "account_sid", e->account_sid);
    ev_str(out, "from", e->from ? e->from : "");
    ev_str(out, "to", e->to ? e->to : "");
    ev_str(out, "status", e->status);
    ev_str(out, "reason", e->reason);
    ev_time(out, "started_at", e->started_ms);
    ev_time(out, "ended_at", e->ended_ms);
    ev_int(out, "duration", e->duration_s);
    ev_str(out, "intent", e->intent);
    ev_str(out, "intent_source", e->intent_source);
    va_buf_append_str(out, ",\"transcript\":[");
    for (size_t i = 0; i < e->nturns; i++) {
        const struct call_event_turn *u = &e->turns[i];
        va_buf_append_str(out, i ? ",{\"role\":" : "{\"role\":");
        va_json_str(out, u->role, strlen(u->role));
        va_buf_append_str(out, ",\"text\":");
        va_json_str(out, u->text, u->len);
        va_buf_printf(out, ",\"at_ms\":%llu,\"interrupted\":%s}", (unsigned long long)u->at_ms,
                      u->interrupted ? "true" : "false");
    }
    va_buf_printf(out, "],\"transcript_dropped\":%llu,\"tool_calls\":[",
                  (unsigned long long)e->turns_dropped);
    for (size_t i = 0; i < e->ntools; i++) {
        const struct call_event_tool *u = &e->tools[i];
        va_buf_append_str(out, i ? ",{\"name\":" : "{\"name\":");
        va_json_str(out, u->name, strlen(u->name));
        ev_str(out, "call_id", u->call_id);
        ev_str(out, "outcome", u->outcome);
        va_buf_printf(out, ",\"latency_ms\":%llu,\"at_ms\":%llu,\"result\":",
                      (unsigned long long)u->latency_ms, (unsigned long long)u->at_ms);
        if (u->result && u->result_len)
            va_buf_append(out, u->result, u->result_len);
        else
            va_buf_append_str(out, "null");
        va_buf_append_char(out, '}');
    }
    va_buf_append_char(out, ']');
    if (e->audio) {
        const struct call_event_audio *a = e->audio;
        va_buf_printf(out,
                      ",\"audio\":{\"frames_in\":%llu,\"frames_out\":%llu,\"gaps_filled\":%llu,"
                      "\"silence_ms\":%llu,\"in_dropped\":%llu,\"out_dropped\":%llu,"
                      "\"barge_ins\":%llu,\"dtmf\":%llu}",
                      (unsigned long long)a->frames_in, (unsigned long long)a->frames_out,
                      (unsigned long long)a->gaps_filled, (unsigned long long)a->silence_ms,
                      (unsigned long long)a->in_dropped, (unsigned long long)a->out_dropped,
                      (unsigned long long)a->barge_ins, (unsigned long long)a->dtmf);
    }
    if (e->tw_status) {
        va_buf_append_str(out, ",\"twilio\":{\"call_status\":");
        va_json_str(out, e->tw_status, strlen(e->tw_status));
        ev_int(out, "duration", e->tw_duration);
        ev_str(out, "timestamp", e->tw_timestamp);
        va_buf_append_char(out, '}');
    }
    int err = va_buf_append_str(out, "}}");
    if (err) {
        out->len = start;
        return VA_ETOOBIG;
    }
    return 0;
}

int call_event_validate(const cJSON *schema, const char *json, size_t len, struct va_buf *why)
{
    cJSON *v = cJSON_ParseWithLength(json, len);
    if (!v) {
        va_buf_append_str(why, "not valid JSON");
        return VA_EINVAL;
    }
    struct mcp_schema_report rep;
    int err = mcp_schema_validate(schema, v, &rep);
    if (err)
        mcp_schema_format(&rep, MCP_SCHEMA_STYLE_SHORT, why);
    cJSON_Delete(v);
    return err;
}

void call_event_emit(struct va_ctx *ctx, const struct call_event *e)
{
    if (!ctx->events)
        return;
    char id[CALL_EVENT_ID_LEN + 1];
    struct va_buf out, why;
    call_event_new_id(id);
    va_buf_init(&out, CALL_EVENT_MAX_BYTES);
    va_buf_init(&why, 1024);
    if (call_event_build(e, id, &out)) {
        va_log_error(ctx->log, "events", "call event too large, not sent",
                     VA_LSTR("callSid", e->call_sid), VA_LSTR("type", e->type));
    } else {
        if (ctx->event_schema && call_event_validate(ctx->event_schema, out.data, out.len, &why))
            va_log_error(ctx->log, "events", "call event does not match its schema",
                         VA_LSTR("callSid", e->call_sid), VA_LSTR("type", e->type),
                         VA_LSTRN("reason", why.data, why.len));
        if (sb_events_submit(ctx->events, id, out.data, out.len) == 0)
            va_log_info(ctx->log, "events", "call event", VA_LSTR("callSid", e->call_sid),
                        VA_LSTR("type", e->type), VA_LINT("seq", e->seq), VA_LSTR("eventId", id),
                        VA_LINT("bytes", out.len));
    }
    va_buf_deinit(&why);
    va_buf_deinit(&out);
}
