/* tests/unit/test_twilio_twiml.c: TwiML documents and XML escaping, reference §2. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/err.h"
#include "twilio/twiml.h"

#define LIT(s) s, sizeof(s) - 1
#define DECL "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"

static void assert_buf(const struct va_buf *b, const char *want, size_t want_len)
{
    assert_int_equal(b->len, want_len);
    assert_memory_equal(b->data, want, want_len);
    assert_int_equal(b->data[b->len], '\0');
}

/* Escapes s[0, len) into a fresh buffer and compares with want. */
static void check_escape(const char *s, size_t len, const char *want, size_t want_len)
{
    struct va_buf b;
    va_buf_init(&b, 1 << 16);
    assert_int_equal(tw_xml_escape(&b, s, len), 0);
    if (want_len)
        assert_buf(&b, want, want_len);
    else
        assert_int_equal(b.len, 0);
    va_buf_deinit(&b);
}

static void test_escape_five(void **state)
{
    (void)state;
    check_escape(LIT("a&b<c>d\"e'f"), LIT("a&amp;b&lt;c&gt;d&quot;e&apos;f"));
    check_escape(LIT("&&"), LIT("&amp;&amp;"));
    check_escape(LIT("<>"), LIT("&lt;&gt;"));
    check_escape(LIT("\"'"), LIT("&quot;&apos;"));
    check_escape(LIT("&amp;"), LIT("&amp;amp;")); /* no double-unescaping shortcut */
    check_escape(LIT("plain text, 123 +15551230000"), LIT("plain text, 123 +15551230000"));
    check_escape("", 0, "", 0);
}

static void test_escape_controls(void **state)
{
    (void)state;
    /* Tab, LF and CR stay; every other C0 control, DEL and NUL go. */
    check_escape(LIT("\x01"
                     "a\tb\nc\rd\x1f\x7f\0e\x0b\x0c"),
                 LIT("a\tb\nc\rde"));

    /* Every ASCII byte, one by one. */
    for (int c = 0; c < 0x80; c++) {
        char in = (char)c;
        const char *want;
        switch (c) {
        case '&':
            want = "&amp;";
            break;
        case '<':
            want = "&lt;";
            break;
        case '>':
            want = "&gt;";
            break;
        case '"':
            want = "&quot;";
            break;
        case '\'':
            want = "&apos;";
            break;
        default:
            want = (c >= 0x20 && c != 0x7f) || c == '\t' || c == '\n' || c == '\r' ? &in : "";
            break;
        }
        check_escape(&in, 1, want, want == &in ? 1 : strlen(want));
    }
}

static void test_escape_utf8(void **state)
{
    (void)state;
    /* Well-formed UTF-8 is copied; U+FFFD and a noncharacter XML allows stay. */
    check_escape(LIT("Jos\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80 \xef\xbf\xbd \xef\xb7\x90 "
                     "\xf4\x8f\xbf\xbf \xee\x80\x80"),
                 LIT("Jos\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80 \xef\xbf\xbd \xef\xb7\x90 "
                     "\xf4\x8f\xbf\xbf \xee\x80\x80"));
    /* Bytes that are not UTF-8 would make Twilio reject the document: dropped. */
    check_escape(LIT("a\xff"
                     "b"),
                 LIT("ab"));
    check_escape(LIT("a\x80"
                     "b"),
                 LIT("ab")); /* lone continuation byte */
    check_escape(LIT("a\xc0\xaf"
                     "b"),
                 LIT("ab")); /* overlong '/' */
    check_escape(LIT("a\xe0\x80\xaf"
                     "b"),
                 LIT("ab")); /* overlong, three bytes */
    check_escape(LIT("a\xed\xa0\x80"
                     "b"),
                 LIT("ab")); /* surrogate U+D800 */
    check_escape(LIT("a\xf4\x90\x80\x80"
                     "b"),
                 LIT("ab")); /* past U+10FFFF */
    check_escape(LIT("a\xf5\x80\x80\x80"
                     "b"),
                 LIT("ab"));
    check_escape(LIT("a\xef\xbf\xbe"
                     "b\xef\xbf\xbf"),
                 LIT("ab"));                                     /* U+FFFE, U+FFFF */
    check_escape(LIT("a\xe6\x97"), LIT("a"));                    /* cut short at the end */
    check_escape(LIT("\xe6\x97<\xc3\xa9"), LIT("&lt;\xc3\xa9")); /* cut short mid-string */
    check_escape(LIT("\xf0\x9f\x98"), "", 0);
}

