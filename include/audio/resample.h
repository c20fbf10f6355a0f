/* include/audio/resample.h: streaming PCM16 resampler (libspeexdsp), one per call and direction.
 *
 * Used for the PCM16 24 kHz Realtime option (8 kHz -> 24 kHz up, 24 kHz -> 8 kHz down)
 * and for recordings; the default audio/pcmu path never resamples. The filter keeps
 * history across calls, so an instance belongs to one stream; never share one. */
#ifndef VA_AUDIO_RESAMPLE_H
#define VA_AUDIO_RESAMPLE_H

#include <stddef.h>
#include <stdint.h>

/* speexdsp quality 0..10. 5 is the best that keeps the 5 ms per direction budget (q6 is
 * 6 ms): passband flat to 0.004 dB up to 3.4 kHz, worst alias 110 dB down (q4: 90 dB),
 * 4.3-6.8 us per 20 ms frame per direction on the 2-core build host, 0.3-1 us more
 * than q4 (figures, method and reasons in docs/audio.md). */
#define AUDIO_RESAMPLER_QUALITY 5

struct SpeexResamplerState_; /* speex/speex_resampler.h: SpeexResamplerState */

struct audio_resampler {
    struct SpeexResamplerState_ *st;
    uint32_t in_rate;
    uint32_t out_rate;
};

/* Rates in Hz (1..384000), quality 0..10. Allocates the filter state (~2.5 KB at q5).
 * 0, VA_EINVAL or -ENOMEM; on failure r is zeroed and deinit is still safe. */
int audio_resampler_init(struct audio_resampler *r, uint32_t in_rate, uint32_t out_rate,
                         int quality);
void audio_resampler_deinit(struct audio_resampler *r);

/* The most output samples n_in input samples can produce: ceil(n_in * out / in). */
size_t audio_resampler_out_max(const struct audio_resampler *r, size_t n_in);

/* Resamples in[0, n_in) into out, all of it: *n_out gets the count written. There is
 * no internal output buffering, so for whole 20 ms frames at 8 <-> 24 kHz every call,
 * the first included, returns the full frame (160 -> 480, 480 -> 160); the filter
 * delay appears as leading near-silence instead (audio_resampler_delay()).
 * 0, or VA_ETOOBIG when out_cap < audio_resampler_out_max(r, n_in) or n_in is past
 * 2^31 (nothing consumed, state unchanged). */
int audio_resampler_process(struct audio_resampler *r, const int16_t *in, size_t n_in, int16_t *out,
                            size_t out_cap, size_t *n_out);

/* Forgets the history (barge-in: the old stream's tail must not bleed into the next). */
void audio_resampler_reset(struct audio_resampler *r);

/* Filter delay in input samples (speex_resampler_get_input_latency()). */
uint32_t audio_resampler_delay(const struct audio_resampler *r);

#endif
