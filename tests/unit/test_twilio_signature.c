/* tests/unit/test_twilio_signature.c: X-Twilio-Signature, reference §3. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"
#include "http/form.h"
#include "twilio/signature.h"

#define TOKEN "12345"
#define LIT(s) s, sizeof(s) - 1

/* Reference §3.4, all six rows. Bodies are form-encoded as Twilio sends them
 * (%2B for '+'); the pairs are given in an order other than the sorted one. */
struct sig_vector {
    const char *url;
    const char *body;
    const char *sig;
};

static const struct sig_vector vectors[] = {
    {"https://example.com/myapp.php?foo=1&bar=2",
     "To=%2B18005551212&From=%2B14158675310&Digits=1234&Caller=%2B14158675310&"
     "CallSid=CA1234567890ABCDE",
     "L/OH5YylLD5NRKLltdqwSvS0BnU="},
    {"https://mycompany.com/myapp.php?foo=1&bar=2",
     "Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234&Digits=1234",
     "IK+Dwps556ElfBT0I3Rgjkr1wJU="},
    {"https://example.com/twilio/answer",
     "To=%2B15559870000&CallStatus=ringing&AccountSid=AC00000000000000000000000000000000&"
     "Direction=inbound&From=%2B15551230000&CallSid=CA00000000000000000000000000000000",
     "E2vOnMygTu/XdMvfhRfg6tUX4zo="},
    {"wss://example.com/ws/twilio", "", "UAB6CyYaIqjwuABy5XGywJDQcS0="},
    {"wss://example.com/ws/twilio/", "", "GXBTs5keFdxulO3nrHIhKrp6l80="},
    {"wss://example.com:443/ws/twilio", "", "PdvWQ2C9AaSPpz0/p6MYtDVDx0s="},
};
#define NVECTORS (sizeof(vectors) / sizeof(vectors[0]))

static void compute_str(const char *url, const struct va_form *f, char out[TW_SIG_LEN + 1])
{
    int err =
        tw_sig_compute(LIT(TOKEN), url, strlen(url), f ? f->pairs : NULL, f ? f->len : 0, out);
    assert_int_equal(err, 0);
    assert_int_equal(strlen(out), TW_SIG_LEN);
}

static int check(const char *url, const struct va_form *f, const char *sig, unsigned flags)
{
    return tw_sig_check(LIT(TOKEN), url, strlen(url), f ? f->pairs : NULL, f ? f->len : 0, sig,
                        sig ? strlen(sig) : 0, flags);
}

static void parse(struct va_form *f, const char *body)
{
    assert_int_equal(va_form_parse(f, body, strlen(body), 64), 0);
}

static void test_vectors_compute(void **state)
{
    (void)state;
    for (size_t i = 0; i < NVECTORS; i++) {
        struct va_form f;
        char out[TW_SIG_LEN + 1];
        parse(&f, vectors[i].body);
        compute_str(vectors[i].url, &f, out);
        assert_string_equal(out, vectors[i].sig);
        va_form_deinit(&f);
    }
}

static void test_vectors_check(void **state)
{
    (void)state;
    for (size_t i = 0; i < NVECTORS; i++) {
        struct va_form f;
        parse(&f, vectors[i].body);
        assert_int_equal(check(vectors[i].url, &f, vectors[i].sig, 0), 0);
        assert_int_equal(check(vectors[i].url, &f, vectors[i].sig, TW_SIG_TRY_SLASH), 0);
        va_form_deinit(&f);
    }
}

static void test_signed_string(void **state)
{
    (void)state;
    /* The signed string the reference spells out for the first row: HMAC over it
     * alone gives the same signature, so concatenation and order are right. */
    char out[TW_SIG_LEN + 1];
    compute_str("https://example.com/myapp.php?foo=1&bar=2CallSidCA1234567890ABCDECaller"
                "+14158675310Digits1234From+14158675310To+18005551212",
                NULL, out);
    assert_string_equal(out, vectors[0].sig);
}

