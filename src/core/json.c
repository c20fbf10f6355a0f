/* src/core/json.c: JSON string escaping; flat objects read in place. */
#include "core/json.h"

#include <stdint.h>
#include <string.h>

#include "core/err.h"

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when it is not one. */
static size_t json_utf8_len(const unsigned char *p, size_t avail)
{
    unsigned char c = p[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    /* overlong forms, surrogates and values past U+10FFFF are not UTF-8 */
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

int va_json_str(struct va_buf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t start = out->len;
    int err = va_buf_append_char(out, '"');
    for (size_t i = 0; !err && i < len;) {
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            err = va_buf_append(out, esc, 2);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            if (c == '\n')
                err = va_buf_append(out, "\\n", 2);
            else if (c == '\r')
                err = va_buf_append(out, "\\r", 2);
            else if (c == '\t')
                err = va_buf_append(out, "\\t", 2);
            else
                err = va_buf_append(out, esc, 6);
            i++;
        } else {
            size_t n = json_utf8_len(p + i, len - i);
            if (n == 0) {
                err = va_buf_append(out, "\\ufffd", 6);
                i++;
            } else {
                err = va_buf_append(out, p + i, n);
                i += n;
            }
        }
    }
    if (!err)
        err = va_buf_append_char(out, '"');
    if (err) {
        out->len = start;
        if (out->data)
            out->data[start] = '\0';
    }
    return err;
}

/* ---- flat objects (json.h) ---- */

bool va_json_span_is(const struct va_json_span *v, const char *lit)
{
    /* no strlen per call: this runs for every member against every key, per frame; a
     * span never holds a NUL (the reader declines control bytes) */
    return v->set && !v->num && strncmp(lit, v->p, v->n) == 0 && lit[v->n] == '\0';
}

/* The string opening at s[*i]: no escape, no control byte (cJSON reads those the same
 * way, but declining keeps this reader trivially equal to it). */
static bool json_flat_str(const char *s, size_t len, size_t *i, struct va_json_span *out)
{
    if (*i >= len || s[*i] != '"')
        return false;
    size_t b = ++*i;
    /* 8 bytes at a time while none is a quote, a backslash or a control byte: the
     * zero-byte test (x - 0x01..) & ~x & 0x80.. is non-zero exactly when some byte of x
     * is 0 (of w ^ '"', w ^ '\\'), and with 0x20.. when some byte of w is below 0x20;
     * the byte loop then finds which */
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    while (*i + 8 <= len) {
        uint64_t w, q, bs;
        memcpy(&w, s + *i, 8);
        q = w ^ (ones * '"');
        bs = w ^ (ones * '\\');
        if (((q - ones) & ~q & highs) | ((bs - ones) & ~bs & highs) |
            ((w - ones * 0x20) & ~w & highs))
            break;
        *i += 8;
    }
    for (; *i < len; ++*i) {
        unsigned char c = (unsigned char)s[*i];
        if (c == '"') {
            *out = (struct va_json_span){s + b, *i - b, true, false};
            ++*i;
            return true;
        }
        if (c == '\\' || c < 0x20)
            return false;
    }
    return false;
}

/* A string, or digits with no leading zero (no sign, fraction or exponent: declined). */
static bool json_flat_value(const char *s, size_t len, size_t *i, struct va_json_span *out)
{
    if (*i < len && s[*i] >= '0' && s[*i] <= '9') {
        size_t b = *i;
        while (*i < len && s[*i] >= '0' && s[*i] <= '9')
            ++*i;
        if ((s[b] == '0' && *i - b > 1) || *i - b > 15)
            return false;
        *out = (struct va_json_span){s + b, *i - b, true, true};
        return true;
    }
    return json_flat_str(s, len, i, out);
}

static bool json_flat_obj(const char *s, size_t len, size_t *i, struct va_json_flat *f)
{
    if (*i >= len || s[*i] != '{')
        return false;
    ++*i;
    if (*i < len && s[*i] == '}')
        return ++*i, true;
    for (;;) {
        struct va_json_span k, v;
        if (!json_flat_str(s, len, i, &k) || *i >= len || s[*i] != ':')
            return false;
        ++*i;
        if (f->sub && va_json_span_is(&k, f->sub)) {
            if (f->sub_seen || !json_flat_obj(s, len, i, f->sub_obj))
                return false;
            f->sub_seen = true;
        } else {
            if (!json_flat_value(s, len, i, &v))
                return false;
            for (size_t j = 0; j < f->n; j++) {
                if (va_json_span_is(&k, f->keys[j])) {
                    if (f->vals[j].set)
                        return false;
                    f->vals[j] = v;
                }
            }
        }
        if (*i >= len)
            return false;
        if (s[(*i)++] == '}')
            return true;
        if (s[*i - 1] != ',')
            return false;
    }
}

bool va_json_flat(const char *s, size_t len, struct va_json_flat *f)
{
    size_t i = 0;
    return s && json_flat_obj(s, len, &i, f) && i == len;
}
