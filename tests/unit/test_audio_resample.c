/* tests/unit/test_audio_resample.c: 8 <-> 24 kHz through 20 ms streaming frames, measured
 * by least-squares tone fits (audio.md 3.2): passband, alias rejection, round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio/frame.h"
#include "audio/resample.h"
#include "core/err.h"
#include "tone_fit.h"

#define AMP 16384.0 /* -6 dBFS */
#define SECONDS 1
#define SKIP_HEAD_MS 200
#define SKIP_TAIL_MS 100

/* int16 samples through the shared fit (tests/support/tone_fit.c). */
static struct tone_fit fit_tone(const int16_t *y, size_t n, double fs, double f)
{
    double *d = malloc(n * sizeof(*d));
    assert_non_null(d);
    for (size_t k = 0; k < n; k++)
        d[k] = y[k];
    struct tone_fit r = tone_fit(d, n, fs, f);
    free(d);
    return r;
}

static void make_tone(int16_t *x, size_t n, double fs, double f)
{
    for (size_t k = 0; k < n; k++)
        x[k] = (int16_t)lrint(AMP * cos(2 * M_PI * f * (double)k / fs));
}

/* Streams in through a fresh resampler in 20 ms frames; every call must return the
 * full 20 ms of output. */
static void stream(uint32_t in_rate, uint32_t out_rate, const int16_t *in, size_t n_in,
                   int16_t *out)
{
    struct audio_resampler r;
    size_t fin = in_rate / 50, fout = out_rate / 50;

    assert_int_equal(audio_resampler_init(&r, in_rate, out_rate, AUDIO_RESAMPLER_QUALITY), 0);
    for (size_t i = 0; i + fin <= n_in; i += fin) {
        size_t got = 0;
        assert_int_equal(audio_resampler_process(&r, in + i, fin, out + i / fin * fout, fout, &got),
                         0);
        assert_int_equal(got, fout);
    }
    audio_resampler_deinit(&r);
}

static int16_t in8[8000 * SECONDS], out8[8000 * SECONDS];
static int16_t in24[24000 * SECONDS], out24[24000 * SECONDS];

static void test_passband_up(void **state)
{
    (void)state;
    double lo = 1e9, hi = -1e9;

    for (int f = 100; f <= 3400; f += 100) {
        make_tone(in8, 8000 * SECONDS, 8000, f);
        stream(8000, 24000, in8, 8000 * SECONDS, out24);
        double db = 20 * log10(fit_tone(out24, 24000 * SECONDS, 24000, f).amp / AMP);
        if (fabs(db) > 1.0)
            fail_msg("up: %d Hz at %.3f dB", f, db);
        lo = fmin(lo, db);
        hi = fmax(hi, db);
    }
    print_message("up: passband %.4f .. %.4f dB\n", lo, hi);
}

static void test_passband_down(void **state)
{
    (void)state;
    double lo = 1e9, hi = -1e9;

    for (int f = 100; f <= 3400; f += 100) {
        make_tone(in24, 24000 * SECONDS, 24000, f);
        stream(24000, 8000, in24, 24000 * SECONDS, out8);
        double db = 20 * log10(fit_tone(out8, 8000 * SECONDS, 8000, f).amp / AMP);
        if (fabs(db) > 1.0)
            fail_msg("down: %d Hz at %.3f dB", f, db);
        lo = fmin(lo, db);
        hi = fmax(hi, db);
    }
    print_message("down: passband %.4f .. %.4f dB\n", lo, hi);
}

/* Tones that would fold into 0..4 kHz: input tone power over all the output's power. */
static void test_alias_rejection(void **state)
{
    (void)state;
    double worst = 1e9;
    int worst_f = 0;

    for (int f = 4600; f <= 12000; f += 100) {
        make_tone(in24, 24000 * SECONDS, 24000, f);
        stream(24000, 8000, in24, 24000 * SECONDS, out8);
        double out_pow = fit_tone(out8, 8000 * SECONDS, 8000, 1000).total;
        double rej = out_pow > 0 ? 10 * log10(AMP * AMP / 2 / out_pow) : 200;
        if (rej < 80)
            fail_msg("alias: %d Hz rejected only %.1f dB", f, rej);
        if (rej < worst) {
            worst = rej;
            worst_f = f;
        }
    }
    print_message("down: worst alias rejection %.1f dB at %d Hz\n", worst, worst_f);
}

