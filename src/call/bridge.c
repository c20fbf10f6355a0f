/* src/call/bridge.c: a call's Realtime session: setup, caller audio in, agent audio
 * out paced by Twilio's mark echoes, barge-in, transcripts, session rotation.
 * See ../shared/reference/openai-realtime.md §2, §6 and twilio.md §5. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio/mulaw.h"
#include "call/internal.h"
#include "core/ctx.h"
#include "core/err.h"
#include "mcp/tools.h"

/* Caller audio kept while the session is not ready yet: 2 s. */
#define BRIDGE_PENDING_MS 2000

struct call_shared {
    struct rt_event ev;
    uint8_t *audio;
    size_t audio_cap;
    struct va_buf out;
    char err[160];
};

struct call_shared *call_shared_new(size_t max_message)
{
    struct call_shared *s = va_xcalloc(1, sizeof(*s));
    /* base64 carries 3 bytes in 4 characters */
    s->audio_cap = max_message / 4 * 3 + 3;
    s->audio = va_xmalloc(s->audio_cap);
    va_buf_init(&s->out, max_message);
    return s;
}

void call_shared_free(struct call_shared *s)
{
    if (!s)
        return;
    va_buf_deinit(&s->out);
    free(s->audio);
    free(s);
}

static uint64_t bridge_now(const struct call *c)
{
    return uv_now(c->ctx->loop);
}

/* ---- sending to the model ---- */

static int bridge_send_built(struct call *c, void *conn, int err)
{
    struct va_buf *out = &c->ctx->calls->out;
    if (!err && conn)
        err = c->rt->send(conn, out->data, out->len);
    va_buf_reset(out);
    if (err && err != VA_ECLOSED)
        va_log_warn(c->ctx->log, "call", "realtime send failed", VA_LSTR("callSid", c->call_sid),
                    VA_LSTR("reason", va_strerror(err)));
    return err;
}

static int bridge_send_session_update(struct call *c, void *conn)
{
    const struct va_cfg *cfg = c->ctx->cfg;
    static const char *const eagerness[] = {"low", "medium", "high", "auto"};
    struct rt_session_cfg s = {
        .instructions = cfg->openai_instructions,
        .voice = cfg->openai_realtime_voice,
        .format = cfg->openai_audio_format == VA_FMT_PCM24 ? RT_FMT_PCM24 : RT_FMT_PCMU,
        .vad = cfg->openai_vad == VA_VAD_SEMANTIC ? RT_VAD_SEMANTIC
               : cfg->openai_vad == VA_VAD_NONE   ? RT_VAD_NONE
                                                  : RT_VAD_SERVER,
        .vad_threshold = cfg->openai_vad_threshold,
        .vad_prefix_padding_ms = cfg->openai_vad_prefix_ms,
        .vad_silence_ms = cfg->openai_vad_silence_ms,
        .vad_eagerness = eagerness[cfg->openai_vad_eagerness & 3],
        .create_response = true,
        .interrupt_response = true,
        .transcription_model = cfg->openai_transcription_model,
        .transcription_language = cfg->openai_transcription_language,
        .noise_reduction = "near_field",
    };
    struct va_buf tools, instr;
    va_buf_init(&tools, 64 * 1024);
    va_buf_init(&instr, 256 * 1024);
    if (c->ctx->registry && cfg->mcp_enabled &&
        mcp_registry_list_model(c->ctx->registry, &tools) == 0) {
        s.tools_json = tools.data;
        /* the intent tool is in the list: ask for it, whatever the instructions say */
        if (mcp_registry_find(c->ctx->registry, TOOLS_INTENT, strlen(TOOLS_INTENT),
                              MCP_OFFER_MODEL) &&
            va_buf_printf(&instr, "%s%s%s", s.instructions ? s.instructions : "",
                          s.instructions && s.instructions[0] ? "\n\n" : "",
                          TOOLS_INTENT_CLAUSE) == 0)
            s.instructions = instr.data;
    }
    int err = bridge_send_built(c, conn, rt_build_session_update(&c->ctx->calls->out, &s, "cfg_1"));
    va_buf_deinit(&instr);
    va_buf_deinit(&tools);
    return err;
}

/* One input_audio_buffer.append of what the batch holds. */
static void bridge_flush_batch(struct call *c)
{
    if (!c->in_batch.len)
        return;
    int err = bridge_send_built(
        c, c->conn,
        rt_build_append(&c->ctx->calls->out, (const uint8_t *)c->in_batch.data, c->in_batch.len));
    if (err)
        c->in_dropped += c->in_batch.len;
    /* what piled up before the session was ready is not kept for a batch's worth */
    size_t keep = c->batch_bytes > c->hold_bytes ? c->batch_bytes : c->hold_bytes;
    if (c->in_batch.cap > 2 * keep + 64)
        va_buf_deinit(&c->in_batch);
    else
        va_buf_reset(&c->in_batch);
}

