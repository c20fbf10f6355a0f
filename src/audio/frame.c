/* src/audio/frame.c: PCM16 chunker and the outbound mu-law playout ring. */
#include "audio/frame.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "audio/mulaw.h"
#include "core/buf.h"
#include "core/err.h"

/* Past 1 GiB a playout queue is a configuration mistake (an hour is 28 MB). */
#define PLAYOUT_MAX_BYTES ((size_t)1 << 30)

int audio_chunker_init(struct audio_chunker *c, size_t frame)
{
    memset(c, 0, sizeof(*c));
    if (frame == 0 || frame > AUDIO_CHUNKER_MAX_FRAME)
        return VA_EINVAL;
    c->buf = va_xmalloc(frame * sizeof(*c->buf));
    c->frame = frame;
    return 0;
}

void audio_chunker_deinit(struct audio_chunker *c)
{
    free(c->buf);
    memset(c, 0, sizeof(*c));
}

const int16_t *audio_chunker_next(struct audio_chunker *c, const int16_t **in, size_t *n)
{
    /* Aligned: hand out the caller's own samples, no copy. */
    if (c->have == 0 && *n >= c->frame) {
        const int16_t *f = *in;
        *in += c->frame;
        *n -= c->frame;
        return f;
    }
    size_t take = c->frame - c->have;
    if (take > *n)
        take = *n;
    if (take > 0)
        memcpy(c->buf + c->have, *in, take * sizeof(*c->buf));
    c->have += take;
    *in += take;
    *n -= take;
    if (c->have < c->frame)
        return NULL;
    c->have = 0;
    return c->buf;
}

size_t audio_chunker_pending(const struct audio_chunker *c)
{
    return c->have;
}

const int16_t *audio_chunker_finish(struct audio_chunker *c)
{
    if (c->have == 0)
        return NULL;
    memset(c->buf + c->have, 0, (c->frame - c->have) * sizeof(*c->buf));
    c->have = 0;
    return c->buf;
}

void audio_chunker_reset(struct audio_chunker *c)
{
    c->have = 0;
}

int audio_playout_init(struct audio_playout *q, size_t max_bytes)
{
    memset(q, 0, sizeof(*q));
    if (max_bytes == 0)
        max_bytes = AUDIO_PLAYOUT_DEFAULT_BYTES;
    if (max_bytes > PLAYOUT_MAX_BYTES)
        return VA_EINVAL;
    size_t cap = (max_bytes + AUDIO_FRAME_BYTES - 1) / AUDIO_FRAME_BYTES * AUDIO_FRAME_BYTES;
    q->ring = va_xmalloc(cap);
    q->cap = cap;
    return 0;
}

void audio_playout_deinit(struct audio_playout *q)
{
    free(q->ring);
    memset(q, 0, sizeof(*q));
}

/* Writes p[0, n) at ring offset pos, wrapping once at most (n <= cap). */
static void audio_ring_put(struct audio_playout *q, size_t pos, const uint8_t *p, size_t n)
{
    size_t first = q->cap - pos < n ? q->cap - pos : n;
    memcpy(q->ring + pos, p, first);
    memcpy(q->ring, p + first, n - first);
}

int audio_playout_push(struct audio_playout *q, const uint8_t *p, size_t n)
{
    if (n > q->cap - q->len)
        return VA_EFULL;
    if (n == 0)
        return 0;
    size_t tail = q->head + q->len;
    if (tail >= q->cap)
        tail -= q->cap;
    audio_ring_put(q, tail, p, n);
    q->len += n;
    return 0;
}

bool audio_playout_pop(struct audio_playout *q, uint8_t *out)
{
    if (q->len < AUDIO_FRAME_BYTES)
        return false;
    /* head only moves by whole frames (pop) or back to 0 (flush), and cap is a multiple
     * of the frame, so a frame never straddles the end of the ring. */
    assert(q->head % AUDIO_FRAME_BYTES == 0);
    memcpy(out, q->ring + q->head, AUDIO_FRAME_BYTES);
    q->head += AUDIO_FRAME_BYTES;
    if (q->head >= q->cap)
        q->head -= q->cap;
    q->len -= AUDIO_FRAME_BYTES;
    /* Empty: start over at the front, so that a call only ever touches (and keeps
     * resident) as much of the ring as its longest reply, not all of it over time. */
    if (q->len == 0)
        q->head = 0;
    return true;
}

size_t audio_playout_frames(const struct audio_playout *q)
{
    return q->len / AUDIO_FRAME_BYTES;
}

size_t audio_playout_bytes(const struct audio_playout *q)
{
    return q->len;
}

size_t audio_playout_room(const struct audio_playout *q)
{
    return q->cap - q->len;
}

size_t audio_playout_flush(struct audio_playout *q)
{
    size_t dropped = q->len;
    q->head = 0;
    q->len = 0;
    return dropped;
}

size_t audio_playout_finish(struct audio_playout *q)
{
    size_t part = q->len % AUDIO_FRAME_BYTES;
    if (part == 0)
        return 0;
    size_t pad = AUDIO_FRAME_BYTES - part;
    uint8_t silence[AUDIO_FRAME_BYTES];
    memset(silence, AUDIO_MULAW_SILENCE, pad);
    size_t tail = q->head + q->len;
    if (tail >= q->cap)
        tail -= q->cap;
    audio_ring_put(q, tail, silence, pad);
    q->len += pad;
    return pad;
}
