/* src/audio/wav.c: WAV header and interleaving (pure), and the asynchronous recorder.
 *
 * One uv_fs_t serves every file operation in turn, so at most one is in flight;
 * audio_rec_proceed() is the single place that decides the next one: the queue
 * (placeholder header, then blocks oldest first), and once closing: the blocks left in the window,
 * the final length, the final header, close. Blocks are written at their own offsets,
 * so a stretch nobody wrote is never written at all (a hole that reads as zeros) and
 * the final ftruncate gives the file its exact length. */
#include "audio/wav.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"

#define REC_BLOCK_BYTES (AUDIO_REC_BLOCK_FRAMES * AUDIO_REC_FRAME_BYTES)
#define REC_WINDOW_FRAMES ((uint64_t)AUDIO_REC_WINDOW_BLOCKS * AUDIO_REC_BLOCK_FRAMES)
/* The window's blocks all go to the queue at close, on top of what is already there. */
#define REC_QUEUE_CAP (AUDIO_REC_WINDOW_BLOCKS + AUDIO_REC_PENDING_BLOCKS)

static void audio_put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xFF);
    p[1] = (uint8_t)(v >> 8);
}

static void audio_put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v & 0xFF);
    p[1] = (uint8_t)((v >> 8) & 0xFF);
    p[2] = (uint8_t)((v >> 16) & 0xFF);
    p[3] = (uint8_t)(v >> 24);
}

void audio_wav_header(uint8_t out[AUDIO_WAV_HEADER_BYTES], uint32_t rate, uint16_t channels,
                      uint16_t bits, uint32_t data_bytes)
{
    uint16_t align = (uint16_t)(channels * (bits / 8));

    memcpy(out, "RIFF", 4);
    audio_put_le32(out + 4, 36u + data_bytes);
    memcpy(out + 8, "WAVE", 4);
    memcpy(out + 12, "fmt ", 4);
    audio_put_le32(out + 16, 16); /* fmt chunk size for plain PCM */
    audio_put_le16(out + 20, 1);  /* WAVE_FORMAT_PCM */
    audio_put_le16(out + 22, channels);
    audio_put_le32(out + 24, rate);
    audio_put_le32(out + 28, rate * align); /* byte rate */
    audio_put_le16(out + 32, align);
    audio_put_le16(out + 34, bits);
    memcpy(out + 36, "data", 4);
    audio_put_le32(out + 40, data_bytes);
}

void audio_wav_put(uint8_t *frames, unsigned channels, unsigned ch, const int16_t *pcm, size_t n)
{
    uint8_t *p = frames + (size_t)ch * 2;
    size_t stride = (size_t)channels * 2;

    /* WAV is little-endian whatever the host is. */
    for (size_t i = 0; i < n; i++, p += stride)
        audio_put_le16(p, (uint16_t)pcm[i]);
}

enum audio_rec_op { REC_OP_NONE = 0, REC_OP_OPEN, REC_OP_WRITE, REC_OP_TRUNCATE, REC_OP_CLOSE };

/* A write waiting for, or in, the request. buf is a block, or the header. */
struct audio_rec_write {
    uint8_t *buf;
    uint64_t off;
    size_t len;
    size_t done;
    bool block; /* buf returns to the free list when written */
};

struct audio_rec {
    uv_loop_t *loop;
    struct va_log *log;
    struct audio_rec_cb cb;
    void *ud;
    char *path; /* for logs only */

    uv_fs_t req;    /* the one file operation in flight */
    uv_timer_t hop; /* never started: closing it puts on_closed after every other step */
    enum audio_rec_op op;
    uv_file fd; /* -1 when not open */
    bool closing;
    bool drained;      /* window moved to the queue (closing) */
    bool truncated;    /* final length set */
    bool final_header; /* sizes rewritten */
    bool hop_closing;
    int err; /* first failure */
    bool drop_logged;