/* Audio for the model in its format; batched; held (bounded, oldest dropped and
 * counted) until the session is ready. quiet: the caller's frame is quiet
 * (audio_mulaw_quiet).
 *
 * Quiet frames while the caller is not speaking wait up to INBOUND_SILENCE_HOLD_MS: each
 * append costs a TLS record and a write, and for these the model's VAD has nothing to
 * find. The first louder frame takes them along at once, so an onset reaches the VAD
 * as soon as it would have; while speech is under way (speech_started until
 * speech_stopped) every frame leaves at once, so the silence that ends a turn is not
 * delayed either. */
static void bridge_queue_input(struct call *c, const uint8_t *audio, size_t len, bool quiet)
{
    if (va_buf_append(&c->in_batch, audio, len)) {
        /* only before the session is ready can the batch outgrow its bound */
        size_t drop = len > c->in_batch.len ? c->in_batch.len : len;
        va_buf_consume(&c->in_batch, drop);
        c->in_dropped += drop;
        if (va_buf_append(&c->in_batch, audio, len))
            c->in_dropped += len;
    }
    if (c->rt_state != CALL_RT_READY || c->in_batch.len < c->batch_bytes)
        return;
    if (quiet && !c->caller_speaking && c->in_batch.len < c->hold_bytes)
        return;
    bridge_flush_batch(c);
}

void bridge_caller_audio(struct call *c, const uint8_t *mulaw, size_t len)
{
    if (c->echo) {
        if (audio_playout_push(&c->outq, mulaw, len))
            audio_playout_flush(&c->outq); /* fell behind: start over rather than lag */
        uint8_t frame[AUDIO_FRAME_BYTES];
        while (audio_playout_pop(&c->outq, frame))
            call_send_agent(c, frame, sizeof(frame));
        return;
    }
    if (c->rt_state == CALL_RT_NONE || c->rt_state == CALL_RT_FAILED)
        return;
    bool quiet = c->hold_bytes && audio_mulaw_quiet(mulaw, len);
    if (!c->pcm24) {
        bridge_queue_input(c, mulaw, len, quiet);
        return;
    }
    /* PCM16 24 kHz: decode, resample up, little-endian bytes */
    for (size_t off = 0; off < len; off += AUDIO_FRAME_SAMPLES_8K) {
        size_t n = len - off < AUDIO_FRAME_SAMPLES_8K ? len - off : AUDIO_FRAME_SAMPLES_8K;
        int16_t pcm8[AUDIO_FRAME_SAMPLES_8K];
        int16_t pcm24[AUDIO_FRAME_SAMPLES_24K + 16];
        uint8_t bytes[sizeof(pcm24)];
        size_t made = 0;
        audio_mulaw_decode(mulaw + off, n, pcm8);
        if (audio_resampler_process(&c->up, pcm8, n, pcm24, sizeof(pcm24) / 2, &made))
            continue;
        for (size_t i = 0; i < made; i++) {
            bytes[2 * i] = (uint8_t)((uint16_t)pcm24[i] & 0xff);
            bytes[2 * i + 1] = (uint8_t)((uint16_t)pcm24[i] >> 8);
        }
        bridge_queue_input(c, bytes, made * 2, quiet);
    }
}

/* ---- agent audio out: queue, pacing, marks ---- */

static int bridge_find_item(struct call *c, const char *id)
{
    for (int i = 0; i < CALL_ITEMS; i++)
        if (c->items[i].used && strcmp(c->items[i].id, id) == 0)
            return i;
    return -1;
}

static int bridge_new_item(struct call *c, const char *id, const char *response_id)
{
    int i = c->item_next;
    c->item_next = (c->item_next + 1) % CALL_ITEMS;
    /* a slot still referenced by queued audio or marks would mislabel them; with one
     * audio item per response and a clear at every barge-in this never happens */
    c->items[i] = (struct call_item){.used = true, .first_ms = bridge_now(c) - c->start_ms};
    snprintf(c->items[i].id, sizeof(c->items[i].id), "%s", id);
    snprintf(c->items[i].response_id, sizeof(c->items[i].response_id), "%s", response_id);
    return i;
}

static void bridge_seg_push(struct call *c, int item, size_t bytes)
{
    if (c->seg_len) {
        struct call_seg *last = &c->segs[(c->seg_head + c->seg_len - 1) % CALL_SEGS];
        if (last->item == item) {
            last->bytes += bytes;
            return;
        }
    }
    if (c->seg_len == CALL_SEGS) {
        /* more item changes queued than we track: attribute to the newest */
        c->segs[(c->seg_head + c->seg_len - 1) % CALL_SEGS].bytes += bytes;
        return;
    }
    c->segs[(c->seg_head + c->seg_len) % CALL_SEGS] = (struct call_seg){item, bytes};
    c->seg_len++;
}