static void test_escape_appends(void **state)
{
    (void)state;
    struct va_buf b;
    va_buf_init(&b, 16);
    assert_int_equal(va_buf_append_str(&b, "x="), 0);
    assert_int_equal(tw_xml_escape(&b, LIT("<a>")), 0);
    assert_buf(&b, LIT("x=&lt;a&gt;"));

    /* Past the bound: VA_ETOOBIG and the buffer as it was, also mid-way through. */
    assert_int_equal(tw_xml_escape(&b, LIT("abc&def")), VA_ETOOBIG);
    assert_buf(&b, LIT("x=&lt;a&gt;"));
    assert_int_equal(tw_xml_escape(&b, LIT("&&")), VA_ETOOBIG);
    assert_buf(&b, LIT("x=&lt;a&gt;"));
    assert_int_equal(tw_xml_escape(&b, LIT("\x01&")), 0); /* exactly fills it */
    assert_buf(&b, LIT("x=&lt;a&gt;&amp;"));
    assert_int_equal(tw_xml_escape(&b, LIT("\x01\x02")), 0); /* adds nothing */
    va_buf_deinit(&b);

    /* Not terminated: only len bytes are read. */
    va_buf_init(&b, 64);
    static const char big[] = "abc<def";
    assert_int_equal(tw_xml_escape(&b, big, 3), 0);
    assert_buf(&b, LIT("abc"));
    va_buf_deinit(&b);
}

#define EX_URL "wss://voice.example.com/ws/twilio"
#define EX_SAY "The assistant cannot take your call right now."

static void test_stream_reference(void **state)
{
    (void)state;
    /* The reference's example, statusCallback aside. */
    static const char want[] =
        DECL "<Response><Connect><Stream url=\"wss://voice.example.com/ws/twilio\">"
             "<Parameter name=\"From\" value=\"+15551230000\"/>"
             "<Parameter name=\"To\" value=\"+15559870000\"/>"
             "<Parameter name=\"CallSid\" value=\"CA00112233445566778899aabbccddeeff\"/>"
             "</Stream></Connect>"
             "<Say>The assistant cannot take your call right now.</Say></Response>";
    const struct tw_param params[] = {
        {"From", LIT("+15551230000")},
        {"To", LIT("+15559870000")},
        {"CallSid", LIT("CA00112233445566778899aabbccddeeff")},
    };
    struct va_buf b;
    va_buf_init(&b, 1 << 16);
    assert_int_equal(tw_twiml_stream(&b, EX_URL, params, 3, EX_SAY), 0);
    assert_buf(&b, LIT(want));
    assert_memory_equal(b.data, "<?xml", 5); /* byte 0, no whitespace, no BOM */
    va_buf_deinit(&b);
}

static void test_stream_shapes(void **state)
{
    (void)state;
    struct va_buf b;
    va_buf_init(&b, 1 << 16);

    /* No parameters, no apology: the call ends with the stream. */
    assert_int_equal(tw_twiml_stream(&b, EX_URL, NULL, 0, NULL), 0);
    assert_buf(&b, LIT(DECL "<Response><Connect><Stream url=\"" EX_URL "\"></Stream></Connect>"
                            "</Response>"));
    va_buf_reset(&b);
    assert_int_equal(tw_twiml_stream(&b, EX_URL, NULL, 0, ""), 0);
    assert_buf(&b, LIT(DECL "<Response><Connect><Stream url=\"" EX_URL "\"></Stream></Connect>"
                            "</Response>"));
    va_buf_reset(&b);

    /* Everything escaped: URL, names, values (peer data with NUL and controls),
     * the apology. An empty value is kept. */
    static const char peer[] = "O'Brien <\"x\" & y>\0\x07 caf\xc3\xa9\xff";
    const struct tw_param params[] = {
        {"CallerName", peer, sizeof(peer) - 1},
        {"a&b", LIT("")},
        {"Empty", NULL, 0},
    };
    assert_int_equal(tw_twiml_stream(&b, "wss://h.example/ws/a&b'", params, 3, "Sorry & <bye>"), 0);
    assert_buf(&b, LIT(DECL "<Response><Connect><Stream url=\"wss://h.example/ws/a&amp;b&apos;\">"
                            "<Parameter name=\"CallerName\" value=\"O&apos;Brien &lt;&quot;x&quot; "
                            "&amp; y&gt; caf\xc3\xa9\"/>"
                            "<Parameter name=\"a&amp;b\" value=\"\"/>"
                            "<Parameter name=\"Empty\" value=\"\"/>"
                            "</Stream></Connect><Say>Sorry &amp; &lt;bye&gt;</Say></Response>"));
    va_buf_deinit(&b);
}

