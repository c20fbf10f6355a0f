/* tests/unit/test_twilio_sig_npm.c: our X-Twilio-Signature against the official
 * `twilio` npm package (tests/node/sign.js), code nobody here wrote.
 *
 * What the package does (twilio 5.13.1, lib/webhooks/webhooks.js,
 * getExpectedTwilioSignature): url + for each name in Object.keys(params).sort():
 * name + value, or, when the value is an array (a repeated name, as Express's body
 * parser delivers it), name + value for each of Array.from(new Set(values)).sort().
 * That is the reference's rule (§3.1: values sorted, duplicates dropped) with one
 * difference: JavaScript sorts strings by UTF-16 code unit, we (and the reference)
 * by byte. The two orders agree except between a character above U+FFFF and one in
 * U+E000..U+FFFF, so the generated names and values below use none of the latter.
 * Twilio's own repeated-name vector (§3.4 row 2) runs through both sides here and
 * in test_twilio_signature.c. The package signs the URL as given; its port variants
 * live in validateRequest(), which this test does not use.
 *
 * sign.js decodes the body with URLSearchParams (WHATWG): '+' is a space, a
 * malformed %-escape stays literal, empty segments are skipped, a missing '=' gives
 * an empty value, as va_form_parse() does. Bytes that are not UTF-8 would become
 * U+FFFD there, so every generated string is valid UTF-8. Node 20's URLSearchParams
 * also departs from WHATWG once: a name or value holding a valid escape, a malformed
 * one and a raw non-ASCII character goes through querystring.unescapeBuffer(), which
 * takes each UTF-16 unit as one byte ("%41%zz\u65e5" decodes to "A%zz\ufffd"). So a
 * generated value with a malformed escape writes its non-ASCII characters as %XX.
 *
 * Needs node and tests/node/node_modules (`make test` installs both; by hand:
 * cd tests/node && npm ci). Missing ones fail the test, they do not skip it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/err.h"
#include "http/form.h"
#include "twilio/signature.h"

#ifndef VA_SOURCE_DIR
#error                                                                                             \
    "VA_SOURCE_DIR must be the repository root: CMake passes -DVA_SOURCE_DIR=\"${CMAKE_SOURCE_DIR}\""
#endif

#define SIGN_JS VA_SOURCE_DIR "/tests/node/sign.js"
#define TWILIO_PKG VA_SOURCE_DIR "/tests/node/node_modules/twilio/package.json"
#define NCASES 24
#define SEED UINT64_C(0x7477696c696f3031)
#define MAX_PAIRS 16

/* splitmix64: a fixed seed makes every run sign the same cases. */
static uint64_t rnd_next(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static size_t rnd_below(uint64_t *s, size_t n)
{
    return (size_t)(rnd_next(s) % n);
}

/* Appends s as one single-quoted shell word. */
static void shell_quote(struct va_buf *cmd, const char *s, size_t len)
{
    assert_int_equal(va_buf_append_char(cmd, '\''), 0);
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\'')
            assert_int_equal(va_buf_append_str(cmd, "'\\''"), 0);
        else
            assert_int_equal(va_buf_append_char(cmd, s[i]), 0);
    }
    assert_int_equal(va_buf_append_char(cmd, '\''), 0);
}

/* Runs sign.js and puts its signature in out, or fails the test. */
static void npm_sign(const char *token, const char *url, const char *body, size_t body_len,
                     char out[TW_SIG_LEN + 1])
{
    struct va_buf cmd;
    va_buf_init(&cmd, 1 << 16);
    assert_int_equal(va_buf_append_str(&cmd, "node "), 0);
    shell_quote(&cmd, SIGN_JS, strlen(SIGN_JS));
    assert_int_equal(va_buf_append_char(&cmd, ' '), 0);
    shell_quote(&cmd, token, strlen(token));
    assert_int_equal(va_buf_append_char(&cmd, ' '), 0);
    shell_quote(&cmd, url, strlen(url));
    assert_int_equal(va_buf_append_char(&cmd, ' '), 0);
    shell_quote(&cmd, body, body_len);

    FILE *p = popen(cmd.data, "r");
    if (!p)
        fail_msg("popen(%s) failed", cmd.data);
    char line[128] = "";
    size_t got = fread(line, 1, sizeof(line) - 1, p);
    line[got] = '\0';
    int status = pclose(p);
    if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("sign.js failed (status %d): %s", status, cmd.data);
    if (got != TW_SIG_LEN + 1 || line[TW_SIG_LEN] != '\n')
        fail_msg("sign.js printed %zu bytes, not a signature: %s", got, line);
    memcpy(out, line, TW_SIG_LEN);
    out[TW_SIG_LEN] = '\0';
    va_buf_deinit(&cmd);
}