#define BRIDGE_MARK_NAME_MAX (RT_ID_MAX + 48)

/* g<generation>:<item_id>:<ms of the item sent up to the mark> */
static void bridge_mark_name(const struct call *c, const struct call_mark *m, char *out, size_t n)
{
    snprintf(out, n, "g%" PRIu32 ":%s:%" PRIu64, m->gen, c->items[m->item].id, m->item_ms);
}

static void bridge_send_mark(struct call *c, int item)
{
    if (c->mark_len == c->marks_cap)
        return; /* the next one covers this audio too */
    struct call_mark m = {
        .gen = c->gen, .item = item, .item_ms = c->items[item].sent / 8, .total = c->gen_sent};
    char name[BRIDGE_MARK_NAME_MAX];
    bridge_mark_name(c, &m, name, sizeof(name));
    if (c->port->send_mark(c->port_ud, name))
        return;
    c->marks_q[(c->mark_head + c->mark_len) % c->marks_cap] = m;
    c->mark_len++;
    c->since_mark = 0;
}

/* Sends whole frames while Twilio is less than OUTBOUND_AHEAD_MS ahead of playback. */
static void bridge_pump(struct call *c)
{
    uint64_t ahead = (uint64_t)c->ctx->cfg->outbound_ahead_ms * 8;
    uint8_t frame[AUDIO_FRAME_BYTES];
    while (c->gen_sent - c->gen_heard < ahead && audio_playout_pop(&c->outq, frame)) {
        /* the frame's bytes belong to the items at the front of the queue */
        int item = -1;
        size_t left = sizeof(frame);
        bool item_ended = false;
        while (left && c->seg_len) {
            struct call_seg *sg = &c->segs[c->seg_head];
            size_t take = sg->bytes < left ? sg->bytes : left;
            item = sg->item;
            c->items[item].sent += take;
            sg->bytes -= take;
            left -= take;
            if (sg->bytes == 0) {
                c->seg_head = (c->seg_head + 1) % CALL_SEGS;
                c->seg_len--;
                item_ended = true;
            }
        }
        /* Twilio had played all we sent, mid-reply: the caller heard a gap */
        if (item >= 0 && c->gen_sent == c->gen_heard && c->items[item].sent > sizeof(frame))
            c->ctx->metrics.frames_late++;
        call_send_agent(c, frame, sizeof(frame));
        c->gen_sent += sizeof(frame);
        c->since_mark += sizeof(frame);
        if (item >= 0 && (c->since_mark >= CALL_MARK_EVERY || item_ended))
            bridge_send_mark(c, item);
    }
}

static void bridge_agent_audio(struct call *c, int item, const uint8_t *audio, size_t len)
{
    const uint8_t *mulaw = audio;
    uint8_t conv[4096];
    size_t n = len;
    if (c->pcm24) {
        /* PCM16 24 kHz little-endian; a delta may split a sample */
        size_t done = 0;
        while (done < len) {
            int16_t pcm24[1024];
            size_t ns = 0;
            if (c->pcm_odd_have) {
                pcm24[ns++] = (int16_t)(uint16_t)(c->pcm_odd[0] | (audio[done++] << 8));
                c->pcm_odd_have = false;
            }
            while (ns < 1024 && len - done >= 2) {
                pcm24[ns++] = (int16_t)(uint16_t)(audio[done] | (audio[done + 1] << 8));
                done += 2;
            }
            if (len - done == 1 && ns < 1024) {
                c->pcm_odd[0] = audio[done++];
                c->pcm_odd_have = true;
            }
            int16_t pcm8[400];
            size_t made = 0;
            if (audio_resampler_process(&c->down, pcm24, ns, pcm8, 400, &made) == 0) {
                audio_mulaw_encode(pcm8, made, conv);
                c->items[item].rx_ms_x8 += made;
                if (audio_playout_push(&c->outq, conv, made)) {
                    c->out_dropped += made;
                } else {
                    bridge_seg_push(c, item, made);
                }
            }
        }
        bridge_pump(c);
        return;
    }
    c->items[item].rx_ms_x8 += n;
    if (audio_playout_push(&c->outq, mulaw, n)) {
        c->out_dropped += n; /* a reply longer than OUTBOUND_QUEUE_BYTES: the rest is lost */
    } else {
        bridge_seg_push(c, item, n);
    }
    bridge_pump(c);
}

/* The item's audio is complete: pad the last partial frame so it plays too. */
static void bridge_audio_done(struct call *c, int item)
{
    c->items[item].done = true;
    size_t pad = audio_playout_finish(&c->outq);
    if (pad)
        bridge_seg_push(c, item, pad);
    bridge_pump(c);
}

