/* include/core/json.h: the one JSON string escaper (logs, error bodies). */
#ifndef VA_CORE_JSON_H
#define VA_CORE_JSON_H

#include <stddef.h>

#include "core/buf.h"

/* Appends s[0, len) as a quoted JSON string: '"' and '\\' escaped, control
 * characters as \n \r \t or \u00XX, invalid UTF-8 bytes as \ufffd (so a log line
 * stays valid JSON whatever a peer sent). 0 or VA_ETOOBIG. */
int va_json_str(struct va_buf *out, const char *s, size_t len);

#endif
