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
};

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

int call_open(struct call **out, struct va_ctx *ctx, const struct call_info *info,
              const struct call_tw_port *port, void *port_ud);

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

const char *call_sid(const struct call *c);

#endif
