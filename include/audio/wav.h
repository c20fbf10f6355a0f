/* include/audio/wav.h: per-call stereo WAV recording (caller left, agent right), written
 * asynchronously with uv_fs_* so the loop never blocks on the disk.
 *
 * Samples are placed by absolute index from the call start (8 kHz), so the two legs
 * line up however their packets arrive; a position nobody wrote stays 0. The newest
 * AUDIO_REC_WINDOW_BLOCKS blocks stay in memory to take samples out of order; the
 * oldest is written out when a sample lands past the window. Write the agent leg as
 * it is played (popped from the playout queue), not as it arrives: the model sends
 * faster than real time, and audio flushed on barge-in was never heard. */
#ifndef VA_AUDIO_WAV_H
#define VA_AUDIO_WAV_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct va_log;
struct audio_rec; /* opaque */

#define AUDIO_WAV_HEADER_BYTES 44
#define AUDIO_REC_RATE 8000
#define AUDIO_REC_CHANNELS 2
#define AUDIO_REC_FRAME_BYTES 4     /* two 16-bit samples */
#define AUDIO_REC_BLOCK_FRAMES 2000 /* 250 ms, 8000 bytes: one uv_fs_write */
#define AUDIO_REC_WINDOW_BLOCKS 8   /* 2 s in memory for out-of-order samples */
#define AUDIO_REC_PENDING_BLOCKS 4  /* 1 s waiting for the disk; past it blocks are dropped */
/* The RIFF sizes are 32-bit: 36 + data bytes must fit (about 37 hours). */
#define AUDIO_REC_MAX_FRAMES ((UINT32_MAX - 36u) / AUDIO_REC_FRAME_BYTES)

/* ---- pure helpers ------------------------------------------------------------------- */

/* Writes the 44-byte canonical PCM WAV header (RIFF size 36 + data_bytes). */
void audio_wav_header(uint8_t out[AUDIO_WAV_HEADER_BYTES], uint32_t rate, uint16_t channels,
                      uint16_t bits, uint32_t data_bytes);

/* Interleaves: writes pcm[i] as 16-bit little-endian into channel ch of frame i of
 * frames (channels 16-bit samples per frame), for i in [0, n); the other channels are
 * left as they are. */
void audio_wav_put(uint8_t *frames, unsigned channels, unsigned ch, const int16_t *pcm, size_t n);

/* ---- recorder ----------------------------------------------------------------------- */

struct audio_rec_cb {
    /* Optional (may be NULL). At most once, at the first failure (open, write,
     * truncate, close); from then on samples are counted as dropped. It may call
     * audio_rec_close(). */
    void (*on_error)(void *ud, int err);
    /* Exactly once and last, after audio_rec_close(): 0, or the first error. The
     * recorder is already freed. */
    void (*on_closed)(void *ud, int err);
};

struct audio_rec_stats {
    uint64_t frames;         /* one past the highest position written: the file's length */
    uint64_t blocks_written; /* completed uv_fs_write of sample blocks */
    uint64_t blocks_dropped; /* blocks with samples lost to a slow or failed disk */
    uint64_t samples_late;   /* samples for positions already written out, discarded */
};

/* Starts opening path (created or truncated, mode 0640) and returns the recorder at
 * once; samples may be given right away. A 44-byte header placeholder is written
 * first. 0 or a negative code; on failure *out is untouched and no callback runs. */
int audio_rec_open(struct audio_rec **out, uv_loop_t *loop, struct va_log *log, const char *path,
                   const struct audio_rec_cb *cb, void *ud);

/* Places pcm[0, n) (8 kHz) in the caller (left) or agent (right) channel starting at
 * sample_index, counted from the call start; later writes to a position overwrite.
 * Synchronous copy; the disk write follows asynchronously. Samples before the
 * in-memory window are counted in samples_late and dropped (still 0).
 * 0, VA_ETOOBIG past AUDIO_REC_MAX_FRAMES (nothing written), VA_ECLOSED after close. */
int audio_rec_caller(struct audio_rec *rec, uint64_t sample_index, const int16_t *pcm, size_t n);
int audio_rec_agent(struct audio_rec *rec, uint64_t sample_index, const int16_t *pcm, size_t n);

void audio_rec_stats(const struct audio_rec *rec, struct audio_rec_stats *st);

/* Writes out what is left, sets the file length to 44 + 4 * frames, rewrites the
 * header's sizes, closes the file, then calls on_closed. Asynchronous: on_closed never
 * runs before this returns. Call once; rec stays valid until on_closed. */
void audio_rec_close(struct audio_rec *rec);

#endif