static void test_repeated_names(void **state)
{
    (void)state;
    /* §3.1: a repeated name has its values sorted and duplicates dropped. Any input
     * order, with or without the duplicate, signs the same. */
    static const char *const bodies[] = {
        "Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234&Digits=1234",
        "Digits=1234&Digits=5678&Sid=CA123&SidAccount=AC123",
        "SidAccount=AC123&Digits=1234&Sid=CA123&Digits=5678",
        "Digits=1234&Digits=1234&Digits=1234&Digits=5678&Digits=5678&SidAccount=AC123&Sid=CA123",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        struct va_form f;
        char out[TW_SIG_LEN + 1];
        parse(&f, bodies[i]);
        compute_str("https://mycompany.com/myapp.php?foo=1&bar=2", &f, out);
        assert_string_equal(out, "IK+Dwps556ElfBT0I3Rgjkr1wJU=");
        va_form_deinit(&f);
    }

    /* The string those sign, spelled out; keeping the duplicate would differ. */
    char out[TW_SIG_LEN + 1];
    compute_str("https://mycompany.com/myapp.php?foo=1&bar=2"
                "Digits1234Digits5678SidCA123SidAccountAC123",
                NULL, out);
    assert_string_equal(out, "IK+Dwps556ElfBT0I3Rgjkr1wJU=");
    compute_str("https://mycompany.com/myapp.php?foo=1&bar=2"
                "Digits1234Digits1234Digits5678SidCA123SidAccountAC123",
                NULL, out);
    assert_string_not_equal(out, "IK+Dwps556ElfBT0I3Rgjkr1wJU=");

    /* The same value under two names is not a duplicate. */
    struct va_form f;
    parse(&f, "a=1&b=1&a=1");
    compute_str("https://x.test/", &f, out);
    char want[TW_SIG_LEN + 1];
    compute_str("https://x.test/a1b1", NULL, want);
    assert_string_equal(out, want);
    va_form_deinit(&f);
}

static void test_byte_order(void **state)
{
    (void)state;
    /* strcmp order: 'S' (0x53) < 'a' (0x61), uppercase before lowercase, a prefix
     * before its extensions. */
    struct va_form f;
    char out[TW_SIG_LEN + 1], want[TW_SIG_LEN + 1];
    parse(&f, "Direction=d&Caller=c3&caller=c5&Called=c2&CallStatus=c1&CallSid=c0&Call=c&"
              "%C3%A9=e&Z=z");
    compute_str("https://x.test/a", &f, out);
    compute_str("https://x.test/aCallcCallSidc0CallStatusc1Calledc2Callerc3Directiond"
                "Zzcallerc5\xc3\xa9"
                "e",
                NULL, want);
    assert_string_equal(out, want);
    va_form_deinit(&f);

    /* Values of one name in byte order too, shorter first on a common prefix. */
    parse(&f, "v=ab&v=a&v=B&v=a%20");
    compute_str("u", &f, out);
    compute_str("uvBvava vab", NULL, want);
    assert_string_equal(out, want);
    va_form_deinit(&f);
}

static void test_nul_bytes(void **state)
{
    (void)state;
    /* Names and values are (ptr, len): a NUL is signed like any byte. */
    struct va_form f;
    char out[TW_SIG_LEN + 1], want[TW_SIG_LEN + 1];
    parse(&f, "b=x%00y&a%00=1&a=2");
    assert_int_equal(f.len, 3);
    compute_str("https://x.test/", &f, out);
    static const char msg[] = "https://x.test/a2a\0"
                              "1bx\0y";
    assert_int_equal(tw_sig_compute(LIT(TOKEN), msg, sizeof(msg) - 1, NULL, 0, want), 0);
    assert_string_equal(out, want);
    assert_int_equal(check("https://x.test/", &f, want, 0), 0);

    /* Dropping the NUL and what follows it changes the signature. */
    assert_int_equal(tw_sig_compute(LIT(TOKEN), LIT("https://x.test/a2a"), NULL, 0, want), 0);
    assert_string_not_equal(out, want);
    va_form_deinit(&f);
}

/* Signs signed_url, checks it against configured; returns tw_sig_check's result. */
static int check_variant(const char *configured, const char *signed_url, unsigned flags)
{
    char sig[TW_SIG_LEN + 1];
    compute_str(signed_url, NULL, sig);
    return check(configured, NULL, sig, flags);
}

