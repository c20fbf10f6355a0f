/* bench/loadgen/twilio.c: va-loadgen twilio, N callers as Twilio Media Streams
 * (../shared/reference/twilio.md §7; the same script as tests/fakes/twilio.js for a call
 * without --answer): WebSocket upgrade to the daemon, connected, start, then one media
 * message every 20 ms of the caller's audio, real time, each call at its own phase (call i
 * starts at a random time within --ramp-ms). What the daemon sends plays on a real-time
 * clock of 8 bytes per ms, stepped with the caller's frames (every 20 ms); a mark is
 * echoed when playback reaches it, a clear drops the queued audio and echoes the queued
 * marks. Ends with stop and a Close.
 *
 *   --port P        the daemon's port on --host (127.0.0.1); required
 *   --calls N       concurrent calls (1)
 *   --audio FILE    raw mu-law 8 kHz the callers say; required
 *   --path PATH     WebSocket path (/ws/twilio)
 *   --ramp-ms M     spread the call starts over M ms (1000)
 *   --offset-ms M   each call starts at a random point within the first M ms of the audio
 *                   and says the audio's length - M from there: calls at independent points
 *                   of their conversations, as real calls are (0: every call from the start,
 *                   all of them in step with each other)
 *   --timeout-ms T  a call not over T ms after its start is an error (audio + 30 s)
 *   --stamp PREFIX  frame stamps (lg.h): PREFIX.<proc>.sent, .recv, .lag for frames with
 *                   sound, PREFIX.<proc + 1>.sent for quiet ones (audio_mulaw_quiet():
 *                   what the daemon may hold, INBOUND_SILENCE_HOLD_MS)
 *   --proc N        this process's stamp id spaces: N and N + 1, 0-6 (0)
 *   --seed S        random phases and SIDs (time)
 *   --coalesce-us N under load, at most one loop turn per N us (500; 0: off; lg.h)
 *
 * Late frames, as twilio.js: audio due while the playback queue was empty between two
 * marks of one item (same g<gen>:<item> prefix) came too late to play on time.
 * Output: one JSON line, the aggregate ("calls", "okCalls", "lateBytes", "lateEvents",
 * "clears", "marksEchoed", "sentFrames", "receivedBytes", "errors"). Exit 0 when every
 * call is ok. */
#include "lg.h"

#include "audio/mulaw.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#define TW_FRAME 160                /* bytes of mu-law per media message: 20 ms */
#define TW_FRAME_NS 20000000ull
#define TW_MAX_MSG (1u << 20)
#define TW_MAX_ERRORS 200

struct tw_opts {
    const char *host, *path, *audio_file, *stamp;
    int port, calls, ramp_ms, offset_ms, timeout_ms, proc, coalesce_us;
    unsigned seed;
};

enum tw_state { TW_WAIT, TW_CONNECTING, TW_UPGRADING, TW_OPEN, TW_CLOSING, TW_DONE };

struct tw_item { /* playback queue entry: audio bytes, or a mark when name is set */
    uint32_t bytes;
    char *name;
};

struct tw_call {
    struct tw_gen *g;
    int i;
    enum tw_state state;
    int fd;
    uv_poll_t poll;
    int poll_events;
    struct lg_buf out;
    struct lg_ws_rx rx;
    char ws_key[32];
    char call_sid[40], stream_sid[40];
    unsigned seq, chunk;
    uint64_t start_ns, next_ns; /* call start; when the next media message is due */
    size_t audio_off, audio_start, audio_end; /* the part of the script this call says */
    uint32_t pending_stamps[16];
    struct lg_stamps *pending_of[16];
    int n_pending;
    /* playback */
    struct tw_item *q;
    size_t q_head, q_len, q_cap;
    uint64_t q_bytes;
    uint64_t play_ns; /* the playback clock's last step */
    uint64_t credit_ns; /* elapsed time not yet played (under one byte's 125 us) */
    uint64_t starved;
    char last_key[96];
    int has_key;
    /* figures */
    uint64_t late_bytes, late_events, clears, marks_echoed, sent_frames, recv_bytes;
    uint64_t recv_media, recv_marks;
    int errors;
    char first_error[160];
    int stop_sent;
};

