/* tests/unit/test_audio_mulaw.c: the table codec against an independent bitwise G.191
 * reference, exhaustively (256 decodes, 65,536 encodes), plus the reference vectors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "audio/mulaw.h"

/* Written from the G.711 definition rather than copied from the generator: segment by
 * comparing with the decision thresholds, step by division, negative inputs by one's
 * complement (G.191). */
static uint8_t ref_encode(int16_t pcm)
{
    long mag = pcm < 0 ? -(long)pcm - 1 : pcm;
    unsigned sign = pcm < 0 ? 0x00 : 0x80; /* wire: 0x80..0xFF are positive */

    if (mag > 32635)
        mag = 32635;
    mag += 132;
    unsigned seg = 0;
    while (seg < 7 && mag >= (256L << seg))
        seg++;
    unsigned step = (unsigned)((mag / (8L << seg)) - 16) & 0x0F;
    return (uint8_t)(sign | ((7 - seg) << 4) | (15 - step));
}

static int16_t ref_decode(uint8_t code)
{
    unsigned seg = 7 - ((code >> 4) & 7);
    unsigned step = 15 - (code & 0x0F);
    long mag = ((long)(2 * step + 33) << (seg + 2)) - 132;
    return (int16_t)((code & 0x80) ? mag : -mag);
}

static void test_decode_all(void **state)
{
    (void)state;
    uint8_t in[256];
    int16_t out[256];

    for (int c = 0; c < 256; c++)
        in[c] = (uint8_t)c;
    audio_mulaw_decode(in, 256, out);
    for (int c = 0; c < 256; c++) {
        assert_int_equal(out[c], ref_decode((uint8_t)c));
        assert_int_equal(audio_mulaw_decode1((uint8_t)c), ref_decode((uint8_t)c));
    }
}

static void test_encode_all(void **state)
{
    (void)state;
    static int16_t in[65536];
    static uint8_t out[65536];

    for (int i = 0; i < 65536; i++)
        in[i] = (int16_t)(i - 32768);
    audio_mulaw_encode(in, 65536, out);
    for (int i = 0; i < 65536; i++) {
        if (out[i] != ref_encode(in[i]))
            fail_msg("encode(%d) = 0x%02x, want 0x%02x", in[i], out[i], ref_encode(in[i]));
        assert_int_equal(audio_mulaw_encode1(in[i]), out[i]);
    }
}

/* audio.md 2.4 */
static void test_vectors(void **state)
{
    (void)state;
    static const struct {
        int16_t pcm;
        uint8_t code;
        int16_t dec;
    } v[] = {
        {0, 0xFF, 0},         {1, 0xFF, 0},           {3, 0xFF, 0},           {4, 0xFE, 8},
        {-1, 0x7F, 0},        {-4, 0x7F, 0},          {-5, 0x7E, -8},         {1000, 0xCE, 988},
        {-1000, 0x4E, -988},  {8059, 0xA0, 7932},     {8060, 0x9F, 8316},     {31612, 0x80, 32124},
        {32767, 0x80, 32124}, {-31613, 0x00, -32124}, {-32768, 0x00, -32124},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        assert_int_equal(audio_mulaw_encode1(v[i].pcm), v[i].code);
        assert_int_equal(audio_mulaw_decode1(v[i].code), v[i].dec);
        assert_int_equal(ref_encode(v[i].pcm), v[i].code);
    }
    /* The ends of the clipped ranges. */
    for (int x = 31612; x <= 32767; x++)
        assert_int_equal(audio_mulaw_encode1((int16_t)x), 0x80);
    for (int x = -32768; x <= -31613; x++)
        assert_int_equal(audio_mulaw_encode1((int16_t)x), 0x00);
    assert_int_equal(audio_mulaw_encode1(31611), 0x81);
    assert_int_equal(audio_mulaw_encode1(-31612), 0x01);
    assert_int_equal(AUDIO_MULAW_SILENCE, 0xFF);
    assert_int_equal(audio_mulaw_decode1(AUDIO_MULAW_SILENCE), 0);
}

static void test_round_trip(void **state)
{
    (void)state;
    for (int c = 0; c < 256; c++) {
        uint8_t back = audio_mulaw_encode1(audio_mulaw_decode1((uint8_t)c));
        assert_int_equal(back, c == 0x7F ? 0xFF : c);
    }
}

/* Decoded values are symmetric and strictly increase along the code order. */
static void test_monotonic(void **state)
{
    (void)state;
    for (int c = 0; c < 128; c++)
        assert_int_equal(audio_mulaw_decode1((uint8_t)c),
                         -audio_mulaw_decode1((uint8_t)(c | 0x80)));
    for (int c = 0x80; c < 0xFF; c++)
        assert_true(audio_mulaw_decode1((uint8_t)c) > audio_mulaw_decode1((uint8_t)(c + 1)));
    /* Encoding is monotonic too: codes never go back as the input rises. */
    int prev = audio_mulaw_decode1(audio_mulaw_encode1(-32768));
    for (int x = -32767; x <= 32767; x++) {
        int d = audio_mulaw_decode1(audio_mulaw_encode1((int16_t)x));
        assert_true(d >= prev);
        prev = d;
    }
}

/* Buffers of any length, at odd alignments. */
static void test_lengths(void **state)
{
    (void)state;
    int16_t pcm[333];
    uint8_t code[335];
    int16_t back[333];

    for (size_t i = 0; i < 333; i++)
        pcm[i] = (int16_t)((int)(i * 197) - 32768);
    for (size_t n = 0; n <= 333; n += 37) {
        memset(code, 0xAA, sizeof(code));
        audio_mulaw_encode(pcm, n, code + 1);
        assert_int_equal(code[0], 0xAA);
        assert_int_equal(code[n + 1], 0xAA);
        audio_mulaw_decode(code + 1, n, back);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(back[i], ref_decode(ref_encode(pcm[i])));
    }
}

/* quiet: every code at most AUDIO_MULAW_QUIET_PEAK, whatever the length and position. */
static void test_quiet(void **state)
{
    (void)state;
    uint8_t buf[161];
    for (int c = 0; c < 256; c++) {
        int16_t v = ref_decode((uint8_t)c);
        bool want = v <= AUDIO_MULAW_QUIET_PEAK && v >= -AUDIO_MULAW_QUIET_PEAK;
        assert_int_equal(audio_mulaw_quiet((const uint8_t *)&(uint8_t){(uint8_t)c}, 1), want);
        /* one such code among silence, at every position of a frame and of odd lengths */
        for (size_t n = 1; n <= sizeof(buf); n += 7) {
            for (size_t at = 0; at < n; at += 3) {
                memset(buf, 0xFF, sizeof(buf));
                buf[at] = (uint8_t)c;
                assert_int_equal(audio_mulaw_quiet(buf, n), want);
            }
        }
    }
    assert_true(audio_mulaw_quiet(buf, 0));
    /* the loudest quiet codes, both signs, decode to the documented peak */
    assert_int_equal(ref_decode(0xE0), AUDIO_MULAW_QUIET_PEAK);
    assert_int_equal(ref_decode(0x60), -AUDIO_MULAW_QUIET_PEAK);
    assert_false(audio_mulaw_quiet((const uint8_t *)"\xDF", 1)); /* the next step up: 396 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_all), cmocka_unit_test(test_encode_all),
        cmocka_unit_test(test_vectors),    cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_monotonic),  cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_quiet),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