    /* In-memory window: block i (from ring_head) holds frames [base + i*B, base + (i+1)*B). */
    uint64_t base; /* a multiple of AUDIO_REC_BLOCK_FRAMES */
    uint8_t *ring[AUDIO_REC_WINDOW_BLOCKS];
    bool dirty[AUDIO_REC_WINDOW_BLOCKS];
    size_t ring_head;

    /* Queue of writes, oldest at q_head; the in-flight one stays at the head until done. */
    struct audio_rec_write q[REC_QUEUE_CAP + 1];
    size_t q_head;
    size_t q_len;
    uint8_t *free_blocks[REC_QUEUE_CAP];
    size_t nfree;

    uint8_t header[AUDIO_WAV_HEADER_BYTES];
    uint8_t *mem; /* every block buffer, one allocation */
    struct audio_rec_stats st;
};

static void audio_rec_proceed(struct audio_rec *rec);

static void audio_rec_fail(struct audio_rec *rec, int err, const char *what)
{
    if (rec->err)
        return;
    rec->err = err;
    va_log_warn(rec->log, "audio", "recording failed", VA_LSTR("path", rec->path),
                VA_LSTR("op", what), VA_LSTR("error", va_strerror(err)));
    /* Queued writes are abandoned; one in flight stays at the head until its callback. */
    size_t keep = rec->op == REC_OP_WRITE ? 1 : 0;
    while (rec->q_len > keep) {
        size_t last = (rec->q_head + rec->q_len - 1) % (REC_QUEUE_CAP + 1);
        struct audio_rec_write *w = &rec->q[last];
        if (w->block) {
            rec->free_blocks[rec->nfree++] = w->buf;
            rec->st.blocks_dropped++;
        }
        rec->q_len--;
    }
    if (rec->cb.on_error)
        rec->cb.on_error(rec->ud, err);
}

static void audio_rec_enqueue(struct audio_rec *rec, uint8_t *buf, uint64_t off, size_t len,
                              bool block)
{
    assert(rec->q_len < REC_QUEUE_CAP + 1);
    struct audio_rec_write *w = &rec->q[(rec->q_head + rec->q_len) % (REC_QUEUE_CAP + 1)];
    w->buf = buf;
    w->off = off;
    w->len = len;
    w->done = 0;
    w->block = block;
    rec->q_len++;
}

static uint64_t audio_rec_offset(uint64_t frame)
{
    return AUDIO_WAV_HEADER_BYTES + frame * AUDIO_REC_FRAME_BYTES;
}

/* Moves the oldest window block out: to the write queue when it holds samples and a
 * spare buffer exists, else (disk behind, or failed) its samples are dropped. */
static void audio_rec_retire(struct audio_rec *rec)
{
    size_t slot = rec->ring_head;

    if (rec->dirty[slot]) {
        if (rec->nfree > 0 && !rec->err) {
            audio_rec_enqueue(rec, rec->ring[slot], audio_rec_offset(rec->base), REC_BLOCK_BYTES,
                              true);
            rec->ring[slot] = rec->free_blocks[--rec->nfree];
        } else {
            rec->st.blocks_dropped++;
            if (!rec->drop_logged) {
                rec->drop_logged = true;
                va_log_warn(rec->log, "audio", "recording block dropped",
                            VA_LSTR("path", rec->path),
                            VA_LSTR("why", rec->err ? "write failed" : "disk behind"),
                            VA_LINT("queued", rec->q_len));
            }
        }
        memset(rec->ring[slot], 0, REC_BLOCK_BYTES);
        rec->dirty[slot] = false;
    }
    rec->ring_head = (slot + 1) % AUDIO_REC_WINDOW_BLOCKS;
    rec->base += AUDIO_REC_BLOCK_FRAMES;
}

