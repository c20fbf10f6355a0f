/* bench/audio_bench.c: figures behind docs/audio.md (mu-law speed, resampler CPU,
 * delay, passband, alias and image rejection, round trip, memory per instance).
 *
 *   cmake --build build/release --target audio_bench && build/release/audio_bench
 *
 * Method as in the audio reference (3.2): one mono instance per direction fed 20 ms
 * frames; CPU is thread CPU time per frame, median of 7 repetitions of >= 0.3 s, for
 * one hot instance and for 1000 instances served round-robin like 1000 live calls;
 * quality from least-squares tone fits with the first 200 ms and last 100 ms dropped,
 * float I/O (the filter itself) unless marked int16 (what the daemon sees). */
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <speex/speex_resampler.h>

#include "audio/mulaw.h"
#include "audio/resample.h"
#include "tone_fit.h"

#define REPS 7
#define MIN_CPU_S 0.3
#define N_INST 1000
#define TONE_AMP 0.5 /* -6 dBFS */

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return v[n / 2];
}

/* Deterministic white noise in [-1, 1). */
static double noise(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(*s >> 11) / (double)(1ull << 52) - 1.0;
}

/* 220 + 1310 + 3170 Hz plus noise, about -12 dBFS overall. */
static void make_speech_like(int16_t *x, size_t n, double fs)
{
    uint64_t s = 42;
    for (size_t k = 0; k < n; k++) {
        double t = (double)k / fs;
        double v = 0.12 * sin(2 * M_PI * 220 * t) + 0.08 * sin(2 * M_PI * 1310 * t) +
                   0.05 * sin(2 * M_PI * 3170 * t) + 0.05 * noise(&s);
        x[k] = (int16_t)lrint(v * 32767);
    }
}

/* ---- mu-law ---- */

static volatile uint32_t sink;

static uint8_t bitwise_encode(int16_t pcm)
{
    int x = pcm, sign = 0;
    if (x < 0) {
        x = ~x;
        sign = 0x80;
    }
    if (x > 32635)
        x = 32635;
    x += 0x84;
    int seg = 31 - __builtin_clz((unsigned)x) - 7;
    return (uint8_t) ~(sign | (seg << 4) | ((x >> (seg + 3)) & 0x0F));
}

enum codec_op { OP_DECODE, OP_ENCODE, OP_ENCODE_BITWISE };

static double time_codec(enum codec_op op, const int16_t *pcm, const uint8_t *ulaw, size_t frames)
{
    static int16_t out16[160];
    static uint8_t out8[160];
    double per[REPS];

    for (int r = 0; r < REPS; r++) {
        size_t done = 0;
        double t0 = cpu_now(), t;
        do {
            for (size_t f = 0; f < frames; f++) {
                switch (op) {
                case OP_DECODE:
                    audio_mulaw_decode(ulaw + f * 160, 160, out16);
                    sink += (uint32_t)out16[f % 160];
                    break;
                case OP_ENCODE:
                    audio_mulaw_encode(pcm + f * 160, 160, out8);
                    sink += out8[f % 160];
                    break;
                case OP_ENCODE_BITWISE:
                    for (size_t i = 0; i < 160; i++)
                        out8[i] = bitwise_encode(pcm[f * 160 + i]);
                    sink += out8[f % 160];
                    break;
                }
            }
            done += frames;
            t = cpu_now() - t0;
        } while (t < MIN_CPU_S);
        per[r] = t / (double)done * 1e9;
    }
    return median(per, REPS);
}

static void bench_mulaw(void)
{
    enum { FRAMES = 1000 };
    static int16_t pcm[FRAMES * 160];
    static uint8_t ulaw[FRAMES * 160];

    make_speech_like(pcm, FRAMES * 160, 8000);
    audio_mulaw_encode(pcm, FRAMES * 160, ulaw);
    printf("mu-law, ns per 160-sample frame (median of %d)\n", REPS);
    printf("  decode (256-entry table)       %7.1f\n", time_codec(OP_DECODE, pcm, ulaw, FRAMES));
    printf("  encode (16 KiB table)          %7.1f\n", time_codec(OP_ENCODE, pcm, ulaw, FRAMES));
    printf("  encode (bitwise, for scale)    %7.1f\n",
           time_codec(OP_ENCODE_BITWISE, pcm, ulaw, FRAMES));
}

