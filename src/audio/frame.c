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
_Static_assert(AUDIO_PLAYOUT_CHUNK % AUDIO_FRAME_BYTES == 0, "a frame never straddles a chunk");

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
    q->nchunks = (cap + AUDIO_PLAYOUT_CHUNK - 1) / AUDIO_PLAYOUT_CHUNK;
    q->ring = va_xcalloc(q->nchunks, sizeof(*q->ring));
    q->cap = cap;
    return 0;
}

static void audio_playout_free_chunks(struct audio_playout *q)
{
    for (size_t k = 0; k < q->nchunks; k++) {
        free(q->ring[k]);
        q->ring[k] = NULL;
    }
}

void audio_playout_deinit(struct audio_playout *q)
{
    if (q->ring)
        audio_playout_free_chunks(q);
    free(q->ring);
    memset(q, 0, sizeof(*q));
}

/* Writes p[0, n) at ring offset pos, wrapping once at most (n <= cap), allocating the
 * chunks it reaches. */
static void audio_ring_put(struct audio_playout *q, size_t pos, const uint8_t *p, size_t n)
{
    while (n) {
        size_t k = pos / AUDIO_PLAYOUT_CHUNK;
        size_t off = pos % AUDIO_PLAYOUT_CHUNK;
        size_t take = AUDIO_PLAYOUT_CHUNK - off;
        if (take > q->cap - pos)
            take = q->cap - pos;
        if (take > n)
            take = n;
        if (!q->ring[k])
            q->ring[k] = va_xmalloc(AUDIO_PLAYOUT_CHUNK);
        memcpy(q->ring[k] + off, p, take);
        p += take;
        n -= take;
        pos += take;
        if (pos == q->cap)
            pos = 0;
    }
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
    /* head only moves by whole frames (pop) or back to 0 (flush), and cap and the chunk
     * are multiples of the frame, so a frame never straddles a chunk or the ring's end. */
    assert(q->head % AUDIO_FRAME_BYTES == 0);
    size_t k = q->head / AUDIO_PLAYOUT_CHUNK;
    memcpy(out, q->ring[k] + q->head % AUDIO_PLAYOUT_CHUNK, AUDIO_FRAME_BYTES);
    q->head += AUDIO_FRAME_BYTES;
    if (q->head >= q->cap)
        q->head -= q->cap;
    q->len -= AUDIO_FRAME_BYTES;
    /* Empty: start over at the front with nothing allocated, so that an idle call holds
     * no audio memory and a speaking one about what it has queued. */
    if (q->len == 0) {
        q->head = 0;
        audio_playout_free_chunks(q);
    } else if (q->head % AUDIO_PLAYOUT_CHUNK == 0) {
        /* left chunk k: free it unless the tail has wrapped into it */
        size_t size = q->cap - k * AUDIO_PLAYOUT_CHUNK;
        if (size > AUDIO_PLAYOUT_CHUNK)
            size = AUDIO_PLAYOUT_CHUNK;
        if (q->cap - q->len >= size) {
            free(q->ring[k]);
            q->ring[k] = NULL;
        }
    }
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
    audio_playout_free_chunks(q);
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