/* Retires blocks until frame idx (>= the window's end) falls inside the window. */
static void audio_rec_advance(struct audio_rec *rec, uint64_t idx)
{
    uint64_t need = (idx - (rec->base + REC_WINDOW_FRAMES)) / AUDIO_REC_BLOCK_FRAMES + 1;

    if (need >= AUDIO_REC_WINDOW_BLOCKS) {
        /* A jump past the whole window: retire it all, then skip the silent stretch;
         * idx lands in the last block so earlier samples of the other leg still fit. */
        for (size_t i = 0; i < AUDIO_REC_WINDOW_BLOCKS; i++)
            audio_rec_retire(rec);
        uint64_t base =
            (idx / AUDIO_REC_BLOCK_FRAMES - (AUDIO_REC_WINDOW_BLOCKS - 1)) * AUDIO_REC_BLOCK_FRAMES;
        if (base > rec->base)
            rec->base = base;
        return;
    }
    for (uint64_t i = 0; i < need; i++)
        audio_rec_retire(rec);
}

static int audio_rec_place(struct audio_rec *rec, unsigned ch, uint64_t idx, const int16_t *pcm,
                           size_t n)
{
    if (rec->closing)
        return VA_ECLOSED;
    if (idx > AUDIO_REC_MAX_FRAMES || n > AUDIO_REC_MAX_FRAMES - idx)
        return VA_ETOOBIG;
    if (n == 0)
        return 0;
    if (idx < rec->base) {
        uint64_t late = rec->base - idx;
        if (late >= n) {
            rec->st.samples_late += n;
            return 0;
        }
        rec->st.samples_late += late;
        pcm += late;
        n -= (size_t)late;
        idx = rec->base;
    }
    if (idx + n > rec->st.frames)
        rec->st.frames = idx + n;
    while (n > 0) {
        if (idx >= rec->base + REC_WINDOW_FRAMES) {
            audio_rec_advance(rec, idx);
            continue;
        }
        uint64_t rel = idx - rec->base;
        size_t b = (size_t)(rel / AUDIO_REC_BLOCK_FRAMES);
        size_t at = (size_t)(rel % AUDIO_REC_BLOCK_FRAMES);
        size_t take = AUDIO_REC_BLOCK_FRAMES - at;
        if (take > n)
            take = n;
        size_t slot = (rec->ring_head + b) % AUDIO_REC_WINDOW_BLOCKS;
        audio_wav_put(rec->ring[slot] + at * AUDIO_REC_FRAME_BYTES, AUDIO_REC_CHANNELS, ch, pcm,
                      take);
        rec->dirty[slot] = true;
        idx += take;
        pcm += take;
        n -= take;
    }
    audio_rec_proceed(rec);
    return 0;
}

int audio_rec_caller(struct audio_rec *rec, uint64_t sample_index, const int16_t *pcm, size_t n)
{
    return audio_rec_place(rec, 0, sample_index, pcm, n);
}

int audio_rec_agent(struct audio_rec *rec, uint64_t sample_index, const int16_t *pcm, size_t n)
{
    return audio_rec_place(rec, 1, sample_index, pcm, n);
}

void audio_rec_stats(const struct audio_rec *rec, struct audio_rec_stats *st)
{
    *st = rec->st;
}

/* At close: every block still in the window that holds samples joins the queue,
 * trimmed to the file's length, or counts as dropped after a failure. No replacement
 * buffers: nothing is placed any more. */
static void audio_rec_drain(struct audio_rec *rec)
{
    for (size_t i = 0; i < AUDIO_REC_WINDOW_BLOCKS; i++) {
        size_t slot = (rec->ring_head + i) % AUDIO_REC_WINDOW_BLOCKS;
        uint64_t start = rec->base + (uint64_t)i * AUDIO_REC_BLOCK_FRAMES;
        if (!rec->dirty[slot] || start >= rec->st.frames)
            continue;
        rec->dirty[slot] = false;
        if (rec->err) {
            rec->st.blocks_dropped++;
            continue;
        }
        uint64_t frames = rec->st.frames - start;
        if (frames > AUDIO_REC_BLOCK_FRAMES)
            frames = AUDIO_REC_BLOCK_FRAMES;
        audio_rec_enqueue(rec, rec->ring[slot], audio_rec_offset(start),
                          (size_t)frames * AUDIO_REC_FRAME_BYTES, true);
        rec->ring[slot] = NULL;
    }
}