struct tw_gen {
    struct tw_opts o;
    uv_loop_t *loop;
    uv_timer_t tick;
    uint8_t *audio;
    size_t audio_len;
    struct tw_call *calls;
    int live; /* calls not done */
    struct lg_stamps stamps;       /* frames with sound; this process's timer lateness */
    struct lg_stamps quiet_stamps; /* quiet frames */
    struct lg_coalesce coalesce;
    struct sockaddr_in addr;
    uint64_t tick_due;
    char account_sid[40];
    struct lg_buf errs; /* JSON strings, comma separated */
    int n_errs;
};

static void tw_call_flush(struct tw_call *c);
static void tw_call_finish(struct tw_call *c);
static void tw_on_poll(uv_poll_t *h, int status, int events);

static void tw_err(struct tw_call *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tw_err(struct tw_call *c, const char *fmt, ...)
{
    char msg[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->errors++;
    struct tw_gen *g = c->g;
    if (g->n_errs++ >= TW_MAX_ERRORS)
        return;
    char line[256];
    int k = snprintf(line, sizeof line, "%s\"call %d: ", g->n_errs > 1 ? "," : "", c->i);
    lg_buf_add(&g->errs, line, (size_t)k);
    /* a JSON string: our messages quote the daemon's bytes, so what JSON would not take
     * in a string (quotes, backslashes, control and non-ASCII bytes) becomes '?' */
    for (const char *p = msg; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        lg_buf_add(&g->errs, ch == '"' || ch == '\\' || ch < 0x20 || ch > 0x7e ? "?" : p, 1);
    }
    lg_buf_add(&g->errs, "\"", 1);
}

static void tw_sid(struct tw_gen *g, char *out, const char *prefix)
{
    static const char hex[] = "0123456789abcdef";
    size_t k = strlen(prefix);
    memcpy(out, prefix, k);
    for (int i = 0; i < 32; i++)
        out[k + (size_t)i] = hex[rand_r(&g->o.seed) & 15];
    out[k + 32] = 0;
}

/* --- socket I/O --- */

static void tw_poll_set(struct tw_call *c, int events)
{
    if (events == c->poll_events)
        return;
    c->poll_events = events;
    uv_poll_start(&c->poll, events, tw_on_poll);
}

static void tw_send_text(struct tw_call *c, const char *js, size_t n)
{
    lg_ws_put(&c->out, LG_WS_TEXT, js, n, 1);
}

static void tw_call_flush(struct tw_call *c)
{
    if (c->n_pending) { /* stamped frames: timed just before the write, as twilio.js */
        uint64_t t = lg_now_ns();
        for (int i = 0; i < c->n_pending; i++)
            lg_stamps_sent_at(c->pending_of[i], c->pending_stamps[i], t);
        c->n_pending = 0;
    }
    while (lg_buf_size(&c->out)) {
        ssize_t n = write(c->fd, lg_buf_data(&c->out), lg_buf_size(&c->out));
        if (n > 0) {
            lg_buf_consume(&c->out, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            tw_poll_set(c, UV_READABLE | UV_WRITABLE);
            return;
        }
        tw_err(c, "write: %s", strerror(errno));
        tw_call_finish(c);
        return;
    }
    if (c->state != TW_DONE && c->state != TW_WAIT)
        tw_poll_set(c, c->state == TW_CONNECTING ? UV_WRITABLE : UV_READABLE);
}

/* --- playback --- */

static void tw_q_push(struct tw_call *c, uint32_t bytes, const char *name, size_t nlen)
{
    if (c->q_head && c->q_head == c->q_len)
        c->q_head = c->q_len = 0;
    if (c->q_len == c->q_cap) {
        if (c->q_head) {
            memmove(c->q, c->q + c->q_head, (c->q_len - c->q_head) * sizeof *c->q);
            c->q_len -= c->q_head;
            c->q_head = 0;
        } else {
            c->q_cap = c->q_cap ? c->q_cap * 2 : 32;
            c->q = realloc(c->q, c->q_cap * sizeof *c->q);
            if (!c->q)
                abort();
        }
    }
    struct tw_item *it = &c->q[c->q_len++];
    it->bytes = bytes;
    it->name = name ? strndup(name, nlen) : NULL;
    c->q_bytes += bytes;
}

static void tw_echo_mark(struct tw_call *c, const char *name)
{
    if (c->stop_sent || c->state != TW_OPEN)
        return;
    char js[256];
    int k = snprintf(js, sizeof js,
                     "{\"event\":\"mark\",\"sequenceNumber\":\"%u\",\"streamSid\":\"%s\","
                     "\"mark\":{\"name\":\"%s\"}}",
                     ++c->seq, c->stream_sid, name);
    if (k > 0 && (size_t)k < sizeof js) {
        tw_send_text(c, js, (size_t)k);
        c->marks_echoed++;
    }
}

/* A mark reached by playback: starving since the previous mark of the same item means
 * frames of that item came late. */
static void tw_mark_reached(struct tw_call *c, const char *name)
{
    const char *colon = strrchr(name, ':');
    size_t klen = colon && colon > name ? (size_t)(colon - name) : 0;
    int same = klen && c->has_key && strlen(c->last_key) == klen && !memcmp(c->last_key, name, klen);
    if (c->starved && same) {
        c->late_bytes += c->starved;
        c->late_events++;
    }
    c->starved = 0;
    c->has_key = klen && klen < sizeof c->last_key;
    if (c->has_key) {
        memcpy(c->last_key, name, klen);
        c->last_key[klen] = 0;
    }
}

/* Plays up to n bytes, echoing each mark reached; returns the bytes of n with no audio. */
static uint64_t tw_play(struct tw_call *c, uint64_t n)
{
    while (c->q_head < c->q_len) {
        struct tw_item *it = &c->q[c->q_head];
        if (it->name) {
            c->q_head++;
            tw_mark_reached(c, it->name);
            tw_echo_mark(c, it->name);
            free(it->name);
            continue;
        }
        if (!n)
            break;
        uint64_t take = n < it->bytes ? n : it->bytes;
        it->bytes -= (uint32_t)take;
        c->q_bytes -= take;
        n -= take;
        if (!it->bytes)
            c->q_head++;
    }
    return n;
}

/* The real-time playback clock: 8 bytes per elapsed ms, no credit banked while idle. */
static void tw_play_tick(struct tw_call *c, uint64_t now)
{
    uint64_t ns = now - c->play_ns + c->credit_ns;
    uint64_t n = ns / 125000;                       /* 8 bytes per ms: one per 125 us */
    c->credit_ns = ns % 125000;
    c->play_ns = now;
    if (!c->q_bytes) {
        c->starved += n;
        c->credit_ns = 0;
        n = 0;
    }
    c->starved += tw_play(c, n);
}

static void tw_clear(struct tw_call *c)
{
    c->clears++;
    for (size_t i = c->q_head; i < c->q_len; i++) {
        if (c->q[i].name) {
            tw_echo_mark(c, c->q[i].name);
            free(c->q[i].name);
        }
    }
    c->q_head = c->q_len = 0;
    c->q_bytes = 0;
    c->starved = 0;
    c->has_key = 0;
}

/* --- what the daemon sends --- */

static int tw_on_msg(void *ud, int op, uint8_t *p, size_t n)
{
    struct tw_call *c = ud;
    if (op == LG_WS_PING) {
        lg_ws_put(&c->out, LG_WS_PONG, p, n, 1);
        return 0;
    }
    if (op == LG_WS_PONG)
        return 0;
    if (op == LG_WS_CLOSE) {
        if (c->state != TW_CLOSING)
            tw_err(c, "daemon closed first (%u)", n >= 2 ? (unsigned)(p[0] << 8 | p[1]) : 1005u);
        return 1; /* the handshake is over either way */
    }
    if (op != LG_WS_TEXT) {
        tw_err(c, "daemon sent a binary message");
        return 0;
    }
    const char *js = (const char *)p;
    size_t el, sl;
    const char *ev = lg_json_str(js, n, "event", &el);
    const char *sid = lg_json_str(js, n, "streamSid", &sl);
    if (!ev || !sid || sl != strlen(c->stream_sid) || memcmp(sid, c->stream_sid, sl)) {
        tw_err(c, "daemon message without our event/streamSid: %.60s", js);
        return 0;
    }
    if (el == 5 && !memcmp(ev, "media", 5)) {
        size_t pl;
        const char *pay = lg_json_str(js, n, "payload", &pl);
        uint8_t audio[8192];
        long k = pay && pl <= sizeof audio / 3 * 4 ? lg_b64_dec(audio, pay, pl) : -1;
        if (k <= 0) {
            tw_err(c, "daemon media payload missing, empty or not base64");
            return 0;
        }
        if (k % TW_FRAME)
            tw_err(c, "daemon media of %ld bytes, not whole 20 ms frames", k);
        lg_stamps_scan(&c->g->stamps, audio, (size_t)k, lg_now_ns());
        c->recv_media++;
        c->recv_bytes += (uint64_t)k;
        tw_q_push(c, (uint32_t)k, NULL, 0);
    } else if (el == 4 && !memcmp(ev, "mark", 4)) {
        size_t nl;
        const char *name = lg_json_str(js, n, "name", &nl);
        if (!name || nl > 200) {
            tw_err(c, "daemon mark without a usable mark.name");
            return 0;
        }
        c->recv_marks++;
        tw_q_push(c, 0, name, nl);
        tw_play(c, 0); /* echoed at once when no audio is queued before it */
    } else if (el == 5 && !memcmp(ev, "clear", 5)) {
        tw_clear(c);
    } else {
        tw_err(c, "daemon sent event %.*s: only media, mark, clear", (int)el, ev);
    }
    return 0;
}

static int tw_upgraded(struct tw_call *c)
{
    uint8_t *b = lg_buf_data(&c->rx.in);
    size_t n = lg_buf_size(&c->rx.in);
    uint8_t *end = memmem(b, n, "\r\n\r\n", 4);
    if (!end)
        return n > 8192 ? -1 : 0;
    size_t head = (size_t)(end - b) + 4;
    if (n < 12 || memcmp(b, "HTTP/1.1 101", 12)) {
        tw_err(c, "upgrade answered %.12s", (const char *)b);
        return -1;
    }
    /* Sec-WebSocket-Accept = base64(SHA1(key + GUID)) */
    char src[96], want[40];
    uint8_t sha[SHA_DIGEST_LENGTH];
    int k = snprintf(src, sizeof src, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", c->ws_key);
    SHA1((const uint8_t *)src, (size_t)k, sha);
    lg_b64_enc(want, sha, sizeof sha);
    if (!memmem(b, head, want, strlen(want))) {
        tw_err(c, "upgrade without the right Sec-WebSocket-Accept");
        return -1;
    }
    lg_buf_consume(&c->rx.in, head);
    return 1;
}

static void tw_send_start(struct tw_call *c)
{
    static const char connected[] = "{\"event\":\"connected\",\"protocol\":\"Call\",\"version\":\"1.0.0\"}";
    tw_send_text(c, connected, sizeof connected - 1);
    char js[1024];
    int k = snprintf(js, sizeof js,
                     "{\"event\":\"start\",\"sequenceNumber\":\"%u\",\"start\":{\"accountSid\":\"%s\","
                     "\"streamSid\":\"%s\",\"callSid\":\"%s\",\"tracks\":[\"inbound\"],"
                     "\"customParameters\":{\"From\":\"+15550100%03d\",\"To\":\"+15550199000\","
                     "\"CallSid\":\"%s\"},\"mediaFormat\":{\"encoding\":\"audio/x-mulaw\","
                     "\"sampleRate\":8000,\"channels\":1}},\"streamSid\":\"%s\"}",
                     ++c->seq, c->g->account_sid, c->stream_sid, c->call_sid, c->i % 1000,
                     c->call_sid, c->stream_sid);
    tw_send_text(c, js, (size_t)k);
}

static void tw_on_readable(struct tw_call *c)
{
    for (;;) {
        uint8_t *room = lg_buf_room(&c->rx.in, 65536);
        ssize_t n = read(c->fd, room, 65536);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n <= 0) {
            if (c->state != TW_CLOSING)
                tw_err(c, "connection lost (%s)", n ? strerror(errno) : "EOF");
            tw_call_finish(c);
            return;
        }
        lg_buf_commit(&c->rx.in, (size_t)n);
        if (c->state == TW_UPGRADING) {
            int up = tw_upgraded(c);
            if (up < 0) {
                tw_call_finish(c);
                return;
            }
            if (!up)
                continue;
            c->state = TW_OPEN;
            tw_send_start(c);
            c->next_ns = c->play_ns = lg_now_ns();
        }
        int rc = lg_ws_rx_run(&c->rx, tw_on_msg, c);
        if (rc < 0) {
            tw_err(c, "WebSocket protocol error from the daemon");
            tw_call_finish(c);
            return;
        }
        if (rc > 0) { /* the daemon's Close: ours was sent, or is echoed now */
            if (c->state != TW_CLOSING) {
                static const uint8_t code[2] = {0x03, 0xe8};
                lg_ws_put(&c->out, LG_WS_CLOSE, code, 2, 1);
                tw_call_flush(c);
            }
            tw_call_finish(c);
            return;
        }
        if ((size_t)n < 65536)
            break;
    }
    tw_call_flush(c);
}

static void tw_on_poll(uv_poll_t *h, int status, int events)
{
    struct tw_call *c = h->data;
    if (status < 0 && c->state == TW_CONNECTING) {
        tw_err(c, "connect: %s", uv_strerror(status));
        tw_call_finish(c);
        return;
    }
    if (c->state == TW_CONNECTING && (events & UV_WRITABLE)) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            tw_err(c, "connect: %s", strerror(err));
            tw_call_finish(c);
            return;
        }
        c->state = TW_UPGRADING;
        uint8_t key[16];
        for (int i = 0; i < 16; i++)
            key[i] = (uint8_t)rand_r(&c->g->o.seed);
        lg_b64_enc(c->ws_key, key, sizeof key);
        char req[512];
        int k = snprintf(req, sizeof req,
                         "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                         "Sec-WebSocket-Version: 13\r\nUser-Agent: Twilio.TmeWs/1.0\r\n\r\n",
                         c->g->o.path, c->g->o.host, c->g->o.port, c->ws_key);
        lg_buf_add(&c->out, req, (size_t)k);
        tw_call_flush(c);
        return;
    }
    if (events & UV_READABLE)
        tw_on_readable(c);
    if (c->state != TW_DONE && (events & UV_WRITABLE))
        tw_call_flush(c);
}

/* --- the call's life --- */

static void tw_call_start(struct tw_call *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        tw_err(c, "socket: %s", strerror(errno));
        c->state = TW_DONE;
        c->g->live--;
        return;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->state = TW_CONNECTING;
    uv_poll_init_socket(c->g->loop, &c->poll, c->fd);
    c->poll.data = c;
    c->poll_events = UV_WRITABLE;
    uv_poll_start(&c->poll, UV_WRITABLE, tw_on_poll);
    if (connect(c->fd, (struct sockaddr *)&c->g->addr, sizeof c->g->addr) < 0 &&
        errno != EINPROGRESS) {
        tw_err(c, "connect: %s", strerror(errno));
        tw_call_finish(c);
    }
}

static void tw_on_closed(uv_handle_t *h)
{
    struct tw_call *c = h->data;
    close(c->fd);
    c->fd = -1;
    if (--c->g->live == 0) {
        uv_timer_stop(&c->g->tick);
        uv_close((uv_handle_t *)&c->g->tick, NULL);
        if (c->g->o.coalesce_us)
            uv_close((uv_handle_t *)&c->g->coalesce.prepare, NULL);
    }
}

static void tw_call_finish(struct tw_call *c)
{
    if (c->state == TW_DONE)
        return;
    c->state = TW_DONE;
    for (size_t i = c->q_head; i < c->q_len; i++)
        free(c->q[i].name);
    free(c->q);
    c->q = NULL;
    c->q_head = c->q_len = c->q_cap = 0;
    lg_buf_free(&c->out);
    lg_ws_rx_free(&c->rx);
    uv_poll_stop(&c->poll);
    uv_close((uv_handle_t *)&c->poll, tw_on_closed);
}

/* Media due by now: one message per 20 ms of the script, then stop and Close. */
static void tw_send_media(struct tw_call *c, uint64_t now)
{
    struct tw_gen *g = c->g;
    while (c->state == TW_OPEN && !c->stop_sent && c->next_ns <= now) {
        lg_lag(&g->stamps, now - c->next_ns);
        if (c->audio_off >= c->audio_end) {
            char js[256];
            int k = snprintf(js, sizeof js,
                             "{\"event\":\"stop\",\"sequenceNumber\":\"%u\",\"stop\":{\"accountSid\":"
                             "\"%s\",\"callSid\":\"%s\"},\"streamSid\":\"%s\"}",
                             ++c->seq, g->account_sid, c->call_sid, c->stream_sid);
            tw_send_text(c, js, (size_t)k);
            static const uint8_t code[2] = {0x03, 0xe8};
            lg_ws_put(&c->out, LG_WS_CLOSE, code, 2, 1);
            c->stop_sent = 1;
            c->state = TW_CLOSING;
            break;
        }
        uint8_t frame[TW_FRAME];
        size_t take = c->audio_end - c->audio_off < TW_FRAME ? c->audio_end - c->audio_off : TW_FRAME;
        memcpy(frame, g->audio + c->audio_off, take);
        memset(frame + take, 0xff, TW_FRAME - take);
        if (g->stamps.prefix && c->n_pending < 16) {
            struct lg_stamps *st = audio_mulaw_quiet(frame, TW_FRAME) ? &g->quiet_stamps : &g->stamps;
            uint32_t id = lg_stamps_next(st);
            lg_tag_write(frame, id);
            c->pending_of[c->n_pending] = st;
            c->pending_stamps[c->n_pending++] = id;
        }
        char b64[TW_FRAME / 3 * 4 + 8];
        size_t bl = lg_b64_enc(b64, frame, TW_FRAME);
        char js[512];
        int k = snprintf(js, sizeof js,
                         "{\"event\":\"media\",\"sequenceNumber\":\"%u\",\"media\":{\"track\":\"inbound\","
                         "\"chunk\":\"%u\",\"timestamp\":\"%llu\",\"payload\":\"%.*s\"},"
                         "\"streamSid\":\"%s\"}",
                         ++c->seq, ++c->chunk, (unsigned long long)((c->audio_off - c->audio_start) / 8), (int)bl, b64,
                         c->stream_sid);
        tw_send_text(c, js, (size_t)k);
        c->sent_frames++;
        c->audio_off += TW_FRAME;
        c->next_ns += TW_FRAME_NS;
    }
}

static void tw_on_tick(uv_timer_t *t)
{
    struct tw_gen *g = t->data;
    uint64_t now = lg_now_ns();
    for (int i = 0; i < g->o.calls; i++) {
        struct tw_call *c = &g->calls[i];
        if (c->state == TW_WAIT) {
            if (now >= c->start_ns)
                tw_call_start(c);
            continue;
        }
        if (c->state == TW_DONE)
            continue;
        if (now - c->start_ns > (uint64_t)g->o.timeout_ms * 1000000u) {
            tw_err(c, "timeout after %d ms", g->o.timeout_ms);
            tw_call_finish(c);
            continue;
        }
        if (c->state != TW_OPEN || c->next_ns > now)
            continue;
        /* Playback steps with the caller's frames, as Twilio plays 20 ms frames: the
         * echoes of this step leave in the write of the frame. */
        tw_play_tick(c, now);
        tw_send_media(c, now);
        if (!(c->poll_events & UV_WRITABLE))
            tw_call_flush(c);
    }
}

/* --- options and main --- */

static int tw_usage(const char *msg)
{
    fprintf(stderr, "va-loadgen twilio: %s (see bench/loadgen/twilio.c)\n", msg);
    return 2;
}

static int tw_opts_parse(struct tw_opts *o, int argc, char **argv)
{
    *o = (struct tw_opts){.host = "127.0.0.1", .path = "/ws/twilio", .calls = 1, .ramp_ms = 1000,
                          .timeout_ms = -1, .seed = (unsigned)lg_now_ns(), .coalesce_us = 500};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return tw_usage("every option takes a value");
        i++;
        if (!strcmp(a, "--port"))
            o->port = (int)strtol(v, NULL, 10);
        else if (!strcmp(a, "--host"))
            o->host = v;
        else if (!strcmp(a, "--calls"))
            o->calls = (int)strtol(v, NULL, 10);
        else if (!strcmp(a, "--audio"))
            o->audio_file = v;
        else if (!strcmp(a, "--path"))
            o->path = v;
        else if (!strcmp(a, "--ramp-ms"))
            o->ramp_ms = (int)strtol(v, NULL, 10);
        else if (!strcmp(a, "--offset-ms"))
            o->offset_ms = (int)strtol(v, NULL, 10);
        else if (!strcmp(a, "--timeout-ms"))
            o->timeout_ms = (int)strtol(v, NULL, 10);
        else if (!strcmp(a, "--stamp"))
            o->stamp = v;
        else if (!strcmp(a, "--proc"))
            o->proc = (int)strtol(v, NULL, 10);
        else if (!strcmp(a, "--seed"))
            o->seed = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--coalesce-us"))
            o->coalesce_us = (int)strtol(v, NULL, 10);
        else
            return tw_usage("unknown option");
    }
    if (o->port <= 0 || o->port > 65535 || !o->audio_file)
        return tw_usage("--port and --audio are required");
    if (o->calls < 1 || o->calls > 100000 || o->proc < 0 || o->proc > 6 || o->ramp_ms < 0 ||
        o->offset_ms < 0 || o->coalesce_us < 0 || o->coalesce_us > 100000)
        return tw_usage("--calls 1-100000, --proc 0-6, --ramp-ms >= 0, --offset-ms >= 0, "
                        "--coalesce-us 0-100000");
    return 0;
}

