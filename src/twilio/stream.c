/* src/twilio/stream.c: /ws/twilio: the WebSocket Twilio streams a call over. */
#include "twilio/stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call/call.h"
#include "call/rtlink.h"
#include "core/ctx.h"
#include "core/err.h"
#include "core/list.h"
#include "http/routes.h"
#include "http/server.h"
#include "http/ws.h"
#include "twilio/media.h"
#include "twilio/signature.h"

#define STREAM_CLOSE_TIMEOUT_MS 5000
/* Kernel send buffer per stream: 64 KiB is 8 s of mu-law. More would hide queued
 * audio from our own bound, and a clear could not reach it. */
#define STREAM_SNDBUF (64 * 1024)
#define STREAM_OUT_MAX (64 * 1024)

struct tw_stream {
    struct tw_hub *hub;
    struct tw_stream *prev, *next;
    struct va_ws *ws;
    struct call *call;
    char stream_sid[TW_SID_MAX + 1];
    char remote[46];
    bool closing;
};

struct tw_hub {
    struct va_ctx *ctx;
    uv_timer_t tick; /* one timer drives every call's housekeeping */
    bool tick_closed;
    struct tw_stream *streams;
    size_t active;
    /* scratch shared by all streams: a message is handled completely before the next */
    struct tw_event ev;
    uint8_t audio[STREAM_OUT_MAX];
    struct va_buf out;
    char err[160];
    char read_buf[VA_WS_READ_BUF]; /* every stream's socket reads */
};

static void hub_on_tick(uv_timer_t *t)
{
    struct tw_hub *hub = t->data;
    for (struct tw_stream *s = hub->streams; s; s = s->next)
        if (s->call && !s->closing)
            call_tick(s->call);
}

struct tw_hub *tw_hub_new(struct va_ctx *ctx)
{
    struct tw_hub *hub = va_xcalloc(1, sizeof(*hub));
    hub->ctx = ctx;
    va_buf_init(&hub->out, STREAM_OUT_MAX);
    uv_timer_init(ctx->loop, &hub->tick);
    hub->tick.data = hub;
    uv_timer_start(&hub->tick, hub_on_tick, CALL_TICK_MS, CALL_TICK_MS);
    return hub;
}

static void hub_on_tick_closed(uv_handle_t *h)
{
    struct tw_hub *hub = h->data;
    hub->tick_closed = true;
}

void tw_hub_free(struct tw_hub *hub)
{
    if (!hub)
        return;
    va_buf_deinit(&hub->out);
    free(hub);
}

size_t tw_hub_active(const struct tw_hub *hub)
{
    return hub ? hub->active : 0;
}

void tw_hub_close_all(struct tw_hub *hub, uint16_t code, const char *reason)
{
    if (hub && !uv_is_closing((uv_handle_t *)&hub->tick))
        uv_close((uv_handle_t *)&hub->tick, hub_on_tick_closed);
    for (struct tw_stream *s = hub ? hub->streams : NULL; s; s = s->next) {
        if (!s->closing) {
            s->closing = true;
            va_ws_close(s->ws, code, reason);
        }
    }
}

/* ---- the call's port: outbound messages to Twilio ---- */

static int stream_send_built(struct tw_stream *s, int err)
{
    if (!err && !s->closing)
        err = va_ws_send(s->ws, VA_WS_TEXT, s->hub->out.data, s->hub->out.len);
    va_buf_reset(&s->hub->out);
    return err;
}

static int stream_send_media(void *ud, const uint8_t *mulaw, size_t len)
{
    struct tw_stream *s = ud;
    return stream_send_built(s, tw_media_build_media(&s->hub->out, s->stream_sid, mulaw, len));
}

static int stream_send_mark(void *ud, const char *name)
{
    struct tw_stream *s = ud;
    return stream_send_built(s, tw_media_build_mark(&s->hub->out, s->stream_sid, name));
}

static int stream_send_clear(void *ud)
{
    struct tw_stream *s = ud;
    int err = stream_send_built(s, tw_media_build_clear(&s->hub->out, s->stream_sid));
    if (!err)
        va_ws_flush(s->ws); /* barge-in: the clear leaves now, not at the end of the turn */
    return err;
}

/* Closing the stream first makes Twilio run the TwiML after </Connect>: the apology. */
static void stream_hangup(void *ud, const char *reason)
{
    struct tw_stream *s = ud;
    if (s->closing)
        return;
    s->closing = true;
    va_ws_close(s->ws, VA_WS_INTERNAL, reason);
}

static const struct call_tw_port stream_port = {
    .send_media = stream_send_media,
    .send_mark = stream_send_mark,
    .send_clear = stream_send_clear,
    .hangup = stream_hangup,
};

/* ---- inbound messages ---- */