static void test_port_variants(void **state)
{
    (void)state;
    /* Reference rows 4 and 6: the default port added or removed. */
    assert_int_equal(check("wss://example.com/ws/twilio", NULL, "PdvWQ2C9AaSPpz0/p6MYtDVDx0s=", 0),
                     0);
    assert_int_equal(
        check("wss://example.com:443/ws/twilio", NULL, "UAB6CyYaIqjwuABy5XGywJDQcS0=", 0), 0);

    struct {
        const char *configured;
        const char *signed_url;
        int want;
    } cases[] = {
        {"https://example.com/twilio/answer", "https://example.com:443/twilio/answer", 0},
        {"https://example.com:443/twilio/answer", "https://example.com/twilio/answer", 0},
        {"http://example.com/twilio/answer", "http://example.com:80/twilio/answer", 0},
        {"http://example.com:80/twilio/answer", "http://example.com/twilio/answer", 0},
        {"ws://example.com/ws", "ws://example.com:80/ws", 0},
        /* Any explicit port may be dropped (Twilio drops it for HTTPS)... */
        {"https://example.com:8443/twilio/answer", "https://example.com/twilio/answer", 0},
        /* ...but no other port is guessed, nor a default of another scheme. */
        {"https://example.com/twilio/answer", "https://example.com:8443/twilio/answer", VA_EAUTH},
        {"https://example.com/twilio/answer", "https://example.com:80/twilio/answer", VA_EAUTH},
        {"http://example.com/twilio/answer", "http://example.com:443/twilio/answer", VA_EAUTH},
        {"https://example.com:8443/twilio/answer", "https://example.com:443/twilio/answer",
         VA_EAUTH},
        {"foo://example.com/x", "foo://example.com:443/x", VA_EAUTH},
        {"foo://example.com:9/x", "foo://example.com/x", 0},
        /* The query and the path stay byte for byte. */
        {"https://example.com/a?x=1&y=:2", "https://example.com:443/a?x=1&y=:2", 0},
        {"https://example.com?x=1", "https://example.com:443?x=1", 0},
        {"https://example.com#f", "https://example.com:443#f", 0},
        {"https://example.com", "https://example.com:443", 0},
        {"https://example.com:443", "https://example.com", 0},
        {"https://example.com/a:443", "https://example.com/a", VA_EAUTH},
        /* Scheme case does not matter for the default port; the bytes still do. */
        {"WSS://example.com/ws/twilio", "WSS://example.com:443/ws/twilio", 0},
        {"WSS://example.com/ws/twilio", "wss://example.com/ws/twilio", VA_EAUTH},
        /* An IPv6 literal's colons are not a port. */
        {"https://[::1]:8443/x", "https://[::1]/x", 0},
        {"https://[::1]/x", "https://[::1]:443/x", 0},
        /* An empty port is an explicit one. */
        {"https://example.com:/x", "https://example.com/x", 0},
        /* No authority: only the URL as given. */
        {"example.com/x", "example.com:443/x", VA_EAUTH},
        {"example.com:443/x", "example.com/x", VA_EAUTH},
        {"", "", 0},
        /* https:// is never the stream URL (§3.3). */
        {"wss://example.com/ws/twilio", "https://example.com/ws/twilio", VA_EAUTH},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        print_message("%s <- %s\n", cases[i].configured, cases[i].signed_url);
        assert_int_equal(check_variant(cases[i].configured, cases[i].signed_url, 0), cases[i].want);
        assert_int_equal(check_variant(cases[i].configured, cases[i].signed_url, TW_SIG_TRY_SLASH),
                         cases[i].want);
    }

    /* With params: the variants change the URL only. */
    struct va_form f;
    parse(&f, vectors[2].body);
    assert_int_equal(check("https://example.com:443/twilio/answer", &f, vectors[2].sig, 0), 0);
    assert_int_equal(check("https://user:pw@example.com:443/twilio/answer", &f, vectors[2].sig, 0),
                     0);
    va_form_deinit(&f);
}

