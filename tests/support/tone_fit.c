/* tests/support/tone_fit.c: least-squares tone fit (3x3 normal equations). */
#include "tone_fit.h"

#include <math.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

struct tone_fit tone_fit(const double *y, size_t n, double fs, double f)
{
    size_t from = (size_t)(fs * 0.2), to = n - (size_t)(fs * 0.1);
    double m[3][4] = {{0}};
    double w = 2 * M_PI * f / fs;
    for (size_t k = from; k < to; k++) {
        double bs[3] = {cos(w * (double)k), sin(w * (double)k), 1.0};
        for (int i = 0; i < 3; i++) {
            for (int j = 0; j < 3; j++)
                m[i][j] += bs[i] * bs[j];
            m[i][3] += bs[i] * y[k];
        }
    }
    /* Gaussian elimination with partial pivoting; at fs/2 the sine column is all
     * zeros, so a zero pivot just leaves its coefficient at 0. */
    double x[3] = {0};
    for (int c = 0; c < 3; c++) {
        int p = c;
        for (int r = c + 1; r < 3; r++)
            if (fabs(m[r][c]) > fabs(m[p][c]))
                p = r;
        for (int j = 0; j < 4; j++) {
            double t = m[c][j];
            m[c][j] = m[p][j];
            m[p][j] = t;
        }
        if (fabs(m[c][c]) < 1e-6)
            continue;
        for (int r = c + 1; r < 3; r++) {
            double q = m[r][c] / m[c][c];
            for (int j = c; j < 4; j++)
                m[r][j] -= q * m[c][j];
        }
    }
    for (int c = 2; c >= 0; c--) {
        if (fabs(m[c][c]) < 1e-6)
            continue;
        double s = m[c][3];
        for (int j = c + 1; j < 3; j++)
            s -= m[c][j] * x[j];
        x[c] = s / m[c][c];
    }
    struct tone_fit r = {.a = x[0], .b = x[1], .amp = hypot(x[0], x[1])};
    for (size_t k = from; k < to; k++) {
        double e = y[k] - (x[0] * cos(w * (double)k) + x[1] * sin(w * (double)k) + x[2]);
        r.resid += e * e;
        r.total += y[k] * y[k];
    }
    r.resid /= (double)(to - from);
    r.total /= (double)(to - from);
    return r;
}
