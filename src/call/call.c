/* src/call/call.c: one call: inbound clock, counters, recording, transcript, summary. */
#include "call/call.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio/mulaw.h"
#include "audio/wav.h"
#include "call/event.h"
#include "call/internal.h"
#include "core/ctx.h"
#include "core/err.h"
#include "mcp/tools.h"
#include "supabase/events.h"

#define CALL_DECODE_CHUNK 1024

static void call_free(struct call *c)
{
    for (size_t i = 0; i < c->ntoolrecs; i++)
        free(c->toolrecs[i].result);
    free(c->toolrecs);
    bridge_deinit(c);
    va_buf_deinit(&c->turn_text);
    free(c->turns);
    free(c);
}

/* Drops one hold (a connection or the recording); the last one frees an ended call. */
void call_release(struct call *c)
{
    if (--c->holds == 0 && c->ended)
        call_free(c);
}

static void call_on_rec_closed(void *ud, int err)
{
    struct call *c = ud;
    if (err)
        va_log_warn(c->ctx->log, "call", "recording incomplete", VA_LSTR("callSid", c->call_sid),
                    VA_LSTR("reason", va_strerror(err)));
    c->rec = NULL;
    call_release(c);
}

static void call_on_rec_error(void *ud, int err)
{
    struct call *c = ud;
    va_log_error(c->ctx->log, "call", "recording failed", VA_LSTR("callSid", c->call_sid),
                 VA_LSTR("reason", va_strerror(err)));
}

static const struct audio_rec_cb call_rec_cb = {
    .on_error = call_on_rec_error,
    .on_closed = call_on_rec_closed,
};