void bridge_mark(struct call *c, const char *name)
{
    /* Only marks in flight count: a clear empties that list, so echoes of cleared marks
     * (an older generation) and names that are not ours find nothing here. */
    size_t k = 0;
    char want[BRIDGE_MARK_NAME_MAX];
    for (; k < c->mark_len; k++) {
        bridge_mark_name(c, &c->marks_q[(c->mark_head + k) % c->marks_cap], want, sizeof(want));
        if (strcmp(want, name) == 0)
            break;
    }
    if (k == c->mark_len) {
        c->stale_marks++;
        return;
    }
    /* echoes come in order: the marks before this one have played too */
    for (size_t i = 0; i <= k; i++) {
        const struct call_mark *m = &c->marks_q[c->mark_head];
        struct call_item *it = &c->items[m->item];
        c->gen_heard = m->total;
        if (m->item_ms > it->heard_ms)
            it->heard_ms = m->item_ms;
        c->mark_head = (c->mark_head + 1) % c->marks_cap;
        c->mark_len--;
    }
    bridge_pump(c);
}

/* ---- barge-in ---- */

static bool bridge_agent_audible(const struct call *c)
{
    return audio_playout_bytes(&c->outq) > 0 || c->gen_sent > c->gen_heard;
}

static void bridge_barge_in(struct call *c, uint64_t t0_ns)
{
    struct va_buf *out = &c->ctx->calls->out;
    /* 1. stop playback now; echoes of the old generation are not playback */
    c->port->send_clear(c->port_ud);
    uint64_t react_us = (uv_hrtime() - t0_ns) / 1000;
    c->gen++;
    audio_playout_flush(&c->outq);
    c->seg_len = 0;
    c->mark_len = 0;
    c->gen_sent = c->gen_heard = 0;
    c->since_mark = 0;
    c->barge_ins++;
    c->ctx->metrics.barge_ins++;
    va_metrics_observe(&c->ctx->metrics, VA_H_BARGE_IN, (double)react_us / 1e6);
    c->react_us_sum += react_us;
    if (react_us > c->react_us_max)
        c->react_us_max = react_us;

    /* 2-5. the item being played: cut the conversation at what the caller heard */
    int playing = -1;
    for (int k = 1; k <= CALL_ITEMS; k++) {
        int i = (c->item_next - k + CALL_ITEMS) % CALL_ITEMS;
        if (c->items[i].used && c->items[i].sent > 0 && !c->items[i].interrupted) {
            playing = i;
            break;
        }
    }
    const char *action = "none";
    uint64_t end_ms = 0;
    if (playing >= 0) {
        struct call_item *it = &c->items[playing];
        uint64_t sent_ms = it->sent / 8, rx_ms = it->rx_ms_x8 / 8;
        end_ms = it->heard_ms;
        if (end_ms > sent_ms)
            end_ms = sent_ms;
        if (end_ms > rx_ms)
            end_ms = rx_ms;
        if (end_ms >= rx_ms && it->done && strcmp(it->response_id, c->active_resp_id) != 0) {
            action = "fully heard";
        } else {
            it->interrupted = true;
            it->cut_ms = end_ms;
            if (end_ms == 0) {
                action = "delete";
                c->deletes++;
                bridge_send_built(c, c->conn, rt_build_item_delete(out, it->id));
            } else {
                action = "truncate";
                c->truncates++;
                bridge_send_built(c, c->conn, rt_build_truncate(out, it->id, end_ms));
            }
        }
        /* 7. the rest of that response's audio was never meant to be heard */
        snprintf(c->dropped_resp_id, sizeof(c->dropped_resp_id), "%s", it->response_id);
    }
    /* 6. with interrupt_response the service cancels by itself; only without VAD
     * would nobody else do it */
    if (c->active_resp && c->ctx->cfg->openai_vad == VA_VAD_NONE)
        bridge_send_built(c, c->conn, rt_build_response_cancel(out));
    va_log_info(c->ctx->log, "call", "barge-in", VA_LSTR("callSid", c->call_sid),
                VA_LSTR("action", action),
                VA_LSTR("itemId", playing >= 0 ? c->items[playing].id : NULL),
                VA_LINT("audioEndMs", end_ms), VA_LINT("reactUs", react_us));
}

/* ---- the model's function calls (reference §7) ---- */

static void bridge_tool_output(struct call *c, struct call_tool *t, const char *json, size_t len)
{
    t->answered = true;
    bridge_send_built(c, c->conn,
                      rt_build_function_output(&c->ctx->calls->out, t->call_id, json, len));
    c->want_create = true;
}

