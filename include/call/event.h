/* include/call/event.h: the call events posted to the call-webhook Edge Function.
 *
 * The payload's contract is supabase/functions/call-webhook/call_event.schema.json,
 * compiled into the binary (call_event_schema_json); every event built here is checked
 * against it before it is spooled, the function checks it again. Building is pure: a view
 * of the call in, JSON text out. */
#ifndef VA_CALL_EVENT_H
#define VA_CALL_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/buf.h"

extern const char call_event_schema_json[];

#define CALL_EVENT_ID_LEN 36 /* a UUID v4 in text */
#define CALL_EVENT_MAX_BYTES (512 * 1024)

struct call_event_turn {
    const char *role; /* "caller", "agent", "dtmf" */
    const char *text;
    size_t len;
    uint64_t at_ms;
    bool interrupted;
};

struct call_event_tool {
    const char *name;
    const char *call_id;
    const char *outcome; /* success, failure, error, timeout, cancelled */
    uint64_t latency_ms;
    uint64_t at_ms;
    const char *result; /* the tool's JSON object, or NULL */
    size_t result_len;
};

struct call_event_audio {
    uint64_t frames_in, frames_out, gaps_filled, silence_ms, in_dropped, out_dropped, barge_ins,
        dtmf;
};

/* Strings may be NULL where the schema allows null ("" for from/to when unknown). */
struct call_event {
    const char *type; /* call.started, call.updated, call.ended, call.status */
    uint32_t seq;
    uint64_t now_ms; /* wall clock, ms since the epoch: occurred_at */
    const char *call_sid, *stream_sid, *account_sid, *from, *to;
    const char *status; /* in-progress, completed, failed, rejected */
    const char *reason;
    uint64_t started_ms, ended_ms; /* wall clock; 0 = null */
    int64_t duration_s;            /* < 0 = null */
    const char *intent, *intent_source;
    const struct call_event_turn *turns;
    size_t nturns;
    uint64_t turns_dropped;
    const struct call_event_tool *tools;
    size_t ntools;
    const struct call_event_audio *audio; /* NULL: left out */
    const char *tw_status;                /* call.status: Twilio's CallStatus; else NULL */
    int64_t tw_duration;                  /* < 0 = null */
    const char *tw_timestamp;
};

/* A fresh UUID v4 (OpenSSL's RNG). */
void call_event_new_id(char out[CALL_EVENT_ID_LEN + 1]);

/* Appends the event with the given id as one JSON object. 0 or VA_ETOOBIG. */
int call_event_build(const struct call_event *e, const char *id, struct va_buf *out);

/* Checks json[0, len) against the compiled-in schema (parsed once by the caller with
 * cJSON_Parse(call_event_schema_json)). 0, or VA_EINVAL with the reasons appended to why. */
int call_event_validate(const cJSON *schema, const char *json, size_t len, struct va_buf *why);

struct va_ctx;

/* Builds e under a fresh id, checks it against ctx->event_schema (a mismatch is logged as
 * an error and the event still goes out: the function's dead letter keeps it) and hands it
 * to ctx->events. Nothing when storage is off (ctx->events NULL). */
void call_event_emit(struct va_ctx *ctx, const struct call_event *e);

/* RFC 3339 UTC with milliseconds: "2026-11-25T16:00:00.123Z" (25 bytes with the NUL). */
void call_event_time(uint64_t ms, char out[32]);

#endif
