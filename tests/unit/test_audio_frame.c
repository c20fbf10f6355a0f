/* tests/unit/test_audio_frame.c: PCM16 chunker and the mu-law playout ring. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "audio/frame.h"
#include "audio/mulaw.h"
#include "core/err.h"

static void test_chunker_init(void **state)
{
    (void)state;
    struct audio_chunker c;

    assert_int_equal(audio_chunker_init(&c, 0), VA_EINVAL);
    assert_null(c.buf);
    audio_chunker_deinit(&c);
    assert_int_equal(audio_chunker_init(&c, AUDIO_CHUNKER_MAX_FRAME + 1), VA_EINVAL);
    assert_int_equal(audio_chunker_init(&c, AUDIO_CHUNKER_MAX_FRAME), 0);
    audio_chunker_deinit(&c);
    assert_null(c.buf);
}

/* Feeds a ramp in chunks of every size 1..1000 and checks that the frames, joined,
 * are the ramp itself, with the remainder held. */
static void chunk_sizes(size_t frame)
{
    enum { TOTAL = 7919 }; /* prime: every chunk size leaves a remainder somewhere */
    static int16_t ramp[TOTAL];
    struct audio_chunker c;

    for (size_t i = 0; i < TOTAL; i++)
        ramp[i] = (int16_t)(i * 7);
    assert_int_equal(audio_chunker_init(&c, frame), 0);
    for (size_t k = 1; k <= 1000; k++) {
        size_t next = 0; /* index of the ramp sample the next frame must start with */
        size_t frames = 0;
        audio_chunker_reset(&c);
        for (size_t pos = 0; pos < TOTAL; pos += k) {
            const int16_t *in = ramp + pos;
            size_t n = TOTAL - pos < k ? TOTAL - pos : k;
            const int16_t *f;
            while ((f = audio_chunker_next(&c, &in, &n)) != NULL) {
                if (memcmp(f, ramp + next, frame * sizeof(*f)) != 0)
                    fail_msg("frame %zu at chunk size %zu differs", frames, k);
                next += frame;
                frames++;
            }
            assert_int_equal(n, 0);
            assert_true(audio_chunker_pending(&c) < frame);
        }
        assert_int_equal(frames, TOTAL / frame);
        assert_int_equal(audio_chunker_pending(&c), TOTAL % frame);
        /* finish: the tail then zeros. */
        const int16_t *f = audio_chunker_finish(&c);
        if (TOTAL % frame) {
            assert_non_null(f);
            assert_memory_equal(f, ramp + next, (TOTAL % frame) * sizeof(*f));
            for (size_t i = TOTAL % frame; i < frame; i++)
                assert_int_equal(f[i], 0);
        } else {
            assert_null(f);
        }
        assert_int_equal(audio_chunker_pending(&c), 0);
        assert_null(audio_chunker_finish(&c));
    }
    audio_chunker_deinit(&c);
}

static void test_chunker_sizes_160(void **state)
{
    (void)state;
    chunk_sizes(AUDIO_FRAME_SAMPLES_8K);
}

static void test_chunker_sizes_480(void **state)
{
    (void)state;
    chunk_sizes(AUDIO_FRAME_SAMPLES_24K);
}

/* Aligned input comes back without a copy; held input comes from the chunker. */
static void test_chunker_zero_copy(void **state)
{
    (void)state;
    struct audio_chunker c;
    int16_t in[400] = {0};
    const int16_t *p = in;
    size_t n = 400;

    assert_int_equal(audio_chunker_init(&c, 160), 0);
    assert_ptr_equal(audio_chunker_next(&c, &p, &n), in);
    assert_ptr_equal(audio_chunker_next(&c, &p, &n), in + 160);
    assert_null(audio_chunker_next(&c, &p, &n));
    assert_int_equal(audio_chunker_pending(&c), 80);
    p = in;
    n = 100;
    assert_ptr_equal(audio_chunker_next(&c, &p, &n), c.buf);
    assert_int_equal(n, 20);
    assert_null(audio_chunker_next(&c, &p, &n));
    assert_int_equal(audio_chunker_pending(&c), 20);
    audio_chunker_reset(&c);
    assert_int_equal(audio_chunker_pending(&c), 0);
    n = 0;
    assert_null(audio_chunker_next(&c, &p, &n));
    audio_chunker_deinit(&c);
}

static void test_playout_init(void **state)
{
    (void)state;
    struct audio_playout q;

    assert_int_equal(audio_playout_init(&q, 0), 0);
    assert_int_equal(q.cap, 262240); /* 256 KiB rounded up to 1639 frames */
    assert_int_equal(audio_playout_room(&q), 262240);
    audio_playout_deinit(&q);
    assert_int_equal(audio_playout_init(&q, 1), 0);
    assert_int_equal(q.cap, AUDIO_FRAME_BYTES);
    audio_playout_deinit(&q);
    assert_int_equal(audio_playout_init(&q, ((size_t)1 << 30) + 1), VA_EINVAL);
    assert_null(q.ring);
    audio_playout_deinit(&q);
}