/* One response.create after all outputs of the model's turn are in and it has finished. */
static void bridge_maybe_create(struct call *c)
{
    if (!c->want_create || c->active_resp || c->ended)
        return;
    for (int i = 0; i < CALL_TOOLS; i++)
        if (c->tools[i] && !c->tools[i]->answered)
            return;
    c->want_create = false;
    bridge_send_built(c, c->conn, rt_build_response_create(&c->ctx->calls->out, NULL));
}

static void bridge_tool_free(struct call_tool *t)
{
    struct call *c = t->call;
    for (int i = 0; i < CALL_TOOLS; i++)
        if (c->tools[i] == t)
            c->tools[i] = NULL;
    free(t->args);
    free(t);
    call_release(c);
}

static void bridge_tool_on_done(struct mcp_call_done *done, const struct mcp_call_result *res)
{
    struct call_tool *t = done->ud;
    struct call *c = t->call;
    t->running = false;
    if (!done->abandoned && !t->answered && !c->ended) {
        va_log_info(c->ctx->log, "call", "tool done", VA_LSTR("callSid", c->call_sid),
                    VA_LSTR("tool", t->tool->def.name), VA_LBOOL("isError", res->is_error),
                    VA_LINT("ms", bridge_now(c) - t->started_ms));
        bridge_tool_output(c, t, res->json, res->len);
        call_tool_record(c, t->tool->def.name, t->call_id, res->is_error ? "failure" : "success",
                         bridge_now(c) - t->started_ms, res->json, res->len);
    }
    bool ended = c->ended;
    bridge_tool_free(t);
    if (!ended)
        bridge_maybe_create(c);
}

static void bridge_tool_start(struct call *c, struct call_tool *t)
{
    t->deferred = false;
    t->running = true;
    t->started_ms = bridge_now(c);
    struct mcp_call_ctx cx = {.origin = MCP_ORIGIN_MODEL,
                              .tool = t->tool->def.name,
                              .idempotency_key = t->call_id,
                              .timeout_ms = t->tool->def.timeout_ms};
    mcp_call_done_init(&t->done, bridge_tool_on_done, t);
    mcp_registry_call_json(t->tool, t->args, t->args_len, &cx, &t->done);
}

static void bridge_function_call(struct call *c, const struct rt_event *ev)
{
    const struct mcp_tool *tool =
        c->ctx->registry && c->ctx->cfg->mcp_enabled
            ? mcp_registry_find(c->ctx->registry, ev->name, strlen(ev->name), MCP_OFFER_MODEL)
            : NULL;
    int slot = -1;
    for (int i = 0; i < CALL_TOOLS && slot < 0; i++)
        if (!c->tools[i])
            slot = i;
    if (!tool || slot < 0 || ev->text_cut) {
        const char *why = !tool ? "{\"success\":false,\"error\":\"no such tool\"}"
                          : slot < 0
                              ? "{\"success\":false,\"error\":\"too many tool calls at once\"}"
                              : "{\"success\":false,\"error\":\"arguments too long\"}";
        bridge_send_built(
            c, c->conn,
            rt_build_function_output(&c->ctx->calls->out, ev->call_id, why, strlen(why)));
        c->want_create = true;
        call_tool_record(c, ev->name[0] ? ev->name : "?", ev->call_id, "error", 0, why,
                         strlen(why));
        return;
    }
    struct call_tool *t = va_xcalloc(1, sizeof(*t));
    t->call = c;
    t->tool = tool;
    snprintf(t->call_id, sizeof(t->call_id), "%s", ev->call_id);
    snprintf(t->response_id, sizeof(t->response_id), "%s", ev->response_id);
    t->args = va_xstrndup(ev->text, ev->text_len);
    t->args_len = ev->text_len;
    c->tools[slot] = t;
    c->holds++; /* a late result must find the call's memory */
    va_log_info(c->ctx->log, "call", "tool call", VA_LSTR("callSid", c->call_sid),
                VA_LSTR("tool", tool->def.name),
                VA_LBOOL("sideEffects", tool->def.has_side_effects));
    /* a side effect waits for its response to complete: a barged-in request never runs */
    if (tool->def.has_side_effects && c->active_resp &&
        strcmp(c->active_resp_id, ev->response_id) == 0) {
        t->deferred = true;
        return;
    }
    bridge_tool_start(c, t);
}

static void bridge_tools_response_done(struct call *c, const char *response_id, bool completed)
{
    for (int i = 0; i < CALL_TOOLS; i++) {
        struct call_tool *t = c->tools[i];
        if (!t || !t->deferred || strcmp(t->response_id, response_id) != 0)
            continue;
        if (completed) {
            bridge_tool_start(c, t);
            continue;
        }
        static const char skipped[] =
            "{\"success\":false,\"error\":\"not done: the caller interrupted\"}";
        bridge_tool_output(c, t, skipped, sizeof(skipped) - 1);
        call_tool_record(c, t->tool->def.name, t->call_id, "cancelled", 0, skipped,
                         sizeof(skipped) - 1);
        bridge_tool_free(t);
    }
    bridge_maybe_create(c);
}