static int tw_read_file(const char *path, uint8_t **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    struct lg_buf b = {0};
    size_t n;
    while ((n = fread(lg_buf_room(&b, 65536), 1, 65536, f)) > 0)
        lg_buf_commit(&b, n);
    fclose(f);
    *out = b.p;
    *len = b.len;
    return 0;
}

int lg_twilio_main(int argc, char **argv)
{
    struct tw_gen g = {0};
    if (tw_opts_parse(&g.o, argc, argv))
        return 2;
    if (tw_read_file(g.o.audio_file, &g.audio, &g.audio_len) || !g.audio_len)
        return tw_usage("--audio: cannot read, or empty");
    size_t span = (size_t)g.o.offset_ms * 8 / TW_FRAME * TW_FRAME; /* whole frames */
    if (span >= g.audio_len)
        return tw_usage("--offset-ms: less than the audio's length");
    if (g.o.timeout_ms < 0)
        g.o.timeout_ms = (int)(g.audio_len / 8) + g.o.ramp_ms + 30000;
    if (uv_ip4_addr(g.o.host, g.o.port, &g.addr))
        return tw_usage("--host: an IPv4 address");
    char prefix[4096], qprefix[4096];
    if (g.o.stamp) {
        snprintf(prefix, sizeof prefix, "%s.%d", g.o.stamp, g.o.proc);
        snprintf(qprefix, sizeof qprefix, "%s.%d", g.o.stamp, g.o.proc + 1);
    }
    lg_stamps_init(&g.stamps, g.o.stamp ? prefix : NULL, (unsigned)g.o.proc);
    lg_stamps_init(&g.quiet_stamps, g.o.stamp ? qprefix : NULL, (unsigned)g.o.proc + 1);
    g.loop = uv_default_loop();
    tw_sid(&g, g.account_sid, "AC");
    g.calls = calloc((size_t)g.o.calls, sizeof *g.calls);
    uint64_t t0 = lg_now_ns() + 10000000u;
    for (int i = 0; i < g.o.calls; i++) {
        struct tw_call *c = &g.calls[i];
        c->g = &g;
        c->i = i;
        c->fd = -1;
        c->rx.max = TW_MAX_MSG;
        tw_sid(&g, c->call_sid, "CA");
        tw_sid(&g, c->stream_sid, "MZ");
        /* a random start within the ramp: calls at random phases of the 20 ms period */
        uint64_t r = ((uint64_t)rand_r(&g.o.seed) << 16) ^ (uint64_t)rand_r(&g.o.seed);
        c->start_ns = t0 + (g.o.ramp_ms ? r % ((uint64_t)g.o.ramp_ms * 1000000u) : 0);
        r = ((uint64_t)rand_r(&g.o.seed) << 16) ^ (uint64_t)rand_r(&g.o.seed);
        c->audio_start = span ? r % (span / TW_FRAME) * TW_FRAME : 0;
        c->audio_off = c->audio_start;
        c->audio_end = c->audio_start + g.audio_len - span;
    }
    g.live = g.o.calls;
    uv_timer_init(g.loop, &g.tick);
    g.tick.data = &g;
    uv_timer_start(&g.tick, tw_on_tick, 1, 1);
    if (g.o.coalesce_us)
        lg_coalesce_start(&g.coalesce, g.loop, (unsigned)g.o.coalesce_us);
    uv_run(g.loop, UV_RUN_DEFAULT);

    uint64_t late_b = 0, late_e = 0, clears = 0, marks = 0, frames = 0, bytes = 0;
    int ok = 0;
    for (int i = 0; i < g.o.calls; i++) {
        struct tw_call *c = &g.calls[i];
        late_b += c->late_bytes;
        late_e += c->late_events;
        clears += c->clears;
        marks += c->marks_echoed;
        frames += c->sent_frames;
        bytes += c->recv_bytes;
        ok += !c->errors;
    }
    lg_stamps_save(&g.stamps);
    lg_stamps_save(&g.quiet_stamps);
    printf("{\"ok\":%s,\"calls\":%d,\"okCalls\":%d,\"lateBytes\":%llu,\"lateEvents\":%llu,"
           "\"clears\":%llu,\"marksEchoed\":%llu,\"sentFrames\":%llu,\"receivedBytes\":%llu,"
           "\"errors\":[%.*s]}\n",
           ok == g.o.calls ? "true" : "false", g.o.calls, ok, (unsigned long long)late_b,
           (unsigned long long)late_e, (unsigned long long)clears, (unsigned long long)marks,
           (unsigned long long)frames, (unsigned long long)bytes, (int)lg_buf_size(&g.errs),
           (const char *)lg_buf_data(&g.errs));
    fflush(stdout);
    uv_loop_close(g.loop);
    lg_stamps_free(&g.stamps);
    lg_stamps_free(&g.quiet_stamps);
    lg_buf_free(&g.errs);
    free(g.calls);
    free(g.audio);
    return ok == g.o.calls ? 0 : 1;
}