static void test_stream_refuses(void **state)
{
    (void)state;
    struct va_buf b;
    va_buf_init(&b, 1 << 16);
    assert_int_equal(va_buf_append_str(&b, "keep"), 0);
    const struct tw_param ok = {"From", LIT("+15551230000")};

    /* A query string fails the upgrade (31920); per-call data goes in Parameter. */
    assert_int_equal(tw_twiml_stream(&b, EX_URL "?CallSid=CA1", &ok, 1, EX_SAY), VA_EINVAL);
    assert_int_equal(tw_twiml_stream(&b, EX_URL "#x", &ok, 1, EX_SAY), VA_EINVAL);
    assert_int_equal(tw_twiml_stream(&b, NULL, &ok, 1, EX_SAY), VA_EINVAL);
    assert_buf(&b, LIT("keep"));

    /* A NULL name, or a value pointer missing while a length is given. */
    const struct tw_param noname[] = {ok, {NULL, LIT("x")}};
    assert_int_equal(tw_twiml_stream(&b, EX_URL, noname, 2, EX_SAY), VA_EINVAL);
    const struct tw_param novalue = {"From", NULL, 3};
    assert_int_equal(tw_twiml_stream(&b, EX_URL, &novalue, 1, EX_SAY), VA_EINVAL);
    assert_buf(&b, LIT("keep"));

    /* A name that leaves no room under 500: 499 bytes refused, 498 accepted. */
    char name[500];
    memset(name, 'n', 499);
    name[499] = '\0';
    struct tw_param longname = {name, LIT("vv")};
    assert_int_equal(tw_twiml_stream(&b, EX_URL, &longname, 1, EX_SAY), VA_EINVAL);
    assert_buf(&b, LIT("keep"));
    name[498] = '\0';
    va_buf_reset(&b);
    assert_int_equal(tw_twiml_stream(&b, EX_URL, &longname, 1, NULL), 0);
    assert_non_null(strstr(b.data, "nn\" value=\"v\"/>"));
    va_buf_deinit(&b);

    /* Too big for the buffer: VA_ETOOBIG, the buffer as it was, at every bound. */
    static const char full[] = DECL "<Response><Connect><Stream url=\"" EX_URL "\">"
                                    "<Parameter name=\"From\" value=\"+15551230000\"/>"
                                    "</Stream></Connect><Say>" EX_SAY "</Say></Response>";
    for (size_t max = 4; max < sizeof(full) - 1 + 4; max++) {
        va_buf_init(&b, max);
        assert_int_equal(va_buf_append_str(&b, "keep"), 0);
        assert_int_equal(tw_twiml_stream(&b, EX_URL, &ok, 1, EX_SAY), VA_ETOOBIG);
        assert_buf(&b, LIT("keep"));
        va_buf_deinit(&b);
    }
    va_buf_init(&b, sizeof(full) - 1 + 4);
    assert_int_equal(va_buf_append_str(&b, "keep"), 0);
    assert_int_equal(tw_twiml_stream(&b, EX_URL, &ok, 1, EX_SAY), 0);
    assert_buf(&b, LIT("keep" DECL "<Response><Connect><Stream url=\"" EX_URL "\">"
                       "<Parameter name=\"From\" value=\"+15551230000\"/>"
                       "</Stream></Connect><Say>" EX_SAY "</Say></Response>"));
    va_buf_deinit(&b);
}