/* Pushes of odd sizes through a small ring many times round: every popped frame is
 * the next 160 bytes of the stream. */
static void test_playout_wraparound(void **state)
{
    (void)state;
    struct audio_playout q;
    uint8_t chunk[997];
    uint8_t frame[AUDIO_FRAME_BYTES];
    uint32_t wr = 0, rd = 0;

    assert_int_equal(audio_playout_init(&q, 5 * AUDIO_FRAME_BYTES), 0);
    for (int round = 0; round < 2000; round++) {
        size_t n = (size_t)(round * 37 % 331) + 1;
        if (n <= audio_playout_room(&q)) {
            for (size_t i = 0; i < n; i++)
                chunk[i] = (uint8_t)(wr++ * 13);
            assert_int_equal(audio_playout_push(&q, chunk, n), 0);
        } else {
            assert_int_equal(audio_playout_push(&q, chunk, n), VA_EFULL);
        }
        assert_int_equal(audio_playout_frames(&q), audio_playout_bytes(&q) / AUDIO_FRAME_BYTES);
        size_t pops = (size_t)(round % 3);
        while (pops-- > 0 && audio_playout_pop(&q, frame)) {
            for (size_t i = 0; i < AUDIO_FRAME_BYTES; i++)
                assert_int_equal(frame[i], (uint8_t)(rd++ * 13));
        }
        assert_int_equal(audio_playout_bytes(&q), wr - rd);
    }
    assert_true(wr > 100 * q.cap);
    audio_playout_deinit(&q);
}

/* The same stream through a ring of several chunks, the last one partial (2.4 chunks):
 * every frame arrives intact however pushes and pops cross chunk boundaries and the
 * ring's end, and exactly the chunks holding queued bytes are allocated. */
static size_t chunks_held(const struct audio_playout *q)
{
    size_t n = 0;
    for (size_t k = 0; k < q->nchunks; k++)
        n += q->ring[k] != NULL;
    return n;
}

/* True when chunk k is allocated exactly when a queued byte lies in it. */
static bool chunks_match_queue(const struct audio_playout *q)
{
    for (size_t k = 0; k < q->nchunks; k++) {
        bool used = false;
        for (size_t i = 0; i < q->len && !used; i++)
            used = (q->head + i) % q->cap / AUDIO_PLAYOUT_CHUNK == k;
        if (used != (q->ring[k] != NULL))
            return false;
    }
    return true;
}

static void test_playout_chunks(void **state)
{
    (void)state;
    struct audio_playout q;
    uint8_t buf[2500];
    uint8_t frame[AUDIO_FRAME_BYTES];
    uint32_t wr = 0, rd = 0;

    size_t cap = AUDIO_PLAYOUT_CHUNK * 2 + 2 * AUDIO_PLAYOUT_CHUNK / 5;
    assert_int_equal(audio_playout_init(&q, cap), 0);
    assert_int_equal(q.nchunks, 3);
    assert_int_equal(chunks_held(&q), 0); /* nothing touched before the first push */
    for (int round = 0; round < 3000; round++) {
        size_t n = (size_t)(round * 211 % 2499) + 1;
        if (n <= audio_playout_room(&q)) {
            for (size_t i = 0; i < n; i++)
                buf[i] = (uint8_t)(wr++ * 7 + 3);
            assert_int_equal(audio_playout_push(&q, buf, n), 0);
        }
        size_t pops = (size_t)(round % 4) * 6;
        while (pops-- > 0 && audio_playout_pop(&q, frame)) {
            for (size_t i = 0; i < AUDIO_FRAME_BYTES; i++)
                assert_int_equal(frame[i], (uint8_t)(rd++ * 7 + 3));
        }
        /* resident memory follows what is queued */
        assert_true(chunks_match_queue(&q));
        if (audio_playout_bytes(&q) == 0)
            assert_int_equal(chunks_held(&q), 0);
    }
    assert_true(wr > 50 * q.cap);
    /* drained to a partial frame, then flushed: nothing held */
    while (audio_playout_pop(&q, frame))
        rd += AUDIO_FRAME_BYTES;
    audio_playout_flush(&q);
    assert_int_equal(chunks_held(&q), 0);
    assert_int_equal(audio_playout_push(&q, buf, 100), 0);
    assert_int_equal(chunks_held(&q), 1);
    audio_playout_deinit(&q);
}

