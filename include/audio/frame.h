/* include/audio/frame.h: 20 ms framing between Twilio and the codec/resampler (pure memory).
 *
 * Twilio plays and sends mu-law in 20 ms frames of 160 bytes at 8 kHz; the Realtime
 * API sends audio deltas of any length. Two helpers bridge them:
 *   - struct audio_chunker: PCM16 samples in chunks of any count -> exact N-sample frames;
 *   - struct audio_playout: the per-call outbound mu-law queue, a fixed ring buffer. */
#ifndef VA_AUDIO_FRAME_H
#define VA_AUDIO_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUDIO_FRAME_MS 20
#define AUDIO_FRAME_BYTES 160        /* mu-law, 8 kHz, 20 ms: one Twilio media message */
#define AUDIO_FRAME_SAMPLES_8K 160   /* PCM16 at 8 kHz, 20 ms */
#define AUDIO_FRAME_SAMPLES_24K 480  /* PCM16 at 24 kHz, 20 ms */
#define AUDIO_CHUNKER_MAX_FRAME 9600 /* 200 ms at 48 kHz: refuse nonsense sizes */
#define AUDIO_PLAYOUT_DEFAULT_BYTES (256 * 1024) /* STYLE default: 256 KiB per call */

/* ---- PCM16 chunker ------------------------------------------------------------------ */

/* Holds at most frame - 1 samples between calls. */
struct audio_chunker {
    int16_t *buf; /* frame samples, allocated once at init */
    size_t frame; /* N */
    size_t have;  /* samples of the next frame held in buf, < frame between calls */
};

/* frame: samples per frame (1..AUDIO_CHUNKER_MAX_FRAME). 0 or VA_EINVAL. */
int audio_chunker_init(struct audio_chunker *c, size_t frame);
void audio_chunker_deinit(struct audio_chunker *c);

/* Takes samples from (*in, *n), advancing both, until a whole frame is ready and
 * returns it; returns NULL once the input is used up (the remainder, < N samples, is
 * kept for the next call). Loop until NULL:
 *
 *     const int16_t *f;
 *     while ((f = audio_chunker_next(&c, &pcm, &n)) != NULL)
 *         send(f);   (N samples)
 *
 * The frame points either into the caller's input (no copy when nothing was held)
 * or into the chunker; it is valid until the next call on c or until that input
 * changes. */
const int16_t *audio_chunker_next(struct audio_chunker *c, const int16_t **in, size_t *n);

/* Samples held toward the next frame (0..N-1). */
size_t audio_chunker_pending(const struct audio_chunker *c);

/* End of stream: pads the held samples with zeros to a whole frame and returns it
 * (valid until the next call on c), or NULL when nothing is held. */
const int16_t *audio_chunker_finish(struct audio_chunker *c);

/* Drops the held samples (barge-in). */
void audio_chunker_reset(struct audio_chunker *c);

/* ---- outbound mu-law playout queue -------------------------------------------------- */

/* A ring of bytes with a capacity fixed at init and no memmove per frame. Its memory
 * comes in chunks of AUDIO_PLAYOUT_CHUNK, allocated as pushes reach them and freed as
 * pops leave them (all of it when the queue empties or is flushed): a call keeps about
 * what it has queued resident, not its longest reply (measured: docs/performance.md).
 * Full policy: a push that does not fit is refused whole (VA_EFULL) and the caller
 * decides; barge-in flushes everything. */
#define AUDIO_PLAYOUT_CHUNK 4000 /* 0.5 s of mu-law, 25 frames */
struct audio_playout {
    uint8_t **ring; /* nchunks chunk pointers, NULL where nothing is queued */
    size_t nchunks;
    size_t cap;  /* bytes, a multiple of AUDIO_FRAME_BYTES */
    size_t head; /* index of the oldest byte */
    size_t len;  /* bytes queued */
};

/* max_bytes is rounded up to whole frames (so finish() always has room to pad);
 * 0 means AUDIO_PLAYOUT_DEFAULT_BYTES. Only the chunk table is allocated here.
 * 0 or VA_EINVAL (past 1 GiB). */
int audio_playout_init(struct audio_playout *q, size_t max_bytes);
void audio_playout_deinit(struct audio_playout *q);

/* Queues p[0, n), any length. 0, or VA_EFULL when n is more than the free room
 * (nothing queued). */
int audio_playout_push(struct audio_playout *q, const uint8_t *p, size_t n);

/* Copies the oldest whole frame into out[0, AUDIO_FRAME_BYTES) and removes it.
 * false when less than a whole frame is queued (a trailing partial frame waits for
 * more bytes or for finish()). */
bool audio_playout_pop(struct audio_playout *q, uint8_t *out);

/* Whole frames queued. */
size_t audio_playout_frames(const struct audio_playout *q);
/* Bytes queued, the partial frame included. */
size_t audio_playout_bytes(const struct audio_playout *q);
/* Free room in bytes. */
size_t audio_playout_room(const struct audio_playout *q);

/* Drops everything queued (barge-in); returns the bytes dropped. */
size_t audio_playout_flush(struct audio_playout *q);

/* End of a response: pads a trailing partial frame with AUDIO_MULAW_SILENCE (0xFF,
 * mu-law +0) so it can be popped; returns the padding bytes added (0..159). Always
 * has room: the capacity is a multiple of the frame size. */
size_t audio_playout_finish(struct audio_playout *q);

#endif