/* <dir>/<sid>.wav with the SID reduced to safe characters: it comes from the peer. */
static void call_start_recording(struct call *c)
{
    const char *dir = c->ctx->cfg->recordings_dir;
    char name[CALL_SID_MAX + 1];
    size_t i = 0;
    for (; c->call_sid[i] && i < CALL_SID_MAX; i++) {
        char ch = c->call_sid[i];
        bool safe = (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
                    (ch >= 'A' && ch <= 'Z') || ch == '-' || ch == '_';
        name[i] = safe ? ch : '_';
    }
    name[i] = '\0';
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s.wav", dir, i ? name : "unknown");
    int err = audio_rec_open(&c->rec, c->ctx->loop, c->ctx->log, path, &call_rec_cb, c);
    if (err) {
        va_log_error(c->ctx->log, "call", "cannot record", VA_LSTR("callSid", c->call_sid),
                     VA_LSTR("path", path), VA_LSTR("reason", va_strerror(err)));
        return;
    }
    c->holds++;
}

static uint64_t call_wall_ms(void)
{
    uv_timeval64_t tv;
    uv_gettimeofday(&tv);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

/* The intent and where it came from: the model's set_call_intent, else the tools used. */
static const char *call_intent(const struct call *c, const char **source)
{
    if (c->intent[0]) {
        *source = "model";
        return c->intent;
    }
    const char *by_tool = NULL;
    for (size_t i = 0; i < c->ntoolrecs; i++) {
        if (strcmp(c->toolrecs[i].name, "redeem_voucher") == 0)
            by_tool = "voucher_redemption";
        else if (!by_tool && strcmp(c->toolrecs[i].name, "get_member_balance") == 0)
            by_tool = "balance_inquiry";
    }
    *source = by_tool ? "tools" : "none";
    return by_tool ? by_tool : "unknown";
}

/* Builds the call's event of that type, checks it against the schema and spools it. */
static void call_emit(struct call *c, const char *type)
{
    struct va_ctx *ctx = c->ctx;
    if (!ctx->events)
        return;
    static const char *const roles[] = {"caller", "agent", "dtmf"};
    struct call_event_turn *turns = c->nturns ? va_xcalloc(c->nturns, sizeof(*turns)) : NULL;
    for (size_t i = 0; i < c->nturns; i++)
        turns[i] = (struct call_event_turn){.role = roles[c->turns[i].role],
                                            .text = c->turn_text.data + c->turns[i].off,
                                            .len = c->turns[i].len,
                                            .at_ms = c->turns[i].at_ms,
                                            .interrupted = c->turns[i].interrupted};
    struct call_event_tool tools[CALL_TOOLRECS];
    for (size_t i = 0; i < c->ntoolrecs; i++) {
        const struct call_toolrec *r = &c->toolrecs[i];
        tools[i] = (struct call_event_tool){.name = r->name,
                                            .call_id = r->call_id[0] ? r->call_id : NULL,
                                            .outcome = r->outcome,
                                            .latency_ms = r->latency_ms,
                                            .at_ms = r->at_ms,
                                            .result = r->result,
                                            .result_len = r->result_len};
    }
    struct call_event_audio audio = {
        .frames_in = c->frames_in,
        .frames_out = c->frames_out,
        .gaps_filled = c->gaps_filled,
        .silence_ms = c->silence_ms,
        .in_dropped = c->in_dropped,
        .out_dropped = c->out_dropped,
        .barge_ins = c->barge_ins,
        .dtmf = c->dtmf,
    };
    bool end = strcmp(type, "call.ended") == 0;
    uint64_t now = call_wall_ms();
    const char *reason = NULL;
    if (end)
        reason = c->failed && strncmp(c->end_reason, "failed: ", 8) == 0 ? c->end_reason + 8
                                                                         : c->end_reason;
    const char *source;
    const char *intent = call_intent(c, &source);
    struct call_event e = {
        .type = type,
        .seq = c->ev_seq++,
        .now_ms = now,
        .call_sid = c->call_sid,
        .stream_sid = c->stream_sid,
        .account_sid = c->account_sid[0] ? c->account_sid : NULL,
        .from = c->from,
        .to = c->to,
        .status = !end        ? "in-progress"
                  : c->failed ? "failed"
                              : "completed",
        .reason = reason,
        .started_ms = c->start_wall_ms,
        .ended_ms = end ? now : 0,
        .duration_s = end ? (int64_t)((now - c->start_wall_ms + 500) / 1000) : -1,
        .intent = intent,
        .intent_source = source,
        .turns = turns,
        .nturns = c->nturns,
        .turns_dropped = c->turns_dropped,
        .tools = tools,
        .ntools = c->ntoolrecs,
        .audio = &audio,
        .tw_duration = -1,
    };
    call_event_emit(ctx, &e);
    free(turns);
}

int call_open(struct call **out, struct va_ctx *ctx, const struct call_info *info,
              const struct call_tw_port *port, void *port_ud, const struct call_rt_port *rt,
              void *rt_ud)
{
    const struct va_cfg *cfg = ctx->cfg;
    struct call *c = va_xcalloc(1, sizeof(*c));
    c->ctx = ctx;
    c->port = port;
    c->port_ud = port_ud;
    c->rt = rt;
    c->rt_ud = rt_ud;
    snprintf(c->stream_sid, sizeof(c->stream_sid), "%s", info->stream_sid);
    snprintf(c->call_sid, sizeof(c->call_sid), "%s", info->call_sid);
    snprintf(c->from, sizeof(c->from), "%s", info->from ? info->from : "");
    snprintf(c->to, sizeof(c->to), "%s", info->to ? info->to : "");
    snprintf(c->account_sid, sizeof(c->account_sid), "%s",
             info->account_sid ? info->account_sid : "");
    c->start_ms = uv_now(ctx->loop);
    c->start_wall_ms = call_wall_ms();
    c->last_media_ms = c->start_ms;
    va_buf_init(&c->turn_text, CALL_TURN_TEXT_MAX);
    /* echo plays audio back, which one-way mode forbids */
    c->echo = !rt && cfg->audio_echo && cfg->duplex_enabled;
    int err = bridge_open(c);
    if (err) {
        call_free(c);
        return err;
    }
    if (cfg->recordings_dir)
        call_start_recording(c);
    va_log_info(ctx->log, "call", "call started", VA_LSTR("callSid", c->call_sid),
                VA_LSTR("streamSid", c->stream_sid), VA_LBOOL("recording", c->rec != NULL),
                VA_LBOOL("echo", c->echo), VA_LBOOL("model", rt != NULL));
    call_emit(c, "call.started");
    *out = c;
    if (c->rt_refused) {
        char why[96];
        snprintf(why, sizeof(why), "realtime connect failed: %s", va_strerror(c->rt_refused));
        call_fail(c, why); /* the port's hangup only asks for a close: c lives on */
    }
    return 0;
}

bool call_seq(struct call *c, uint64_t seq)
{
    if (c->have_seq && seq <= c->last_seq) {
        c->seq_dups++;
        return false;
    }
    if (c->have_seq && seq > c->last_seq + 1)
        c->seq_gaps += seq - c->last_seq - 1;
    c->have_seq = true;
    c->last_seq = seq;
    return true;
}

/* The agent's audio as it leaves for Twilio: it plays from now on the call's clock. */
void call_send_agent(struct call *c, const uint8_t *mulaw, size_t len)
{
    int err = c->port->send_media(c->port_ud, mulaw, len);
    if (err) {
        c->out_dropped += len;
        return;
    }
    c->frames_out++;
    c->ctx->metrics.frames_out++;
    c->bytes_out += len;
    uint64_t at = c->agent_next > c->in_samples ? c->agent_next : c->in_samples;
    c->agent_next = at + len;
    if (c->rec) {
        int16_t pcm[AUDIO_FRAME_SAMPLES_8K];
        for (size_t off = 0; off < len; off += AUDIO_FRAME_SAMPLES_8K) {
            size_t n = len - off < AUDIO_FRAME_SAMPLES_8K ? len - off : AUDIO_FRAME_SAMPLES_8K;
            audio_mulaw_decode(mulaw + off, n, pcm);
            audio_rec_agent(c->rec, at + off, pcm, n);
        }
    }
}

/* Caller audio on the call's clock: everything downstream hears exactly this. */
static void call_deliver(struct call *c, const uint8_t *mulaw, size_t len)
{
    if (c->rec) {
        int16_t pcm[CALL_DECODE_CHUNK];
        for (size_t off = 0; off < len; off += CALL_DECODE_CHUNK) {
            size_t n = len - off < CALL_DECODE_CHUNK ? len - off : CALL_DECODE_CHUNK;
            audio_mulaw_decode(mulaw + off, n, pcm);
            audio_rec_caller(c->rec, c->in_samples + off, pcm, n);
        }
    }
    c->in_samples += len;
    bridge_caller_audio(c, mulaw, len);
}

/* Silence (mu-law 0xFF) for a jump in the media timestamps: the model must hear
 * continuous audio, and the recording keeps the caller's timeline. */
static void call_fill_silence(struct call *c, uint64_t ms)
{
    static const uint8_t silence[AUDIO_FRAME_BYTES] = {[0 ... AUDIO_FRAME_BYTES - 1] =
                                                           AUDIO_MULAW_SILENCE};
    c->gaps_filled++;
    c->silence_ms += ms;
    /* the recording already holds zeros where nothing was written */
    c->in_samples += ms * 8;
    for (uint64_t left = ms * 8; left;) {
        size_t n = left < sizeof(silence) ? (size_t)left : sizeof(silence);
        bridge_caller_audio(c, silence, n);
        left -= n;
    }
}

void call_media_in(struct call *c, uint64_t ts_ms, const uint8_t *mulaw, size_t len)
{
    if (c->ended)
        return;
    c->frames_in++;
    c->ctx->metrics.frames_in++;
    c->bytes_in += len;
    c->last_media_ms = uv_now(c->ctx->loop);
    c->stall_filled = false;
    if (c->have_ts && ts_ms > c->next_ts_ms && ts_ms - c->next_ts_ms >= CALL_MIN_GAP_FILL_MS) {
        uint64_t gap = ts_ms - c->next_ts_ms;
        call_fill_silence(c, gap < CALL_MAX_GAP_FILL_MS ? gap : CALL_MAX_GAP_FILL_MS);
    }
    c->have_ts = true;
    c->next_ts_ms = ts_ms + len / 8;
    if (len)
        call_deliver(c, mulaw, len);
}

void call_mark_in(struct call *c, const char *name)
{
    c->marks++;
    bridge_mark(c, name);
}

void call_dtmf_in(struct call *c, char digit)
{
    c->dtmf++;
    char d[2] = {digit, '\0'};
    va_log_info(c->ctx->log, "call", "dtmf", VA_LSTR("callSid", c->call_sid), VA_LSTR("digit", d));
    call_turn_add(c, CALL_TURN_DTMF, uv_now(c->ctx->loop) - c->start_ms, d, 1, false);
}

void call_tick(struct call *c)
{
    if (c->ended)
        return;
    uint64_t now = uv_now(c->ctx->loop);
    /* The caller is speaking but media stopped: server VAD needs audio to hear the
     * end of the turn (reference twilio.md §5). Once per stall. */
    if (c->caller_speaking && !c->stall_filled && now - c->last_media_ms >= CALL_STALL_MS) {
        c->stall_filled = true;
        call_fill_silence(c, CALL_STALL_FILL_MS);
        /* already heard: a later timestamp jump must not fill this second again */
        c->next_ts_ms += CALL_STALL_FILL_MS;
    }
    bridge_tick(c, now);
}

/* Keeps turns in arrival order by their time; bounded in count and text. */
void call_turn_add(struct call *c, enum call_turn_role role, uint64_t at_ms, const char *text,
                   size_t len, bool interrupted)
{
    if (c->nturns == CALL_TURNS_MAX || va_buf_append(&c->turn_text, text, len)) {
        c->turns_dropped++;
        return;
    }
    if (c->nturns == c->turns_cap) {
        size_t cap = c->turns_cap ? c->turns_cap * 2 : 16;
        c->turns_cap = cap < CALL_TURNS_MAX ? cap : CALL_TURNS_MAX;
        c->turns = va_xrealloc(c->turns, c->turns_cap * sizeof(*c->turns));
    }
    size_t i = c->nturns++;
    while (i > 0 && c->turns[i - 1].at_ms > at_ms) {
        c->turns[i] = c->turns[i - 1];
        i--;
    }
    c->turns[i] = (struct call_turn){.role = role,
                                     .at_ms = at_ms,
                                     .interrupted = interrupted,
                                     .off = (uint32_t)(c->turn_text.len - len),
                                     .len = (uint32_t)len};
    static const char *const roles[] = {"caller", "agent", "dtmf"};
    va_log_debug(c->ctx->log, "call", "turn", VA_LSTR("callSid", c->call_sid),
                 VA_LSTR("role", roles[role]), VA_LINT("atMs", at_ms),
                 VA_LBOOL("interrupted", interrupted), VA_LSTRN("text", text, len));
}

const char *call_sid(const struct call *c)
{
    return c->call_sid;
}

/* Our side failed: end the stream so that Twilio plays the apology. */
void call_fail(struct call *c, const char *reason)
{
    if (c->ended)
        return;
    va_log_warn(c->ctx->log, "call", "call failed", VA_LSTR("callSid", c->call_sid),
                VA_LSTR("reason", reason));
    c->failed = true;
    snprintf(c->end_reason, sizeof(c->end_reason), "failed: %s", reason);
    c->port->hangup(c->port_ud, reason);
}

void call_end(struct call *c, const char *reason)
{
    if (c->ended)
        return;
    c->ended = true;
    if (!c->end_reason[0])
        snprintf(c->end_reason, sizeof(c->end_reason), "%s", reason);
    bridge_close(c);
    uint64_t ms = uv_now(c->ctx->loop) - c->start_ms;
    va_log_info(c->ctx->log, "call", "call ended", VA_LSTR("callSid", c->call_sid),
                VA_LSTR("streamSid", c->stream_sid), VA_LSTR("reason", c->end_reason),
                VA_LINT("durationMs", ms), VA_LINT("audioMs", c->in_samples / 8),
                VA_LINT("framesIn", c->frames_in), VA_LINT("bytesIn", c->bytes_in),
                VA_LINT("framesOut", c->frames_out), VA_LINT("bytesOut", c->bytes_out),
                VA_LINT("seqGaps", c->seq_gaps), VA_LINT("seqDups", c->seq_dups),
                VA_LINT("gapsFilled", c->gaps_filled), VA_LINT("silenceMs", c->silence_ms),
                VA_LINT("dtmf", c->dtmf), VA_LINT("marks", c->marks),
                VA_LINT("staleMarks", c->stale_marks), VA_LINT("bargeIns", c->barge_ins),
                VA_LINT("truncates", c->truncates), VA_LINT("deletes", c->deletes),
                VA_LINT("reactUsMax", c->react_us_max), VA_LINT("inDropped", c->in_dropped),
                VA_LINT("outDropped", c->out_dropped), VA_LINT("turns", c->nturns),
                VA_LINT("turnsDropped", c->turns_dropped));
    call_emit(c, "call.ended");
    struct va_metrics *mt = &c->ctx->metrics;
    va_metrics_call_ended(mt, c->failed ? VA_CALL_FAILED : VA_CALL_COMPLETED, (double)ms / 1000.0);
    mt->dropped_in_bytes += c->in_dropped;
    mt->dropped_out_bytes += c->out_dropped;
    if (c->rec)
        audio_rec_close(c->rec); /* releases its hold from on_closed */
    if (c->holds == 0)
        call_free(c);
}

void call_end_failed(struct call *c, const char *reason)
{
    if (c->ended)
        return;
    if (!c->failed) {
        c->failed = true;
        snprintf(c->end_reason, sizeof(c->end_reason), "failed: %s", reason);
    }
    call_end(c, reason);
}

void call_tool_record(struct call *c, const char *name, const char *call_id, const char *outcome,
                      uint64_t latency_ms, const char *result, size_t result_len)
{
    if (c->ended)
        return;
    if (strcmp(name, TOOLS_INTENT) == 0 && strcmp(outcome, "success") == 0 && result) {
        cJSON *v = cJSON_ParseWithLength(result, result_len);
        const cJSON *in = cJSON_GetObjectItemCaseSensitive(v, "intent");
        if (cJSON_IsString(in))
            snprintf(c->intent, sizeof(c->intent), "%s", in->valuestring);
        cJSON_Delete(v);
    }
    va_metrics_tool(&c->ctx->metrics, name, outcome, (double)latency_ms / 1000.0);
    if (c->ntoolrecs == CALL_TOOLRECS)
        return; /* the first ones are kept; the log has every call */
    if (!c->toolrecs)
        c->toolrecs = va_xcalloc(CALL_TOOLRECS, sizeof(*c->toolrecs));
    struct call_toolrec *r = &c->toolrecs[c->ntoolrecs++];
    snprintf(r->name, sizeof(r->name), "%s", name);
    snprintf(r->call_id, sizeof(r->call_id), "%s", call_id ? call_id : "");
    r->outcome = outcome;
    r->latency_ms = latency_ms;
    r->at_ms = uv_now(c->ctx->loop) - c->start_ms;
    if (result && result_len && result_len <= CALL_TOOLREC_RESULT_MAX && result[0] == '{') {
        r->result = va_xstrndup(result, result_len);
        r->result_len = result_len;
    }
    call_emit(c, "call.updated");
}