static void test_playout_bound(void **state)
{
    (void)state;
    struct audio_playout q;
    uint8_t big[4 * AUDIO_FRAME_BYTES];
    uint8_t frame[AUDIO_FRAME_BYTES];

    memset(big, 0x11, sizeof(big));
    assert_int_equal(audio_playout_init(&q, 3 * AUDIO_FRAME_BYTES), 0);
    assert_int_equal(audio_playout_push(&q, big, sizeof(big)), VA_EFULL);
    assert_int_equal(audio_playout_bytes(&q), 0); /* refused whole */
    assert_int_equal(audio_playout_push(&q, big, 3 * AUDIO_FRAME_BYTES - 1), 0);
    assert_int_equal(audio_playout_push(&q, big, 2), VA_EFULL);
    assert_int_equal(audio_playout_push(&q, big, 1), 0);
    assert_int_equal(audio_playout_room(&q), 0);
    assert_int_equal(audio_playout_push(&q, big, 1), VA_EFULL);
    assert_int_equal(audio_playout_push(&q, big, 0), 0); /* nothing always fits */
    assert_int_equal(audio_playout_frames(&q), 3);
    assert_true(audio_playout_pop(&q, frame));
    assert_int_equal(audio_playout_room(&q), AUDIO_FRAME_BYTES);
    audio_playout_deinit(&q);
}

static void test_playout_flush(void **state)
{
    (void)state;
    struct audio_playout q;
    uint8_t data[500];
    uint8_t frame[AUDIO_FRAME_BYTES];

    memset(data, 0x22, sizeof(data));
    assert_int_equal(audio_playout_init(&q, 0), 0);
    assert_int_equal(audio_playout_push(&q, data, 500), 0);
    assert_true(audio_playout_pop(&q, frame));
    assert_int_equal(audio_playout_flush(&q), 340);
    assert_int_equal(audio_playout_frames(&q), 0);
    assert_int_equal(audio_playout_bytes(&q), 0);
    assert_false(audio_playout_pop(&q, frame));
    assert_int_equal(audio_playout_flush(&q), 0);
    /* Usable again, from a clean frame boundary. */
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)i;
    assert_int_equal(audio_playout_push(&q, data, 200), 0);
    assert_true(audio_playout_pop(&q, frame));
    assert_memory_equal(frame, data, AUDIO_FRAME_BYTES);
    audio_playout_deinit(&q);
}

static void test_playout_finish(void **state)
{
    (void)state;
    struct audio_playout q;
    uint8_t data[AUDIO_FRAME_BYTES * 3];
    uint8_t frame[AUDIO_FRAME_BYTES];

    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i % 251);
    assert_int_equal(audio_playout_init(&q, 2 * AUDIO_FRAME_BYTES), 0);
    assert_int_equal(audio_playout_finish(&q), 0); /* empty: nothing to pad */
    /* A partial frame straddling the ring's end: pop one, push 1.5 frames. */
    assert_int_equal(audio_playout_push(&q, data, AUDIO_FRAME_BYTES), 0);
    assert_true(audio_playout_pop(&q, frame));
    assert_int_equal(audio_playout_push(&q, data, 230), 0);
    assert_int_equal(audio_playout_frames(&q), 1);
    assert_int_equal(audio_playout_finish(&q), 90);
    assert_int_equal(audio_playout_room(&q), 0);
    assert_int_equal(audio_playout_frames(&q), 2);
    assert_int_equal(audio_playout_finish(&q), 0); /* already whole */
    assert_true(audio_playout_pop(&q, frame));
    assert_memory_equal(frame, data, AUDIO_FRAME_BYTES);
    assert_true(audio_playout_pop(&q, frame));
    assert_memory_equal(frame, data + AUDIO_FRAME_BYTES, 70);
    for (size_t i = 70; i < AUDIO_FRAME_BYTES; i++)
        assert_int_equal(frame[i], AUDIO_MULAW_SILENCE);
    assert_false(audio_playout_pop(&q, frame));
    /* A full ring with a partial frame pads into the last of its room. */
    assert_int_equal(audio_playout_push(&q, data, 2 * AUDIO_FRAME_BYTES - 1), 0);
    assert_int_equal(audio_playout_finish(&q), 1);
    assert_int_equal(audio_playout_frames(&q), 2);
    audio_playout_deinit(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chunker_init),      cmocka_unit_test(test_chunker_sizes_160),
        cmocka_unit_test(test_chunker_sizes_480), cmocka_unit_test(test_chunker_zero_copy),
        cmocka_unit_test(test_playout_init),      cmocka_unit_test(test_playout_wraparound),
        cmocka_unit_test(test_playout_bound),     cmocka_unit_test(test_playout_flush),
        cmocka_unit_test(test_playout_finish),    cmocka_unit_test(test_playout_chunks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