static int check_prereqs(void **state)
{
    (void)state;
    int status = system("node --version >/dev/null 2>&1");
    if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        print_error("node not found in PATH: the npm cross-check needs Node.js "
                    "(scripts/install-deps.sh test, or apt-get install nodejs)\n");
        return -1;
    }
    if (access(TWILIO_PKG, R_OK)) {
        print_error("%s missing: run `cd %s/tests/node && npm ci` (make test does)\n", TWILIO_PKG,
                    VA_SOURCE_DIR);
        return -1;
    }
    return 0;
}

/* Reference §3.4 through the package: it agrees with the table as well. */
static void test_reference_vectors(void **state)
{
    (void)state;
    static const struct {
        const char *url;
        const char *body;
        const char *sig;
    } rows[] = {
        {"https://example.com/myapp.php?foo=1&bar=2",
         "CallSid=CA1234567890ABCDE&Caller=%2B14158675310&Digits=1234&From=%2B14158675310&"
         "To=%2B18005551212",
         "L/OH5YylLD5NRKLltdqwSvS0BnU="},
        {"https://mycompany.com/myapp.php?foo=1&bar=2",
         "Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234&Digits=1234",
         "IK+Dwps556ElfBT0I3Rgjkr1wJU="},
        {"https://example.com/twilio/answer",
         "AccountSid=AC00000000000000000000000000000000&"
         "CallSid=CA00000000000000000000000000000000&CallStatus=ringing&Direction=inbound&"
         "From=%2B15551230000&To=%2B15559870000",
         "E2vOnMygTu/XdMvfhRfg6tUX4zo="},
        {"wss://example.com/ws/twilio", "", "UAB6CyYaIqjwuABy5XGywJDQcS0="},
        {"wss://example.com/ws/twilio/", "", "GXBTs5keFdxulO3nrHIhKrp6l80="},
        {"wss://example.com:443/ws/twilio", "", "PdvWQ2C9AaSPpz0/p6MYtDVDx0s="},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char theirs[TW_SIG_LEN + 1], ours[TW_SIG_LEN + 1];
        npm_sign("12345", rows[i].url, rows[i].body, strlen(rows[i].body), theirs);
        assert_string_equal(theirs, rows[i].sig);

        struct va_form f;
        assert_int_equal(va_form_parse(&f, rows[i].body, strlen(rows[i].body), MAX_PAIRS), 0);
        assert_int_equal(
            tw_sig_compute("12345", 5, rows[i].url, strlen(rows[i].url), f.pairs, f.len, ours), 0);
        assert_string_equal(ours, theirs);
        va_form_deinit(&f);
    }
}

/* Pieces names and values are made of: what each decodes to, and how it may be
 * written in a form body. No character in U+E000..U+FFFF (see the top comment). */
struct piece {
    const char *text; /* decoded */
    size_t text_len;
    const char *const forms[3]; /* encodings, NULL-terminated; non-ASCII: raw, then %XX */
};

#define TXT(s) s, sizeof(s) - 1

static const struct piece pieces[] = {
    {TXT("a"), {"a", NULL}},
    {TXT("Z"), {"Z", NULL}},
    {TXT("0"), {"0", NULL}},
    {TXT("9"), {"9", "%39", NULL}},
    {TXT("-._~"), {"-._~", NULL}},
    {TXT(" "), {"+", "%20", NULL}},
    {TXT("+"), {"%2B", "%2b", NULL}},
    {TXT("&"), {"%26", NULL}},
    {TXT("="), {"%3D", "%3d", NULL}},
    {TXT("%"), {"%25", NULL}},
    {TXT("'"), {"'", "%27", NULL}},
    {TXT("\""), {"\"", "%22", NULL}},
    {TXT("#?/"), {"#?/", "%23%3F%2F", NULL}},
    {TXT("\t"), {"%09", "\t", NULL}},
    {TXT("\xc3\xa9"), {"\xc3\xa9", "%C3%A9", NULL}},                       /* é */
    {TXT("\xe6\x97\xa5"), {"\xe6\x97\xa5", "%e6%97%a5", NULL}},            /* 日 */
    {TXT("\xf0\x9f\x98\x80"), {"\xf0\x9f\x98\x80", "%F0%9F%98%80", NULL}}, /* 😀 */
    {TXT("%zz"), {"%zz", NULL}}, /* malformed escape, literal on both sides */
    {TXT("\0"), {"%00", NULL}},  /* NUL: argv cannot carry one raw */
};
#define NPIECES (sizeof(pieces) / sizeof(pieces[0]))

