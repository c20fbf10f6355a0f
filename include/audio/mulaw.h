/* include/audio/mulaw.h: G.711 mu-law codec, bit-exact to the ITU-T G.191 reference (pure).
 *
 * Twilio Media Streams carry mu-law at 8 kHz, 160 bytes per 20 ms. Byte 0xFF is +0 and
 * 0x7F is -0; both decode to 0, and 0xFF is the fill for silence and padding.
 * Negative inputs are folded with one's complement (~x), as G.191 does: the classic
 * `-x` code disagrees on 127 of the 65,536 inputs, by one step each. */
#ifndef VA_AUDIO_MULAW_H
#define VA_AUDIO_MULAW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUDIO_MULAW_SILENCE 0xFF

/* Read-only tables generated at build time by tools/gen_mulaw.c from the bitwise
 * G.191 encoder (build/.../generated/mulaw_tables.c). They have external linkage only
 * so the single-sample functions below can be inlined; nothing writes them.
 * The encode table is indexed by (uint16_t)x >> 2: under G.191 the two low bits never
 * change the code (biasing adds 4 * 33 and the finest step is 8), so 16 KiB suffice,
 * and the generator refuses to emit a table that disagrees with the bitwise encoder
 * on any of the 65,536 inputs. */
extern const int16_t audio_mulaw_dec_table[256];
extern const uint8_t audio_mulaw_enc_table[16384];

static inline int16_t audio_mulaw_decode1(uint8_t u)
{
    return audio_mulaw_dec_table[u];
}

static inline uint8_t audio_mulaw_encode1(int16_t x)
{
    return audio_mulaw_enc_table[(uint16_t)x >> 2];
}

/* Decodes in[0, n) into out[0, n). The ranges must not overlap. */
void audio_mulaw_decode(const uint8_t *in, size_t n, int16_t *out);

/* Encodes in[0, n) into out[0, n). The ranges must not overlap. */
void audio_mulaw_encode(const int16_t *in, size_t n, uint8_t *out);

/* Every code of in[0, n) decodes to at most AUDIO_MULAW_QUIET_PEAK in magnitude (about
 * -39 dBFS: segments 0 and 1, whose codes all have bits 0x60 set). Line noise and the
 * quietest fricatives stay under it; speech a VAD would take does not. True for n = 0. */
#define AUDIO_MULAW_QUIET_PEAK 372
bool audio_mulaw_quiet(const uint8_t *in, size_t n);

#endif