/* ---- resampler quality (float, speexdsp directly) ---- */

/* float samples through the shared fit (tests/support/tone_fit.c). */
static struct tone_fit fit_tone(const float *y, size_t n, double fs, double f)
{
    double *d = malloc(n * sizeof(*d));
    if (!d)
        abort();
    for (size_t k = 0; k < n; k++)
        d[k] = y[k];
    struct tone_fit r = tone_fit(d, n, fs, f);
    free(d);
    return r;
}

/* One second of a cosine at f through a fresh float instance in 20 ms frames.
 * Returns the output count; out must hold out_rate samples. */
static size_t run_float(int q, uint32_t in_rate, uint32_t out_rate, double f, float *out,
                        size_t *shortfall)
{
    static float in[48000];
    int err;
    SpeexResamplerState *st = speex_resampler_init(1, in_rate, out_rate, q, &err);
    size_t fin = in_rate / 50, fout = out_rate / 50, got = 0;

    for (size_t k = 0; k < in_rate; k++)
        in[k] = (float)(TONE_AMP * cos(2 * M_PI * f * (double)k / in_rate));
    for (size_t i = 0; i + fin <= in_rate; i += fin) {
        spx_uint32_t il = (spx_uint32_t)fin, ol = (spx_uint32_t)fout;
        speex_resampler_process_float(st, 0, in + i, &il, out + got, &ol);
        if (shortfall && ol < fout)
            (*shortfall)++;
        got += ol;
    }
    speex_resampler_destroy(st);
    return got;
}

struct quality {
    double ripple_up, ripple_dn; /* max - min gain, dB, 100..3400 Hz */
    double worst_up, worst_dn;   /* largest |gain| deviation from 0 dB */
    double image_30, image_34;   /* up: tone / residual, dB */
    double alias_worst;          /* down: input tone / output power, dB */
    double alias_worst_hz;
    double delay_up_ms, delay_dn_ms; /* measured from the phase slope at 1000/1025 Hz */
    size_t shortfalls;               /* calls that returned less than a full frame */
};

static double phase_delay(int q, uint32_t in_rate, uint32_t out_rate)
{
    static float out[48000];
    double ph[2];
    const double f[2] = {1000, 1025};

    for (int i = 0; i < 2; i++) {
        size_t n = run_float(q, in_rate, out_rate, f[i], out, NULL);
        struct tone_fit r = fit_tone(out, n, out_rate, f[i]);
        ph[i] = atan2(r.b, r.a);
    }
    double d = ph[1] - ph[0];
    while (d < 0)
        d += 2 * M_PI;
    return d / (2 * M_PI * (f[1] - f[0])) * 1000;
}

static void measure_quality(int q, struct quality *qu)
{
    static float out[48000];
    double lo[2] = {1e9, 1e9}, hi[2] = {-1e9, -1e9};

    memset(qu, 0, sizeof(*qu));
    for (int dir = 0; dir < 2; dir++) {
        uint32_t ir = dir ? 24000 : 8000, orate = dir ? 8000 : 24000;
        for (int f = 100; f <= 3400; f += 100) {
            size_t n = run_float(q, ir, orate, f, out, &qu->shortfalls);
            struct tone_fit r = fit_tone(out, n, orate, f);
            double db = 20 * log10(hypot(r.a, r.b) / TONE_AMP);
            lo[dir] = fmin(lo[dir], db);
            hi[dir] = fmax(hi[dir], db);
        }
    }
    qu->ripple_up = hi[0] - lo[0];
    qu->ripple_dn = hi[1] - lo[1];
    qu->worst_up = fmax(fabs(hi[0]), fabs(lo[0]));
    qu->worst_dn = fmax(fabs(hi[1]), fabs(lo[1]));
    for (int i = 0; i < 2; i++) {
        double f = i ? 3400 : 3000;
        size_t n = run_float(q, 8000, 24000, f, out, NULL);
        struct tone_fit r = fit_tone(out, n, 24000, f);
        double db = 10 * log10((r.a * r.a + r.b * r.b) / 2 / r.resid);
        if (i)
            qu->image_34 = db;
        else
            qu->image_30 = db;
    }
    qu->alias_worst = 1e9;
    for (int f = 4600; f <= 12000; f += 100) {
        size_t n = run_float(q, 24000, 8000, f, out, &qu->shortfalls);
        struct tone_fit r = fit_tone(out, n, 8000, 1000);
        double db = r.total > 0 ? 10 * log10(TONE_AMP * TONE_AMP / 2 / r.total) : 300;
        if (db < qu->alias_worst) {
            qu->alias_worst = db;
            qu->alias_worst_hz = f;
        }
    }
    qu->delay_up_ms = phase_delay(q, 8000, 24000);
    qu->delay_dn_ms = phase_delay(q, 24000, 8000);
}