/* Timeouts and the end of the call: answer now, let the handler finish later. */
static void bridge_tools_expire(struct call *c, uint64_t now, bool all)
{
    static const char timeout[] = "{\"success\":false,\"error\":\"the tool timed out\"}";
    for (int i = 0; i < CALL_TOOLS; i++) {
        struct call_tool *t = c->tools[i];
        if (!t)
            continue;
        if (t->deferred && all) {
            bridge_tool_free(t);
            continue;
        }
        if (!t->running || t->done.abandoned)
            continue;
        if (all || now - t->started_ms >= t->tool->def.timeout_ms) {
            t->done.abandoned = true;
            if (t->tool->def.cancel)
                t->tool->def.cancel(t->tool->def.tool_ud, &t->done);
            if (!all && !t->answered) {
                bridge_tool_output(c, t, timeout, sizeof(timeout) - 1);
                call_tool_record(c, t->tool->def.name, t->call_id, "timeout", now - t->started_ms,
                                 timeout, sizeof(timeout) - 1);
                bridge_maybe_create(c);
            }
        }
    }
}

/* ---- server events ---- */

static void bridge_session_ready(struct call *c, void *conn)
{
    const struct va_cfg *cfg = c->ctx->cfg;
    struct va_buf *out = &c->ctx->calls->out;
    if (conn == c->next_conn) {
        /* rotation: seed the new session with the conversation so far, then switch */
        struct va_buf recap;
        va_buf_init(&recap, CALL_TURN_TEXT_MAX + 4096);
        va_buf_append_str(&recap, "This phone call continues from an earlier session. The "
                                  "conversation so far:\n");
        for (size_t i = 0; i < c->nturns; i++) {
            static const char *const who[] = {"Caller", "Assistant", "Caller pressed"};
            const struct call_turn *t = &c->turns[i];
            va_buf_printf(&recap, "%s: %.*s%s\n", who[t->role], (int)t->len,
                          c->turn_text.data + t->off, t->interrupted ? " (interrupted)" : "");
        }
        bridge_send_built(c, conn, rt_build_message_item(out, "system", recap.data, recap.len));
        va_buf_deinit(&recap);
        void *old = c->conn;
        c->conn = conn;
        c->next_conn = NULL;
        c->session_ms = bridge_now(c);
        c->rt->close(old, 1000, "session rotated");
        va_log_info(c->ctx->log, "call", "session rotated", VA_LSTR("callSid", c->call_sid),
                    VA_LINT("turns", c->nturns));
        return;
    }
    c->rt_state = CALL_RT_READY;
    c->session_ms = bridge_now(c);
    va_log_info(c->ctx->log, "call", "session ready", VA_LSTR("callSid", c->call_sid),
                VA_LINT("ms", c->session_ms - c->start_ms));
    if (cfg->openai_greeting)
        bridge_send_built(c, c->conn, rt_build_response_create(out, cfg->openai_greeting));
    /* what the caller said while we were connecting */
    if (c->in_batch.len)
        bridge_flush_batch(c);
}

static bool bridge_benign_error(const struct rt_event *ev)
{
    static const char *const codes[] = {"response_cancel_not_active",
                                        "conversation_already_has_active_response"};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (strcmp(ev->error_code, codes[i]) == 0)
            return true;
    /* an over-long truncate is clamped by the server; a vanished item is a race */
    return strstr(ev->text, "already shorter than") != NULL ||
           strstr(ev->text, "does not exist") != NULL;
}

/* Cuts an interrupted agent turn to the heard fraction, at a word boundary. */
static size_t bridge_cut_text(const char *text, size_t len, uint64_t heard, uint64_t total)
{
    if (total == 0 || heard >= total)
        return len;
    size_t n = (size_t)((double)len * (double)heard / (double)total);
    while (n > 0 && text[n] != ' ' && n < len)
        n--;
    while (n > 0 && text[n - 1] == ' ')
        n--;
    return n;
}

