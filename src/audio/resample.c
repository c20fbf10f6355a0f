/* src/audio/resample.c: a thin, bounded wrapper over speexdsp's resampler. */
#include "audio/resample.h"

#include <errno.h>
#include <string.h>

#include <speex/speex_resampler.h>

#include "core/err.h"

/* Past any audio rate we use; keeps n * rate products far from overflow. */
#define RS_MAX_RATE 384000u
/* speexdsp counts in spx_uint32_t and some of its arithmetic in int. */
#define RS_MAX_IN ((size_t)1 << 31)

int audio_resampler_init(struct audio_resampler *r, uint32_t in_rate, uint32_t out_rate,
                         int quality)
{
    int serr = RESAMPLER_ERR_SUCCESS;

    memset(r, 0, sizeof(*r));
    if (in_rate == 0 || out_rate == 0 || in_rate > RS_MAX_RATE || out_rate > RS_MAX_RATE ||
        quality < SPEEX_RESAMPLER_QUALITY_MIN || quality > SPEEX_RESAMPLER_QUALITY_MAX)
        return VA_EINVAL;
    r->st = speex_resampler_init(1, in_rate, out_rate, quality, &serr);
    if (!r->st)
        return serr == RESAMPLER_ERR_ALLOC_FAILED ? -ENOMEM : VA_EINVAL;
    r->in_rate = in_rate;
    r->out_rate = out_rate;
    return 0;
}

void audio_resampler_deinit(struct audio_resampler *r)
{
    if (r->st)
        speex_resampler_destroy(r->st);
    memset(r, 0, sizeof(*r));
}

size_t audio_resampler_out_max(const struct audio_resampler *r, size_t n_in)
{
    uint64_t n = (uint64_t)n_in * r->out_rate;
    return (size_t)((n + r->in_rate - 1) / r->in_rate);
}

int audio_resampler_process(struct audio_resampler *r, const int16_t *in, size_t n_in, int16_t *out,
                            size_t out_cap, size_t *n_out)
{
    *n_out = 0;
    if (n_in > RS_MAX_IN || out_cap < audio_resampler_out_max(r, n_in))
        return VA_ETOOBIG;
    if (n_in == 0)
        return 0;

    spx_uint32_t in_len = (spx_uint32_t)n_in;
    /* Room for the bound, not all of out_cap: speexdsp stops at whichever runs out
     * first, and with this much room that is always the input. */
    size_t room = audio_resampler_out_max(r, n_in);
    spx_uint32_t out_len = room > UINT32_MAX ? UINT32_MAX : (spx_uint32_t)room;
    int serr = speex_resampler_process_int(r->st, 0, in, &in_len, out, &out_len);
    /* Cannot fail for a valid mono state; an unconsumed input would mean the bound
     * above is wrong, which is our bug, not the caller's. */
    if (serr != RESAMPLER_ERR_SUCCESS || in_len != n_in)
        return VA_EPROTO;
    *n_out = out_len;
    return 0;
}

void audio_resampler_reset(struct audio_resampler *r)
{
    speex_resampler_reset_mem(r->st);
}

uint32_t audio_resampler_delay(const struct audio_resampler *r)
{
    int d = speex_resampler_get_input_latency(r->st);
    return d > 0 ? (uint32_t)d : 0;
}