/* Round trip 8k -> 24k -> 8k through our int16 API, 20 ms frames. SNR = fitted tone
 * over the fit's residual (THD+N). */
static double round_trip_snr(int q, double f)
{
    static int16_t in8[8000], mid[24000], out8[8000];
    static float y[8000];
    struct audio_resampler up, dn;
    size_t got;

    audio_resampler_init(&up, 8000, 24000, q);
    audio_resampler_init(&dn, 24000, 8000, q);
    for (size_t k = 0; k < 8000; k++)
        in8[k] = (int16_t)lrint(16384 * cos(2 * M_PI * f * (double)k / 8000));
    for (size_t i = 0; i < 50; i++) {
        audio_resampler_process(&up, in8 + i * 160, 160, mid + i * 480, 480, &got);
        audio_resampler_process(&dn, mid + i * 480, 480, out8 + i * 160, 160, &got);
    }
    audio_resampler_deinit(&up);
    audio_resampler_deinit(&dn);
    for (size_t k = 0; k < 8000; k++)
        y[k] = out8[k];
    struct tone_fit r = fit_tone(y, 8000, 8000, f);
    return 10 * log10((r.a * r.a + r.b * r.b) / 2 / r.resid);
}

/* ---- resampler CPU and memory (int16 through our API) ---- */

static double time_resampler(int q, int up, size_t n_inst, const int16_t *sig, size_t sig_len)
{
    struct audio_resampler *rs = calloc(n_inst, sizeof(*rs));
    size_t fin = up ? 160 : 480, fout = up ? 480 : 160;
    int16_t out[480];
    double per[REPS];
    size_t pos = 0, got;

    for (size_t i = 0; i < n_inst; i++)
        audio_resampler_init(&rs[i], up ? 8000 : 24000, up ? 24000 : 8000, q);
    for (int w = 0; w < 10; w++) /* warm-up */
        for (size_t i = 0; i < n_inst; i++)
            audio_resampler_process(&rs[i], sig, fin, out, fout, &got);
    for (int r = 0; r < REPS; r++) {
        size_t frames = 0;
        double t0 = cpu_now(), t;
        do {
            /* The CPU clock is a system call (~0.3 us): read it once per 1000 frames. */
            for (size_t b = 0; b < 1000; b += n_inst) {
                for (size_t i = 0; i < n_inst; i++) {
                    audio_resampler_process(&rs[i], sig + pos, fin, out, fout, &got);
                    pos += fin;
                    if (pos + fin > sig_len)
                        pos = 0;
                }
                frames += n_inst;
            }
            t = cpu_now() - t0;
        } while (t < MIN_CPU_S);
        per[r] = t / (double)frames * 1e6;
    }
    for (size_t i = 0; i < n_inst; i++)
        audio_resampler_deinit(&rs[i]);
    free(rs);
    return median(per, REPS);
}