static void bridge_event(struct call *c, void *conn, struct rt_event *ev)
{
    struct va_log *log = c->ctx->log;
    if (conn != c->conn) {
        /* the session being prepared (rotation) or one being closed */
        if (conn == c->next_conn && ev->type == RT_EV_SESSION_UPDATED)
            bridge_session_ready(c, conn);
        else if (conn == c->next_conn && ev->type == RT_EV_ERROR)
            va_log_warn(log, "call", "realtime error (new session)",
                        VA_LSTR("callSid", c->call_sid), VA_LSTR("code", ev->error_code),
                        VA_LSTR("message", ev->text));
        return;
    }
    switch (ev->type) {
    case RT_EV_SESSION_UPDATED:
        if (c->rt_state == CALL_RT_CONFIGURING) {
            enum rt_audio_format want = c->pcm24 ? RT_FMT_PCM24 : RT_FMT_PCMU;
            /* audio may flow only once the service confirms our format (reference §2) */
            if (!ev->formats_known || ev->in_format != want || ev->out_format != want) {
                call_fail(c, "session.updated does not confirm the audio format");
                return;
            }
            va_metrics_observe(&c->ctx->metrics, VA_H_RT_CONNECT,
                               (double)(uv_hrtime() - c->rt_connect_ns) / 1e9);
            bridge_session_ready(c, conn);
        }
        break;
    case RT_EV_SPEECH_STARTED: {
        uint64_t t0 = uv_hrtime();
        c->caller_speaking = true;
        if (c->ctx->cfg->duplex_enabled && bridge_agent_audible(c))
            bridge_barge_in(c, t0);
        break;
    }
    case RT_EV_SPEECH_STOPPED:
        c->caller_speaking = false;
        break;
    case RT_EV_RESPONSE_CREATED:
        c->active_resp = true;
        snprintf(c->active_resp_id, sizeof(c->active_resp_id), "%s", ev->response_id);
        break;
    case RT_EV_RESPONSE_DONE:
        if (strcmp(ev->response_id, c->active_resp_id) == 0) {
            c->active_resp = false;
            c->active_resp_id[0] = '\0';
        }
        bridge_tools_response_done(c, ev->response_id, strcmp(ev->status, "completed") == 0);
        break;
    case RT_EV_AUDIO_DELTA: {
        if (!c->ctx->cfg->duplex_enabled || strcmp(ev->response_id, c->dropped_resp_id) == 0)
            break;
        int item = bridge_find_item(c, ev->item_id);
        if (item < 0)
            item = bridge_new_item(c, ev->item_id, ev->response_id);
        bridge_agent_audio(c, item, ev->audio, ev->audio_len);
        break;
    }
    case RT_EV_AUDIO_DONE: {
        int item = bridge_find_item(c, ev->item_id);
        if (item >= 0 && !c->items[item].interrupted)
            bridge_audio_done(c, item);
        break;
    }
    case RT_EV_TRANSCRIPT_DONE: {
        int item = bridge_find_item(c, ev->item_id);
        const struct call_item *it = item >= 0 ? &c->items[item] : NULL;
        bool cut = it && it->interrupted;
        size_t len = cut ? bridge_cut_text(ev->text, ev->text_len, it->cut_ms, it->rx_ms_x8 / 8)
                         : ev->text_len;
        uint64_t at = it ? it->first_ms : bridge_now(c) - c->start_ms;
        call_turn_add(c, CALL_TURN_AGENT, at, ev->text, len, cut);
        break;
    }
    case RT_EV_INPUT_TRANSCRIPT:
        call_turn_add(c, CALL_TURN_CALLER, bridge_now(c) - c->start_ms, ev->text, ev->text_len,
                      false);
        break;
    case RT_EV_FUNCTION_CALL:
        bridge_function_call(c, ev);
        break;
    case RT_EV_ERROR:
        if (bridge_benign_error(ev)) {
            va_log_debug(log, "call", "realtime race", VA_LSTR("callSid", c->call_sid),
                         VA_LSTR("code", ev->error_code), VA_LSTR("message", ev->text));
            break;
        }
        va_log_warn(log, "call", "realtime error", VA_LSTR("callSid", c->call_sid),
                    VA_LSTR("type", ev->error_type), VA_LSTR("code", ev->error_code),
                    VA_LSTR("message", ev->text));
        va_metrics_rt_error(&c->ctx->metrics, ev->error_code);
        if (c->rt_state == CALL_RT_CONFIGURING)
            call_fail(c, "session.update refused");
        break;
    default:
        break;
    }
}

/* ---- the port's callbacks ---- */

void call_rt_opened(struct call *c, void *conn)
{
    if (c->ended)
        return;
    if (conn == c->conn)
        c->rt_state = CALL_RT_CONFIGURING;
    /* send before any audio: the session starts as PCM 24 kHz */
    bridge_send_session_update(c, conn);
}