static void stream_fail(struct tw_stream *s, uint16_t code, const char *why)
{
    struct va_ctx *ctx = s->hub->ctx;
    va_log_warn(ctx->log, "twilio", "stream closed: protocol error",
                VA_LSTR("streamSid", s->stream_sid),
                VA_LSTR("callSid", s->call ? call_sid(s->call) : NULL), VA_LSTR("reason", why),
                VA_LINT("code", code), VA_LSTR("remote", s->remote));
    if (!s->closing) {
        s->closing = true;
        va_ws_close(s->ws, code, why);
    }
}

static void stream_start(struct tw_stream *s, const struct tw_event *ev)
{
    struct va_ctx *ctx = s->hub->ctx;
    const struct va_cfg *cfg = ctx->cfg;
    const struct tw_ev_start *st = &ev->start;
    if (s->call) {
        stream_fail(s, VA_WS_PROTOCOL_ERROR, "second start on one stream");
        return;
    }
    if (cfg->twilio_account_sid && strcmp(st->account_sid, cfg->twilio_account_sid) != 0) {
        stream_fail(s, VA_WS_POLICY, "start.accountSid does not match TWILIO_ACCOUNT_SID");
        return;
    }
    const char *param_sid = tw_start_param(st, "CallSid", NULL);
    if (param_sid && strcmp(param_sid, st->call_sid) != 0) {
        stream_fail(s, VA_WS_POLICY, "start.callSid does not match the CallSid parameter");
        return;
    }
    if (strcmp(st->encoding, "audio/x-mulaw") != 0 || st->sample_rate != 8000 ||
        st->channels != 1) {
        stream_fail(s, VA_WS_POLICY, "unsupported mediaFormat (want audio/x-mulaw, 8000, 1)");
        return;
    }
    snprintf(s->stream_sid, sizeof(s->stream_sid), "%s", st->stream_sid);
    struct call_info info = {
        .stream_sid = st->stream_sid,
        .call_sid = st->call_sid,
        .account_sid = st->account_sid,
        .from = tw_start_param(st, "From", NULL),
        .to = tw_start_param(st, "To", NULL),
    };
    /* AUDIO_ECHO is a line check without the model */
    bool model = !cfg->audio_echo && ctx->rtlink;
    int err = call_open(&s->call, ctx, &info, &stream_port, s, model ? &call_rtlink_port : NULL,
                        ctx->rtlink);
    if (err) {
        stream_fail(s, VA_WS_INTERNAL, va_strerror(err));
        return;
    }
    call_seq(s->call, ev->seq);
}

static void stream_on_message(void *ud, enum va_ws_opcode op, const char *data, size_t len)
{
    struct tw_stream *s = ud;
    struct tw_hub *hub = s->hub;
    if (s->closing)
        return;
    if (op != VA_WS_TEXT) {
        stream_fail(s, VA_WS_INVALID_DATA, "binary message (Twilio sends JSON text)");
        return;
    }
    uint64_t t0 = uv_hrtime();
    struct tw_event *ev = &hub->ev;
    int err =
        tw_media_parse(ev, data, len, hub->audio, sizeof(hub->audio), hub->err, sizeof(hub->err));
    if (err) {
        stream_fail(s, err == VA_ETOOBIG ? VA_WS_TOO_BIG : VA_WS_INVALID_DATA, hub->err);
        return;
    }
    if (ev->type == TW_EV_CONNECTED)
        return;
    if (ev->type == TW_EV_UNKNOWN) {
        va_log_debug(hub->ctx->log, "twilio", "unknown event ignored",
                     VA_LSTR("event", ev->unknown), VA_LSTR("streamSid", s->stream_sid));
        return;
    }
    if (ev->type == TW_EV_START) {
        stream_start(s, ev);
        return;
    }
    if (!s->call) {
        stream_fail(s, VA_WS_PROTOCOL_ERROR, "media stream event before start");
        return;
    }
    if (strcmp(ev->stream_sid, s->stream_sid) != 0) {
        stream_fail(s, VA_WS_POLICY, "streamSid differs from the one in start");
        return;
    }
    if (!call_seq(s->call, ev->seq))
        return;
    switch (ev->type) {
    case TW_EV_MEDIA:
        if (ev->media.track == TW_TRACK_INBOUND || ev->media.track == TW_TRACK_OTHER) {
            call_media_in(s->call, ev->media.timestamp, ev->media.payload, ev->media.payload_len);
            /* from the message in hand to its audio handed on, the parse included */
            va_metrics_observe(&hub->ctx->metrics, VA_H_ADDED_IN,
                               (double)(uv_hrtime() - t0) / 1e9);
        }
        break;
    case TW_EV_MARK:
        call_mark_in(s->call, ev->mark.name);
        break;
    case TW_EV_DTMF:
        call_dtmf_in(s->call, ev->dtmf.digit);
        break;
    case TW_EV_STOP:
        /* the call is over; Twilio closes the socket next, we may as well */
        call_end(s->call, "stop");
        s->call = NULL;
        s->closing = true;
        va_ws_close(s->ws, VA_WS_NORMAL, "stop");
        break;
    default:
        break;
    }
}

