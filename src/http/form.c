/* src/http/form.c: application/x-www-form-urlencoded decoding. */
#include "http/form.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"

static int form_hex(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes s[0, len) into out, NUL-terminates it and returns the decoded length,
 * which is never more than len. A '%' not followed by two hex digits stays literal:
 * that is what the WHATWG URL parser (browsers, Node's URLSearchParams) does, so a
 * signature computed over our decoding matches one computed by Twilio's SDKs. */
static size_t form_decode(char *out, const char *s, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '+') {
            out[o++] = ' ';
            continue;
        }
        if (c == '%' && len - i > 2) {
            int hi = form_hex((unsigned char)s[i + 1]);
            int lo = form_hex((unsigned char)s[i + 2]);
            if (hi >= 0 && lo >= 0) {
                out[o++] = (char)(hi << 4 | lo);
                i += 2;
                continue;
            }
        }
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return o;
}

int va_form_parse(struct va_form *form, const char *body, size_t len, size_t max_pairs)
{
    form->pairs = NULL;
    form->len = 0;
    form->arena = NULL;

    /* Count the non-empty segments first so the bound is enforced before any
     * allocation, and so one arena sized from the input holds every string. */
    size_t count = 0;
    for (size_t i = 0; i < len;) {
        const char *amp = memchr(body + i, '&', len - i);
        size_t seg = amp ? (size_t)(amp - (body + i)) : len - i;
        if (seg) {
            if (count == max_pairs)
                return VA_ETOOBIG;
            count++;
        }
        i += seg + 1;
    }
    if (!count)
        return 0;

    /* Decoding never grows a string; each pair adds two terminators. A non-empty
     * segment takes at least one byte, so count <= len and this cannot overflow
     * unless len is above SIZE_MAX / 3. */
    if (len > (SIZE_MAX - 1) / 3)
        return VA_ETOOBIG;
    char *arena = va_xmalloc(len + 2 * count);
    struct va_form_pair *pairs = va_xcalloc(count, sizeof(*pairs));

    size_t n = 0;
    size_t used = 0;
    for (size_t i = 0; i < len;) {
        const char *seg = body + i;
        const char *amp = memchr(seg, '&', len - i);
        size_t seg_len = amp ? (size_t)(amp - seg) : len - i;
        i += seg_len + 1;
        if (!seg_len)
            continue;

        /* Split on the first '=' before decoding: an encoded %3D belongs to the
         * name or value it appears in. No '=' means an empty value. */
        const char *eq = memchr(seg, '=', seg_len);
        size_t raw_name_len = eq ? (size_t)(eq - seg) : seg_len;
        const char *raw_value = eq ? eq + 1 : seg + seg_len;
        size_t raw_value_len = eq ? seg_len - raw_name_len - 1 : 0;

        struct va_form_pair *p = &pairs[n++];
        p->name = arena + used;
        p->name_len = form_decode(arena + used, seg, raw_name_len);
        used += p->name_len + 1;
        p->value = arena + used;
        p->value_len = form_decode(arena + used, raw_value, raw_value_len);
        used += p->value_len + 1;
    }

    form->pairs = pairs;
    form->len = n;
    form->arena = arena;
    return 0;
}

void va_form_deinit(struct va_form *form)
{
    free(form->pairs);
    free(form->arena);
    form->pairs = NULL;
    form->len = 0;
    form->arena = NULL;
}

const struct va_form_pair *va_form_get(const struct va_form *form, const char *name)
{
    size_t name_len = strlen(name); /* ours, a C string constant; not peer data */
    for (size_t i = 0; i < form->len; i++) {
        const struct va_form_pair *p = &form->pairs[i];
        if (p->name_len == name_len && !memcmp(p->name, name, name_len))
            return p;
    }
    return NULL;
}