void call_rt_message(struct call *c, void *conn, const char *json, size_t len)
{
    if (c->ended)
        return;
    uint64_t t0 = uv_hrtime();
    uint64_t frames = c->frames_out;
    struct call_shared *sh = c->ctx->calls;
    int err =
        rt_event_parse(&sh->ev, json, len, sh->audio, sh->audio_cap, sh->err, sizeof(sh->err));
    if (err) {
        va_log_warn(c->ctx->log, "call", "bad realtime message", VA_LSTR("callSid", c->call_sid),
                    VA_LSTR("reason", sh->err));
        return;
    }
    bridge_event(c, conn, &sh->ev);
    /* a delta that went straight out (the pacing window had room): its added latency */
    if (sh->ev.type == RT_EV_AUDIO_DELTA && c->frames_out > frames)
        va_metrics_observe(&c->ctx->metrics, VA_H_ADDED_OUT, (double)(uv_hrtime() - t0) / 1e9);
}

void call_rt_closed(struct call *c, void *conn, int err, uint16_t code, const char *reason)
{
    bool current = conn == c->conn;
    if (conn == c->conn)
        c->conn = NULL;
    if (conn == c->next_conn)
        c->next_conn = NULL;
    if (!c->ended && current) {
        char why[200];
        if (err)
            snprintf(why, sizeof(why), "realtime connect failed: %s", va_strerror(err));
        else
            snprintf(why, sizeof(why), "realtime closed (%u%s%s)", code, *reason ? ": " : "",
                     reason);
        c->rt_state = CALL_RT_FAILED;
        call_fail(c, why);
    } else if (!c->ended && err) {
        va_log_warn(c->ctx->log, "call", "session rotation failed", VA_LSTR("callSid", c->call_sid),
                    VA_LSTR("reason", va_strerror(err)));
    }
    call_release(c);
}

/* ---- lifecycle ---- */

int bridge_open(struct call *c)
{
    const struct va_cfg *cfg = c->ctx->cfg;
    int err = audio_playout_init(&c->outq, c->echo ? 8000 : cfg->outbound_queue_bytes);
    if (err)
        return err;
    c->marks_cap = cfg->outbound_ahead_ms / 20 + 2;
    c->marks_q = calloc(c->marks_cap, sizeof(*c->marks_q));
    if (!c->marks_q)
        return -ENOMEM;
    if (!c->rt)
        return 0;
    c->pcm24 = cfg->openai_audio_format == VA_FMT_PCM24;
    size_t rate_bytes = c->pcm24 ? 48 : 8; /* per ms */
    c->batch_bytes = cfg->inbound_batch_ms * rate_bytes;
    c->hold_bytes = cfg->inbound_silence_hold_ms * rate_bytes;
    size_t pending = BRIDGE_PENDING_MS * rate_bytes; /* more than any batch or hold */
    va_buf_init(&c->in_batch, pending > c->batch_bytes ? pending : c->batch_bytes);
    if (c->pcm24) {
        err = audio_resampler_init(&c->up, 8000, 24000, AUDIO_RESAMPLER_QUALITY);
        if (!err)
            err = audio_resampler_init(&c->down, 24000, 8000, AUDIO_RESAMPLER_QUALITY);
        if (err)
            return err;
    }
    c->rt_state = CALL_RT_CONNECTING;
    c->rt_connect_ns = uv_hrtime();
    err = c->rt->connect(c->rt_ud, c, &c->conn);
    if (err) {
        /* Refused before any socket (the breaker opened since this stream's upgrade): the
         * stream has started all the same, so the call is opened and put on record, and
         * call_open() fails it at once (the caller hears the apology). */
        c->rt_state = CALL_RT_FAILED;
        c->rt_refused = err;
        return 0;
    }
    c->holds++;
    return 0;
}

void bridge_tick(struct call *c, uint64_t now)
{
    if (c->rt_state != CALL_RT_READY)
        return;
    bridge_tools_expire(c, now, false);
    /* a batch the caller's silence left half full */
    if (c->in_batch.len && now - c->last_media_ms >= c->ctx->cfg->inbound_batch_ms)
        bridge_flush_batch(c);
    /* rotate the session before the service's 60-minute cap, between turns */
    uint64_t max_ms = (uint64_t)c->ctx->cfg->realtime_session_max_s * 1000;
    if (!c->next_conn && now - c->session_ms >= max_ms && !c->active_resp && !c->caller_speaking &&
        !bridge_agent_audible(c)) {
        if (c->rt->connect(c->rt_ud, c, &c->next_conn) == 0)
            c->holds++;
        else
            c->next_conn = NULL;
    }
}

void bridge_close(struct call *c)
{
    bridge_tools_expire(c, 0, true);
    if (c->conn)
        c->rt->close(c->conn, 1000, "call ended");
    if (c->next_conn)
        c->rt->close(c->next_conn, 1000, "call ended");
}

void bridge_deinit(struct call *c)
{
    audio_playout_deinit(&c->outq);
    free(c->marks_q);
    c->marks_q = NULL;
    va_buf_deinit(&c->in_batch);
    if (c->pcm24) {
        audio_resampler_deinit(&c->up);
        audio_resampler_deinit(&c->down);
    }
}