static void test_round_trip(void **state)
{
    (void)state;
    make_tone(in8, 8000 * SECONDS, 8000, 1000);
    stream(8000, 24000, in8, 8000 * SECONDS, out24);
    stream(24000, 8000, out24, 24000 * SECONDS, out8);
    struct tone_fit r = fit_tone(out8, 8000 * SECONDS, 8000, 1000);
    double snr = 10 * log10(r.amp * r.amp / 2 / r.resid);
    print_message("round trip 1 kHz: SNR %.1f dB, gain %.4f dB\n", snr, 20 * log10(r.amp / AMP));
    assert_true(snr >= 40);
    assert_true(fabs(20 * log10(r.amp / AMP)) < 0.1);
}

static void test_api(void **state)
{
    (void)state;
    struct audio_resampler r;
    int16_t in[480] = {0}, out[481];
    size_t got = 99;

    assert_int_equal(audio_resampler_init(&r, 0, 8000, 4), VA_EINVAL);
    assert_null(r.st);
    audio_resampler_deinit(&r);
    assert_int_equal(audio_resampler_init(&r, 8000, 0, 4), VA_EINVAL);
    assert_int_equal(audio_resampler_init(&r, 8000, 24000, -1), VA_EINVAL);
    assert_int_equal(audio_resampler_init(&r, 8000, 24000, 11), VA_EINVAL);
    assert_int_equal(audio_resampler_init(&r, 8000, 1000000, 4), VA_EINVAL);

    assert_int_equal(audio_resampler_init(&r, 8000, 24000, AUDIO_RESAMPLER_QUALITY), 0);
    assert_int_equal(audio_resampler_out_max(&r, 160), 480);
    assert_int_equal(audio_resampler_out_max(&r, 1), 3);
    /* q5: 5 ms of 8 kHz input. */
    assert_true(audio_resampler_delay(&r) > 0);
    assert_true(audio_resampler_delay(&r) <= 40);
    assert_int_equal(audio_resampler_process(&r, in, 160, out, 479, &got), VA_ETOOBIG);
    assert_int_equal(got, 0);
    assert_int_equal(audio_resampler_process(&r, in, 0, out, 0, &got), 0);
    assert_int_equal(got, 0);
    /* Odd sizes still give exactly 3x. */
    for (size_t n = 1; n <= 160; n += 13) {
        assert_int_equal(audio_resampler_process(&r, in, n, out, 480, &got), 0);
        assert_int_equal(got, 3 * n);
    }
    audio_resampler_deinit(&r);
    assert_null(r.st);

    assert_int_equal(audio_resampler_init(&r, 24000, 8000, AUDIO_RESAMPLER_QUALITY), 0);
    assert_int_equal(audio_resampler_out_max(&r, 480), 160);
    assert_int_equal(audio_resampler_out_max(&r, 1), 1);
    assert_int_equal(audio_resampler_out_max(&r, 4), 2);
    assert_true(audio_resampler_delay(&r) <= 120); /* 5 ms of 24 kHz input */
    assert_int_equal(audio_resampler_process(&r, in, 480, out, 159, &got), VA_ETOOBIG);
    /* Any split of the input adds up to the same output count. */
    size_t total = 0;
    for (size_t n = 1; n <= 47; n++) {
        assert_int_equal(
            audio_resampler_process(&r, in, n, out, audio_resampler_out_max(&r, n), &got), 0);
        total += got;
    }
    assert_int_equal(total, 47 * 48 / 2 / 3); /* 1128 in -> 376 out */
    audio_resampler_deinit(&r);
}

/* After reset the history is gone: a loud stream then silence gives exact silence. */
static void test_reset(void **state)
{
    (void)state;
    struct audio_resampler r;
    int16_t out[480];
    size_t got;

    make_tone(in24, 480, 24000, 440);
    assert_int_equal(audio_resampler_init(&r, 24000, 8000, AUDIO_RESAMPLER_QUALITY), 0);
    assert_int_equal(audio_resampler_process(&r, in24, 480, out, 160, &got), 0);
    audio_resampler_reset(&r);
    memset(in24, 0, 480 * sizeof(in24[0]));
    assert_int_equal(audio_resampler_process(&r, in24, 480, out, 160, &got), 0);
    assert_int_equal(got, 160);
    for (size_t i = 0; i < got; i++)
        assert_int_equal(out[i], 0);
    audio_resampler_deinit(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_api),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_passband_up),
        cmocka_unit_test(test_passband_down),
        cmocka_unit_test(test_alias_rejection),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
