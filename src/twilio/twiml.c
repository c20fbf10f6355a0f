/* src/twilio/twiml.c: the TwiML documents we answer with (reference §2). */
#include "twilio/twiml.h"

#include <stdbool.h>
#include <string.h>

#include "core/err.h"

/* The declaration opens the document at byte 0: leading whitespace is error 12100. */
#define TWIML_DECL "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"

/* Puts out back as it was before a failed append: callers get all or nothing. */
static int twiml_undo(struct va_buf *out, size_t saved, int err)
{
    out->len = saved;
    if (out->data)
        out->data[saved] = '\0';
    return err;
}

/* Length of the well-formed UTF-8 sequence at s[0, len) that encodes an XML 1.0
 * Char (RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF; XML also
 * excludes U+FFFE and U+FFFF), or 0. The caller handles ASCII. */
static size_t twiml_utf8_len(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xBF;
    size_t n;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* U+D800..U+DFFF */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* past U+10FFFF */
    } else {
        return 0;
    }
    if (len < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++) {
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    }
    if (n == 3 && c == 0xEF && s[1] == 0xBF && s[2] >= 0xBE)
        return 0; /* U+FFFE, U+FFFF */
    return n;
}

int tw_xml_escape(struct va_buf *out, const char *s, size_t len)
{
    size_t saved = out->len;
    const unsigned char *u = (const unsigned char *)s;
    size_t run = 0; /* start of the bytes copied as they are */

    for (size_t i = 0; i < len;) {
        unsigned char c = u[i];
        const char *rep = NULL;
        size_t skip = 1;
        bool keep = false;
        switch (c) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&apos;";
            break;
        case '\t':
        case '\n':
        case '\r':
            keep = true;
            break;
        default:
            if (c >= 0x80) {
                /* A byte that is not part of a valid sequence would make the whole
                 * document unparseable (12100): drop it. */
                skip = twiml_utf8_len(u + i, len - i);
                keep = skip != 0;
                if (!skip)
                    skip = 1;
            } else {
                /* C0 controls and DEL: XML 1.0 cannot carry C0, DEL only as a
                 * discouraged character; neither belongs in a phone prompt. */
                keep = c >= 0x20 && c != 0x7F;
            }
            break;
        }
        if (keep) {
            i += skip;
            continue;
        }
        int err = va_buf_append(out, s + run, i - run);
        if (!err && rep)
            err = va_buf_append_str(out, rep);
        if (err)
            return twiml_undo(out, saved, err);
        i += skip;
        run = i;
    }
    int err = va_buf_append(out, s + run, len - run);
    if (err)
        return twiml_undo(out, saved, err);
    return 0;
}

/* Twilio refuses a <Parameter> whose name and value together reach 500 characters.
 * We count bytes, which are never fewer than characters. */
#define TWIML_PARAM_MAX 499

/* The longest prefix of value[0, len) that fits in max bytes without splitting a
 * UTF-8 sequence. */
static size_t twiml_utf8_prefix(const char *value, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t cut = max;
    /* Step back over continuation bytes (10xxxxxx) to the start of the sequence the
     * cut falls in; a valid sequence has at most three of them. */
    for (int k = 0; k < 3 && cut > 0 && ((unsigned char)value[cut] & 0xC0) == 0x80; k++)
        cut--;
    return cut;
}

static int twiml_param(struct va_buf *out, const struct tw_param *p)
{
    if (!p->name || (!p->value && p->value_len))
        return VA_EINVAL;
    size_t name_len = strlen(p->name); /* ours: a constant such as "CallSid" */
    if (name_len >= TWIML_PARAM_MAX)
        return VA_EINVAL;
    size_t value_len = twiml_utf8_prefix(p->value, p->value_len, TWIML_PARAM_MAX - name_len);

    int err = va_buf_append_str(out, "<Parameter name=\"");
    if (!err)
        err = tw_xml_escape(out, p->name, name_len);
    if (!err)
        err = va_buf_append_str(out, "\" value=\"");
    if (!err && value_len)
        err = tw_xml_escape(out, p->value, value_len);
    if (!err)
        err = va_buf_append_str(out, "\"/>");
    return err;
}

static int twiml_say(struct va_buf *out, const char *text)
{
    if (!text || !text[0])
        return 0;
    int err = va_buf_append_str(out, "<Say>");
    if (!err)
        err = tw_xml_escape(out, text, strlen(text));
    if (!err)
        err = va_buf_append_str(out, "</Say>");
    return err;
}

int tw_twiml_stream(struct va_buf *out, const char *ws_url, const struct tw_param *params,
                    size_t nparams, const char *apology)
{
    /* A query string in <Stream url> fails the upgrade (31920): per-call data goes
     * in <Parameter>. */
    if (!ws_url || strpbrk(ws_url, "?#"))
        return VA_EINVAL;

    size_t saved = out->len;
    int err = va_buf_append_str(out, TWIML_DECL "<Response><Connect><Stream url=\"");
    if (!err)
        err = tw_xml_escape(out, ws_url, strlen(ws_url));
    if (!err)
        err = va_buf_append_str(out, "\">");
    for (size_t i = 0; !err && i < nparams; i++)
        err = twiml_param(out, &params[i]);
    if (!err)
        err = va_buf_append_str(out, "</Stream></Connect>");
    if (!err)
        err = twiml_say(out, apology);
    if (!err)
        err = va_buf_append_str(out, "</Response>");
    if (err)
        return twiml_undo(out, saved, err);
    return 0;
}

int tw_twiml_apology(struct va_buf *out, const char *apology)
{
    size_t saved = out->len;
    int err = va_buf_append_str(out, TWIML_DECL "<Response>");
    if (!err)
        err = twiml_say(out, apology);
    if (!err)
        err = va_buf_append_str(out, "<Hangup/></Response>");
    if (err)
        return twiml_undo(out, saved, err);
    return 0;
}
