/* include/call/call.h: one phone call's lifecycle and audio clock.
 *
 * A call starts with Twilio's "start" on a media stream and ends on "stop" or when
 * the stream goes away. It owns the inbound audio clock: media timestamps that
 * jump are filled with silence here, once, and nowhere else, so that everything
 * downstream (the recording, the model, echo) hears a continuous 8 kHz signal. It
 * talks to the Twilio side only through struct call_tw_port, so it runs on fake
 * ports in tests. */
#ifndef VA_CALL_CALL_H
#define VA_CALL_CALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct va_ctx;
struct call;

/* The Twilio side as the call sees it. Each returns 0 or a negative code. */
struct call_tw_port {
    int (*send_media)(void *ud, const uint8_t *mulaw, size_t len);
    int (*send_mark)(void *ud, const char *name);
    int (*send_clear)(void *ud);
    /* The call failed on our side: end the stream, so that Twilio plays the TwiML's
     * apology after </Connect> to a caller still on the line. */
    void (*hangup)(void *ud, const char *reason);
};

/* The Realtime side: connections are opaque handles; their events come back through
 * call_rt_opened / call_rt_message / call_rt_closed with the same handle. */
struct call_rt_port {
    /* Starts a connection. 0 with *conn set, or a negative code (no callback). */
    int (*connect)(void *ud, struct call *c, void **conn);
    int (*send)(void *conn, const char *json, size_t len);
    void (*close)(void *conn, uint16_t code, const char *reason);
};

void call_rt_opened(struct call *c, void *conn);
void call_rt_message(struct call *c, void *conn, const char *json, size_t len);
/* Exactly once per connection, last. err: 0 after an open connection closed, else
 * the connect failure. */
void call_rt_closed(struct call *c, void *conn, int err, uint16_t code, const char *reason);

/* Periodic housekeeping (the hub calls it every CALL_TICK_MS for every call):
 * silence after a media stall, session rotation, pacing. */
#define CALL_TICK_MS 50
void call_tick(struct call *c);

struct call_info {
    const char *stream_sid;
    const char *call_sid;
    const char *account_sid;
    const char *from; /* custom parameters; NULL when absent */
    const char *to;
};

/* Silence filled for one timestamp jump at most (reference §5). */
#define CALL_MAX_GAP_FILL_MS 10000
/* Jumps smaller than this are jitter, not lost audio. */
#define CALL_MIN_GAP_FILL_MS 20

/* rt may be NULL: no model (AUDIO_ECHO line checks). 0 with *out set: the call is on
 * record (call.started), even when rt refuses to connect at once (its breaker open):
 * then it is already failed and port->hangup() was asked, before call_open() returns.
 * A negative code (resources) leaves nothing: no call, no event. */
int call_open(struct call **out, struct va_ctx *ctx, const struct call_info *info,
              const struct call_tw_port *port, void *port_ud, const struct call_rt_port *rt,
              void *rt_ud);

/* Every Twilio message's sequenceNumber, in arrival order. Counts gaps and
 * duplicates; returns false for a duplicate or an old number (drop the message). */
bool call_seq(struct call *c, uint64_t seq);

/* Inbound audio: media.timestamp (ms since stream start) and the mu-law payload. */
void call_media_in(struct call *c, uint64_t ts_ms, const uint8_t *mulaw, size_t len);
void call_mark_in(struct call *c, const char *name);
void call_dtmf_in(struct call *c, char digit);

/* Ends the call: one summary log line (duration, frames, gaps, close reason),
 * the recording finished. The port is not used again; memory is released once
 * the recording file is closed. reason is copied. */
void call_end(struct call *c, const char *reason);

/* As call_end(), for an end our side caused (protocol error, shutdown): the call's
 * events say "failed" with this reason. */
void call_end_failed(struct call *c, const char *reason);

const char *call_sid(const struct call *c);

/* Scratch space all calls share (one event is handled at a time on the loop): the
 * parsed Realtime event, its decoded audio, the message being built. */
struct call_shared;
struct call_shared *call_shared_new(size_t max_message);
void call_shared_free(struct call_shared *s);

#endif
