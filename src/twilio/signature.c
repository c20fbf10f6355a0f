/* src/twilio/signature.c: X-Twilio-Signature (../shared/reference/twilio.md §3). */
#include "twilio/signature.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "core/buf.h"
#include "core/err.h"

#define SIG_MAC_LEN 20 /* SHA-1 */

/* A URL variant is the configured URL cut into pieces: the part before user:pass@,
 * the part up to the port, a default port to insert, the rest and a trailing "/".
 * No string is built: the pieces go to the MAC one after another. */
#define SIG_MAX_SEGS 5

struct sig_seg {
    const char *p;
    size_t len;
};

struct sig_variant {
    struct sig_seg segs[SIG_MAX_SEGS];
    size_t nsegs;
};

/* Byte order, shorter first on a common prefix: strcmp order, but a name or value
 * may hold NUL bytes. */
static int sig_bytes_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen;
}

static int sig_pair_cmp(const void *va, const void *vb)
{
    const struct va_form_pair *a = *(const struct va_form_pair *const *)va;
    const struct va_form_pair *b = *(const struct va_form_pair *const *)vb;
    int c = sig_bytes_cmp(a->name, a->name_len, b->name, b->name_len);
    if (c)
        return c;
    return sig_bytes_cmp(a->value, a->value_len, b->value, b->value_len);
}

/* Sorts pairs by name then value (§3.1: a repeated name has its values sorted) into
 * a new array of pointers, drops exact duplicates and returns their count. */
static size_t sig_sort_pairs(const struct va_form_pair *pairs, size_t n,
                             const struct va_form_pair ***out)
{
    *out = NULL;
    if (!n)
        return 0;
    const struct va_form_pair **v = va_xmalloc(n * sizeof(*v));
    for (size_t i = 0; i < n; i++)
        v[i] = &pairs[i];
    qsort(v, n, sizeof(*v), sig_pair_cmp);
    size_t m = 1;
    for (size_t i = 1; i < n; i++) {
        if (sig_pair_cmp(&v[m - 1], &v[i]))
            v[m++] = v[i];
    }
    *out = v;
    return m;
}

/* A MAC context keyed with the token, to be duplicated once per URL variant. */
static int sig_mac_new(const char *token, size_t token_len, EVP_MAC_CTX **out)
{
    *out = NULL;
    /* An empty key makes every signature forgeable: refuse it rather than accept. */
    if (!token_len)
        return VA_EINVAL;

    EVP_MAC *mac = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
    if (!mac)
        return VA_EINVAL;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac); /* the context holds its own reference */
    if (!ctx)
        return VA_EINVAL;

    char digest[] = "SHA1";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    if (!EVP_MAC_init(ctx, (const unsigned char *)token, token_len, params)) {
        EVP_MAC_CTX_free(ctx);
        return VA_EINVAL;
    }
    *out = ctx;
    return 0;
}

/* HMAC of the variant's pieces followed by every pair's name and value, base64'd. */
static int sig_mac_variant(const EVP_MAC_CTX *keyed, const struct sig_variant *var,
                           const struct va_form_pair *const *sorted, size_t n,
                           char out[TW_SIG_LEN + 1])
{
    int err = VA_EINVAL;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(keyed);
    if (!ctx)
        return err;

    for (size_t i = 0; i < var->nsegs; i++) {
        if (!EVP_MAC_update(ctx, (const unsigned char *)var->segs[i].p, var->segs[i].len))
            goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        if (!EVP_MAC_update(ctx, (const unsigned char *)sorted[i]->name, sorted[i]->name_len) ||
            !EVP_MAC_update(ctx, (const unsigned char *)sorted[i]->value, sorted[i]->value_len))
            goto fail;
    }
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t mac_len = 0;
    if (!EVP_MAC_final(ctx, mac, &mac_len, sizeof(mac)) || mac_len != SIG_MAC_LEN)
        goto fail;
    /* 20 bytes -> exactly 28 base64 characters plus the NUL EVP_EncodeBlock writes. */
    EVP_EncodeBlock((unsigned char *)out, mac, SIG_MAC_LEN);
    err = 0;
fail:
    EVP_MAC_CTX_free(ctx);
    return err;
}

int tw_sig_compute(const char *token, size_t token_len, const char *url, size_t url_len,
                   const struct va_form_pair *pairs, size_t n, char out[TW_SIG_LEN + 1])
{
    out[0] = '\0';
    EVP_MAC_CTX *keyed;
    int err = sig_mac_new(token, token_len, &keyed);
    if (err)
        return err;

    const struct va_form_pair **sorted;
    size_t m = sig_sort_pairs(pairs, n, &sorted);
    struct sig_variant var = {.segs = {{url, url_len}}, .nsegs = 1};
    err = sig_mac_variant(keyed, &var, sorted, m, out);

    free(sorted);
    EVP_MAC_CTX_free(keyed);
    return err;
}

static bool sig_scheme_is(const char *s, size_t len, const char *want)
{
    size_t wlen = strlen(want); /* ours, a literal */
    if (len != wlen)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != want[i])
            return false;
    }
    return true;
}

/* The pieces of scheme://[userinfo@]host[:port]rest that the variants need. Offsets
 * index url; has_authority is false when there is no "://", and then only the URL
 * as given is tried. */
