/* src/audio/mulaw.c: G.711 mu-law through the build-time tables (see tools/gen_mulaw.c). */
#include "audio/mulaw.h"

#include <string.h>

/* One table load per sample: about 0.4 ns per sample each way, against ~2 ns for the
 * bitwise encoder (docs/audio.md); the codec never limits capacity either way. */
void audio_mulaw_decode(const uint8_t *in, size_t n, int16_t *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = audio_mulaw_dec_table[in[i]];
}

void audio_mulaw_encode(const int16_t *in, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = audio_mulaw_enc_table[(uint16_t)in[i] >> 2];
}

bool audio_mulaw_quiet(const uint8_t *in, size_t n)
{
    /* a mu-law code is the complement of sign, segment and mantissa: segment <= 1 is
     * bits 0x60 set; AND 8 codes at a time */
    uint64_t all = ~(uint64_t)0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, in + i, 8);
        all &= w;
    }
    uint8_t tail = 0xff;
    for (; i < n; i++)
        tail &= in[i];
    all &= 0x0101010101010101ull * tail;
    return (all & 0x6060606060606060ull) == 0x6060606060606060ull;
}