static const char *const names[] = {
    "CallSid",      "CallStatus", "Called", "Caller", "From", "To", "Digits",
    "SpeechResult", "a",          "A",      "_",      "Z1",   "",
};
#define NNAMES (sizeof(names) / sizeof(names[0]))

struct gen_pair {
    char name[64];
    size_t name_len;
    char value[256];
    size_t value_len;
};

struct gen_case {
    char token[40];
    char url[256];
    struct va_buf body;
    struct gen_pair pairs[MAX_PAIRS];
    size_t n;
};

/* What the generated set covers, asserted at the end so a new seed cannot quietly
 * drop a feature. */
struct coverage {
    unsigned query, no_query, space, plus, unicode, astral, repeated, repeated_dup, nul, malformed,
        empty_segment, no_equals;
};

static void gen_value(uint64_t *s, struct gen_case *c, struct gen_pair *p, struct coverage *cov)
{
    size_t k = rnd_below(s, 10);
    /* Malformed escapes, or raw non-ASCII: not both (Node's bug, see the top). */
    bool malformed_ok = rnd_below(s, 2);
    p->value_len = 0;
    for (size_t i = 0; i < k; i++) {
        const struct piece *pc = &pieces[rnd_below(s, NPIECES)];
        bool malformed = pc->text_len == 3 && !memcmp(pc->text, "%zz", 3);
        if (malformed && !malformed_ok)
            continue;
        size_t nforms = 0;
        while (pc->forms[nforms])
            nforms++;
        const char *form = pc->forms[rnd_below(s, nforms)];
        if ((unsigned char)pc->text[0] >= 0x80 && malformed_ok)
            form = pc->forms[1]; /* the %XX form */
        assert_true(p->value_len + pc->text_len < sizeof(p->value));
        memcpy(p->value + p->value_len, pc->text, pc->text_len);
        p->value_len += pc->text_len;
        assert_int_equal(va_buf_append_str(&c->body, form), 0);

        cov->space += pc->text[0] == ' ';
        cov->plus += pc->text[0] == '+';
        cov->unicode += (unsigned char)pc->text[0] >= 0x80;
        cov->astral += (unsigned char)pc->text[0] >= 0xf0;
        cov->nul += pc->text_len == 1 && pc->text[0] == '\0';
        cov->malformed += malformed;
    }
    /* A malformed escape cut short by the '&' after it or by the end of the body;
     * only at the end, where no hex digit can follow. */
    if (malformed_ok && !rnd_below(s, 4)) {
        memcpy(p->value + p->value_len, "%4", 2);
        p->value_len += 2;
        assert_int_equal(va_buf_append_str(&c->body, "%4"), 0);
        cov->malformed++;
    }
}

static void gen_case(uint64_t *s, struct gen_case *c, struct coverage *cov)
{
    static const char *const bases[] = {
        "https://example.com",   "https://voice.example.com:8443", "wss://example.com",
        "http://127.0.0.1:8080", "https://xn--caf-dma.example",
    };
    static const char *const paths[] = {
        "/twilio/answer", "/ws/twilio", "/a/b/", "/caf%C3%A9", "/caf\xc3\xa9", "",
    };
    static const char *const queries[] = {
        "",
        "?foo=1&bar=2",
        "?x=a+b&y=%2B1&z=caf\xc3\xa9",
        "?q=",
    };

    if (!rnd_below(s, 6)) {
        snprintf(c->token, sizeof(c->token), "12345");
    } else {
        for (size_t i = 0; i < 32; i++)
            c->token[i] = "0123456789abcdef"[rnd_below(s, 16)];
        c->token[32] = '\0';
    }
    const char *query = queries[rnd_below(s, 4)];
    snprintf(c->url, sizeof(c->url), "%s%s%s", bases[rnd_below(s, 5)], paths[rnd_below(s, 6)],
             query);
    if (query[0])
        cov->query++;
    else
        cov->no_query++;

    va_buf_init(&c->body, 1 << 14);
    c->n = rnd_below(s, 9);
    for (size_t i = 0; i < c->n; i++) {
        struct gen_pair *p = &c->pairs[i];
        if (i && !rnd_below(s, 5)) {
            assert_int_equal(va_buf_append_str(&c->body, "&&"), 0); /* empty segment */
            cov->empty_segment++;
        } else if (i) {
            assert_int_equal(va_buf_append_char(&c->body, '&'), 0);
        }

        /* A third of the names repeat an earlier one, sometimes with its value too. */
        size_t prev = i ? rnd_below(s, i) : 0;
        bool repeat = i && !rnd_below(s, 3);
        const char *name = repeat ? c->pairs[prev].name : names[rnd_below(s, NNAMES)];
        p->name_len = repeat ? c->pairs[prev].name_len : strlen(name);
        memcpy(p->name, name, p->name_len);
        p->name[p->name_len] = '\0';
        /* Names are plain ASCII here: encode one character in three as %XX. */
        for (size_t k = 0; k < p->name_len; k++) {
            if (!rnd_below(s, 3))
                assert_int_equal(va_buf_printf(&c->body, "%%%02X", (unsigned char)p->name[k]), 0);
            else
                assert_int_equal(va_buf_append_char(&c->body, p->name[k]), 0);
        }

        if (repeat && !rnd_below(s, 2)) {
            /* The same value again: both sides must drop the duplicate. */
            p->value_len = c->pairs[prev].value_len;
            memcpy(p->value, c->pairs[prev].value, p->value_len);
            /* Re-encode it simply: every byte as %XX. */
            assert_int_equal(va_buf_append_char(&c->body, '='), 0);
            for (size_t k = 0; k < p->value_len; k++)
                assert_int_equal(va_buf_printf(&c->body, "%%%02x", (unsigned char)p->value[k]), 0);
            cov->repeated_dup++;
        } else if (p->name_len && !rnd_below(s, 8)) {
            /* No '=' at all: an empty value. (An empty name needs the '=', or the
             * segment would be empty and skipped.) */
            p->value_len = 0;
            cov->no_equals++;
        } else {
            assert_int_equal(va_buf_append_char(&c->body, '='), 0);
            gen_value(s, c, p, cov);
        }
        cov->repeated += repeat;
    }
}