struct sig_url {
    bool has_authority;
    size_t host_start;        /* just past "://" and any userinfo */
    size_t user_start;        /* just past "://" */
    size_t port_colon;        /* the ':' before the port, or host_end when there is none */
    size_t host_end;          /* where the path, query or fragment starts */
    const char *default_port; /* ":443", ":80" or NULL for another scheme */
};

static void sig_url_parse(const char *url, size_t len, struct sig_url *u)
{
    memset(u, 0, sizeof(*u));
    size_t i = 0;
    while (i < len && url[i] != ':' && url[i] != '/' && url[i] != '?' && url[i] != '#')
        i++;
    if (!i || len - i < 3 || memcmp(url + i, "://", 3))
        return;
    size_t scheme_len = i;
    if (sig_scheme_is(url, scheme_len, "https") || sig_scheme_is(url, scheme_len, "wss"))
        u->default_port = ":443";
    else if (sig_scheme_is(url, scheme_len, "http") || sig_scheme_is(url, scheme_len, "ws"))
        u->default_port = ":80";

    u->has_authority = true;
    u->user_start = i + 3;
    size_t end = u->user_start;
    while (end < len && url[end] != '/' && url[end] != '?' && url[end] != '#')
        end++;
    u->host_end = end;

    /* The last '@' ends the userinfo: a password may hold an unescaped '@'. */
    u->host_start = u->user_start;
    for (size_t k = u->user_start; k < end; k++) {
        if (url[k] == '@')
            u->host_start = k + 1;
    }

    /* The port follows the last ':' of the host, unless that ':' sits inside an
     * IPv6 literal [..]. */
    u->port_colon = end;
    for (size_t k = end; k > u->host_start; k--) {
        char c = url[k - 1];
        if (c == ']')
            break;
        if (c == ':') {
            u->port_colon = k - 1;
            break;
        }
    }
}

static void sig_push(struct sig_variant *v, const char *p, size_t len)
{
    if (len)
        v->segs[v->nsegs++] = (struct sig_seg){p, len};
}

/* Fills vars with the URLs Twilio may have signed (§3.2, §3.3) and returns how many:
 * as given, then with the explicit port removed or the default port added, each
 * without user:pass@ (Twilio always drops it), and with TW_SIG_TRY_SLASH each again
 * with "/" appended. */
static size_t sig_variants(const char *url, size_t len, unsigned flags, struct sig_variant vars[4])
{
    struct sig_url u;
    sig_url_parse(url, len, &u);
    size_t nv = 0;

    struct sig_variant *v = &vars[nv++];
    v->nsegs = 0;
    if (!u.has_authority) {
        sig_push(v, url, len);
    } else {
        sig_push(v, url, u.user_start);
        sig_push(v, url + u.host_start, len - u.host_start);

        if (u.port_colon < u.host_end) {
            /* Any explicit port, default or not: Twilio drops the port of HTTPS
             * callbacks, and its SDKs try the URL without one. */
            v = &vars[nv++];
            v->nsegs = 0;
            sig_push(v, url, u.user_start);
            sig_push(v, url + u.host_start, u.port_colon - u.host_start);
            sig_push(v, url + u.host_end, len - u.host_end);
        } else if (u.default_port && u.host_end > u.host_start) {
            v = &vars[nv++];
            v->nsegs = 0;
            sig_push(v, url, u.user_start);
            sig_push(v, url + u.host_start, u.host_end - u.host_start);
            sig_push(v, u.default_port, strlen(u.default_port));
            sig_push(v, url + u.host_end, len - u.host_end);
        }
    }

    if (flags & TW_SIG_TRY_SLASH) {
        size_t base = nv;
        for (size_t i = 0; i < base; i++) {
            vars[nv] = vars[i];
            sig_push(&vars[nv], "/", 1);
            nv++;
        }
    }
    return nv;
}

int tw_sig_check(const char *token, size_t token_len, const char *url, size_t url_len,
                 const struct va_form_pair *pairs, size_t n, const char *sig, size_t sig_len,
                 unsigned flags)
{
    /* The length of a valid signature is public, so this early exit leaks nothing. */
    if (!sig || sig_len != TW_SIG_LEN)
        return VA_EAUTH;

    EVP_MAC_CTX *keyed;
    int err = sig_mac_new(token, token_len, &keyed);
    if (err)
        return err;

    const struct va_form_pair **sorted;
    size_t m = sig_sort_pairs(pairs, n, &sorted);
    struct sig_variant vars[4];
    size_t nv = sig_variants(url, url_len, flags, vars);

    /* Every variant is computed and compared, with no early exit, so the time taken
     * does not tell which variant matched either. */
    bool match = false;
    for (size_t i = 0; i < nv; i++) {
        char want[TW_SIG_LEN + 1];
        err = sig_mac_variant(keyed, &vars[i], sorted, m, want);
        if (err)
            goto fail;
        match |= CRYPTO_memcmp(want, sig, TW_SIG_LEN) == 0;
    }
    err = match ? 0 : VA_EAUTH;
fail:
    free(sorted);
    EVP_MAC_CTX_free(keyed);
    return err;
}