static size_t heap_used(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

/* Heap per call (both directions) after 20 frames each, over 64 calls. */
static double bytes_per_call(int q)
{
    enum { N = 64 };
    static struct audio_resampler up[N], dn[N];
    static int16_t in[480], out[480];
    size_t got, before = heap_used();

    for (int i = 0; i < N; i++) {
        audio_resampler_init(&up[i], 8000, 24000, q);
        audio_resampler_init(&dn[i], 24000, 8000, q);
        for (int f = 0; f < 20; f++) {
            audio_resampler_process(&up[i], in, 160, out, 480, &got);
            audio_resampler_process(&dn[i], in, 480, out, 160, &got);
        }
    }
    double per = (double)(heap_used() - before) / N;
    for (int i = 0; i < N; i++) {
        audio_resampler_deinit(&up[i]);
        audio_resampler_deinit(&dn[i]);
    }
    return per;
}

int main(void)
{
    static int16_t sig8[8000 * 10], sig24[24000 * 10];
    static const int qs[] = {3, 4, 5, 6};

    printf("audio_bench: chosen quality AUDIO_RESAMPLER_QUALITY = %d\n\n", AUDIO_RESAMPLER_QUALITY);
    bench_mulaw();

    make_speech_like(sig8, 8000 * 10, 8000);
    make_speech_like(sig24, 24000 * 10, 24000);
    printf("\nresampler (speexdsp), 20 ms frames: up 8k->24k 160->480, down 24k->8k 480->160\n");
    printf("%-3s %-17s %-17s %-15s %-15s %-15s %-11s %-9s %-13s %-7s %-6s %-6s\n", "q",
           "us/frame up 1|1k", "us/frame dn 1|1k", "latency ms u/d", "measured ms u/d",
           "ripple dB u/d", "worst |dB|", "image dB", "alias dB @Hz", "rt SNR", "B/call",
           "calls/core");
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
        int q = qs[i];
        struct quality qu;
        struct audio_resampler up, dn;

        audio_resampler_init(&up, 8000, 24000, q);
        audio_resampler_init(&dn, 24000, 8000, q);
        double lat_up = audio_resampler_delay(&up) / 8.0,
               lat_dn = audio_resampler_delay(&dn) / 24.0;
        int out_lat_up = speex_resampler_get_output_latency(up.st);
        int out_lat_dn = speex_resampler_get_output_latency(dn.st);
        audio_resampler_deinit(&up);
        audio_resampler_deinit(&dn);

        double u1 = time_resampler(q, 1, 1, sig8, 8000 * 10);
        double uk = time_resampler(q, 1, N_INST, sig8, 8000 * 10);
        double d1 = time_resampler(q, 0, 1, sig24, 24000 * 10);
        double dk = time_resampler(q, 0, N_INST, sig24, 24000 * 10);
        measure_quality(q, &qu);
        double snr = round_trip_snr(q, 1000);
        double bytes = bytes_per_call(q);

        char c1[32], c2[32], c3[32], c4[32], c5[32], c6[32], c7[32];
        snprintf(c1, sizeof(c1), "%.2f | %.2f", u1, uk);
        snprintf(c2, sizeof(c2), "%.2f | %.2f", d1, dk);
        snprintf(c3, sizeof(c3), "%.1f / %.1f", lat_up, lat_dn);
        snprintf(c4, sizeof(c4), "%.2f / %.2f", qu.delay_up_ms, qu.delay_dn_ms);
        snprintf(c5, sizeof(c5), "%.4f / %.4f", qu.ripple_up, qu.ripple_dn);
        snprintf(c6, sizeof(c6), "%.0f / %.0f", qu.image_30, qu.image_34);
        snprintf(c7, sizeof(c7), "%.1f @ %.0f", qu.alias_worst, qu.alias_worst_hz);
        printf("q%-2d %-17s %-17s %-15s %-15s %-15s %-11.4f %-9s %-13s %-7.1f %-6.0f %-6.0f\n", q,
               c1, c2, c3, c4, c5, fmax(qu.worst_up, qu.worst_dn), c6, c7, snr, bytes,
               1e6 / (50 * (uk + dk)));
        printf("    speex latency: input %u/%u samples, output %d/%d samples (up/down); "
               "short calls: %zu\n",
               (unsigned)(lat_up * 8), (unsigned)(lat_dn * 24), out_lat_up, out_lat_dn,
               qu.shortfalls);
    }
    printf("\nus/frame: thread CPU per 20 ms frame, 1 hot instance | %d round-robin; "
           "latency from speex_resampler_get_input_latency(); measured = phase slope "
           "1000/1025 Hz;\nripple over 100-3400 Hz; image = 3.0/3.4 kHz tone over residual "
           "(up); alias = worst 4.6-12 kHz tone over total output (down); rt SNR = 1 kHz "
           "8k->24k->8k, int16;\nB/call = heap for both directions; calls/core = 1e6 / "
           "(50 x (up + down at %d instances)).\n",
           N_INST, N_INST);
    return (int)(sink & 0);
}