static void test_generated(void **state)
{
    (void)state;
    uint64_t s = SEED;
    struct coverage cov = {0};
    print_message("seed 0x%016llx, %d cases\n", (unsigned long long)SEED, NCASES);

    for (int i = 0; i < NCASES; i++) {
        struct gen_case c;
        gen_case(&s, &c, &cov);

        /* Our parser decodes the body to exactly the pairs generated. */
        struct va_form f;
        assert_int_equal(va_form_parse(&f, c.body.data ? c.body.data : "", c.body.len, MAX_PAIRS),
                         0);
        assert_int_equal(f.len, c.n);
        for (size_t k = 0; k < c.n; k++) {
            assert_int_equal(f.pairs[k].name_len, c.pairs[k].name_len);
            assert_memory_equal(f.pairs[k].name, c.pairs[k].name, c.pairs[k].name_len);
            assert_int_equal(f.pairs[k].value_len, c.pairs[k].value_len);
            assert_memory_equal(f.pairs[k].value, c.pairs[k].value, c.pairs[k].value_len);
        }

        char ours[TW_SIG_LEN + 1], theirs[TW_SIG_LEN + 1];
        assert_int_equal(
            tw_sig_compute(c.token, strlen(c.token), c.url, strlen(c.url), f.pairs, f.len, ours),
            0);
        npm_sign(c.token, c.url, c.body.data ? c.body.data : "", c.body.len, theirs);
        bool same = !strcmp(ours, theirs);
        if (!same)
            print_error("case %d: ours %s, twilio npm %s\n  token %s\n  url %s\n  body %.*s\n", i,
                        ours, theirs, c.token, c.url, (int)c.body.len,
                        c.body.data ? c.body.data : "");
        /* And the package's signature passes our check. */
        int err = tw_sig_check(c.token, strlen(c.token), c.url, strlen(c.url), f.pairs, f.len,
                               theirs, strlen(theirs), TW_SIG_TRY_SLASH);
        va_form_deinit(&f);
        va_buf_deinit(&c.body);
        assert_true(same);
        assert_int_equal(err, 0);
    }

    print_message("coverage: query %u, no query %u, space %u, plus %u, unicode %u, astral %u, "
                  "repeated %u (same value %u), NUL %u, malformed %u, empty segment %u, no '=' "
                  "%u\n",
                  cov.query, cov.no_query, cov.space, cov.plus, cov.unicode, cov.astral,
                  cov.repeated, cov.repeated_dup, cov.nul, cov.malformed, cov.empty_segment,
                  cov.no_equals);
    assert_true(cov.query && cov.no_query && cov.space && cov.plus && cov.unicode && cov.astral &&
                cov.repeated && cov.repeated_dup && cov.nul && cov.malformed && cov.empty_segment &&
                cov.no_equals);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_vectors),
        cmocka_unit_test(test_generated),
    };
    return cmocka_run_group_tests(tests, check_prereqs, NULL);
}
