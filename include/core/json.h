/* include/core/json.h: the one JSON string escaper (logs, error bodies), and the reader
 * of flat objects that the call path's hot messages are read with in place. */
#ifndef VA_CORE_JSON_H
#define VA_CORE_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

/* Appends s[0, len) as a quoted JSON string: '"' and '\\' escaped, control
 * characters as \n \r \t or \u00XX, invalid UTF-8 bytes as \ufffd (so a log line
 * stays valid JSON whatever a peer sent). 0 or VA_ETOOBIG. */
int va_json_str(struct va_buf *out, const char *s, size_t len);

/* ---- flat objects, read in place ----
 * The messages of the call path that come by the thousand (a Twilio media message, a
 * Realtime audio delta) have one shape: one object, no whitespace, every value a string
 * without escapes or a small integer, at most one member an object of the same kind.
 * va_json_flat() reads that shape where it lies instead of building a cJSON tree; for
 * anything else it says no, and the caller goes the cJSON way, which must then give the
 * same result or the error. */

/* One value: a string's bytes between its quotes, or an integer's digits. */
struct va_json_span {
    const char *p;
    size_t n;
    bool set; /* the key was there */
    bool num; /* an integer, not a string */
};

/* What to take: the values of keys[0, n) land in vals[0, n) (all zeroed by the caller);
 * other members are skipped. sub, when not NULL, names the one member whose value is an
 * object, read with sub_obj. */
struct va_json_flat {
    const char *const *keys;
    struct va_json_span *vals;
    size_t n;
    const char *sub;
    struct va_json_flat *sub_obj;
    bool sub_seen;
};

/* True when s[0, len) is exactly one such object (nothing before or after it): every
 * member a string with no backslash and no control byte, or a run of digits without a
 * leading zero, or the sub object; no key of keys[] (or sub) twice. Pure. */
bool va_json_flat(const char *s, size_t len, struct va_json_flat *f);

/* True when the span is the string lit. */
bool va_json_span_is(const struct va_json_span *v, const char *lit);

#endif
