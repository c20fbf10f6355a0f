/* tests/unit/test_audio_wav.c: WAV header and interleaving (pure), and the recorder on a
 * real loop and file: placement by index, holes, late samples, a disk that falls
 * behind, a failed open, and a clean uv_loop_close() after each. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audio/wav.h"
#include "core/err.h"
#include "core/log.h"

static void test_header_bytes(void **state)
{
    (void)state;
    uint8_t h[AUDIO_WAV_HEADER_BYTES];
    static const uint8_t want[AUDIO_WAV_HEADER_BYTES] = {
        'R',  'I',  'F',  'F',  0x24, 0x7D, 0x00, 0x00,                         /* 36 + 32000 */
        'W',  'A',  'V',  'E',  'f',  'm',  't',  ' ',  0x10, 0x00, 0x00, 0x00, /* 16 */
        0x01, 0x00,                                                             /* PCM */
        0x02, 0x00,                                                             /* stereo */
        0x40, 0x1F, 0x00, 0x00,                                                 /* 8000 Hz */
        0x00, 0x7D, 0x00, 0x00,                                                 /* 32000 bytes/s */
        0x04, 0x00,                                                             /* block align */
        0x10, 0x00,                                                             /* 16 bits */
        'd',  'a',  't',  'a',  0x00, 0x7D, 0x00, 0x00,                         /* 32000 */
    };
    audio_wav_header(h, 8000, 2, 16, 32000);
    assert_memory_equal(h, want, sizeof(want));

    audio_wav_header(h, 24000, 1, 16, 0xFFFFFFFFu - 36);
    assert_memory_equal(h + 4, "\xFF\xFF\xFF\xFF", 4);
    assert_memory_equal(h + 22, "\x01\x00\xC0\x5D\x00\x00\x80\xBB\x00\x00\x02\x00", 12);
    assert_memory_equal(h + 40, "\xDB\xFF\xFF\xFF", 4);
}

static void test_put(void **state)
{
    (void)state;
    uint8_t f[5 * 4];
    const int16_t left[5] = {1, -1, 32767, -32768, 0x1234};
    const int16_t right[3] = {-2, 256, 7};

    memset(f, 0xEE, sizeof(f));
    audio_wav_put(f, 2, 0, left, 5);
    audio_wav_put(f, 2, 1, right, 3);
    static const uint8_t want[] = {0x01, 0x00, 0xFE, 0xFF, 0xFF, 0xFF, 0x00, 0x01, 0xFF, 0x7F,
                                   0x07, 0x00, 0x00, 0x80, 0xEE, 0xEE, 0x34, 0x12, 0xEE, 0xEE};
    assert_memory_equal(f, want, sizeof(want));
}

/* ---- recorder on a loop ---- */

struct fx {
    uv_loop_t loop;
    struct va_log log;
    struct audio_rec *rec;
    char dir[64];
    char path[128];
    int closed;
    int closed_err;
    int errors;
    int error_err;
    bool close_on_error;
};

static void on_error(void *ud, int err)
{
    struct fx *f = ud;
    f->errors++;
    f->error_err = err;
    if (f->close_on_error)
        audio_rec_close(f->rec);
}

static void on_closed(void *ud, int err)
{
    struct fx *f = ud;
    f->closed++;
    f->closed_err = err;
    f->rec = NULL;
}

static const struct audio_rec_cb rec_cb = {.on_error = on_error, .on_closed = on_closed};

