/* tests/support/tone_fit.h: least-squares fit of a known tone, shared by the resampler
 * tests and the audio benchmark (reference audio.md §3.2 measures this way). */
#ifndef VA_TESTS_TONE_FIT_H
#define VA_TESTS_TONE_FIT_H

#include <stddef.h>

struct tone_fit {
    double a, b;  /* cos and sin coefficients at the known frequency */
    double amp;   /* hypot(a, b) */
    double resid; /* mean square of what the fit leaves */
    double total; /* mean square of the samples */
};

/* Fits cos, sin and DC at f to y[0, n) sampled at fs, after dropping the first 200 ms
 * (filter start-up) and the last 100 ms. */
struct tone_fit tone_fit(const double *y, size_t n, double fs, double f);

#endif