static void audio_rec_on_fs(uv_fs_t *req);

static void audio_rec_start_write(struct audio_rec *rec)
{
    struct audio_rec_write *w = &rec->q[rec->q_head];
    uv_buf_t b = uv_buf_init((char *)w->buf + w->done, (unsigned)(w->len - w->done));

    rec->op = REC_OP_WRITE;
    int err = uv_fs_write(rec->loop, &rec->req, rec->fd, &b, 1, (int64_t)(w->off + w->done),
                          audio_rec_on_fs);
    if (err) {
        rec->op = REC_OP_NONE;
        audio_rec_fail(rec, err, "write");
    }
}

static void audio_rec_on_hop_closed(uv_handle_t *h)
{
    struct audio_rec *rec = h->data;
    void (*on_closed)(void *, int) = rec->cb.on_closed;
    void *ud = rec->ud;
    int err = rec->err;

    if (rec->st.blocks_dropped || rec->st.samples_late)
        va_log_warn(rec->log, "audio", "recording incomplete", VA_LSTR("path", rec->path),
                    VA_LINT("blocksDropped", rec->st.blocks_dropped),
                    VA_LINT("samplesLate", rec->st.samples_late));
    free(rec->mem);
    free(rec->path);
    free(rec);
    on_closed(ud, err);
}

/* Starts the next file operation, if any and none is in flight. */
static void audio_rec_proceed(struct audio_rec *rec)
{
    /* A failing uv_fs_* call moves state on without a callback: loop until an
     * operation is in flight or nothing is left to do. */
    while (rec->op == REC_OP_NONE) {
        int err = 0;

        if (rec->fd >= 0 && !rec->err) {
            if (rec->q_len > 0) {
                audio_rec_start_write(rec);
                continue;
            }
            if (!rec->closing)
                return;
            if (!rec->drained) {
                rec->drained = true;
                audio_rec_drain(rec);
                continue;
            }
            if (!rec->truncated) {
                rec->truncated = true;
                rec->op = REC_OP_TRUNCATE;
                err = uv_fs_ftruncate(rec->loop, &rec->req, rec->fd,
                                      (int64_t)audio_rec_offset(rec->st.frames), audio_rec_on_fs);
                if (err) {
                    rec->op = REC_OP_NONE;
                    audio_rec_fail(rec, err, "truncate");
                }
                continue;
            }
            if (!rec->final_header) {
                rec->final_header = true;
                audio_wav_header(rec->header, AUDIO_REC_RATE, AUDIO_REC_CHANNELS, 16,
                                 (uint32_t)(rec->st.frames * AUDIO_REC_FRAME_BYTES));
                audio_rec_enqueue(rec, rec->header, 0, AUDIO_WAV_HEADER_BYTES, false);
                continue;
            }
        }
        if (!rec->closing)
            return;
        if (!rec->drained) { /* failed: count what the window held */
            rec->drained = true;
            audio_rec_drain(rec);
        }
        if (rec->fd >= 0) {
            rec->op = REC_OP_CLOSE;
            err = uv_fs_close(rec->loop, &rec->req, rec->fd, audio_rec_on_fs);
            if (err) {
                rec->op = REC_OP_NONE;
                rec->fd = -1;
                audio_rec_fail(rec, err, "close");
            }
            continue;
        }
        if (!rec->hop_closing) {
            rec->hop_closing = true;
            uv_close((uv_handle_t *)&rec->hop, audio_rec_on_hop_closed);
        }
        return;
    }
}