static void test_userinfo(void **state)
{
    (void)state;
    /* Twilio never signs user:pass@ (§3.2): it counts in no variant. */
    assert_int_equal(
        check("wss://user:pass@example.com/ws/twilio", NULL, "UAB6CyYaIqjwuABy5XGywJDQcS0=", 0), 0);
    assert_int_equal(
        check("wss://user:pass@example.com/ws/twilio", NULL, "PdvWQ2C9AaSPpz0/p6MYtDVDx0s=", 0), 0);
    assert_int_equal(
        check("wss://user:pass@example.com:443/ws/twilio", NULL, "UAB6CyYaIqjwuABy5XGywJDQcS0=", 0),
        0);
    assert_int_equal(check("wss://user:pass@example.com/ws/twilio", NULL,
                           "GXBTs5keFdxulO3nrHIhKrp6l80=", TW_SIG_TRY_SLASH),
                     0);
    /* A password holding '@' or ':'; a user without password. */
    assert_int_equal(
        check("wss://u:p@ss:x@example.com/ws/twilio", NULL, "UAB6CyYaIqjwuABy5XGywJDQcS0=", 0), 0);
    assert_int_equal(
        check("wss://u@example.com/ws/twilio", NULL, "UAB6CyYaIqjwuABy5XGywJDQcS0=", 0), 0);
    /* A signature over the URL with its userinfo is not Twilio's. */
    assert_int_equal(check_variant("wss://user:pass@example.com/ws/twilio",
                                   "wss://user:pass@example.com/ws/twilio", 0),
                     VA_EAUTH);
    /* An '@' after the authority is path, not userinfo. */
    assert_int_equal(check_variant("https://example.com/a@b", "https://example.com/a@b", 0), 0);
    assert_int_equal(check_variant("https://example.com/a@b", "https://b", 0), VA_EAUTH);
    assert_int_equal(check_variant("https://example.com?u=a@b", "https://example.com?u=a@b", 0), 0);

    /* tw_sig_compute signs exactly what it is given. */
    char out[TW_SIG_LEN + 1];
    compute_str("wss://user:pass@example.com/ws/twilio", NULL, out);
    assert_string_not_equal(out, "UAB6CyYaIqjwuABy5XGywJDQcS0=");
}

static void test_trailing_slash(void **state)
{
    (void)state;
    const char *url = "wss://example.com/ws/twilio";
    /* Row 5 signs the URL with "/" appended: accepted only when asked for. */
    assert_int_equal(check(url, NULL, "GXBTs5keFdxulO3nrHIhKrp6l80=", 0), VA_EAUTH);
    assert_int_equal(check(url, NULL, "GXBTs5keFdxulO3nrHIhKrp6l80=", TW_SIG_TRY_SLASH), 0);
    /* The slash combines with the port variants. */
    assert_int_equal(check_variant(url, "wss://example.com:443/ws/twilio/", 0), VA_EAUTH);
    assert_int_equal(check_variant(url, "wss://example.com:443/ws/twilio/", TW_SIG_TRY_SLASH), 0);
    assert_int_equal(check_variant("wss://example.com:443/ws/twilio",
                                   "wss://example.com/ws/twilio/", TW_SIG_TRY_SLASH),
                     0);
    assert_int_equal(check_variant("wss://example.com:443/ws/twilio",
                                   "wss://example.com:443/ws/twilio/", TW_SIG_TRY_SLASH),
                     0);
    /* A slash is only ever added, never removed, and only one. */
    assert_int_equal(check("wss://example.com/ws/twilio/", NULL,
                           "UAB6CyYaIqjwuABy5XGywJDQcS0=", TW_SIG_TRY_SLASH),
                     VA_EAUTH);
    assert_int_equal(check_variant(url, "wss://example.com/ws/twilio//", TW_SIG_TRY_SLASH),
                     VA_EAUTH);
    /* With a form too: appended after the URL, before the pairs. */
    struct va_form f;
    char sig[TW_SIG_LEN + 1];
    parse(&f, "a=1");
    compute_str("https://example.com/x/", &f, sig);
    assert_int_equal(check("https://example.com/x", &f, sig, 0), VA_EAUTH);
    assert_int_equal(check("https://example.com/x", &f, sig, TW_SIG_TRY_SLASH), 0);
    va_form_deinit(&f);
}