static void stream_on_closed(void *ud, uint16_t code, const char *reason)
{
    struct tw_stream *s = ud;
    struct tw_hub *hub = s->hub;
    if (s->call) {
        char why[160];
        snprintf(why, sizeof(why), "socket closed (%u%s%s)", code, *reason ? ": " : "", reason);
        /* closed by us (shutdown, protocol error, hang-up): our side ended the call */
        if (s->closing)
            call_end_failed(s->call, why);
        else
            call_end(s->call, why);
    } else if (!s->stream_sid[0]) {
        va_log_info(hub->ctx->log, "twilio", "stream closed before start", VA_LINT("code", code),
                    VA_LSTR("reason", reason), VA_LSTR("remote", s->remote));
    }
    VA_LIST_REMOVE(hub->streams, s, prev, next);
    hub->active--;
    hub->ctx->active_calls--;
    free(s);
}

/* ---- the upgrade ---- */

static int stream_check_sig(const struct va_cfg *cfg, const struct va_http_req *req,
                            const char **why)
{
    size_t sig_len = 0;
    const char *sig = va_http_req_header(req, "x-twilio-signature", &sig_len);
    if (!sig) {
        *why = "signature missing";
        return VA_EAUTH;
    }
    /* Twilio signs the stream URL exactly as our TwiML gave it, wss:// and no params. */
    int err =
        tw_sig_check(cfg->twilio_auth_token, strlen(cfg->twilio_auth_token), cfg->public_ws_url,
                     strlen(cfg->public_ws_url), NULL, 0, sig, sig_len, TW_SIG_TRY_SLASH);
    if (err)
        *why = "signature invalid";
    return err;
}

void tw_stream_upgrade(struct va_ctx *ctx, struct va_http_conn *c, const struct va_http_req *req)
{
    const struct va_cfg *cfg = ctx->cfg;
    if (!req->upgrade) {
        va_http_respond_error(c, 426, "upgrade_required", "this is a WebSocket endpoint",
                              "Upgrade: websocket\r\n");
        return;
    }
    char accept[29];
    const char *why = NULL;
    int status = va_ws_handshake_check(req, accept, &why);
    if (status) {
        va_log_warn(ctx->log, "twilio", "upgrade refused", VA_LSTR("reason", why),
                    VA_LSTR("remote", req->client.text));
        va_http_respond_error(c, status, "bad_handshake", why,
                              status == 426 ? "Sec-WebSocket-Version: 13\r\n" : NULL);
        return;
    }
    if (cfg->twilio_auth_token && (!cfg->public_ws_url || stream_check_sig(cfg, req, &why))) {
        if (!cfg->public_ws_url)
            why = "PUBLIC_WS_URL unset: cannot know the URL Twilio signed";
        va_log_warn(ctx->log, "twilio", "upgrade rejected", VA_LSTR("reason", why),
                    VA_LSTR("remote", req->client.text));
        va_http_respond_error(c, 403, "forbidden", "invalid Twilio signature", NULL);
        return;
    }
    const char *refuse = NULL;
    if (!va_calls_accepting(ctx, &refuse)) {
        va_log_warn(ctx->log, "twilio", "upgrade refused", VA_LSTR("reason", refuse),
                    VA_LSTR("remote", req->client.text));
        va_http_respond_error(c, 503, "unavailable", refuse, "Retry-After: 1\r\n");
        return;
    }

    uv_os_sock_t fd;
    char *pre = NULL;
    size_t pre_len = 0;
    int err = va_http_upgrade(c, 101, &fd, &pre, &pre_len);
    if (err) {
        va_http_respond_error(c, 503, "unavailable", va_strerror(err), NULL);
        return;
    }
    struct tw_hub *hub = ctx->twilio;
    struct tw_stream *s = va_xcalloc(1, sizeof(*s));
    s->hub = hub;
    snprintf(s->remote, sizeof(s->remote), "%s", req->client.text);
    struct va_ws_cfg wcfg = {
        .max_message = cfg->ws_max_message_bytes,
        .max_queue = cfg->ws_max_send_queue_bytes,
        .close_timeout_ms = STREAM_CLOSE_TIMEOUT_MS,
        .sndbuf = STREAM_SNDBUF,
        .read_buf = hub->read_buf,
    };
    struct va_ws_cb wcb = {.on_message = stream_on_message, .on_closed = stream_on_closed};
    err = va_ws_open(&s->ws, ctx->loop, ctx->log, fd, accept, NULL, pre, pre_len, s->remote, &wcfg,
                     &wcb, s);
    free(pre);
    if (err) {
        va_log_error(ctx->log, "twilio", "stream open failed", VA_LSTR("reason", va_strerror(err)),
                     VA_LSTR("remote", s->remote));
        free(s);
        return;
    }
    VA_LIST_PUSH(hub->streams, s, prev, next);
    hub->active++;
    ctx->active_calls++;
    va_log_info(ctx->log, "twilio", "stream connected", VA_LSTR("remote", s->remote),
                VA_LINT("activeCalls", ctx->active_calls));
}