/* Builds the document for one parameter and returns the value as written. */
static char *stream_value(const char *name, const char *value, size_t value_len, size_t *out_len)
{
    struct va_buf b;
    va_buf_init(&b, 1 << 16);
    const struct tw_param p = {name, value, value_len};
    assert_int_equal(tw_twiml_stream(&b, EX_URL, &p, 1, NULL), 0);
    const char *start = strstr(b.data, "\" value=\"");
    assert_non_null(start);
    start += strlen("\" value=\"");
    const char *end = strstr(start, "\"/>");
    assert_non_null(end);
    *out_len = (size_t)(end - start);
    char *v = malloc(*out_len + 1);
    memcpy(v, start, *out_len);
    v[*out_len] = '\0';
    va_buf_deinit(&b);
    return v;
}

static void test_param_limit(void **state)
{
    (void)state;
    char value[1200];
    size_t len;
    char *got;

    /* ASCII: name + value at most 499 bytes. */
    memset(value, 'x', sizeof(value));
    got = stream_value("N", value, 498, &len);
    assert_int_equal(len, 498);
    free(got);
    got = stream_value("N", value, 499, &len);
    assert_int_equal(len, 498);
    free(got);
    got = stream_value("CallSid", value, 1200, &len);
    assert_int_equal(len, 499 - 7);
    assert_memory_equal(got, value, len);
    free(got);

    /* Two-byte characters: the cut never splits one. */
    for (size_t i = 0; i < 600; i += 2)
        memcpy(value + i, "\xc3\xa9", 2);
    got = stream_value("N", value, 600, &len); /* room for 498: 249 whole */
    assert_int_equal(len, 498);
    assert_memory_equal(got, value, len);
    free(got);
    got = stream_value("Na", value, 600, &len); /* room for 497: 248 whole */
    assert_int_equal(len, 496);
    assert_memory_equal(got, value, len);
    free(got);

    /* Four-byte characters, cut at each offset within one. */
    for (size_t i = 0; i < 600; i += 4)
        memcpy(value + i, "\xf0\x9f\x98\x80", 4);
    static const struct {
        const char *name;
        size_t want;
    } four[] = {{"abc", 496}, {"ab", 496}, {"a", 496}, {"abcd", 492}};
    for (size_t i = 0; i < sizeof(four) / sizeof(four[0]); i++) {
        got = stream_value(four[i].name, value, 600, &len);
        assert_int_equal(len, four[i].want);
        assert_memory_equal(got, value, len);
        free(got);
    }

    /* The limit is on the value Twilio hands back, not on its escaped form. */
    memset(value, '&', 498);
    got = stream_value("N", value, 498, &len);
    assert_int_equal(len, 498 * 5);
    free(got);
}

static void test_apology(void **state)
{
    (void)state;
    struct va_buf b;
    va_buf_init(&b, 1 << 10);
    assert_int_equal(tw_twiml_apology(&b, "Busy."), 0);
    assert_buf(&b, LIT(DECL "<Response><Say>Busy.</Say><Hangup/></Response>"));
    va_buf_reset(&b);
    assert_int_equal(tw_twiml_apology(&b, "We're busy <sorry> & bye"), 0);
    assert_buf(&b, LIT(DECL "<Response><Say>We&apos;re busy &lt;sorry&gt; &amp; bye</Say>"
                            "<Hangup/></Response>"));
    va_buf_reset(&b);
    assert_int_equal(tw_twiml_apology(&b, NULL), 0);
    assert_buf(&b, LIT(DECL "<Response><Hangup/></Response>"));
    va_buf_deinit(&b);

    va_buf_init(&b, 40);
    assert_int_equal(tw_twiml_apology(&b, "Busy."), VA_ETOOBIG);
    assert_int_equal(b.len, 0);
    va_buf_deinit(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape_five),      cmocka_unit_test(test_escape_controls),
        cmocka_unit_test(test_escape_utf8),      cmocka_unit_test(test_escape_appends),
        cmocka_unit_test(test_stream_reference), cmocka_unit_test(test_stream_shapes),
        cmocka_unit_test(test_stream_refuses),   cmocka_unit_test(test_param_limit),
        cmocka_unit_test(test_apology),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