static void fx_init(struct fx *f, const char *name)
{
    memset(f, 0, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    va_log_init(&f->log, STDERR_FILENO, VA_LOG_ERROR);
    strcpy(f->dir, "/tmp/va_wav_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/%s", f->dir, name);
}

static void fx_open(struct fx *f, const char *name)
{
    fx_init(f, name);
    assert_int_equal(audio_rec_open(&f->rec, &f->loop, &f->log, f->path, &rec_cb, f), 0);
}

/* Closes, runs the loop dry, checks on_closed came once, reads the file back. */
static uint8_t *fx_close(struct fx *f, size_t *len)
{
    audio_rec_close(f->rec);
    assert_int_equal(f->closed, 0); /* never before close returns */
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->closed, 1);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    va_log_deinit(&f->log);

    uint8_t *data = NULL;
    *len = 0;
    FILE *fp = fopen(f->path, "rb");
    if (fp) {
        struct stat st;
        assert_int_equal(fstat(fileno(fp), &st), 0);
        assert_int_equal(st.st_mode & 0777 & ~0640u, 0); /* 0640 less the umask */
        *len = (size_t)st.st_size;
        data = malloc(*len + 1);
        assert_int_equal(fread(data, 1, *len, fp), *len);
        fclose(fp);
        unlink(f->path);
    }
    rmdir(f->dir);
    return data;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int16_t sample_at(const uint8_t *file, uint64_t frame, unsigned ch)
{
    const uint8_t *p = file + AUDIO_WAV_HEADER_BYTES + frame * 4 + ch * 2;
    return (int16_t)(uint16_t)(p[0] | p[1] << 8);
}

static void check_header(const uint8_t *file, size_t len, uint64_t frames)
{
    assert_int_equal(len, AUDIO_WAV_HEADER_BYTES + frames * 4);
    uint8_t want[AUDIO_WAV_HEADER_BYTES];
    audio_wav_header(want, 8000, 2, 16, (uint32_t)(frames * 4));
    assert_memory_equal(file, want, sizeof(want));
    assert_memory_equal(file, "RIFF", 4);
    assert_int_equal(le32(file + 4), 36 + frames * 4);
    assert_int_equal(le32(file + 24), 8000);
    assert_int_equal(le32(file + 40), frames * 4);
}

static int16_t caller_val(uint64_t i)
{
    return (int16_t)(uint16_t)(i * 7 + 1);
}

static int16_t agent_val(uint64_t i)
{
    return (int16_t)(uint16_t)(0x8000u + i * 3);
}

/* 3.3 s of caller audio in 20 ms packets with the loop running between them, agent
 * audio at two offsets, one overlapping a caller packet written later. */
static void test_record(void **state)
{
    (void)state;
    struct fx f;
    int16_t pcm[1000];
    enum { CALLER = 26400, A1 = 8037, A1N = 1000, A2 = 20000, A2N = 500 };

    fx_open(&f, "call.wav");
    for (uint64_t at = 0; at < CALLER; at += 160) {
        for (int i = 0; i < 160; i++)
            pcm[i] = caller_val(at + (uint64_t)i);
        assert_int_equal(audio_rec_caller(f.rec, at, pcm, 160), 0);
        if (at == 8000) {
            for (int i = 0; i < A1N; i++)
                pcm[i] = agent_val(A1 + (uint64_t)i);
            assert_int_equal(audio_rec_agent(f.rec, A1, pcm, A1N), 0);
        }
        if (at == 16000) { /* ahead of the caller: placed, waits in the window */
            for (int i = 0; i < A2N; i++)
                pcm[i] = agent_val(A2 + (uint64_t)i);
            assert_int_equal(audio_rec_agent(f.rec, A2, pcm, A2N), 0);
        }
        uv_run(&f.loop, UV_RUN_DEFAULT); /* a disk that keeps up: queued writes finish */
    }
    struct audio_rec_stats st;
    audio_rec_stats(f.rec, &st);
    assert_int_equal(st.frames, CALLER);
    assert_int_equal(st.blocks_dropped, 0);
    assert_int_equal(st.samples_late, 0);
    const int16_t last = -1234;
    assert_int_equal(audio_rec_caller(f.rec, CALLER, &last, 1), 0);

    size_t len;
    uint8_t *file = fx_close(&f, &len);
    assert_int_equal(f.closed_err, 0);
    assert_int_equal(f.errors, 0);
    assert_non_null(file);
    check_header(file, len, CALLER + 1);
    for (uint64_t i = 0; i < CALLER; i++) {
        if (sample_at(file, i, 0) != caller_val(i))
            fail_msg("caller sample %llu", (unsigned long long)i);
        int16_t a = (i >= A1 && i < A1 + A1N) || (i >= A2 && i < A2 + A2N) ? agent_val(i) : 0;
        if (sample_at(file, i, 1) != a)
            fail_msg("agent sample %llu", (unsigned long long)i);
    }
    assert_int_equal(sample_at(file, CALLER, 0), last);
    free(file);
}

/* A jump far ahead leaves a hole of zeros that is never written; late samples before
 * the window are counted and dropped; the length covers the last sample. */
static void test_hole_and_late(void **state)
{
    (void)state;
    struct fx f;
    int16_t pcm[160];
    const uint64_t far = 10 * 8000 * 60 + 3; /* ten minutes in */

    for (int i = 0; i < 160; i++)
        pcm[i] = (int16_t)(i + 1);
    fx_open(&f, "hole.wav");
    assert_int_equal(audio_rec_caller(f.rec, 0, pcm, 160), 0);
    assert_int_equal(audio_rec_agent(f.rec, far, pcm, 160), 0);
    assert_int_equal(audio_rec_caller(f.rec, 100, pcm, 160), 0);     /* late: before the window */
    assert_int_equal(audio_rec_caller(f.rec, far - 10, pcm, 20), 0); /* in the window */
    struct audio_rec_stats st;
    audio_rec_stats(f.rec, &st);
    assert_int_equal(st.samples_late, 160);
    assert_int_equal(st.frames, far + 160);
    assert_int_equal(audio_rec_caller(f.rec, AUDIO_REC_MAX_FRAMES, pcm, 1), VA_ETOOBIG);
    assert_int_equal(audio_rec_caller(f.rec, AUDIO_REC_MAX_FRAMES - 1, pcm, 2), VA_ETOOBIG);

    size_t len;
    uint8_t *file = fx_close(&f, &len);
    assert_int_equal(f.closed_err, 0);
    check_header(file, len, far + 160);
    for (uint64_t i = 0; i < 160; i++) {
        assert_int_equal(sample_at(file, i, 0), pcm[i]);
        assert_int_equal(sample_at(file, i, 1), 0);
        assert_int_equal(sample_at(file, far + i, 1), pcm[i]);
    }
    for (uint64_t i = 160; i < far - 10; i += 997)
        assert_int_equal(sample_at(file, i, 0) | sample_at(file, i, 1), 0);
    for (uint64_t i = 0; i < 20; i++)
        assert_int_equal(sample_at(file, far - 10 + i, 0), pcm[i]);
    free(file);
}

/* The loop does not run while 10 s arrive: the disk "falls behind", the queue stays at
 * its bound and whole blocks are dropped and counted, never memory grown. */
static void test_backpressure(void **state)
{
    (void)state;
    struct fx f;
    int16_t pcm[160];
    const uint64_t total = 10 * 8000;

    for (int i = 0; i < 160; i++)
        pcm[i] = 1000;
    fx_open(&f, "slow.wav");
    for (uint64_t at = 0; at < total; at += 160)
        assert_int_equal(audio_rec_caller(f.rec, at, pcm, 160), 0);
    struct audio_rec_stats st;
    audio_rec_stats(f.rec, &st);
    /* 40 blocks: 8 in the window, 4 queued, the rest dropped. */
    uint64_t blocks = total / AUDIO_REC_BLOCK_FRAMES;
    assert_int_equal(st.blocks_dropped,
                     blocks - AUDIO_REC_WINDOW_BLOCKS - AUDIO_REC_PENDING_BLOCKS);
    assert_int_equal(st.blocks_written, 0);

    size_t len;
    uint8_t *file = fx_close(&f, &len);
    assert_int_equal(f.closed_err, 0);
    check_header(file, len, total);
    /* The first 4 blocks (queued) and the last 8 (window) are there, the rest zeros. */
    for (uint64_t b = 0; b < blocks; b++) {
        bool kept = b < AUDIO_REC_PENDING_BLOCKS || b >= blocks - AUDIO_REC_WINDOW_BLOCKS;
        int16_t s = sample_at(file, b * AUDIO_REC_BLOCK_FRAMES + 5, 0);
        assert_int_equal(s, kept ? 1000 : 0);
    }
    free(file);
}

static void test_open_fails(void **state)
{
    (void)state;
    struct fx f;
    int16_t pcm[160] = {0};

    memset(&f, 0, sizeof(f));
    assert_int_equal(uv_loop_init(&f.loop), 0);
    va_log_init(&f.log, STDERR_FILENO, VA_LOG_ERROR);
    assert_int_equal(
        audio_rec_open(&f.rec, &f.loop, &f.log, "/nonexistent-dir/x/rec.wav", &rec_cb, &f), 0);
    for (uint64_t at = 0; at < 40000; at += 160)
        assert_int_equal(audio_rec_caller(f.rec, at, pcm, 160), 0);
    uv_run(&f.loop, UV_RUN_DEFAULT); /* the open fails; nothing else is in flight */
    assert_int_equal(f.errors, 1);
    assert_int_equal(f.error_err, UV_ENOENT);
    for (uint64_t at = 40000; at < 80000; at += 160)
        assert_int_equal(audio_rec_caller(f.rec, at, pcm, 160), 0);
    audio_rec_close(f.rec);
    assert_int_equal(audio_rec_caller(f.rec, 0, pcm, 1), VA_ECLOSED);
    assert_int_equal(f.closed, 0);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_int_equal(f.closed, 1);
    assert_int_equal(f.closed_err, UV_ENOENT);
    assert_int_equal(f.errors, 1);
    assert_int_equal(uv_loop_close(&f.loop), 0);
    va_log_deinit(&f.log);
}

/* /dev/full opens but every write fails with ENOSPC: one on_error, blocks counted as
 * dropped, the error reaches on_closed; once with close called from on_error. */
static void disk_full(bool close_on_error)
{
    struct fx f;
    int16_t pcm[160] = {0};

    if (access("/dev/full", W_OK) != 0) {
        print_message("no /dev/full: skipped\n");
        return;
    }
    memset(&f, 0, sizeof(f));
    f.close_on_error = close_on_error;
    assert_int_equal(uv_loop_init(&f.loop), 0);
    va_log_init(&f.log, STDERR_FILENO, VA_LOG_ERROR);
    assert_int_equal(audio_rec_open(&f.rec, &f.loop, &f.log, "/dev/full", &rec_cb, &f), 0);
    for (uint64_t at = 0; at < 40000 && f.closed == 0; at += 160) {
        int err = audio_rec_caller(f.rec, at, pcm, 160);
        assert_true(err == 0 || (close_on_error && err == VA_ECLOSED));
        uv_run(&f.loop, UV_RUN_DEFAULT);
    }
    assert_int_equal(f.errors, 1);
    assert_int_equal(f.error_err, UV_ENOSPC);
    if (!close_on_error) {
        struct audio_rec_stats st;
        audio_rec_stats(f.rec, &st);
        assert_int_equal(st.blocks_written, 0);
        assert_true(st.blocks_dropped >= 40000 / AUDIO_REC_BLOCK_FRAMES - AUDIO_REC_WINDOW_BLOCKS);
        audio_rec_close(f.rec);
    }
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_int_equal(f.closed, 1);
    assert_int_equal(f.closed_err, UV_ENOSPC);
    assert_int_equal(f.errors, 1);
    assert_int_equal(uv_loop_close(&f.loop), 0);
    va_log_deinit(&f.log);
}

static void test_disk_full(void **state)
{
    (void)state;
    disk_full(false);
}

static void test_disk_full_close_in_on_error(void **state)
{
    (void)state;
    disk_full(true);
}

/* Closed before the open completed, with nothing recorded: a valid empty WAV. */
static void test_close_at_once(void **state)
{
    (void)state;
    struct fx f;
    size_t len;

    fx_open(&f, "empty.wav");
    uint8_t *file = fx_close(&f, &len);
    assert_int_equal(f.closed_err, 0);
    assert_non_null(file);
    check_header(file, len, 0);
    free(file);
}

/* A second recording over the first truncates it. */
static void test_truncates_old_file(void **state)
{
    (void)state;
    struct fx f;
    int16_t pcm[4] = {1, 2, 3, 4};
    size_t len;

    fx_init(&f, "again.wav");
    FILE *fp = fopen(f.path, "wb");
    assert_non_null(fp);
    assert_int_equal(fchmod(fileno(fp), 0600), 0); /* open() keeps an existing file's mode */
    static char junk[100000] = {1};
    assert_int_equal(fwrite(junk, 1, sizeof(junk), fp), sizeof(junk));
    fclose(fp);
    assert_int_equal(audio_rec_open(&f.rec, &f.loop, &f.log, f.path, &rec_cb, &f), 0);
    assert_int_equal(audio_rec_agent(f.rec, 2, pcm, 4), 0);
    uint8_t *file = fx_close(&f, &len);
    assert_int_equal(f.closed_err, 0);
    check_header(file, len, 6);
    assert_int_equal(sample_at(file, 0, 0), 0);
    assert_int_equal(sample_at(file, 1, 1), 0);
    assert_int_equal(sample_at(file, 5, 1), 4);
    free(file);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_bytes),
        cmocka_unit_test(test_put),
        cmocka_unit_test(test_record),
        cmocka_unit_test(test_hole_and_late),
        cmocka_unit_test(test_backpressure),
        cmocka_unit_test(test_open_fails),
        cmocka_unit_test(test_close_at_once),
        cmocka_unit_test(test_disk_full),
        cmocka_unit_test(test_disk_full_close_in_on_error),
        cmocka_unit_test(test_truncates_old_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