static void audio_rec_on_fs(uv_fs_t *req)
{
    struct audio_rec *rec = req->data;
    enum audio_rec_op op = rec->op;
    ssize_t res = req->result;

    uv_fs_req_cleanup(req);
    rec->op = REC_OP_NONE;
    switch (op) {
    case REC_OP_OPEN:
        if (res < 0)
            audio_rec_fail(rec, (int)res, "open");
        else
            rec->fd = (uv_file)res;
        break;
    case REC_OP_WRITE: {
        struct audio_rec_write *w = &rec->q[rec->q_head];
        if (res <= 0) {
            /* 0 bytes written would repeat forever: treat it as an I/O error. */
            if (w->block) {
                rec->free_blocks[rec->nfree++] = w->buf;
                rec->st.blocks_dropped++;
            }
            rec->q_head = (rec->q_head + 1) % (REC_QUEUE_CAP + 1);
            rec->q_len--;
            audio_rec_fail(rec, res < 0 ? (int)res : UV_EIO, "write");
            break;
        }
        w->done += (size_t)res;
        if (w->done < w->len)
            break; /* short write: proceed() sends the rest */
        if (w->block) {
            rec->st.blocks_written++;
            rec->free_blocks[rec->nfree++] = w->buf;
        }
        rec->q_head = (rec->q_head + 1) % (REC_QUEUE_CAP + 1);
        rec->q_len--;
        break;
    }
    case REC_OP_TRUNCATE:
        if (res < 0)
            audio_rec_fail(rec, (int)res, "truncate");
        break;
    case REC_OP_CLOSE:
        rec->fd = -1;
        if (res < 0)
            audio_rec_fail(rec, (int)res, "close");
        break;
    case REC_OP_NONE:
        assert(0);
        break;
    }
    audio_rec_proceed(rec);
}

int audio_rec_open(struct audio_rec **out, uv_loop_t *loop, struct va_log *log, const char *path,
                   const struct audio_rec_cb *cb, void *ud)
{
    struct audio_rec *rec;
    int err;

    assert(cb && cb->on_closed);
    rec = va_xcalloc(1, sizeof(*rec));

    rec->loop = loop;
    rec->log = log;
    rec->cb = *cb;
    rec->ud = ud;
    rec->fd = -1;
    rec->path = va_xstrdup(path);
    rec->req.data = rec;
    rec->hop.data = rec;
    /* Window and spare blocks in one piece: the recorder's memory is fixed here
     * (12 x 8000 bytes), whatever the disk does later. */
    rec->mem = va_xcalloc(REC_QUEUE_CAP, REC_BLOCK_BYTES);
    for (size_t i = 0; i < AUDIO_REC_WINDOW_BLOCKS; i++)
        rec->ring[i] = rec->mem + i * REC_BLOCK_BYTES;
    for (size_t i = AUDIO_REC_WINDOW_BLOCKS; i < REC_QUEUE_CAP; i++)
        rec->free_blocks[rec->nfree++] = rec->mem + i * REC_BLOCK_BYTES;

    /* The placeholder header is the first write, whatever gets queued meanwhile. */
    audio_wav_header(rec->header, AUDIO_REC_RATE, AUDIO_REC_CHANNELS, 16, 0);
    audio_rec_enqueue(rec, rec->header, 0, AUDIO_WAV_HEADER_BYTES, false);

    rec->op = REC_OP_OPEN;
    err = uv_fs_open(loop, &rec->req, path, UV_FS_O_CREAT | UV_FS_O_TRUNC | UV_FS_O_WRONLY, 0640,
                     audio_rec_on_fs);
    if (err)
        goto fail;
    /* Cannot fail once the loop is valid; the handle exists so the last step of every
     * close, even one with no file left to close, is asynchronous. */
    uv_timer_init(loop, &rec->hop);
    *out = rec;
    return 0;

fail:
    free(rec->mem);
    free(rec->path);
    free(rec);
    return err;
}

void audio_rec_close(struct audio_rec *rec)
{
    if (rec->closing)
        return;
    rec->closing = true;
    audio_rec_proceed(rec);
}
