/* src/call/call.c: one call: inbound clock, counters, recording, summary. */
#include "call/call.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio/frame.h"
#include "audio/mulaw.h"
#include "audio/wav.h"
#include "core/ctx.h"
#include "core/err.h"

#define CALL_SID_MAX 64
#define CALL_NUM_MAX 32
#define CALL_DECODE_CHUNK 1024
/* Echo keeps at most this much of the caller's audio queued (1 s). */
#define CALL_ECHO_MAX_BYTES 8000

struct call {
    struct va_ctx *ctx;
    const struct call_tw_port *port;
    void *port_ud;
    char stream_sid[CALL_SID_MAX + 1];
    char call_sid[CALL_SID_MAX + 1];
    char from[CALL_NUM_MAX + 1];
    char to[CALL_NUM_MAX + 1];
    uint64_t start_ms;
    bool ended;

    /* inbound clock: what downstream hears, in 8 kHz samples since the start */
    bool have_ts;
    uint64_t next_ts_ms; /* where the next media chunk should start */
    uint64_t in_samples;
    uint64_t agent_next; /* first free agent sample in the recording's timeline */

    /* sequence numbers */
    bool have_seq;
    uint64_t last_seq;

    /* counters for the summary line */
    uint64_t frames_in, bytes_in, frames_out, bytes_out;
    uint64_t seq_gaps, seq_dups, gaps_filled, silence_ms, dtmf, marks;

    struct audio_rec *rec;
    bool echo;
    struct audio_playout echo_q;
};

static void call_free(struct call *c)
{
    if (c->echo)
        audio_playout_deinit(&c->echo_q);
    free(c);
}

static void call_on_rec_closed(void *ud, int err)
{
    struct call *c = ud;
    if (err)
        va_log_warn(c->ctx->log, "call", "recording incomplete", VA_LSTR("callSid", c->call_sid),
                    VA_LSTR("reason", va_strerror(err)));
    c->rec = NULL;
    if (c->ended)
        call_free(c);
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
    if (err)
        va_log_error(c->ctx->log, "call", "cannot record", VA_LSTR("callSid", c->call_sid),
                     VA_LSTR("path", path), VA_LSTR("reason", va_strerror(err)));
}

int call_open(struct call **out, struct va_ctx *ctx, const struct call_info *info,
              const struct call_tw_port *port, void *port_ud)
{
    struct call *c = va_xcalloc(1, sizeof(*c));
    c->ctx = ctx;
    c->port = port;
    c->port_ud = port_ud;
    snprintf(c->stream_sid, sizeof(c->stream_sid), "%s", info->stream_sid);
    snprintf(c->call_sid, sizeof(c->call_sid), "%s", info->call_sid);
    snprintf(c->from, sizeof(c->from), "%s", info->from ? info->from : "");
    snprintf(c->to, sizeof(c->to), "%s", info->to ? info->to : "");
    c->start_ms = uv_now(ctx->loop);
    /* echo plays audio back, which one-way mode forbids */
    c->echo = ctx->cfg->audio_echo && ctx->cfg->duplex_enabled;
    if (c->echo && audio_playout_init(&c->echo_q, CALL_ECHO_MAX_BYTES)) {
        free(c);
        return VA_EINVAL;
    }
    if (ctx->cfg->recordings_dir)
        call_start_recording(c);
    va_log_info(ctx->log, "call", "call started", VA_LSTR("callSid", c->call_sid),
                VA_LSTR("streamSid", c->stream_sid), VA_LBOOL("recording", c->rec != NULL),
                VA_LBOOL("echo", c->echo));
    *out = c;
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
static void call_send_agent(struct call *c, const uint8_t *mulaw, size_t len)
{
    int err = c->port->send_media(c->port_ud, mulaw, len);
    if (err)
        return;
    c->frames_out++;
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
    if (c->echo) {
        if (audio_playout_push(&c->echo_q, mulaw, len))
            audio_playout_flush(&c->echo_q); /* fell behind: start over rather than lag */
        uint8_t frame[AUDIO_FRAME_BYTES];
        while (audio_playout_pop(&c->echo_q, frame))
            call_send_agent(c, frame, sizeof(frame));
    }
}

/* Silence (mu-law 0xFF) for a jump in the media timestamps. The recording already
 * holds zeros where nothing was written, so advancing the clock is enough there. */
static void call_fill_silence(struct call *c, uint64_t ms)
{
    c->gaps_filled++;
    c->silence_ms += ms;
    c->in_samples += ms * 8;
}

void call_media_in(struct call *c, uint64_t ts_ms, const uint8_t *mulaw, size_t len)
{
    if (c->ended)
        return;
    c->frames_in++;
    c->bytes_in += len;
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
    (void)name;
    c->marks++;
}

void call_dtmf_in(struct call *c, char digit)
{
    c->dtmf++;
    char d[2] = {digit, '\0'};
    va_log_info(c->ctx->log, "call", "dtmf", VA_LSTR("callSid", c->call_sid), VA_LSTR("digit", d));
}

const char *call_sid(const struct call *c)
{
    return c->call_sid;
}

void call_end(struct call *c, const char *reason)
{
    if (c->ended)
        return;
    c->ended = true;
    struct audio_rec_stats rs = {0};
    if (c->rec)
        audio_rec_stats(c->rec, &rs);
    uint64_t ms = uv_now(c->ctx->loop) - c->start_ms;
    va_log_info(c->ctx->log, "call", "call ended", VA_LSTR("callSid", c->call_sid),
                VA_LSTR("streamSid", c->stream_sid), VA_LSTR("reason", reason),
                VA_LINT("durationMs", ms), VA_LINT("audioMs", c->in_samples / 8),
                VA_LINT("framesIn", c->frames_in), VA_LINT("bytesIn", c->bytes_in),
                VA_LINT("framesOut", c->frames_out), VA_LINT("bytesOut", c->bytes_out),
                VA_LINT("seqGaps", c->seq_gaps), VA_LINT("seqDups", c->seq_dups),
                VA_LINT("gapsFilled", c->gaps_filled), VA_LINT("silenceMs", c->silence_ms),
                VA_LINT("dtmf", c->dtmf), VA_LINT("marks", c->marks),
                VA_LINT("recBlocksDropped", rs.blocks_dropped));
    if (c->rec) {
        audio_rec_close(c->rec); /* frees us from on_closed */
        return;
    }
    call_free(c);
}