static void test_bad_sigs(void **state)
{
    (void)state;
    struct va_form f;
    parse(&f, vectors[0].body);
    const char *url = vectors[0].url;
    const char *good = vectors[0].sig;
    assert_int_equal(check(url, &f, good, 0), 0);

    /* Wrong: another row's signature, a wrong token, altered params or URL. */
    assert_int_equal(check(url, &f, vectors[2].sig, TW_SIG_TRY_SLASH), VA_EAUTH);
    assert_int_equal(tw_sig_check(LIT("12346"), url, strlen(url), f.pairs, f.len, good,
                                  strlen(good), TW_SIG_TRY_SLASH),
                     VA_EAUTH);
    assert_int_equal(check(url, NULL, good, TW_SIG_TRY_SLASH), VA_EAUTH);
    assert_int_equal(check("https://example.com/myapp.php?foo=1&bar=3", &f, good, TW_SIG_TRY_SLASH),
                     VA_EAUTH);
    struct va_form g;
    /* A value with a trailing space: never trimmed, so not the same request. */
    parse(&g, "To=%2B18005551212+&From=%2B14158675310&Digits=1234&Caller=%2B14158675310&"
              "CallSid=CA1234567890ABCDE");
    assert_int_equal(check(url, &g, good, TW_SIG_TRY_SLASH), VA_EAUTH);
    va_form_deinit(&g);

    /* Empty, missing, truncated, one too long. */
    assert_int_equal(check(url, &f, "", TW_SIG_TRY_SLASH), VA_EAUTH);
    assert_int_equal(check(url, &f, NULL, TW_SIG_TRY_SLASH), VA_EAUTH);
    assert_int_equal(tw_sig_check(LIT(TOKEN), url, strlen(url), f.pairs, f.len, NULL, 28, 0),
                     VA_EAUTH);
    for (size_t len = 0; len < TW_SIG_LEN; len++) {
        assert_int_equal(
            tw_sig_check(LIT(TOKEN), url, strlen(url), f.pairs, f.len, good, len, TW_SIG_TRY_SLASH),
            VA_EAUTH);
    }
    char longer[TW_SIG_LEN + 2];
    memcpy(longer, good, TW_SIG_LEN);
    longer[TW_SIG_LEN] = '=';
    longer[TW_SIG_LEN + 1] = '\0';
    assert_int_equal(check(url, &f, longer, TW_SIG_TRY_SLASH), VA_EAUTH);
    /* The right signature followed by a NUL is not the right length either. */
    longer[TW_SIG_LEN] = '\0';
    assert_int_equal(tw_sig_check(LIT(TOKEN), url, strlen(url), f.pairs, f.len, longer,
                                  TW_SIG_LEN + 1, TW_SIG_TRY_SLASH),
                     VA_EAUTH);

    /* Right length, one character different, at every position. */
    for (size_t i = 0; i < TW_SIG_LEN; i++) {
        char bad[TW_SIG_LEN + 1];
        memcpy(bad, good, sizeof(bad));
        bad[i] = bad[i] == 'A' ? 'B' : 'A';
        assert_int_equal(check(url, &f, bad, TW_SIG_TRY_SLASH), VA_EAUTH);
        /* Case matters: base64 is case-sensitive. */
        memcpy(bad, good, sizeof(bad));
        if (bad[i] >= 'a' && bad[i] <= 'z')
            bad[i] = (char)(bad[i] - 'a' + 'A');
        else if (bad[i] >= 'A' && bad[i] <= 'Z')
            bad[i] = (char)(bad[i] - 'A' + 'a');
        else
            continue;
        assert_int_equal(check(url, &f, bad, TW_SIG_TRY_SLASH), VA_EAUTH);
    }
    va_form_deinit(&f);
}

static void test_empty_token(void **state)
{
    (void)state;
    /* An empty key would make signatures forgeable: both functions refuse it. */
    char out[TW_SIG_LEN + 1] = "x";
    assert_int_equal(tw_sig_compute("", 0, LIT("wss://example.com/ws/twilio"), NULL, 0, out),
                     VA_EINVAL);
    assert_string_equal(out, "");
    assert_int_equal(tw_sig_check("", 0, LIT("wss://example.com/ws/twilio"), NULL, 0,
                                  LIT("UAB6CyYaIqjwuABy5XGywJDQcS0="), TW_SIG_TRY_SLASH),
                     VA_EINVAL);
}

static void test_token_is_bytes(void **state)
{
    (void)state;
    /* The token is (ptr, len): only token_len bytes key the MAC. */
    char a[TW_SIG_LEN + 1], b[TW_SIG_LEN + 1];
    assert_int_equal(tw_sig_compute("12345XYZ", 5, LIT("wss://example.com/ws/twilio"), NULL, 0, a),
                     0);
    assert_string_equal(a, "UAB6CyYaIqjwuABy5XGywJDQcS0=");
    /* One more byte of token is another key. (Not a trailing NUL: HMAC pads the key
     * with zero bytes, so "12345" and "12345\0" key it alike.) */
    assert_int_equal(tw_sig_compute("12345XYZ", 6, LIT("wss://example.com/ws/twilio"), NULL, 0, b),
                     0);
    assert_string_not_equal(a, b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors_compute), cmocka_unit_test(test_vectors_check),
        cmocka_unit_test(test_signed_string),   cmocka_unit_test(test_repeated_names),
        cmocka_unit_test(test_byte_order),      cmocka_unit_test(test_nul_bytes),
        cmocka_unit_test(test_port_variants),   cmocka_unit_test(test_userinfo),
        cmocka_unit_test(test_trailing_slash),  cmocka_unit_test(test_bad_sigs),
        cmocka_unit_test(test_empty_token),     cmocka_unit_test(test_token_is_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
